"""The backends of :class:`ivr.store.protocol.CallStore`, held to it by the
type checker (each function fails the check when its backend no longer
provides a method of the protocol, or provides it with another signature)."""

from __future__ import annotations

from ivr.store.memory import MemoryCallStore
from ivr.store.postgres.store import PostgresCallStore
from ivr.store.protocol import CallStore
from ivr.store.sqlite.store import CallStore as SQLiteCallStore

__all__ = ["BACKENDS"]

#: Every backend, by name.
BACKENDS = {"sqlite": SQLiteCallStore, "postgresql": PostgresCallStore, "memory": MemoryCallStore}


def _sqlite_is_a_call_store(store: SQLiteCallStore) -> CallStore:
    return store


def _memory_is_a_call_store(store: MemoryCallStore) -> CallStore:
    return store


def _postgres_is_a_call_store(store: PostgresCallStore) -> CallStore:
    return store
