"""``ivr-report``: deflection figures from the call log, for people and scripts.

A thin layer over :mod:`ivr.reports.analytics`: it opens the log read-only, turns
options into :class:`~ivr.reports.analytics.Filters` and
:class:`~ivr.reports.analytics.Costs`, and prints the rows as a table (people),
CSV or JSON (scripts).  Library errors become one-line messages and exit
code 1.

A new subcommand takes ``@report_options`` (``--db``, the period and
flow filters, ``--format``), opens the log with :func:`ivr.reports.output.open_log` and
prints with :func:`ivr.reports.output.emit`.

Output formats.  ``table``: aligned columns, rates as ``62.5 %``, money
with its currency.  ``csv``: one flat row per API row (the transfer
causes as ``cause_<name>`` columns).  ``json``: the API's rows as they
are, except money (a ``Decimal``), written as a string ("1234.50") so no
cent is lost to floating point; rates are numbers between 0 and 1, or
null when there were no calls.
"""

from __future__ import annotations

import functools
from datetime import timedelta
from decimal import Decimal, InvalidOperation

import click

from ivr.click_i18n import OperatorGroup, language_chosen, speak_click_in_operator_language
from ivr.flow import dates
from ivr.flow.model import TRANSFER_CAUSES
from ivr.i18n import N_, _, ngettext
from ivr.reports import analytics
from ivr.reports.call_cli import search_from_options, search_options
from ivr.reports.output import as_json, count, emit, moment, money, open_log, percent, seconds, table
from ivr.reports.priority import run_in_background
from ivr.reports.queries import DATABASE_ERRORS, Costs, Filters, ReportError
from ivr.reports.reason_texts import reason_meanings

FORMATS = ("table", "csv", "json")

BY_HELP = f"Group the figures by one of: {', '.join(analytics.DIMENSIONS)}."


# --- options -------------------------------------------------------------------


class _Money(click.ParamType):
    """An amount of money, exact (a Decimal), not negative."""

    name = "AMOUNT"

    def convert(self, value, param, ctx):
        if isinstance(value, Decimal):
            return value
        try:
            amount = Decimal(str(value).strip())
        except InvalidOperation:
            self.fail(_("{value!r} is not an amount like 3.00").format(value=value), param, ctx)
        if not amount.is_finite() or amount < 0:
            self.fail(_("{value!r} is not an amount like 3.00").format(value=value), param, ctx)
        return amount


MONEY = _Money()


#: A bad date or time given to an option: one line, the form to use.
BAD_DATE = N_("Invalid value for {option}: {problem}")


def bad_date(param, error: Exception) -> click.ClickException:
    """The one-line error (exit status 1, no usage text) for the bad date
    ``error`` given to the option ``param`` (a click parameter or its name)."""
    option = param if isinstance(param, str) else (param.opts[0] if param else _("a date"))
    return click.ClickException(_(BAD_DATE).format(option=option, problem=error))


class LocalTime(click.ParamType):
    """A local date or time (``2026-11-01``, ``2026-11-01 09:00``, ISO 8601
    or an unambiguous ``13/11/2026``), passed on in ISO 8601: a bad one is
    a one-line error saying the form to use, never a traceback."""

    name = "DATE"

    def convert(self, value, param, ctx):
        if value is None or value == "":
            return None
        try:
            return dates.iso(dates.parse_day(value))
        except dates.DateError:
            pass
        try:
            moment = dates.parse_time(value)
        except dates.DateError as error:
            raise bad_date(param, error) from None
        # An offset is refused by the report itself, which says why.
        return str(value) if moment.tzinfo else dates.iso(moment)


#: ``--since`` and ``--until`` of every command that reads the call log.
LOCAL_TIME = LocalTime()


