"""Small SQL and time helpers of the SQLite store."""

from __future__ import annotations

from datetime import datetime, timezone
from functools import lru_cache
from typing import Any


@lru_cache(maxsize=None)
def _upsert_sql(columns: tuple[str, ...]) -> str:
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c != "call_id")
    return (f"INSERT INTO calls ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)}) "
            f"ON CONFLICT (call_id) DO UPDATE SET {updates}")


@lru_cache(maxsize=1024)
def _update_sql(columns: tuple[str, ...]) -> str:
    return f"UPDATE calls SET {', '.join(f'{c} = ?' for c in columns)} WHERE call_id = ?"


def _text(value: Any) -> str | None:
    return None if value is None else value if isinstance(value, str) else str(value)


def _utc_iso(text: str | None) -> str | None:
    """``text`` in UTC when it is an ISO 8601 time with an offset (so times
    compare as strings); as given when it has none; None when it is not a time."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        return text
    return moment.astimezone(timezone.utc).isoformat()


def _utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
