"""Whether the store can write, for ``/healthz``, ``/metrics`` and the logs.

A write can fail for reasons that are the disk's, not the turn's: the disk
is full, it returns I/O errors, or another process holds the database's
write lock past the busy timeout.  While that lasts every turn answers from
memory (see :mod:`ivr.server.calls`), and :class:`StorageHealth` remembers the
cause, so monitoring is told (``/healthz`` answers 503) until a write
succeeds again: the next commit of a turn, or the periodic probe
(:meth:`ivr.server.calls.CallHandler.probe_storage`).
"""

from __future__ import annotations

import errno
import sqlite3

from twisted.logger import Logger

from ivr.store.postgres.faults import postgres_fault_cause

__all__ = ["StorageHealth", "fault_cause"]

#: SQLite result codes (their names) and what monitoring is told.
_CAUSES = {
    "SQLITE_FULL": "disk_full",
    "SQLITE_IOERR": "io_error",
    "SQLITE_BUSY": "database_locked",
    "SQLITE_LOCKED": "database_locked",
    "SQLITE_CANTOPEN": "cannot_open",
    "SQLITE_READONLY": "read_only",
    "SQLITE_CORRUPT": "corrupt",
    "SQLITE_NOTADB": "corrupt",
}

#: The same, from the message, for errors without ``sqlite_errorname``.
_MESSAGES = (
    ("disk is full", "disk_full"),
    ("disk i/o error", "io_error"),
    ("database is locked", "database_locked"),
    ("unable to open", "cannot_open"),
    ("readonly database", "read_only"),
    ("malformed", "corrupt"),
)


def fault_cause(error: BaseException) -> str | None:
    """What ``error`` says of the storage (``disk_full``, ``io_error``,
    ``database_locked``, ``cannot_open``, ``read_only``, ``corrupt``,
    ``database_error``; on PostgreSQL also ``server_unreachable``), or None
    when it is not a storage fault (a bug in one turn's data, say: a
    constraint, a bad parameter)."""
    if isinstance(error, OSError):
        return "disk_full" if error.errno == errno.ENOSPC else "io_error"
    postgres = postgres_fault_cause(error)
    if postgres is not None:
        return postgres
    if not isinstance(error, sqlite3.Error) or isinstance(
            error, (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.InterfaceError)):
        return None
    name = getattr(error, "sqlite_errorname", "") or ""
    base = name if name in _CAUSES else "_".join(name.split("_")[:2])
    if base in _CAUSES:
        return _CAUSES[base]
    message = str(error).lower()
    return next((cause for text, cause in _MESSAGES if text in message), "database_error")


class StorageHealth:
    """The store's writes: failing (and why) or not, and failures counted by cause."""

    log = Logger()

    def __init__(self):
        #: The cause of the last failed write, None while writes succeed.
        self.cause: str | None = None
        #: Failed writes by cause, since the server started.
        self.failures: dict[str, int] = {}

    @property
    def ok(self) -> bool:
        return self.cause is None

    def failed(self, error: BaseException, what: str = "write") -> str:
        """Note a failed write; its cause.  Logged with the cause, one event
        per failure.  An error that is not the storage's (a bug in one
        write) is counted as ``write_error`` but leaves the health as it is."""
        cause = fault_cause(error)
        if cause is None:
            self.failures["write_error"] = self.failures.get("write_error", 0) + 1
            self.log.error("{what} not written: {error}", what=what, error=error)
            return "write_error"
        self.failures[cause] = self.failures.get(cause, 0) + 1
        if self.cause is None:
            self.log.critical("storage failing ({cause}): {what} not written: {error}",
                              cause=cause, what=what, error=error)
        else:
            self.log.error("storage still failing ({cause}): {what} not written: {error}",
                           cause=cause, what=what, error=error)
        self.cause = cause
        return cause

    def succeeded(self) -> None:
        """Note a committed write: the storage works again."""
        if self.cause is not None:
            self.log.info("storage writes again after {cause}", cause=self.cause)
            self.cause = None
