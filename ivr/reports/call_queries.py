"""The SQL that finds calls and reads one call back: the search filters
(outcome, reason, transfer cause, exit node, failed only, caller) and a
call's row, node events and flow version.

Plain SQL with named parameters and no SQLite-only function, so another
backend can run it as it is.  Values a filter is given are checked
against the ones the log and its flows know, with a "did you mean".
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, fields

import yaml

from ivr.flow.model import OUTCOMES, REASON_NOT_STATED, TRANSFER_CAUSES
from ivr.i18n import _
from ivr.reports.dialect import dialect_of
from ivr.reports.queries import ReportError
from ivr.store.sqlite.callbacks import stored_caller_key
from ivr.store.sqlite.reads import flow_sources, stored_flow_version
from ivr.store.sqlite.store import keyed_hash

__all__ = ["CallSearch", "call_events", "call_row", "caller_hash", "check_search",
           "flow_version", "search_where"]

#: A fail-safe logs its cause as an event of this branch (ivr.engine.failsafe).
FAILSAFE_BRANCH = "failsafe"

#: The columns of a call shown in its timeline: never the caller's hash.
TIMELINE_COLUMNS = (
    "call_id", "flow", "version", "started_at", "ended_at", "lang", "reason", "outcome",
    "cause", "confirmed", "handoff_kind", "handoff_target", "steps", "exit_node", "ivr_seconds",
    "provider_status", "duration_s", "sms_sent", "transfer_result", "queue_seconds", "provider",
)


@dataclass(frozen=True)
class CallSearch:
    """Which calls a search keeps, beside the period and flow of
    :class:`ivr.reports.queries.Filters`; None keeps every call."""

    outcome: str | None = None
    reason: str | None = None
    transfer_cause: str | None = None
    exit_node: str | None = None
    failed: bool = False
    #: The caller's keyed hash (:func:`caller_hash`), never the number.
    caller_hash: str | None = None

    def __bool__(self) -> bool:
        return any(getattr(self, f.name) for f in fields(self))


def search_where(search: CallSearch, alias: str = "c") -> tuple[str, dict]:
    """The SQL condition (and its parameters) keeping the calls of
    ``search``; ``1 = 1`` for an empty search."""
    clauses, params = ["1 = 1"], {}
    for name, column in (("outcome", "outcome"), ("reason", "reason"),
                         ("transfer_cause", "cause"), ("exit_node", "exit_node"),
                         ("caller_hash", "caller_hash")):
        value = getattr(search, name)
        if value:
            clauses.append(f"{alias}.{column} = :search_{name}")
            params[f"search_{name}"] = value
    if search.failed:
        # A failure is the outcome; the fail-safe's event also counts a
        # call whose last resort was logged before it had an outcome.
        clauses.append(
            f"({alias}.outcome = 'failed' OR EXISTS (SELECT 1 FROM node_events e "
            f"WHERE e.call_id = {alias}.call_id AND e.branch = '{FAILSAFE_BRANCH}'))")
    return " AND ".join(clauses), params


def caller_hash(db, number: str) -> str:
    """The keyed hash the log keeps for ``number`` (with the key the server
    keeps in the same file); raises :class:`ReportError` without one."""
    key = stored_caller_key(db)
    if key is None:
        raise ReportError(_("This call log has no caller key, so calls cannot be found by "
                            "number."))
    digest = keyed_hash(key, number)
    if not digest:
        raise ReportError(_("--caller needs a phone number such as +33612345678."))
    return digest


# -- checking a search's values ---------------------------------------------------


def check_search(db, search: CallSearch, flow: str | None = None) -> None:
    """Raise :class:`ReportError` for a value no call of the log (or of its
    flows, ``flow`` only when given) can have, suggesting the nearest."""
    known = {
        "outcome": lambda: list(OUTCOMES),
        "transfer_cause": lambda: list(TRANSFER_CAUSES),
        "reason": lambda: _known_reasons(db, flow),
        "exit_node": lambda: _known_nodes(db, flow),
    }
    for name, values in known.items():
        value = getattr(search, name)
        if value:
            _check_value(name, value, values())


def _check_value(name: str, value: str, known: list[str]) -> None:
    if value in known:
        return
    option = "--" + name.replace("_", "-")
    close = difflib.get_close_matches(value, known, n=1, cutoff=0.6)
    if close:
        raise ReportError(_("{option}: no such value {value!r}; did you mean {suggestion!r}?")
                          .format(option=option, value=value, suggestion=close[0]))
    raise ReportError(_("{option}: no such value {value!r}; expected one of: {known}.")
                      .format(option=option, value=value, known=", ".join(sorted(known)) or "-"))


def _distinct(db, column: str, flow: str | None) -> set[str]:
    where = f"WHERE {column} IS NOT NULL" + (" AND flow = :flow" if flow else "")
    return {row["value"] for row in db.query(f"SELECT DISTINCT {column} AS value FROM calls {where}",
                                             {"flow": flow} if flow else {})}


def _known_reasons(db, flow: str | None) -> list[str]:
    """Reasons the flows declare, and those calls were logged with."""
    reasons = {REASON_NOT_STATED} | _distinct(db, "reason", flow)
    for source in flow_sources(db, flow):
        reasons |= set(_yaml_section(source, "reasons"))
    return sorted(reasons)


def _known_nodes(db, flow: str | None) -> list[str]:
    nodes = _distinct(db, "exit_node", flow)
    for source in flow_sources(db, flow):
        nodes |= set(_yaml_section(source, "nodes"))
    return sorted(nodes)


def _yaml_section(source: str, name: str) -> dict:
    # A stored version that no longer builds still has calls: read leniently.
    try:
        section = (yaml.safe_load(source) or {}).get(name)
    except (yaml.YAMLError, AttributeError):
        section = None
    return {str(k): v for k, v in section.items()} if isinstance(section, dict) else {}


# -- one call ---------------------------------------------------------------------


def call_row(db, call_id: str) -> dict | None:
    """The call's row (the columns of :data:`TIMELINE_COLUMNS` the log
    has; a callback's number, itself a hash, left out); None if unknown."""
    present = set(dialect_of(db).columns(db, "calls"))
    columns = ", ".join(
        "CASE WHEN handoff_kind = 'callback' THEN NULL ELSE handoff_target END AS handoff_target"
        if column == "handoff_target" else column
        for column in TIMELINE_COLUMNS if column in present)
    return next(iter(db.query(f"SELECT {columns} FROM calls WHERE call_id = :call_id",
                              {"call_id": call_id})), None)


def call_events(db, call_id: str) -> list[dict]:
    """Every node event of the call, in the order they happened."""
    return list(db.query("SELECT seq, node, kind, input, branch, detail, at FROM node_events "
                         "WHERE call_id = :call_id ORDER BY seq", {"call_id": call_id}))


def flow_version(db, flow: str, version: str) -> dict:
    """What the stored version says that a timeline shows: its reasons'
    descriptions, each node's fields, and the prompts' texts
    (``{"lang/name": text}``); empty when the version is not stored."""
    stored = stored_flow_version(db, flow, version)
    if stored is None:
        return {"reasons": {}, "nodes": {}, "prompts": {}}
    return {"reasons": _yaml_section(stored["source"], "reasons"),
            "nodes": _yaml_section(stored["source"], "nodes"),
            "prompts": stored["prompts"]}
