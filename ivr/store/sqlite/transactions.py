"""The SQLite store's write transactions.

:class:`Transaction` is what :meth:`ivr.store.sqlite.store.CallStore.transaction`
returns: a class rather than a generator context manager, whose
``contextlib`` machinery ran around every turn's writes.

Outermost, it takes the writer lock, then ``BEGIN IMMEDIATE``, and commits
on exit, after writing the first visits its turns counted
(:meth:`ivr.store.sqlite.node_log._NodeLog._write_reached`; dropped with
a rollback, and a savepoint's with the savepoint's).  While it is open no
other connection can commit, so the database's ``PRAGMA data_version`` is
read at most once per transaction
(:meth:`ivr.store.sqlite.node_log._NodeLog._data_version`).

Nested, a savepoint that rolls back alone, except inside a group's
transaction (:meth:`ivr.store.sqlite.store.CallStore.group_transaction`): a
group commit rolls back the whole group on any failure and writes each of
its writes again alone, so a savepoint per write only cost two statements
a turn, and a temporary file: past 64 KiB of savepoint journal in a
transaction SQLite spills it to a file, written page by page until the
commit.
"""

from __future__ import annotations

from typing import Any


class Transaction:
    """One write transaction of ``store`` (a savepoint when nested, but
    in a ``whole`` transaction)."""

    __slots__ = ("_store", "_whole", "_outer", "_savepoint", "_reached")

    def __init__(self, store: Any, whole: bool = False):
        self._store, self._whole = store, whole
        self._outer = self._savepoint = False
        self._reached: dict | None = None

    def __enter__(self) -> None:
        store = self._store
        conn = store.db.conn
        if conn.in_transaction:
            # One savepoint name for every level: SQLite releases or rolls
            # back to the innermost of that name, and the statements stay
            # in the statement cache (a name of its own each time is a new
            # statement to compile).
            if not store._txn_whole:
                conn.execute("SAVEPOINT ivr_write")
                self._savepoint = True
                # The first visits counted so far, as they are if it rolls back.
                self._reached = dict(store._reached)
            return
        # Writers of every process in turn, each woken at once.
        store.writer_lock.__enter__()
        try:
            conn.execute("BEGIN IMMEDIATE")
        except BaseException:
            store.writer_lock.__exit__(None, None, None)
            raise
        self._outer = True
        store._txn_open, store._txn_whole, store._txn_version = True, self._whole, None

    def __exit__(self, kind, error, traceback) -> None:
        store = self._store
        if self._outer:
            self._end(kind is None)
        elif self._savepoint:
            conn = store.db.conn
            if kind is None:
                conn.execute("RELEASE ivr_write")
            elif conn.in_transaction:  # an error may have ended the whole transaction
                conn.execute("ROLLBACK TO ivr_write")
                conn.execute("RELEASE ivr_write")
                store._reached.clear()
                store._reached.update(self._reached)

    def _end(self, commit: bool) -> None:
        """Commit (or roll back), then let the next writer in."""
        store = self._store
        try:
            if commit:
                store._write_reached()  # the first visits of its turns, counted
                store.db.conn.execute("COMMIT")
            else:
                store.db.rollback()
        except BaseException:
            store.db.rollback()
            raise
        finally:
            store._txn_open, store._txn_whole, store._txn_version = False, False, None
            store._reached.clear()
            store.writer_lock.__exit__(None, None, None)