def report_options(command=None, *, flow: bool = True):
    """The options every report shares: --db, --since, --until, [--flow],
    --version, --format."""
    def decorate(f):
        options = [
            click.option("--db", "db_path", default="ivr.db", show_default=True,
                         type=click.Path(dir_okay=False),
                         help="The call log the server writes (opened read-only): an SQLite "
                         "file, or a postgresql:// URL."),
            click.option("--since", default=None, type=LOCAL_TIME,
                         help="First day or local time included, e.g. 2026-11-01 or 2026-11-01T09:00."),
            click.option("--until", default=None, type=LOCAL_TIME,
                         help="Day or local time the period ends, excluded, e.g. 2026-12-01."),
        ]
        if flow:
            options.append(click.option("--flow", default=None, help="Only the calls of this flow."))
        options += [
            click.option("--version", "version", default=None,
                         help="Only this flow version (a prefix is enough)."),
            click.option("--provider", default=None,
                         help="Only the calls that came by this voice provider, e.g. twilio."),
            click.option("--format", "fmt", type=click.Choice(FORMATS), default="table",
                         show_default=True, help="table for people, csv or json for scripts."),
        ]
        for option in reversed(options):
            f = option(f)
        return f
    return decorate(command) if command is not None else decorate


def cost_options(f):
    """--by and what the cost saved and the repeats are computed with."""
    options = [
        click.option("--by", default=None, metavar="DIMENSION", help=BY_HELP),
        click.option("--agent-cost", default="3.00", show_default=True, type=MONEY,
                     help="What a call handled by an agent costs."),
        click.option("--ivr-cost-per-minute", default="0.02", show_default=True, type=MONEY,
                     help="What a minute with the IVR costs (telephony and speech)."),
        click.option("--currency", default="EUR", show_default=True, help="Currency of the costs."),
        click.option("--repeat-window", default=24.0, show_default=True, metavar="HOURS",
                     type=click.FloatRange(min=0, min_open=True),
                     help="A self-served call followed within this many hours by a call from the "
                          "same caller for the same reason is not counted as deflected."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _filters(since, until, flow, version, provider=None) -> Filters:
    return Filters(since=since or None, until=until or None, flow=flow or None,
                   version=version or None, provider=provider or None)


def _costs(agent_cost, ivr_cost_per_minute, currency) -> Costs:
    return Costs(agent_per_call=agent_cost, ivr_per_minute=ivr_cost_per_minute, currency=currency)


def _check_by(by: str | None) -> None:
    if by is not None and by not in analytics.DIMENSIONS:
        raise click.ClickException(_("unknown --by {by!r}: expected one of {expected}").format(
            by=by, expected=", ".join(analytics.DIMENSIONS)))


def reporting(f):
    """Turn the library's errors into one-line messages (exit code 1)."""
    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        try:
            # At a lower priority than the server's turns, on a shared machine.
            return run_in_background(functools.partial(f, *args, **kwargs))
        except ReportError as error:
            raise click.ClickException(str(error)) from None
        except DATABASE_ERRORS as error:
            raise click.ClickException(_("cannot read the call log: {error}").format(error=error)) from None
    return wrapper


# --- commands ------------------------------------------------------------------


#: The help of --lang.
LANG_HELP = "The language of the headings and figures: fr or en (default: from LANG, LC_ALL; English unless French)."


speak_click_in_operator_language()


@click.group(cls=OperatorGroup)
@click.option("--lang", "operator_lang", default=None, metavar="LANG", help=LANG_HELP,
              is_eager=True, callback=language_chosen)
def main(operator_lang):
    """Deflection figures from the IVR call log: what the IVR answers,
    what goes to agents and why, where callers give up.

    Definitions: docs/deflection.md.

    \b
    Example:
        ivr-report summary --db ivr.db --since 2026-11-01 --by reason
        ivr-report --lang fr summary --db ivr.db
    """
    # The language is chosen by --lang's callback, before --help is shown.


@main.command()
@report_options
@cost_options
@reporting
def summary(db_path, since, until, flow, version, provider, fmt, by, agent_cost, ivr_cost_per_minute,
            currency, repeat_window):
    """Calls, outcomes, transfer causes, deflection and cost saved; how
    transfers went at the agents' end (answered, abandoned in the queue).

    Ongoing calls are left out.  Days and hours are the flow's local time.

    \b
    Example:
        ivr-report summary --db ivr.db --since 2026-11-01 --until 2026-12-01 --by day
    """
    _check_by(by)
    filters = _filters(since, until, flow, version, provider)
    costs = _costs(agent_cost, ivr_cost_per_minute, currency)
    db = open_log(db_path)
    try:
        rows = analytics.summary(db, filters, by, costs=costs,
                                 repeat_window=timedelta(hours=repeat_window))
        meanings = reason_meanings(db, filters.flow, filters.version) if by == "reason" and fmt == "table" else {}
    finally:
        db.close()
    emit(rows, fmt, lambda: summary_table(rows, by, filters, costs, repeat_window, meanings), summary_csv_row)


@main.command()
@click.argument("flow")
@report_options(flow=False)
@reporting
def funnel(flow, db_path, since, until, version, provider, fmt):
    """Per node of a flow version: calls that reached it, and where they
    left (hung up, transferred, ended) or went on; the worst drop-off first.

    Without --version, the flow's latest version that has calls.

    \b
    Example:
        ivr-report funnel post_sale --db ivr.db --since 2026-11-01
    """
    filters = _filters(since, until, None, None, provider)
    db = open_log(db_path)
    try:
        chosen = analytics.funnel_version(db, flow, version, filters)
        rows = analytics.funnel(db, flow, chosen, filters)
    finally:
        db.close()
    if fmt == "json":
        click.echo(as_json({"flow": flow, "version": chosen, "nodes": rows}))
    else:
        emit(rows, fmt, lambda: funnel_table(rows, flow, chosen, filters),
             lambda row: {"flow": flow, "version": chosen, **row})


@main.command()
@report_options
@cost_options
@reporting
def reasons(db_path, since, until, flow, version, provider, fmt, by, agent_cost, ivr_cost_per_minute,
            currency, repeat_window):
    """Contact reasons ranked by volume, with their deflection rank.

    With --by, the reasons of each flow, day, ... ranked within it.

    \b
    Example:
        ivr-report reasons --db ivr.db --since 2026-11-01 --flow post_sale
    """
    _check_by(by)
    filters = _filters(since, until, flow, version, provider)
    costs = _costs(agent_cost, ivr_cost_per_minute, currency)
    db = open_log(db_path)
    try:
        rows = analytics.reasons(db, filters, by, costs=costs,
                                 repeat_window=timedelta(hours=repeat_window))
        meanings = reason_meanings(db, filters.flow, filters.version) if fmt == "table" else {}
    finally:
        db.close()
    emit(rows, fmt, lambda: reasons_table(rows, by, filters, costs, repeat_window, meanings), summary_csv_row)


@main.command()
@report_options
@click.option("--limit", default=100, show_default=True, type=click.IntRange(min=1),
              help="How many calls, the most recent first.")
@search_options
@reporting
def calls(db_path, since, until, flow, version, provider, fmt, limit, **search):
    """The most recent calls, one line each (ongoing ones included),
    searched by outcome, reason, transfer cause, exit node, failure or
    caller.  One call's timeline: ivr-report call CALL_ID.

    Callers appear only as their keyed hash.

    \b
    Example:
        ivr-report calls --db ivr.db --flow post_sale --limit 20
        ivr-report calls --since 2026-11-01 --failed
        ivr-report calls --reason parcel_lost --exit-node agent
        ivr-report calls --caller +33612345678
    """
    filters = _filters(since, until, flow, version, provider)
    db = open_log(db_path)
    try:
        rows = analytics.calls(db, filters, limit, search_from_options(db, flow, **search))
    finally:
        db.close()
    emit(rows, fmt, lambda: calls_table(rows), dict)


# --- output --------------------------------------------------------------------


def summary_csv_row(row: dict) -> dict:
    flat = {}
    for key, value in row.items():
        if key == "causes":
            flat.update({f"cause_{cause}": count for cause, count in value.items()})
        else:
            flat[key] = value
    return flat


_LABELS = {"reason": N_("Reason"), "flow": N_("Flow"), "version": N_("Version"), "language": N_("Language"),
           "day": N_("Day"), "hour": N_("Hour"), "provider": N_("Provider")}


def _group_label(row: dict, by: str) -> str:
    value = row[by]
    if value is None:
        return _("(none)")
    if by == "hour":
        return f"{value:02d}:00"
    if by == "version":
        return f"{row['flow']} {value}"
    return str(value)


def _scope(filters: Filters) -> str | None:
    parts = []
    if filters.since:
        parts.append(_("since {since}").format(since=moment(filters.since)))
    if filters.until:
        parts.append(_("until {until} (excluded)").format(until=moment(filters.until)))
    if filters.flow:
        parts.append(_("flow {flow}").format(flow=filters.flow))
    if filters.version:
        parts.append(_("version {version}").format(version=filters.version))
    if filters.provider:
        parts.append(_("provider {provider}").format(provider=filters.provider))
    # Translators: {filters} is a list of the filters above, e.g. "since 1 Nov 2026, flow post_sale".
    return _("Calls {filters}").format(filters=", ".join(parts)) if parts else None


def _assumptions(costs: Costs, repeat_window: float) -> str:
    agent, minute = money(costs.agent_per_call, costs.currency), money(costs.ivr_per_minute, costs.currency)
    return _("Repeat window {hours} h; an agent call costs {agent}, an IVR minute {minute}.  "
             "Ongoing calls are not counted.").format(hours=f"{repeat_window:g}", agent=agent, minute=minute)


def summary_table(rows: list[dict], by: str | None, filters: Filters, costs: Costs,
                  repeat_window: float, meanings: dict | None = None) -> list[str]:
    lines = [scope] if (scope := _scope(filters)) else []
    if not rows:
        return lines + [_("No ended calls.")]
    headers = ([_(_LABELS[by])] if by else []) + [
        _("Calls"), _("Self-served"), _("Transferred"), _("Abandoned"), _("Failed"), _("Deflection"), _("Repeats"),
        _("Adj. deflection"), _("SMS sent"), _("Avg IVR s"), _("Cost saved")]
    body = [([_group_label(r, by)] if by else []) + [
        count(r["calls"]), count(r["self_served"]), count(r["transferred"]), count(r["abandoned"]),
        count(r["failed"]), percent(r["deflection_rate"]), count(r["repeat_calls"]),
        percent(r["repeat_adjusted_deflection_rate"]), count(r["sms_sent"]), seconds(r["avg_ivr_seconds"]),
        money(r["cost_saved"], r["currency"])] for r in rows]
    lines += table(headers, body, text=1 if by else 0)
    causes = [c for c in TRANSFER_CAUSES if any(r["causes"][c] for r in rows)]
    if causes:
        lines += ["", _("Transferred calls by cause:")]
        lines += table(([_(_LABELS[by])] if by else []) + causes,
                       [([_group_label(r, by)] if by else []) + [count(r["causes"][c]) for c in causes]
                        for r in rows], text=1 if by else 0)
    lines += transfers_table(rows, [_(_LABELS[by])] if by else [], lambda r: [_group_label(r, by)] if by else [])
    if not by:
        lines += ["", unstated_line(rows[0])]
    lines += reason_lines([r[by] for r in rows] if by == "reason" else [], meanings or {})
    return lines + ["", _assumptions(costs, repeat_window)]


def reason_lines(reasons: list, meanings: dict[str, str]) -> list[str]:
    """What each reason shown means, in the flow's own words: a blank line
    and ``reason: description`` lines (nothing when the flows describe none)."""
    described = [f"{reason}: {meanings[reason]}" for reason in dict.fromkeys(reasons) if reason in meanings]
    return ["", _("What the reasons mean:")] + described if described else []


def unstated_line(row: dict) -> str:
    """Calls with no reason: those that ended before stating one, apart
    from those put through to a person without one."""
    transferred = row["transferred"]
    share = percent(row["transferred_without_reason"] / transferred if transferred else None)
    ended = row["ended_before_reason"]
    return ngettext("No reason stated: {ended} call ended before stating a reason; {transferred} transferred "
                    "without one ({share} of transferred calls).",
                    "No reason stated: {ended} calls ended before stating a reason; {transferred} transferred "
                    "without one ({share} of transferred calls).", ended).format(
        ended=count(ended), transferred=count(row["transferred_without_reason"]), share=share)


def transfers_table(rows: list[dict], label: list[str], group) -> list[str]:
    """What happened to transferred calls at the agents' end: answered,
    hung up while waiting in the queue (count, rate, average wait), not
    answered.  Nothing when no transfer's result is known (a log written
    before the server kept them)."""
    known = [r for r in rows if r["transfers_answered"] + r["queue_abandoned"] + r["transfers_unanswered"]]
    if not known:
        return []
    return ["", _("Transfers at the agents' end:")] + table(
        label + [_("Answered"), _("Abandoned in queue"), _("Queue abandonment"), _("Avg s before hang-up"),
                 _("No answer/busy")],
        [group(r) + [count(r["transfers_answered"]), count(r["queue_abandoned"]),
                     percent(r["queue_abandonment_rate"]), seconds(r["avg_queue_seconds_abandoned"]),
                     count(r["transfers_unanswered"])] for r in known], text=len(label))


def reasons_table(rows: list[dict], by: str | None, filters: Filters, costs: Costs,
                  repeat_window: float, meanings: dict | None = None) -> list[str]:
    lines = [scope] if (scope := _scope(filters)) else []
    if not rows:
        return lines + [_("No ended calls.")]
    within = by not in (None, "reason")
    totals: dict = {}
    for r in rows:
        key = r[by] if within else None
        totals[key] = totals.get(key, 0) + r["calls"]
    headers = ([_(_LABELS[by])] if within else []) + [
        _("Rank"), _("Reason"), _("Calls"), _("Share"), _("Deflection"), _("Adj. deflection"), _("Repeats"),
        _("Transferred"), _("Abandoned"), _("SMS sent"), _("Cost saved"), _("Deflection rank")]
    body = [([_group_label(r, by)] if within else []) + [
        r["volume_rank"], r["reason"], count(r["calls"]),
        percent(r["calls"] / totals[r[by] if within else None]),
        percent(r["deflection_rate"]), percent(r["repeat_adjusted_deflection_rate"]),
        count(r["repeat_calls"]), count(r["transferred"]), count(r["abandoned"]),
        count(r["sms_sent"]), money(r["cost_saved"], r["currency"]), r["deflection_rank"]] for r in rows]
    lines += table(headers, body, text={0, 2} if within else {1})
    lines += transfers_table(rows, ([_(_LABELS[by])] if within else []) + [_("Reason")],
                             lambda r: ([_group_label(r, by)] if within else []) + [r["reason"]])
    lines += reason_lines([r["reason"] for r in rows], meanings or {})
    return lines + ["", _("Deflection rank: by repeat-adjusted deflection, 1 = the best answered."),
                    _assumptions(costs, repeat_window)]


def funnel_table(rows: list[dict], flow: str, version: str, filters: Filters) -> list[str]:
    scope = _scope(filters)
    heading = _("Funnel of {flow} version {version}").format(flow=flow, version=version)
    lines = [heading + (f", {scope[0].lower()}{scope[1:]}" if scope else "")]
    if not rows:
        return lines + [_("No ended calls.")]
    lines += table(
        [_("Node"), _("Kind"), _("Reached"), _("Continued"), _("Ended"), _("Hung up"), _("Transferred"),
         _("Dropped"), _("Drop-off")],
        [[r["node"], r["kind"], count(r["reached"]), count(r["continued"]), count(r["ended"]),
          count(r["hung_up"]), count(r["transferred"]), count(r["dropped"]), percent(r["drop_off_rate"])]
         for r in rows], text=2)
    worst = rows[0]
    if worst["dropped"]:
        lines += ["", _("Worst drop-off: {node}, {dropped} of {reached} calls ({rate}): {hung_up} hung up, "
                        "{transferred} transferred.").format(
            node=worst["node"], dropped=count(worst["dropped"]), reached=count(worst["reached"]),
            rate=percent(worst["drop_off_rate"]), hung_up=count(worst["hung_up"]),
            transferred=count(worst["transferred"]))]
    else:
        lines += ["", _("No call hung up or was transferred at any node.")]
    return lines


def calls_table(rows: list[dict]) -> list[str]:
    if not rows:
        return [_("No calls.")]
    return table(
        [_("Started"), _("Call"), _("Flow"), _("Version"), _("Lang"), _("Reason"), _("Outcome"), _("Cause"),
         _("Exit node"), _("IVR s")],
        [[r["started_at"], r["call_id"], r["flow"], r["version"][:8], r["lang"], r["reason"],
          r["outcome"] or _("ongoing"), r["cause"], r["exit_node"],
          None if r["ivr_seconds"] is None else f"{r['ivr_seconds']:.0f}"] for r in rows], text=9)


from ivr.reports.callbacks import callbacks  # noqa: E402 - it uses the helpers above when it runs

main.add_command(callbacks)

from ivr.reports.erase import forget, purge  # noqa: E402 - registered like callbacks

main.add_command(forget)
main.add_command(purge)

from ivr.reports.call_cli import call  # noqa: E402 - registered like callbacks

main.add_command(call)
