"""``ivr-report forget`` and ``ivr-report purge``: erasing call data.

``forget`` answers a caller's erasure request (GDPR article 17): every
call of that number, as the caller or as the number given for a callback,
is deleted with its node events, status callbacks, callback request and
state.  ``purge`` erases the calls older than a number of days (what
``ivr-serve --retention-days`` does daily), and drops the state of calls
ended more than the retry window ago.

Unlike the reports these open the log for writing, next to a running
server if need be (SQLite's WAL lets them share the file; a write waits
for the server's commit).  Deleted rows are overwritten on disk
(``secure_delete``) and the WAL is truncated afterwards, so the data is
not left in free pages.

The commands are registered on the ``ivr-report`` group at the end of
:mod:`ivr.reports.cli`.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta, timezone

import click
import sqlite_utils

from ivr.click_i18n import OperatorCommand
from ivr.i18n import N_, _
from ivr.reports.output import open_log
from ivr.store.postgres.connection import is_postgres_url
from ivr.store.sqlite.callbacks import stored_caller_key
from ivr.store.sqlite.store import CallStore

__all__ = ["forget", "purge"]

#: Seconds an ended call's state is kept (``ivr-serve --retry-window``'s default).
RETRY_WINDOW = 600

#: How the tables are counted in the command's output (the English
#: output is read by scripts as it is: "1 calls" stays as it was).
TABLE_WORDS = {
    "calls": N_("{count} calls"), "node_events": N_("{count} node events"),
    "status_events": N_("{count} status callbacks"), "callback_requests": N_("{count} callback requests"),
    "call_state": N_("{count} call states"),
}


class CallLog(click.ParamType):
    """``--db``: an SQLite file that exists, or a PostgreSQL URL."""

    name = "path"

    def convert(self, value, param, ctx):
        if is_postgres_url(str(value)):
            return str(value)
        return click.Path(dir_okay=False, exists=True).convert(value, param, ctx)


def open_log_for_erasure(path: str) -> CallStore:
    """The call log at ``path``, writable; a clear error when it is
    missing or is not a log ``ivr-serve`` wrote (nothing is created).
    A ``postgresql://`` URL opens the log in that database."""
    if is_postgres_url(path):
        return _open_postgres_for_erasure(path)
    try:
        db = sqlite_utils.Database(path)
        known = "calls" in db.table_names() and stored_caller_key(db) is not None
        db.close()
    except sqlite3.DatabaseError as error:
        raise click.ClickException(_("{file}: not an SQLite database ({error})").format(
            file=path, error=error)) from None
    if not known:
        raise click.ClickException(_("{file}: not a call log written by ivr-serve "
                                     "(no calls table or no caller key)").format(file=path))
    return CallStore.open(path)


def _open_postgres_for_erasure(url: str) -> CallStore:
    from ivr.store.postgres.store import PostgresCallStore

    log = open_log(url)  # checked like a report's log, and never migrated from here
    try:
        known = stored_caller_key(log) is not None
    finally:
        log.close()
    if not known:
        raise click.ClickException(_("the PostgreSQL database holds no caller key: not a call "
                                     "log written by ivr-serve"))
    return PostgresCallStore.connect(url)


def erased_line(erased: dict[str, int]) -> str:
    """``erased 12 rows: 1 calls, 9 node events, ...``."""
    parts = ", ".join(_(words).format(count=erased[table]) for table, words in TABLE_WORDS.items())
    return _("erased {count} rows: {parts}").format(count=sum(erased.values()), parts=parts)


def _truncate_wal(store: CallStore) -> None:
    """Checkpoint and truncate the WAL, which still holds the pages as they
    were before the deletion; a busy server may hold it, and the next
    checkpoint then overwrites them."""
    if not store.truncate_wal():
        click.echo(_("note: the server is busy; its next checkpoint overwrites the old pages"),
                   err=True)


@click.command(cls=OperatorCommand)
@click.option("--number", required=True,
              help="The caller's number in international form, e.g. +33612345678 "
                   "(spaces and dashes are allowed), or their sip: address.")
@click.option("--db", "db_path", default="ivr.db", show_default=True,
              type=CallLog(),
              help="The call log the server writes (opened for writing): an SQLite file, "
                   "or a postgresql:// URL.")
def forget(number, db_path):
    """Erase every call of one caller: an erasure request (GDPR).

    Deletes each call made from NUMBER, or in which NUMBER was given to be
    called back, with its node events, status callbacks, callback request
    and state, and prints how many rows were erased.  Running it again
    erases nothing more.  The number itself is never stored in clear: calls
    are found by its keyed hash.  See docs/reliability.md.

    \b
    Example:
        ivr-report forget --number +33612345678 --db ivr.db
    """
    text = number.strip()
    if not (text.startswith("+") or text.lower().startswith(("sip:", "tel:+"))):
        raise click.ClickException(_(
            "give the number in international form, e.g. +33612345678, not {number!r}: "
            "calls are stored under the number as the provider sends it").format(number=number))
    store = open_log_for_erasure(db_path)
    try:
        try:
            erased = store.forget_caller(text)
        except ValueError as error:
            raise click.ClickException(str(error)) from None
        _truncate_wal(store)
    finally:
        store.close()
    click.echo(erased_line(erased))


@click.command(cls=OperatorCommand)
@click.option("--older-than-days", type=click.FloatRange(min=0, min_open=True), default=None,
              metavar="DAYS",
              help="Erase the calls that started more than DAYS days ago, with all their rows.")
@click.option("--db", "db_path", default="ivr.db", show_default=True,
              type=CallLog(),
              help="The call log the server writes (opened for writing): an SQLite file, "
                   "or a postgresql:// URL.")
@click.option("--vacuum", is_flag=True,
              help="Then give the freed space back to the disk (VACUUM: needs as much free "
                   "space as the log, and blocks the server's writes while it runs).")
def purge(older_than_days, db_path, vacuum):
    """Erase old call data, once (ivr-serve --retention-days does it daily).

    With --older-than-days, the calls that started before then are erased
    with their node events, status callbacks, callback requests and state.
    In any case the state of calls ended more than 10 minutes ago is
    dropped (their events and call rows stay): the server needs it only to
    answer a provider's retry.  Prints how many rows were erased.

    \b
    Example:
        ivr-report purge --older-than-days 365 --db ivr.db
    """
    now = datetime.now(timezone.utc)
    store = open_log_for_erasure(db_path)
    try:
        erased = dict.fromkeys(TABLE_WORDS, 0)
        if older_than_days is not None:
            erased = store.purge_before((now - timedelta(days=older_than_days)).isoformat())
        erased["call_state"] += store.drop_ended_states(
            (now - timedelta(seconds=RETRY_WINDOW)).isoformat())
        _truncate_wal(store)
        if vacuum:
            store.vacuum()
    finally:
        store.close()
    click.echo(erased_line(erased))
