"""ivr.store.postgres.connection's pool after the server ended its
connections (a restart, a failover, ``pg_terminate_backend``): the
statements that follow get live connections, not the ones it closed.

The restart is played on the session's server by ending the pool's own
connections (``pg_terminate_backend``, which a restart does to each);
tests/test_postgres_restart.py restarts a cluster of its own under a live
``ivr-serve``."""

from contextlib import ExitStack

import psycopg
import pytest

from ivr.store.postgres.connection import PostgresDb, closed_by_server
from ivr.store.postgres.store import PostgresCallStore

#: Connections the pool is made to hold before they are ended.
HELD = 3


@pytest.fixture
def db(postgres_dsn):
    made = PostgresDb(postgres_dsn, size=HELD + 1)
    yield made
    made.close()


def end_sessions(dsn: str, pids) -> None:
    """End the sessions ``pids`` as a restart does, and wait (at most 5 s)
    until each is gone."""
    with psycopg.connect(dsn, autocommit=True) as admin:
        for pid in pids:
            assert admin.execute("SELECT pg_terminate_backend(%s, 5000)", [pid]).fetchone()[0]


def hold_idle_connections(db: PostgresDb, count: int) -> set[int]:
    """Make the pool hold ``count`` idle connections; their server pids."""
    with ExitStack() as stack:
        held = [stack.enter_context(db.borrowed()) for _ in range(count)]
        return {conn.info.backend_pid for conn in held}


def test_an_idle_connection_is_not_taken_for_closed(postgres_dsn):
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute("SELECT 1")
        assert not closed_by_server(conn)


def test_a_connection_the_server_ended_is_seen_closed_before_any_statement(postgres_dsn):
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        end_sessions(postgres_dsn, [conn.info.backend_pid])
        assert closed_by_server(conn)
        with pytest.raises(psycopg.OperationalError):  # what the next statement would meet
            conn.execute("SELECT 1")
        assert closed_by_server(conn)


def test_statements_after_a_restart_get_new_connections_not_the_closed_ones(db, postgres_dsn):
    ended = hold_idle_connections(db, HELD)
    end_sessions(postgres_dsn, ended)
    used = set()
    for _ in range(HELD + 1):
        used.add(db.execute("SELECT pg_backend_pid()").fetchone()[0])
        used.add(next(db.query("SELECT pg_backend_pid() AS pid"))["pid"])
    assert used and not used & ended


def test_a_write_transaction_after_a_restart_commits_on_a_new_connection(postgres_dsn):
    store = PostgresCallStore.connect(postgres_dsn, caller_key=b"k" * 32, pool_size=HELD + 1)
    try:
        end_sessions(postgres_dsn, hold_idle_connections(store.db, HELD))
        for number in range(HELD + 1):
            with store.transaction():
                store.db.execute("INSERT INTO leases (name, holder, expires_at) VALUES (?, ?, ?)",
                                 [f"lease-{number}", "a", "2026-11-24T09:00:00+00:00"])
        assert store.db.execute("SELECT count(*) FROM leases").fetchone()[0] == HELD + 1
    finally:
        store.close()
