"""The call log in PostgreSQL opened for reading, as the reports and the
dashboard read an SQLite log (``ivr.reports.queries.open_report_db``): a
:class:`PostgresLog` answers ``query``, ``execute`` and ``table_names``
like :class:`sqlite_utils.Database`, with SQLite's placeholders (``?``,
``:name``), and says which SQL it speaks (``sql_dialect``).

Its session is read-only (a report never writes) and in UTC, so a time
without an offset is read as UTC, as SQLite's ``julianday`` reads it.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, Iterator

import psycopg
from psycopg.rows import dict_row

from ivr.store.postgres.connection import psycopg_sql

__all__ = ["PostgresLog", "open_postgres_log"]

#: A named parameter (``:since``), not a cast (``x::text``).
_NAMED = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)|%")


@lru_cache(maxsize=256)
def _named_sql(sql: str) -> str:
    return _NAMED.sub(lambda m: "%%" if m.group(0) == "%" else f"%({m.group(1)})s", sql)


class PostgresLog:
    """One read-only connection to the call log at ``dsn``."""

    sql_dialect = "postgresql"

    def __init__(self, dsn: str):
        self.conn = psycopg.connect(dsn, autocommit=True)
        # Set here, not as connection options: those would replace the DSN's own.
        self.conn.execute("SET default_transaction_read_only = on")
        self.conn.execute("SET TIME ZONE 'UTC'")

    def _run(self, sql: str, params, row_factory=None):
        if isinstance(params, dict):
            text, values = _named_sql(sql), params
        else:
            text, order = psycopg_sql(sql)
            values = list(params or ())
            values = values if order is None else [values[i] for i in order]
        cursor = self.conn.cursor(row_factory=row_factory) if row_factory else self.conn.cursor()
        return cursor.execute(text, values)

    def query(self, sql: str, params: Any = None) -> Iterator[dict]:
        """The rows of a read, as dicts."""
        return iter(self._run(sql, params, dict_row).fetchall())

    def execute(self, sql: str, params: Any = None):
        """A read's cursor (rows as tuples)."""
        return self._run(sql, params)

    def table_names(self) -> list[str]:
        return [row["table_name"] for row in self.query(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = current_schema() ORDER BY table_name")]

    def columns(self, table: str) -> list[str]:
        """The columns of ``table``, in order."""
        return [row["column_name"] for row in self.query(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = ? ORDER BY ordinal_position",
            [table])]

    def close(self) -> None:
        self.conn.close()


def open_postgres_log(dsn: str) -> PostgresLog:
    """The call log at ``dsn``, for reading; psycopg's error when it cannot be reached."""
    return PostgresLog(dsn)
