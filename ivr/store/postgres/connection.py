"""The call log's connections to PostgreSQL, seen through the small part of
:class:`sqlite_utils.Database` the call store uses (``execute``,
``executemany``, ``query``, ``table_names``, ``conn``), so the store's
statements, written once in the SQL both databases speak, run on either.

Statements are written with SQLite's placeholders (``?`` and ``?N``); they
are rewritten once each for psycopg (``%s``, parameters reordered).

Connections come from a :class:`psycopg_pool.ConnectionPool` and are
thread-safe to share that way: inside :meth:`PostgresDb.bound` (a write
transaction) every statement of the thread goes to the connection the
transaction holds; outside one, each statement borrows a connection for
itself and runs in autocommit.

A database that restarts (``pg_ctl restart``, a managed database's
failover) closes every connection the pool holds idle.  The pool would
hand them out all the same, and each would fail one turn, so
:meth:`PostgresDb.borrowed` polls a connection's socket before handing it
out (no round trip) and drops one the server closed; and the pool gives up
a reconnection after :data:`RECONNECT_WITHIN` seconds, so a turn asking
for a connection starts a new attempt at once instead of waiting out a
back-off that doubles for as long as the database is down.
"""

from __future__ import annotations

import re
import select
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Iterator, Sequence

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

__all__ = ["PostgresDb", "closed_by_server", "is_postgres_url", "psycopg_sql"]

#: How long opening the store waits for a first connection, in seconds.
CONNECT_TIMEOUT = 10.0

#: How long a statement waits for a connection of the pool, in seconds
#: (psycopg_pool's default, 30 s, is longer than a caller waits).
BORROW_TIMEOUT = 2.0

#: How long the pool tries again to open a connection that failed (about
#: 1 s apart) before it gives up, in seconds: the next statement that
#: needs one starts again at once.  (psycopg_pool's default, 5 minutes,
#: doubles the wait between attempts: a database back after half a minute
#: could wait up to half a minute more.)
RECONNECT_WITHIN = 2.0

#: libpq's connection settings unless the DSN gives its own: a new
#: connection gives up after 5 s, and one to a host that stopped answering
#: (a network dropping packets) breaks within about 20 s, so the pool opens
#: another instead of a thread waiting on it for the kernel's 15 minutes.
CONNECTION_DEFAULTS = {
    "connect_timeout": 5,
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 3,
    "keepalives_count": 3,
    "tcp_user_timeout": 20_000,  # ms without an acknowledgement of data sent
}

_PLACEHOLDER = re.compile(r"\?(\d*)|%")


def is_postgres_url(value: str) -> bool:
    """Whether a ``--db`` value names a PostgreSQL database (a
    ``postgresql://`` or ``postgres://`` URL) rather than an SQLite file."""
    return value.strip().lower().startswith(("postgresql://", "postgres://"))


@lru_cache(maxsize=512)
def psycopg_sql(sql: str) -> tuple[str, tuple[int, ...] | None]:
    """``sql`` with SQLite's placeholders as psycopg's, and for numbered
    ones (``?3``) the index of the parameter each ``%s`` takes (None: in
    order).  A literal ``%`` is doubled."""
    order: list[int] = []
    numbered = False

    def replace(match: re.Match) -> str:
        nonlocal numbered
        if match.group(0) == "%":
            return "%%"
        if match.group(1):
            numbered = True
            order.append(int(match.group(1)) - 1)
        else:
            order.append(len(order))
        return "%s"

    return _PLACEHOLDER.sub(replace, sql), tuple(order) if numbered else None


def closed_by_server(conn: psycopg.Connection) -> bool:
    """Whether the server ended ``conn`` while it sat idle in the pool (a
    restart, a failover, an administrator's ``pg_terminate_backend``).  An
    idle connection is sent nothing but its session's end (an error, then
    the socket closed), so a socket with something to read, or closed, is
    one: a poll of the socket, no round trip to the server."""
    if conn.closed:
        return True
    try:
        socket = conn.pgconn.socket
    except psycopg.OperationalError:  # libpq already knows it is lost
        return True
    if not hasattr(select, "poll"):  # Windows
        return bool(select.select([socket], [], [], 0)[0])
    poller = select.poll()
    poller.register(socket, select.POLLIN)
    return bool(poller.poll(0))


def _params(order: tuple[int, ...] | None, params: Sequence[Any] | None) -> list:
    params = list(params or ())
    return params if order is None else [params[index] for index in order]


