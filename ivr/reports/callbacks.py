"""``ivr-report callbacks``: the callers waiting to be called back.

Lists the callback requests of the call log (``callback_requests``) with
their numbers in clear, for the people who make the calls.  The log is
opened read-only like every report (a missing or foreign file is a clear
error, and nothing is ever created in it); the numbers are opened with the
caller key the server keeps in the same file, as :class:`ivr.store.sqlite.store.CallStore`
reads it.

The command is registered on the ``ivr-report`` group at the end of
:mod:`ivr.reports.cli`; it prints through :mod:`ivr.reports.output`.
"""

from __future__ import annotations

import click

from ivr.click_i18n import OperatorCommand
from ivr.i18n import N_, _
from ivr.reports import queries
from ivr.reports.output import emit, moment, open_log, table
from ivr.reports.queries import DATABASE_ERRORS, ReportError
from ivr.store.sqlite.callbacks import read_callback_requests, stored_caller_key
from ivr.store.sqlite.migrations import CALLBACK_STATUSES
from ivr.store.sqlite.reads import reason_descriptions

__all__ = ["callback_requests", "callbacks"]

#: What ``--status`` takes: one status, or ``all``.
STATUS_CHOICES = CALLBACK_STATUSES + ("all",)

#: What the table shows for a number sealed with another key.
UNREADABLE = N_("(sealed with another key)")


def callback_requests(db, path, status: str | None = None, since: str | None = None,
                      until: str | None = None) -> list[dict]:
    """The callback requests in the call log ``db`` (opened from ``path``
    with :func:`ivr.reports.analytics.open_report_db`), oldest first: call_id,
    requested_at (the flow's local time), number (in clear; None when it
    was sealed with another key), reason, reason_text (the reason's
    description in the flow version's YAML, or None), order_number, slot,
    status, attempts, last_error, delivered_at, flow, version, lang.

    ``status`` None lists every status; ``since`` (inclusive) and ``until``
    (exclusive) are local times or dates, as for the other reports.
    Raises :class:`ReportError` for a bad period or a log without callback
    requests or caller key.
    """
    low = queries._local_bound(since, "since")
    high = queries._local_bound(until, "until")
    if low and high and high <= low:
        raise ReportError(f"the period is empty: until ({until}) is not after since ({since})")
    if "callback_requests" not in db.table_names():
        raise ReportError(f"{path}: a call log of an older version (no callback_requests table): "
                          "start ivr-serve on it once to bring it up to date")
    key = stored_caller_key(db)
    if key is None:
        raise ReportError(f"{path}: no caller key in its meta table, so its numbers cannot be "
                          "opened (was the server given its own caller key?)")
    rows = read_callback_requests(db, key, status=status, since=low, until=high)
    descriptions = {(flow, version): reason_descriptions(db, flow, version)
                    for flow, version in {(r["flow"], r["version"]) for r in rows}}
    return [{
        "call_id": r["call_id"], "requested_at": r["requested_at"], "number": r["number"],
        "reason": r["reason"],
        "reason_text": _described(descriptions.get((r["flow"], r["version"]), {}).get(r["reason"]), r["lang"]),
        "order_number": r["order_number"], "slot": r["slot"], "status": r["status"],
        "attempts": r["attempts"], "last_error": r["last_error"], "delivered_at": r["delivered_at"],
        "flow": r["flow"], "version": r["version"], "lang": r["lang"],
    } for r in rows]


def _described(description, lang: str | None) -> str | None:
    """A reason's description: the flow's text, or, when the flow describes
    it per language, the one in the caller's language (else the first)."""
    if isinstance(description, dict):
        texts = [t for t in description.values() if isinstance(t, str)]
        chosen = description.get(lang)
        return chosen if isinstance(chosen, str) else (texts[0] if texts else None)
    return description if isinstance(description, str) else None


@click.command(cls=OperatorCommand)
@click.option("--db", "db_path", default="ivr.db", show_default=True, type=click.Path(dir_okay=False),
              help="The call log the server writes (opened read-only).")
@click.option("--status", type=click.Choice(STATUS_CHOICES), default="all", show_default=True,
              help="Only the requests the helpdesk has not had yet (pending), had (sent), "
                   "refused or never got (failed), or that were kept without a helpdesk "
                   "(not_configured).")
@click.option("--since", default=None,
              help="First day or local time included, e.g. 2026-11-01 or 2026-11-01T09:00.")
@click.option("--until", default=None,
              help="Day or local time the period ends, excluded, e.g. 2026-12-01.")
@click.option("--format", "fmt", type=click.Choice(("table", "csv", "json")), default="table",
              show_default=True, help="table for people, csv or json for scripts.")
def callbacks(db_path, status, since, until, fmt):
    """Callers who asked to be called back, oldest first, with the number
    to call in clear, the reason, the order, the preferred slot and
    whether the helpdesk has it.  Times are the flow's local time.

    The numbers are personal data: keep what this prints as you keep the
    call log.

    \b
    Example:
        ivr-report callbacks --db ivr.db --status pending --since 2026-11-24
    """
    db = open_log(db_path)
    try:
        rows = callback_requests(db, db_path, None if status == "all" else status,
                                 since or None, until or None)
    except ReportError as error:
        raise click.ClickException(str(error)) from None
    except DATABASE_ERRORS as error:
        raise click.ClickException(_("cannot read the call log: {error}").format(error=error)) from None
    finally:
        db.close()
    unreadable = sum(1 for r in rows if r["number"] is None)
    if unreadable:
        click.echo(_("Warning: {count} number(s) were sealed with another caller key and cannot be shown.")
                   .format(count=unreadable), err=True)
    emit(rows, fmt, lambda: callbacks_table(rows, status, since, until), dict)


def callbacks_table(rows: list[dict], status: str, since: str | None, until: str | None) -> list[str]:
    """The requests for people: one line each, then what each reason means."""
    scope = [_("status {status}").format(status=status)] if status != "all" else []
    if since:
        scope.append(_("since {since}").format(since=moment(since)))
    if until:
        scope.append(_("until {until} (excluded)").format(until=moment(until)))
    # Translators: {filters} is a list of the filters above, e.g. "status pending, since 1 Nov 2026".
    lines = [_("Callback requests {filters}").format(filters=", ".join(scope))] if scope else []
    if not rows:
        return lines + [_("No callback requests.")]
    lines += table(
        [_("Requested"), _("Number"), _("Reason"), _("Order"), _("Slot"), _("Status"), _("Tries"), _("Call")],
        [[_local_minute(r["requested_at"]), r["number"] or _(UNREADABLE), r["reason"], r["order_number"],
          r["slot"], r["status"], r["attempts"], r["call_id"]] for r in rows],
        text={0, 1, 2, 3, 4, 5, 7})
    meanings = {r["reason"]: r["reason_text"] for r in rows if r["reason_text"]}
    if meanings:
        lines += [""] + [f"{reason}: {text}" for reason, text in sorted(meanings.items())]
    errors = [r for r in rows if r["status"] in ("pending", "failed") and r["last_error"]]
    if errors:
        lines += ["", _("Helpdesk errors:")] + [f"{r['call_id']}: {r['last_error']}" for r in errors]
    return lines


def _local_minute(requested_at: str) -> str:
    """``2026-11-24T18:30:05+01:00`` as ``2026-11-24 18:30``: the local
    time as written, to the minute."""
    return requested_at[:16].replace("T", " ")
