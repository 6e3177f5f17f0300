"""What every analytics query shares: the call log opened read-only, the
filters and costs, and the SQL they become."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import sqlite_utils

from ivr.i18n import _
from ivr.store.postgres.connection import is_postgres_url

_CENT = Decimal("0.01")


_MS_PER_DAY = 86_400_000


def _database_errors() -> tuple[type[BaseException], ...]:
    try:
        import psycopg
    except ImportError:  # a server without the PostgreSQL backend
        return (sqlite3.DatabaseError,)
    return (sqlite3.DatabaseError, psycopg.Error)


#: What reading a call log may raise, on either database.
DATABASE_ERRORS = _database_errors()


class ReportError(Exception):
    """The report cannot be made: a missing or foreign database file, an
    unknown flow or version, a bad period or dimension."""


@dataclass(frozen=True)
class Costs:
    """What the cost saved is computed from."""

    agent_per_call: Decimal = Decimal("3.00")  # what an agent-handled call costs
    ivr_per_minute: Decimal = Decimal("0.02")  # telephony + speech per IVR minute
    currency: str = "EUR"


@dataclass(frozen=True)
class Filters:
    """Which calls a report covers.  ``since`` and ``until`` are local
    times of the calls (a date means its local midnight); ``since`` is
    inclusive, ``until`` exclusive.  ``version`` may be a prefix;
    ``provider`` is the voice provider the calls came by ("twilio")."""

    since: str | None = None
    until: str | None = None
    flow: str | None = None
    version: str | None = None
    provider: str | None = None


def open_report_db(path) -> sqlite_utils.Database:
    """The call log at ``path``, opened read-only.

    Reports never write: the file must exist (it is not created), be an
    SQLite database and hold the ``calls`` and ``node_events`` tables the
    server writes, else :class:`ReportError` says which of these failed.
    A ``postgresql://`` URL opens the log in that database instead (see
    :func:`_open_postgres_log`).
    """
    if is_postgres_url(str(path)):
        return _open_postgres_log(str(path))
    path = Path(path)
    if not path.exists():
        raise ReportError(_("{file}: no such file (give the call log the server writes, e.g. ivr.db)").format(
            file=path))
    if not path.is_file():
        raise ReportError(_("{file}: not a file").format(file=path))
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as error:
        raise ReportError(_("{file}: cannot open: {error}").format(file=path, error=error)) from None
    try:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.OperationalError as error:  # locked, unreadable, ...
        conn.close()
        raise ReportError(_("{file}: cannot read it: {error}").format(file=path, error=error)) from None
    except sqlite3.DatabaseError:
        conn.close()
        raise ReportError(_("{file}: not an SQLite database").format(file=path)) from None
    missing = {"calls", "node_events"} - tables
    if missing:
        conn.close()
        raise ReportError(_("{file}: not an IVR call log (no {tables} table)").format(
            file=path, tables=" or ".join(sorted(missing))))
    columns = {row[1] for row in conn.execute("PRAGMA table_info(calls)")}
    if not {"exit_node", "ivr_seconds"} <= columns:
        conn.close()
        raise ReportError(_("{file}: a call log of an older version (no exit_node column): start ivr-serve "
                            "on it once to bring it up to date").format(file=path))
    # Reports read much and write nothing: map the file (no copy per page
    # read) and keep sorts for GROUP BY in memory.
    conn.execute("PRAGMA mmap_size = 2147418112")
    conn.execute("PRAGMA cache_size = -65536")
    conn.execute("PRAGMA temp_store = MEMORY")
    return sqlite_utils.Database(conn)


def _open_postgres_log(url: str):
    """The call log in the PostgreSQL database at ``url``, for reading,
    checked like a file (it is reached, and holds a migrated log)."""
    from ivr.store.postgres.reads import open_postgres_log

    shown = _without_password(url)
    try:
        db = open_postgres_log(url)
    except DATABASE_ERRORS as error:
        raise ReportError(_("{file}: cannot connect: {error}").format(file=shown, error=str(error).strip())) from None
    missing = {"calls", "node_events"} - set(db.table_names())
    if missing:
        db.close()
        raise ReportError(_("{file}: not an IVR call log (no {tables} table)").format(
            file=shown, tables=" or ".join(sorted(missing))))
    return db  # the schema is PostgreSQL's from its first migration on: never older


def _without_password(url: str) -> str:
    """``url`` as errors show it: without a password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@")))


def _local_bound(text: str | None, name: str) -> str | None:
    """``text`` as the local time it compares with ``started_at`` as text."""
    if text is None or text == "":
        return None
    expected = _("expected a date like 2026-11-01 or a local time like 2026-11-01T09:00")
    try:
        if len(text.strip()) == 10:
            return date.fromisoformat(text.strip()).isoformat()
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ReportError(_("{name} {text!r} is not a time: {expected}").format(
            name=name, text=text, expected=expected)) from None
    if moment.tzinfo is not None:
        raise ReportError(_("{name} {text!r} has a UTC offset: calls are compared in their local time, so "
                            "give it without one ({expected})").format(name=name, text=text, expected=expected))
    return moment.isoformat(timespec="microseconds" if moment.microsecond else "seconds")


def _where(filters: Filters, alias: str = "c", ended_only: bool = True) -> tuple[str, dict]:
    """The SQL condition (and its parameters) selecting the calls of
    ``filters``: the ended ones unless ``ended_only`` is False."""
    since = _local_bound(filters.since, "since")
    until = _local_bound(filters.until, "until")
    if since and until and until <= since:
        raise ReportError(f"the period is empty: until ({filters.until}) is not after "
                          f"since ({filters.since})")
    clauses = [f"{alias}.outcome IS NOT NULL" if ended_only else "1 = 1"]
    params: dict = {}
    # started_at is local text with an offset after the seconds: comparing
    # it with a local time as text is comparing local times, and uses the index.
    if since:
        clauses.append(f"{alias}.started_at >= :since")
        params["since"] = since
    if until:
        clauses.append(f"{alias}.started_at < :until")
        params["until"] = until
    if filters.flow:
        clauses.append(f"{alias}.flow = :flow")
        params["flow"] = filters.flow
    if filters.version:
        clauses.append(f"substr({alias}.version, 1, :version_length) = :version")
        params.update(version=filters.version, version_length=len(filters.version))
    if filters.provider:
        clauses.append(f"{alias}.provider = :provider")
        params["provider"] = filters.provider
    return " AND ".join(clauses), params
