"""Small SQL and time helpers of the SQLite store."""

from __future__ import annotations

import re
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


#: The UTC minute (``2026-12-06T22:33``) of each local minute and offset
#: met (``2026-12-06T23:33`` and ``+01:00``); cleared when it holds this many.
_UTC_MINUTES_KEPT = 1024
_utc_minutes: dict[str, str] = {}

#: The seconds of a moment as the engine writes it, copied as they are to
#: its UTC form (a fraction of ``000000`` is not: ``isoformat`` leaves it out).
_PLAIN_SECONDS = re.compile(r":[0-5][0-9]\.(?!000000)[0-9]{6}")


def _utc_iso(text: str | None) -> str | None:
    """``text`` in UTC when it is an ISO 8601 time with an offset (so times
    compare as strings); as given when it has none; None when it is not a time.

    Every turn saves its moment, which took a ``datetime`` parsed,
    converted and formatted again (about 18 thousand instructions).  A
    moment as the engine writes it (``2026-12-06T23:33:19.243743+01:00``,
    an offset in whole minutes) has the seconds of its UTC form: the UTC
    minute of each local minute and offset met is kept, and the seconds
    are copied."""
    if not text:
        return None
    if type(text) is str and len(text) == 32:
        minute = _utc_minutes.get(text[:16] + text[26:])
        if minute is not None:
            seconds = text[16:26]
            if _PLAIN_SECONDS.fullmatch(seconds):
                return f"{minute}{seconds}+00:00"
    utc = _utc_iso_parsed(text)
    if utc is not None and type(text) is str and len(text) == 32 and text[26] in "+-" \
            and text[29] == ":" and _PLAIN_SECONDS.fullmatch(text, 16, 26) \
            and utc[16:] == text[16:26] + "+00:00":
        if len(_utc_minutes) >= _UTC_MINUTES_KEPT:
            _utc_minutes.clear()
        _utc_minutes[text[:16] + text[26:]] = utc[:16]
    return utc


def _utc_iso_parsed(text: str) -> str | None:
    """:func:`_utc_iso`, by parsing ``text``."""
    try:
        moment = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        return text
    return moment.astimezone(timezone.utc).isoformat()


def _utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
