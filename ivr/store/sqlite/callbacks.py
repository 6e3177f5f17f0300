"""Reading callback requests with their numbers opened, for the people who
call back (the call log opened read-only, the caller key read from it)."""

from __future__ import annotations

import base64
import hashlib
import hmac

import sqlite_utils
from cryptography.fernet import Fernet, InvalidToken

_KEY_NAME = "caller_hash_key"


_SEAL_PREFIX = "sealed:v1:"


def stored_caller_key(db: sqlite_utils.Database) -> bytes | None:
    """The caller key kept in the database's ``meta`` table (the one a
    :class:`CallStore` opened without ``caller_key`` uses); None when there
    is none.  Only reads: safe on a database opened read-only."""
    if "meta" not in db.table_names():
        return None
    row = next(iter(db.query("SELECT value FROM meta WHERE key = ?", [_KEY_NAME])), None)
    return None if row is None else bytes.fromhex(row["value"])


def read_callback_requests(db: sqlite_utils.Database, caller_key: bytes, *,
                           status: str | None = None, since: str | None = None,
                           until: str | None = None) -> list[dict]:
    """The callback requests of ``db``, oldest first, their number opened
    with ``caller_key`` (``number`` None when it was sealed with another
    key).  ``status`` None is every status; ``since`` (inclusive) and
    ``until`` (exclusive) are local times as text, compared with
    ``requested_at`` as text (it is the flow's local time).  Only reads."""
    clauses, params = ["1"], []
    if status is not None:
        clauses.append("status = ?")
        params.append(status)
    if since:
        clauses.append("requested_at >= ?")
        params.append(since)
    if until:
        clauses.append("requested_at < ?")
        params.append(until)
    fernet = _sealer(caller_key)
    rows = []
    for row in db.query(f"SELECT * FROM callback_requests WHERE {' AND '.join(clauses)} "
                        "ORDER BY requested_at, call_id", params):
        try:
            row["number"] = _open_number(fernet, row.pop("number_sealed"))
        except ValueError:
            row["number"] = None
        rows.append(row)
    return rows


def _sealer(key: bytes) -> Fernet:
    """Fernet (AES with an HMAC) for the state and the numbers; its key is
    derived from the caller key, so one secret serves both."""
    seal_key = hmac.new(key, b"ivr.store/seal", hashlib.sha256).digest()
    return Fernet(base64.urlsafe_b64encode(seal_key))


def _open_number(fernet: Fernet, value: str) -> str:
    if not value.startswith(_SEAL_PREFIX):
        raise ValueError("the number is not sealed")
    try:
        return fernet.decrypt(value[len(_SEAL_PREFIX):].encode("ascii")).decode("utf-8")
    except InvalidToken:
        raise ValueError("the number is sealed with another caller key") from None
