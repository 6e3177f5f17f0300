"""Deflection figures from the call log (SQLite or PostgreSQL): what ``ivr-report`` prints
and the dashboard shows (definitions: docs/deflection.md).

Every figure comes from SQL aggregations over ``calls`` and
``node_events``; no call is ever loaded into Python, so a log of millions
of calls reports in seconds (docs/performance.md).  Rows come back as
plain dicts: rates are floats (None when there is nothing to divide by),
money is a :class:`~decimal.Decimal` rounded to the cent.

Only calls with an outcome count.  A call still in progress (outcome NULL)
is in no figure: not as a call, not as a repeat of an earlier call, not in
a funnel.

Times.  ``started_at`` is the flow's local time with its UTC offset, so
periods, days and hours are read from the local text (a day is the
caller's day, whatever the offset), while the repeat window is measured
between instants (``julianday`` honours the offset, so a call back across
a daylight-saving change is still 24 hours away when it is).

The SQL is the subset both databases speak; the few things each says in
its own words (times as days, sums, planner hints) come from
:mod:`ivr.reports.dialect`.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal

import sqlite_utils

from ivr.flow.model import OUTCOMES, REASON_NOT_STATED, TRANSFER_CAUSES
from ivr.i18n import _
from ivr.reports.call_queries import CallSearch, search_where
from ivr.reports.dialect import dialect_of
from ivr.reports.queries import (
    _CENT,
    _MS_PER_DAY,
    Costs,
    Filters,
    ReportError,
    _local_bound,
    _where,
    open_report_db,
)

__all__ = [
    "Costs", "DIMENSIONS", "Filters", "ReportError", "calls", "funnel", "funnel_version",
    "open_report_db", "over_time", "reasons", "summary",
]

#: What a summary can be grouped by.  ``day`` is the local date
#: (YYYY-MM-DD), ``hour`` the local hour of day (0-23, all days together).
DIMENSIONS = ("reason", "flow", "version", "language", "day", "hour", "provider")

_GROUP_SQL = {
    "reason": "c.reason",
    "flow": "c.flow",
    "version": "c.version",
    "language": "c.lang",
    "day": "substr(c.started_at, 1, 10)",
    "hour": "CAST(substr(c.started_at, 12, 2) AS INTEGER)",
    "provider": "c.provider",
}

#: Dimensions whose rows read best in time order; the others by volume.
_TIME_ORDERED = ("day", "hour")


# --- opening the log -----------------------------------------------------------


# --- filters -------------------------------------------------------------------


# --- summary -------------------------------------------------------------------


def summary(db: sqlite_utils.Database, filters: Filters = Filters(), by: str | None = None, *,
            costs: Costs = Costs(), repeat_window: timedelta = timedelta(hours=24)) -> list[dict]:
    """The deflection figures of the calls in ``filters``, one row per
    value of ``by`` (one row in all when ``by`` is None).

    Keys: ``<by>`` (absent when ``by`` is None; with ``version`` also
    ``flow``), ``calls``, one count per outcome, ``causes`` (transferred
    calls per cause, every cause present), ``deflection_rate``,
    ``repeat_calls``, ``deflected``, ``repeat_adjusted_deflection_rate``,
    ``transfers_answered``, ``queue_abandoned`` (callers who hung up in
    the agents' queue: still transferred), ``transfers_unanswered`` (no
    answer, busy, queue full), ``queue_abandonment_rate`` (queue_abandoned
    ÷ (transfers_answered + queue_abandoned)), ``avg_queue_seconds_abandoned``
    (how long those callers waited, when the provider said),
    ``confirmed``, ``sms_sent`` (texts sent), ``avg_ivr_seconds``,
    ``ivr_minutes``, ``cost_saved``,
    ``currency``.  Grouped rows come by time for ``day`` and ``hour``,
    else by calls, most first.
    """
    if by is not None and by not in DIMENSIONS:
        raise ReportError(_("unknown dimension {by!r}: expected one of {expected}").format(
            by=by, expected=", ".join(DIMENSIONS)))
    return _grouped(db, filters, (by,) if by else (), costs, repeat_window)


def over_time(db: sqlite_utils.Database, filters: Filters = Filters(), by: str = "day", *,
              costs: Costs = Costs(), repeat_window: timedelta = timedelta(hours=24)) -> list[dict]:
    """:func:`summary` rows by local ``day`` or ``hour`` of day, in time
    order.  Days and hours without calls have no row."""
    if by not in _TIME_ORDERED:
        raise ReportError(_("over_time is by day or hour, not {by!r}").format(by=by))
    return summary(db, filters, by, costs=costs, repeat_window=repeat_window)


def reasons(db: sqlite_utils.Database, filters: Filters = Filters(), by: str | None = None, *,
            costs: Costs = Costs(), repeat_window: timedelta = timedelta(hours=24)) -> list[dict]:
    """:func:`summary` rows by contact reason, most calls first, each with
    ``volume_rank`` (1 = the most calls) and ``deflection_rank`` (1 = the
    highest repeat-adjusted deflection rate).  Ties share a rank.

    With ``by`` (another dimension), the reasons of each of its values,
    ranked within it.
    """
    if by is not None and by not in DIMENSIONS:
        raise ReportError(_("unknown dimension {by!r}: expected one of {expected}").format(
            by=by, expected=", ".join(DIMENSIONS)))
    dims = ("reason",) if by in (None, "reason") else (by, "reason")
    rows = _grouped(db, filters, dims, costs, repeat_window)
    _rank_reasons(rows, by if len(dims) == 2 else None)
    return rows


def _rank_reasons(rows: list[dict], by: str | None) -> None:
    """Give each reason row its ranks, within its value of ``by`` if any."""
    groups: dict = {}
    for row in rows:
        groups.setdefault(row[by] if by else None, []).append(row)
    for members in groups.values():
        _rank(members, "volume_rank", lambda r: r["calls"])
        _rank(members, "deflection_rank", lambda r: r["repeat_adjusted_deflection_rate"] or 0.0)


def _rank(rows: list[dict], key: str, value) -> None:
    """Competition ranking (1, 2, 2, 4) of ``rows`` by ``value``, highest first."""
    ordered = sorted(rows, key=value, reverse=True)
    for position, row in enumerate(ordered):
        same = position and value(row) == value(ordered[position - 1])
        row[key] = ordered[position - 1][key] if same else position + 1


def _grouped(db, filters: Filters, dims: tuple, costs: Costs, window: timedelta,
             repeats: dict | None = None) -> list[dict]:
    """The summary rows of ``filters`` by ``dims``; ``repeats`` (repeat
    calls per group of ``dims``) when already counted, else counted here."""
    if window <= timedelta(0):
        raise ReportError(_("the repeat window must be longer than zero"))
    _need_provider(db, filters, dims)
    figures = _figures(db, filters, dims)
    if repeats is None:
        repeats = _repeats(db, filters, dims, window)
    return _summary_rows(figures, dims, repeats, costs)


def _figures(db, filters: Filters, dims: tuple) -> list[dict]:
    """One row of counts and sums per group of ``dims`` (``g0``, ``g1``…),
    one in all without ``dims``: what :func:`_summary_row` makes figures of."""
    where, params = _where(filters)
    keys = [f"{_GROUP_SQL[d]} AS g{i}" for i, d in enumerate(dims)]
    if "version" in dims and "flow" not in dims:
        keys.append("min(c.flow) AS version_flow")
    # count(*) FILTER is twice as fast as sum(condition) over a million rows.
    outcome_counts = [f"count(*) FILTER (WHERE c.outcome = '{o}') AS {o}" for o in OUTCOMES]
    cause_counts = [f"count(*) FILTER (WHERE c.outcome = 'transferred' AND c.cause = '{cause}') "
                    f"AS cause_{cause}" for cause in TRANSFER_CAUSES]
    # Calls that never said why: ended before a reason could be known, or
    # put through without one (the reason question skipped).
    unstated = [f"count(*) FILTER (WHERE c.reason = '{REASON_NOT_STATED}' AND c.outcome = '{o}') "
                f"AS not_stated_{o}" for o in ("abandoned", "transferred")]
    group_by = f"GROUP BY {', '.join(f'g{i}' for i in range(len(dims)))}" if dims else ""
    total = dialect_of(db).total
    figures = db.query(f"""
        SELECT {', '.join(keys + ['count(*) AS calls'] + outcome_counts + cause_counts + unstated
                          + _transfer_result_counts(db))},
               CAST(sum(c.confirmed) AS INTEGER) AS confirmed,
               {total("c.sms_sent") if _has_column(db, "calls", "sms_sent") else "0"} AS sms_sent,
               avg(c.ivr_seconds) AS avg_ivr_seconds,
               count(c.ivr_seconds) AS ivr_seconds_count,
               {total("c.ivr_seconds")} AS ivr_seconds
        FROM calls c
        WHERE {where}
        {group_by}""", params)
    return list(figures)


def _summary_rows(figures: list[dict], dims: tuple, repeats: dict, costs: Costs) -> list[dict]:
    """The summary rows of :func:`_figures`' rows, in their order (by time,
    else most calls first)."""
    rows = []
    for row in figures:
        group = tuple(row[f"g{i}"] for i in range(len(dims)))
        rows.append(_summary_row(row, dims, repeats.get(group, 0), costs))
    if not dims:  # an aggregate without GROUP BY always returns a row
        return rows
    if dims[0] in _TIME_ORDERED:
        rows.sort(key=lambda r: tuple(_sortable(r[d]) for d in dims))
    else:
        rows.sort(key=lambda r: (-r["calls"],) + tuple(_sortable(r[d]) for d in dims))
    if len(dims) == 2:  # reasons within another dimension: that dimension's order first
        first = dims[0]
        if first in _TIME_ORDERED:
            rows.sort(key=lambda r: _sortable(r[first]))  # stable: reasons keep their order
        else:
            volume: dict = {}
            for row in rows:
                volume[row[first]] = volume.get(row[first], 0) + row["calls"]
            rows.sort(key=lambda r: (-volume[r[first]], _sortable(r[first])))
    return rows


def _sortable(value) -> tuple:
    return (value is None, value if value is not None else "")


def _repeats(db, filters: Filters, dims: tuple, window: timedelta) -> dict:
    """Repeat calls per group: self-served calls of ``filters`` after which
    the same caller called again for the same reason within ``window``.

    The later call may lie outside the period or the flow reported (the
    caller came back all the same) but must have ended.  The candidates are
    read in the order of the (caller_hash, reason, julianday(started_at),
    outcome) index, so each look-up for a later call lands next to the last
    one; only the repeats found are then read from the table to be grouped.
    """
    where, params = _where(filters)
    dialect = dialect_of(db)
    days = dialect.days
    window_ms = round(window.total_seconds() * 1000)
    params.update(window_days=window_ms / _MS_PER_DAY, window_ms=window_ms, ms_per_day=_MS_PER_DAY)
    near = ""
    if filters.since or filters.until:
        # Instants of the period, widened by the largest UTC offsets (-12 h,
        # +14 h): skips most look-ups outside it; the exact local-time
        # filter comes after.
        if filters.since:
            near += f" AND {days('s.started_at')} >= {days(':since')} - 14.0 / 24"
        if filters.until:
            near += f" AND {days('s.started_at')} < {days(':until')} + 12.0 / 24"
    keys = [f"{_GROUP_SQL[d]} AS g{i}" for i, d in enumerate(dims)]
    group_by = f"GROUP BY {', '.join(f'g{i}' for i in range(len(dims)))}" if dims else ""
    sql = f"""
        SELECT {', '.join(keys + ['count(*) AS repeat_calls'])}
        FROM calls c
        WHERE c.{dialect.row_key} IN (
            SELECT s.{dialect.row_key} FROM calls s {dialect.repeat_hint(db)}
            WHERE s.caller_hash > '' AND s.outcome = 'self_served'{near}
              AND EXISTS (
                SELECT 1 FROM calls r
                WHERE r.caller_hash = s.caller_hash AND r.reason = s.reason
                  AND {days('r.started_at')} > {days('s.started_at')}
                  AND {days('r.started_at')} <= {days('s.started_at')} + :window_days + 1e-9
                  AND round(({days('r.started_at')} - {days('s.started_at')}) * :ms_per_day)
                      <= :window_ms
                  AND r.outcome IS NOT NULL))
          AND {where}
        {group_by}"""
    return {tuple(row[f"g{i}"] for i in range(len(dims))): row["repeat_calls"]
            for row in db.query(sql, params)}


#: What happened at the human's end of a transfer (``calls.transfer_result``).
TRANSFER_RESULTS = ("answered", "abandoned_in_queue", "no_answer")


def _transfer_result_counts(db) -> list[str]:
    """The SQL columns counting transfers by their result, and the seconds
    waited by the callers who gave up in the queue (zeros on a log written
    before the server kept them)."""
    if not _has_column(db, "calls", "transfer_result"):
        return [f"0 AS transfer_{r}" for r in TRANSFER_RESULTS] + [
            "NULL AS avg_abandoned_queue_seconds", "NULL AS abandoned_queue_seconds",
            "0 AS abandoned_queue_count"]
    abandoned = "FILTER (WHERE c.transfer_result = 'abandoned_in_queue')"
    return [f"count(*) FILTER (WHERE c.transfer_result = '{r}') AS transfer_{r}"
            for r in TRANSFER_RESULTS] + [
        f"avg(c.queue_seconds) {abandoned} AS avg_abandoned_queue_seconds",
        # The average's parts, for a figure added up from groups.
        f"sum(c.queue_seconds) {abandoned} AS abandoned_queue_seconds",
        f"count(c.queue_seconds) {abandoned} AS abandoned_queue_count"]


def _need_provider(db, filters: Filters, dims: tuple = ()) -> None:
    """Refuse a report by provider on a log written before calls had one."""
    if (filters.provider or "provider" in dims) and not _has_column(db, "calls", "provider"):
        raise ReportError(_("a call log of an older version (no provider column): start "
                            "ivr-serve on it once to bring it up to date"))


def _has_column(db, table: str, column: str) -> bool:
    """Whether a log written by an older version already has ``column``
    (reports open the file read-only, so they never migrate it)."""
    return column in dialect_of(db).columns(db, table)


def _summary_row(row: dict, dims: tuple, repeats: int, costs: Costs) -> dict:
    calls_count = row["calls"] or 0
    self_served = row["self_served"] or 0
    deflected = self_served - repeats
    seconds = row["ivr_seconds"] or 0.0
    minutes = Decimal(repr(seconds)) / 60
    out: dict = {}
    for i, dim in enumerate(dims):
        out[dim] = row[f"g{i}"]
    if "version" in dims and "flow" not in dims:
        out["flow"] = row["version_flow"]
    out.update(
        calls=calls_count,
        **{o: row[o] or 0 for o in OUTCOMES},
        causes={cause: row[f"cause_{cause}"] or 0 for cause in TRANSFER_CAUSES},
        ended_before_reason=row["not_stated_abandoned"] or 0,
        transferred_without_reason=row["not_stated_transferred"] or 0,
        deflection_rate=self_served / calls_count if calls_count else None,
        repeat_calls=repeats,
        deflected=deflected,
        repeat_adjusted_deflection_rate=deflected / calls_count if calls_count else None,
        **_queue_figures(row),
        confirmed=row["confirmed"] or 0,
        sms_sent=int(row["sms_sent"] or 0),
        avg_ivr_seconds=round(row["avg_ivr_seconds"], 1) if row["avg_ivr_seconds"] is not None else None,
        ivr_minutes=round(seconds / 60, 2),
        cost_saved=(deflected * Decimal(costs.agent_per_call)
                    - minutes * Decimal(costs.ivr_per_minute)).quantize(_CENT, ROUND_HALF_UP),
        currency=costs.currency,
    )
    return out


def _queue_figures(row: dict) -> dict:
    """Transfers by what happened at the human's end, and the queue
    abandonment rate: callers who hung up waiting ÷ callers who waited
    (answered + abandoned in the queue)."""
    answered = row["transfer_answered"] or 0
    abandoned = row["transfer_abandoned_in_queue"] or 0
    waited = row["avg_abandoned_queue_seconds"]
    return {
        "transfers_answered": answered,
        "queue_abandoned": abandoned,
        "transfers_unanswered": row["transfer_no_answer"] or 0,
        "queue_abandonment_rate": abandoned / (answered + abandoned) if answered + abandoned else None,
        "avg_queue_seconds_abandoned": round(waited, 1) if waited is not None else None,
    }


# --- funnel --------------------------------------------------------------------


def funnel_version(db: sqlite_utils.Database, flow: str, version: str | None = None,
                   filters: Filters = Filters()) -> str:
    """The version of ``flow`` a funnel is drawn for.

    ``version`` (else ``filters.version``) may be a prefix of one of the
    flow's versions; without either, the version of the flow's latest
    ended call in the period.  :class:`ReportError` when the flow has no
    calls (naming the flows that have), or the prefix matches no version
    or several.
    """
    prefix = version if version is not None else filters.version
    if prefix:
        versions = [r["version"] for r in db.query(
            "SELECT DISTINCT version FROM calls WHERE flow = ? ORDER BY version", [flow])]
        if not versions:
            raise ReportError(_no_calls(db, flow, period=False))
        matching = [v for v in versions if v.startswith(prefix)]
        if prefix in matching:
            return prefix
        if len(matching) == 1:
            return matching[0]
        if not matching:
            raise ReportError(_("flow {flow!r} has no version {prefix!r} (its versions: {versions})").format(
                flow=flow, prefix=prefix, versions=", ".join(versions)))
        raise ReportError(_("version {prefix!r} of flow {flow!r} is ambiguous ({matching}): give more of it")
                          .format(prefix=prefix, flow=flow, matching=", ".join(matching)))
    _need_provider(db, filters)
    where, params = _where(Filters(since=filters.since, until=filters.until, flow=flow,
                                   provider=filters.provider))
    latest = next(iter(db.query(
        f"SELECT c.version FROM calls c WHERE {where} ORDER BY c.started_at DESC LIMIT 1", params)), None)
    if latest is None:
        raise ReportError(_no_calls(db, flow, period=bool(filters.since or filters.until)))
    return latest["version"]


def _no_calls(db, flow: str, period: bool) -> str:
    flows = [r["flow"] for r in db.query(
        "SELECT DISTINCT flow FROM calls WHERE outcome IS NOT NULL ORDER BY flow")]
    if not flows:
        template = (_("flow {flow!r} has no calls in that period (the log has no ended calls)") if period
                    else _("flow {flow!r} has no calls (the log has no ended calls)"))
    else:
        template = (_("flow {flow!r} has no calls in that period (flows with calls: {flows})") if period
                    else _("flow {flow!r} has no calls (flows with calls: {flows})"))
    return template.format(flow=flow, flows=", ".join(flows))


def funnel(db: sqlite_utils.Database, flow: str, version: str | None = None,
           filters: Filters = Filters()) -> list[dict]:
    """Per node of one version of ``flow``: how many ended calls reached it
    and how many left there (hung up, transferred or failed, ended
    self-served) or went on.

    ``version`` None means the flow's latest version with calls (see
    :func:`funnel_version`).  Rows: ``node``, ``kind``, ``reached``,
    ``hung_up``, ``transferred``, ``ended``, ``continued``, ``dropped``
    (hung up + transferred), ``drop_off_rate``; the worst drop-off first
    (dropped, then drop-off rate, then node name).
    """
    chosen = funnel_version(db, flow, version, filters)
    where, params = _where(Filters(since=filters.since, until=filters.until, flow=flow,
                                   provider=filters.provider))
    params["version"] = chosen
    where += " AND c.version = :version"
    reached = _reached(db, filters, flow, chosen)
    exits = {row["node"]: row for row in db.query(
        f"""SELECT c.exit_node AS node,
                   count(*) FILTER (WHERE c.outcome = 'abandoned') AS hung_up,
                   count(*) FILTER (WHERE c.outcome IN ('transferred', 'failed')) AS transferred,
                   count(*) FILTER (WHERE c.outcome = 'self_served') AS ended
            FROM calls c WHERE {where} AND c.exit_node IS NOT NULL
            GROUP BY c.exit_node""", params)}
    rows = []
    for node, (kind, count) in reached.items():
        left = exits.get(node, {})
        hung_up, transferred, ended = (left.get(k) or 0 for k in ("hung_up", "transferred", "ended"))
        dropped = hung_up + transferred
        rows.append({
            "node": node, "kind": kind, "reached": count,
            "hung_up": hung_up, "transferred": transferred, "ended": ended,
            "continued": count - hung_up - transferred - ended,
            "dropped": dropped, "drop_off_rate": dropped / count,
        })
    rows.sort(key=lambda r: (-r["dropped"], -r["drop_off_rate"], r["node"]))
    return rows


#: A flow version's calls per node as counted when written: one row per
#: node on SQLite, rows of +1 and -1 to add up on PostgreSQL.
_COUNTED_REACHED = """SELECT node, min(kind) AS kind, CAST(sum(reached) AS BIGINT) AS reached
    FROM node_reached WHERE flow = :flow AND version = :version GROUP BY node"""

#: The same from the flagged events, on a log the server has not brought
#: up to date yet (reports never migrate it): its partial index of them.
_FLAGGED_REACHED = """SELECT n.node AS node, n.reached AS reached,
          (SELECT kind FROM node_events k
           WHERE k.flow = :flow AND k.version = :version AND k.node = n.node
             AND k.first_visit = 1 LIMIT 1) AS kind
   FROM (SELECT node, count(*) AS reached FROM node_events
         WHERE flow = :flow AND version = :version AND first_visit = 1
         GROUP BY node) n"""


def _reached(db, filters: Filters, flow: str, version: str) -> dict:
    """{node: (kind, distinct ended calls with an event there)} for the
    calls of one flow version in the period of ``filters``."""
    if filters.provider or ((filters.since or filters.until)
                            and not _version_within(db, filters, flow, version)):
        # The period's calls (the started_at index: the flow and version
        # terms are kept off their indexes), then their events: as fast as
        # the period is short.
        where, params = _where(Filters(since=filters.since, until=filters.until,
                                       provider=filters.provider))
        params.update(flow=flow, version=version)
        unindexed = dialect_of(db).unindexed
        return {row["node"]: (row["kind"], row["reached"]) for row in db.query(
            f"""SELECT e.node AS node, max(e.kind) AS kind, count(DISTINCT e.call_id) AS reached
                FROM calls c JOIN node_events e ON e.call_id = c.call_id
                WHERE {where} AND {unindexed('c.flow')} = :flow
                  AND {unindexed('c.version')} = :version
                GROUP BY e.node""", params)}
    # The whole version (or a period that holds all its calls, as a
    # dashboard over a quarter does): each call's first event at a node is
    # flagged and counted as it is written (node_reached); then the calls
    # still in progress (few) taken out.
    params = {"flow": flow, "version": version}
    counted = "node_reached" in db.table_names()
    reached = {row["node"]: [row["kind"], row["reached"]] for row in db.query(
        _COUNTED_REACHED if counted else _FLAGGED_REACHED, params)}
    for row in db.query(
            """SELECT e.node AS node, count(DISTINCT e.call_id) AS reached
               FROM calls c JOIN node_events e ON e.call_id = c.call_id
               WHERE c.flow = :flow AND c.version = :version
                 AND c.exit_node IS NULL AND c.outcome IS NULL
               GROUP BY e.node""", params):
        if row["node"] in reached:
            reached[row["node"]][1] -= row["reached"]
    return {node: (kind, count) for node, (kind, count) in reached.items() if count > 0}


def _version_within(db, filters: Filters, flow: str, version: str) -> bool:
    """Whether every call of the flow version, ended or not, started in the
    period of ``filters``: its funnel is then the whole version's, counted
    from the flagged events' index rather than from each call's events.
    Looks for a call before the period and one after it (ranges of the
    report figures index, empty when the period holds the version)."""
    _where(filters)  # a bad or empty period is refused here as everywhere
    for name, before_or_after in (("since", "<"), ("until", ">=")):
        bound = _local_bound(getattr(filters, name), name)
        if bound is not None and next(iter(db.query(
                f"SELECT 1 AS found FROM calls c WHERE c.flow = :flow "
                f"AND c.started_at {before_or_after} :bound AND c.version = :version LIMIT 1",
                {"flow": flow, "version": version, "bound": bound})), None) is not None:
            return False
    return True


# --- calls ---------------------------------------------------------------------

#: The columns :func:`calls` shows: the caller only as its hash.
CALL_COLUMNS = (
    "call_id", "flow", "version", "started_at", "ended_at", "caller_hash", "lang", "reason",
    "outcome", "cause", "confirmed", "handoff_kind", "handoff_target", "steps", "exit_node",
    "ivr_seconds", "provider_status", "duration_s",
)
#: Shown by :func:`calls` when the log has them (written since migrations
#: 0009 and 0010).
_LATER_COLUMNS = ("transfer_result", "queue_seconds", "provider")


def calls(db: sqlite_utils.Database, filters: Filters = Filters(), limit: int = 100,
          search: CallSearch = CallSearch()) -> list[dict]:
    """The most recent calls of ``filters`` and ``search`` (calls in
    progress included, with outcome None), newest first, at most ``limit``.

    Nothing about the caller but ``caller_hash``: a callback's number
    (``handoff_target`` of a callback, itself a hash) is left out.
    """
    if not isinstance(limit, int) or limit < 1:
        raise ReportError(_("limit must be a whole number of calls, 1 or more, not {limit!r}").format(limit=limit))
    _need_provider(db, filters)
    where, params = _where(filters, ended_only=False)
    searched, search_params = search_where(search)
    where, params = f"{where} AND {searched}", {**params, **search_params}
    shown = CALL_COLUMNS + tuple(c for c in _LATER_COLUMNS if _has_column(db, "calls", c))
    columns = ", ".join(
        "CASE WHEN c.handoff_kind = 'callback' THEN NULL ELSE c.handoff_target END AS handoff_target"
        if column == "handoff_target" else f"c.{column}" for column in shown)
    params["limit"] = limit
    return list(db.query(
        f"SELECT {columns} FROM calls c WHERE {where} "
        f"ORDER BY c.started_at DESC, c.call_id DESC LIMIT :limit", params))