@dataclass
class _Result:
    """What a statement run on a borrowed connection returned, read before
    the connection went back to the pool."""

    rowcount: int
    rows: list = field(default_factory=list)

    def fetchone(self):
        return self.rows[0] if self.rows else None

    def fetchall(self) -> list:
        return list(self.rows)


class PostgresDb:
    """A pool of connections to the database at ``dsn``, at most ``size``."""

    def __init__(self, dsn: str, size: int = 4):
        self.dsn = dsn
        # One connection first: its error says why (refused, no such user)
        # where the pool's would only say it timed out.
        psycopg.connect(dsn, connect_timeout=int(CONNECT_TIMEOUT)).close()
        given = conninfo_to_dict(dsn)
        settings = {key: value for key, value in CONNECTION_DEFAULTS.items() if key not in given}
        self.pool = ConnectionPool(dsn, min_size=1, max_size=size, open=False,
                                   kwargs={"autocommit": True, **settings},
                                   timeout=BORROW_TIMEOUT, reconnect_timeout=RECONNECT_WITHIN,
                                   name="ivr-calls")
        self.pool.open()
        try:
            self.pool.wait(timeout=CONNECT_TIMEOUT)
        except Exception:
            self.pool.close()
            raise
        self._local = threading.local()

    # The store reaches the database as ``db.conn`` too (SQLite's connection).
    @property
    def conn(self) -> "PostgresDb":
        return self

    def close(self) -> None:
        self.pool.close()

    def __repr__(self) -> str:
        return f"<PostgresDb {self.pool.name}>"

    @contextmanager
    def borrowed(self) -> Iterator[psycopg.Connection]:
        """A connection of the pool for the block (as
        :meth:`psycopg_pool.ConnectionPool.connection`), never one the
        server closed while it sat idle: those are dropped (the pool opens
        others).  Waits at most :data:`BORROW_TIMEOUT` seconds in all, then
        raises :class:`psycopg_pool.PoolTimeout`."""
        conn = self._live_connection()
        try:
            with conn:
                yield conn
        finally:
            self.pool.putconn(conn)

    def _live_connection(self) -> psycopg.Connection:
        deadline = time.monotonic() + BORROW_TIMEOUT
        while True:
            conn = self.pool.getconn(timeout=max(deadline - time.monotonic(), 0.0))
            if not closed_by_server(conn):
                return conn
            conn.close()  # returned closed, the pool replaces it
            self.pool.putconn(conn)

    def bound_connection(self) -> psycopg.Connection | None:
        """The connection this thread's transaction holds, if any."""
        return getattr(self._local, "conn", None)

    @contextmanager
    def bound(self, conn: psycopg.Connection) -> Iterator[None]:
        """Send this thread's statements to ``conn`` while the block runs."""
        self._local.conn = conn
        try:
            yield
        finally:
            self._local.conn = None

    def execute(self, sql: str, params: Sequence[Any] | None = None):
        """Run one statement: its cursor, or inside no transaction its
        rows and row count."""
        text, order = psycopg_sql(sql)
        values = _params(order, params)
        conn = self.bound_connection()
        if conn is not None:
            return conn.execute(text, values)
        with self.borrowed() as borrowed:
            cursor = borrowed.execute(text, values)
            return _Result(cursor.rowcount, cursor.fetchall() if cursor.description else [])

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        text, order = psycopg_sql(sql)
        values = [_params(order, row) for row in rows]
        if not values:
            return
        conn = self.bound_connection()
        if conn is not None:
            conn.cursor().executemany(text, values)
            return
        with self.borrowed() as borrowed, borrowed.transaction():
            borrowed.cursor().executemany(text, values)

    def query(self, sql: str, params: Sequence[Any] | dict | None = None) -> Iterator[dict]:
        """The rows of a read, as dicts."""
        if isinstance(params, dict):
            raise TypeError("named parameters: use ivr.reports' PostgreSQL reader")
        text, order = psycopg_sql(sql)
        values = _params(order, params)
        conn = self.bound_connection()
        if conn is not None:
            return iter(conn.cursor(row_factory=dict_row).execute(text, values).fetchall())
        with self.borrowed() as borrowed:
            return iter(borrowed.cursor(row_factory=dict_row).execute(text, values).fetchall())

    def table_names(self) -> list[str]:
        """The tables of the schema the connection works in."""
        return [row["table_name"] for row in self.query(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = current_schema() ORDER BY table_name")]
