"""What a PostgreSQL error says of the storage, in the words
:func:`ivr.store.sqlite.storage_health.fault_cause` tells monitoring.

Read from the error's SQLSTATE (psycopg's ``sqlstate``), without importing
psycopg: a server without the PostgreSQL backend installed still runs.
"""

from __future__ import annotations

__all__ = ["StoreTimeout", "postgres_fault_cause"]


class StoreTimeout(Exception):
    """PostgreSQL did not answer a turn's read or commit in time (a server
    that hangs, a network that drops packets): the caller is not kept
    waiting on it."""


#: SQLSTATE (or its class, the first two characters) and the cause.
_CAUSES = {
    "53100": "disk_full",         # disk_full
    "25006": "read_only",         # read_only_sql_transaction (a standby)
    "55P03": "database_locked",   # lock_not_available
    "40": "database_locked",      # serialization failure, deadlock: try again
    "08": "server_unreachable",   # connection exceptions
    "57": "server_unreachable",   # the server shutting down, crashed, in recovery
    "58": "io_error",             # system errors: I/O, files
    "53": "database_error",       # out of memory, connections, ...
    "XX": "corrupt",              # internal errors: data corrupted, ...
}


def postgres_fault_cause(error: BaseException) -> str | None:
    """The storage fault ``error`` is when it is one of psycopg's; None when
    it is not psycopg's, or not the storage's (a constraint, bad SQL)."""
    if isinstance(error, StoreTimeout):
        return "server_unreachable"
    if not type(error).__module__.startswith(("psycopg", "psycopg_pool")):
        return None
    state = getattr(error, "sqlstate", None)
    if state:
        return _CAUSES.get(state) or _CAUSES.get(state[:2])
    # No SQLSTATE: the connection broke or none could be had (PoolTimeout).
    names = {cls.__name__ for cls in type(error).__mro__}
    return "server_unreachable" if "OperationalError" in names else None
