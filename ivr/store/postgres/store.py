"""The call log and the call state in PostgreSQL, for several servers
sharing one database (docs/storage.md, "PostgreSQL").

The store is the SQLite store's: the same tables and migrations (see
:mod:`ivr.store.postgres.migrations`), the same sealed state, the same
compare-and-swap on turns, the same idempotent writes.  Its statements are
written once, in the SQL both databases speak, and run here through
:class:`ivr.store.postgres.connection.PostgresDb`; only what SQLite says in
its own words (transactions, ``julianday``, planner hints, pragmas) is
said again below in PostgreSQL's.

Every method may be called from any thread: a transaction holds one pooled
connection for its thread; reads outside one borrow a connection each.
The server writes through :class:`ivr.store.postgres.group_commit.PooledGroupCommit`,
so no commit waits on the reactor's thread.
"""

from __future__ import annotations

from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Iterator

from ivr.store.postgres.connection import PostgresDb
from ivr.store.postgres.migrations import FOLD_REACHED, apply_migrations
from ivr.store.sqlite.retention import _CALL_TABLES
from ivr.store.sqlite.sql import _utc_iso
from ivr.store.sqlite.store import CallStore as SQLiteCallStore

__all__ = ["PostgresCallStore"]

#: Connections a store opens at most: the writer thread's, and the reads of
#: the reactor's thread and of the reports alongside.
POOL_SIZE = 4


def _migrate(db: PostgresDb) -> None:
    with db.borrowed() as conn:
        apply_migrations(conn)


class PostgresCallStore(SQLiteCallStore):
    """Calls, their per-turn state, node events, status callbacks, callback
    requests, flow versions and leases, in PostgreSQL: the PostgreSQL
    backend of :class:`ivr.store.protocol.CallStore`."""

    _migrate = staticmethod(_migrate)
    db: PostgresDb  # type: ignore[assignment]  # SQLite's Database, spoken by this adapter

    @classmethod
    def connect(cls, dsn: str, caller_key: bytes | None = None,
                pool_size: int = POOL_SIZE) -> "PostgresCallStore":
        """A store on the database at ``dsn`` (``postgresql://user@host/db``
        or libpq's ``key=value`` form), migrated to the current schema."""
        db = PostgresDb(dsn, size=pool_size)
        try:
            return cls(db, caller_key)
        except BaseException:
            db.close()
            raise

    def __repr__(self) -> str:  # never show the key
        return f"<PostgresCallStore {self.db!r}>"

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One write transaction, committed on exit, on a connection held
        for this thread; nested, a savepoint that rolls back alone."""
        db = self.db
        held = db.bound_connection()
        if held is not None:
            with held.transaction():
                yield
            return
        with db.borrowed() as conn, db.bound(conn), conn.transaction():
            yield

    #: A group commit's transaction: a transaction (its writes keep their savepoints).
    group_transaction = transaction

    # -- what SQLite says in its own words ------------------------------------------
    def open_calls(self, older_than: str) -> list[str]:
        """Calls not ended whose state was last saved before ``older_than``
        (ISO 8601; compared in UTC when it has an offset), oldest first."""
        cutoff = _utc_iso(older_than) or older_than
        return [row["call_id"] for row in self.db.query(
            "SELECT s.call_id FROM calls c JOIN call_state s ON s.call_id = c.call_id "
            "WHERE c.ended_at IS NULL AND s.updated_at < ? ORDER BY s.updated_at, s.call_id",
            [cutoff])]

    def _data_version(self) -> None:
        """None: PostgreSQL has no counter of other sessions' commits, so
        each node event asks whether it is the call's first at its node."""
        return None

    def _calls_started_before(self, started_before: str, limit: int) -> list[str]:
        """At most ``limit`` calls that started before the instant ``started_before``."""
        return [row[0] for row in self.db.execute(
            "SELECT call_id FROM calls WHERE started_at::timestamptz < ?::timestamptz LIMIT ?",
            [started_before, limit]).fetchall()]

    def purge_before(self, started_before: str, batch: int = 1000) -> dict[str, int]:
        """SQLite's purge, then the funnel's counts folded into one row per
        node: each first visit written added a row, each one purged another
        (see ``0013_reached_counts`` in ivr.store.postgres.migrations)."""
        totals = super().purge_before(started_before, batch)
        self.fold_reached_counts()
        return totals

    def fold_reached_counts(self) -> None:
        """The funnel's counts folded into one row per node: each first
        visit written adds a row (see ``0013_reached_counts`` in
        ivr.store.postgres.migrations), which ``ivr-serve`` folds every
        hour, so they stay few without a retention purge too."""
        with self.transaction():
            self.db.execute(FOLD_REACHED)

    def erase_calls(self, call_ids: list[str]) -> dict[str, int]:
        """Delete ``call_ids`` from every table that holds calls, in one
        transaction; rows deleted per table.  (PostgreSQL reuses the space
        of deleted rows after its autovacuum.)"""
        counts = dict.fromkeys(_CALL_TABLES, 0)
        with self.transaction():
            for table in _CALL_TABLES:
                counts[table] += self.db.execute(
                    f"DELETE FROM {table} WHERE call_id = ANY(?)", [list(call_ids)]).rowcount
        self._forget_kept(call_ids)
        return counts

    def truncate_wal(self) -> bool:
        """Nothing to do: PostgreSQL recycles its write-ahead log itself."""
        return True

    def vacuum(self) -> None:
        """Give the space of erased rows back (VACUUM, outside a transaction)."""
        for table in _CALL_TABLES:
            self.db.execute(f"VACUUM {table}")

    # -- leases ---------------------------------------------------------------------
    def take_lease(self, name: str, holder: str, now: datetime, ttl: timedelta) -> bool:
        """Hold the lease ``name`` for ``holder`` until ``now + ttl``: True
        when taken (it was free, expired, or already ``holder``'s), False
        while another holder's lease is valid.  One statement, so two
        servers asking at once cannot both get it."""
        if now.tzinfo is None:
            raise ValueError("take_lease needs an aware time (with its UTC offset)")
        cursor = self.db.execute(
            "INSERT INTO leases (name, holder, expires_at) VALUES (?, ?, ?) "
            "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, "
            "expires_at = excluded.expires_at "
            "WHERE leases.holder = excluded.holder OR leases.expires_at <= ?",
            [name, holder, now + ttl, now])
        return cursor.rowcount > 0
