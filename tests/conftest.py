"""Fixtures shared by the test modules: a PostgreSQL server for the session
(see ``tests/postgres_support.py``) and a fresh schema on it per test."""

import pytest
from postgres_support import PostgresUnavailable, fresh_schema, postgres_server


@pytest.fixture(scope="session")
def postgres_server_dsn():
    """The session's PostgreSQL; the test skips, saying why, without one."""
    try:
        with postgres_server() as dsn:
            yield dsn
    except PostgresUnavailable as reason:
        pytest.skip(f"PostgreSQL unavailable: {reason}")


@pytest.fixture
def postgres_dsn(postgres_server_dsn):
    """A DSN on an empty schema of its own, dropped after the test."""
    with fresh_schema(postgres_server_dsn) as dsn:
        yield dsn
