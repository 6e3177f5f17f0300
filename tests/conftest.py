"""Fixtures shared by the test modules: a PostgreSQL server for the session
(see ``tests/postgres_support.py``) and a fresh schema on it per test; the
operator's language English unless a test chooses another, whatever the
machine's locale."""

import os

import pytest
from postgres_support import PostgresUnavailable, fresh_schema, postgres_server

from ivr import i18n

# Subprocesses started by a test inherit this; a test sets LANG itself to
# try another language.
for _name in ("LANGUAGE", "LC_ALL", "LC_MESSAGES"):
    os.environ.pop(_name, None)
os.environ["LANG"] = "C.UTF-8"


@pytest.fixture(autouse=True)
def _english_unless_chosen():
    """A command run with --lang fr in one test does not make the next
    test's messages French (the language is set per process)."""
    yield
    i18n._current.set(None)


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
