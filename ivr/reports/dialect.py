"""What the reports say differently to SQLite and to PostgreSQL: time as a
number of days, a sum that is never NULL, a column kept off its index,
the key of a row, the columns a log has, and the planner's hint for the
repeat-call query.  Everything else the reports ask is in the SQL both
speak.  The log says which it speaks (``sql_dialect``; SQLite's
:class:`sqlite_utils.Database` says nothing)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from ivr.store.sqlite.reads import repeat_calls_index

__all__ = ["Dialect", "dialect_of"]


@dataclass(frozen=True)
class Dialect:
    """How one database says the few things the reports need in its own words."""

    name: str
    #: A time as a number of days (only differences mean anything); the
    #: UTC offset in the text is honoured, a time without one is UTC.
    days: Callable[[str], str]
    #: A sum that is 0.0, not NULL, over no rows.
    total: Callable[[str], str]
    #: A column compared without its index.
    unindexed: Callable[[str], str]
    #: What identifies a row of ``calls`` most cheaply.
    row_key: str
    #: The columns of a table.
    columns: Callable[[Any, str], list[str]]
    #: The hint that picks the repeat-call index ('' without one).
    repeat_hint: Callable[[Any], str]


SQLITE = Dialect(
    name="sqlite",
    days=lambda expression: f"julianday({expression})",
    total=lambda expression: f"total({expression})",
    unindexed=lambda expression: f"+{expression}",
    row_key="rowid",
    columns=lambda db, table: [row[1] for row in db.execute(f"PRAGMA table_info({table})").fetchall()],
    repeat_hint=repeat_calls_index,
)

POSTGRESQL = Dialect(
    name="postgresql",
    # Cast through text: a parameter used here and compared with text
    # elsewhere in the query must be typed text.
    days=lambda expression: (f"(extract(epoch FROM CAST(CAST({expression} AS text) AS timestamptz))"
                             " / 86400.0)"),
    # Summed exactly, so the figure is the one SQLite's compensated total() gives.
    total=lambda expression: (f"CAST(coalesce(sum(CAST({expression} AS numeric)), 0) "
                              "AS double precision)"),
    unindexed=lambda expression: expression,
    row_key="call_id",
    columns=lambda db, table: db.columns(table),
    repeat_hint=lambda db: "",
)


def dialect_of(db) -> Dialect:
    """The dialect the log ``db`` speaks."""
    return POSTGRESQL if getattr(db, "sql_dialect", "sqlite") == "postgresql" else SQLITE
