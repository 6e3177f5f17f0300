"""Callback requests: written when a caller asks to be called back, updated
by the sender, and read with their numbers opened for the people who call
back (the call log opened read-only, the caller key read from it)."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import datetime

import sqlite_utils
from cryptography.fernet import Fernet, InvalidToken

from ivr.store.protocol import attempt_time, orphaned
from ivr.store.sqlite.migrations import CALLBACK_STATUSES
from ivr.store.sqlite.sql import _text

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
    clauses, params = ["1 = 1"], []
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


class _CallbackRequests:
    """Methods of the call store, :class:`ivr.store.sqlite.store.CallStore`:
    callback requests written when a call asks and updated by the sender."""

    # -- callback requests ----------------------------------------------------------
    def _insert_callback(self, call_id: str, state: dict, status: str) -> None:
        if status not in CALLBACK_STATUSES:
            raise ValueError(f"unknown callback status {status!r}; expected one of "
                             f"{', '.join(CALLBACK_STATUSES)}")
        request = state["callback"]
        self.db.execute(
            "INSERT INTO callback_requests (call_id, flow, version, requested_at, number_sealed, "
            "number_hash, lang, reason, order_number, slot, status) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (call_id) DO NOTHING",
            [call_id, state["flow"], state["version"], request["requested_at"],
             self._seal(request["number"]), self.hash_caller(request["number"]),
             request.get("lang"), request.get("reason") or "not_stated",
             _text(request.get("order_number")), _text(request.get("slot")), status])

    def callback_request(self, call_id: str) -> dict | None:
        """The stored callback request of ``call_id``, its number opened
        (``number``); None when the call asked for none."""
        row = self._one("SELECT * FROM callback_requests WHERE call_id = ?", [call_id])
        if row is not None:
            row["number"] = _open_number(self._fernet, row.pop("number_sealed"))
        return row

    def pending_callbacks(self) -> list[str]:
        """The calls whose callback request the helpdesk has not had yet, oldest first."""
        return [row["call_id"] for row in self.db.query(
            "SELECT call_id FROM callback_requests WHERE status = 'pending' "
            "ORDER BY requested_at, call_id")]

    def update_callback(self, call_id: str, status: str, attempts: int,
                        last_error: str | None = None, delivered_at: str | None = None) -> None:
        """Record where the delivery of ``call_id``'s request stands."""
        if status not in CALLBACK_STATUSES:
            raise ValueError(f"unknown callback status {status!r}; expected one of "
                             f"{', '.join(CALLBACK_STATUSES)}")
        with self.transaction():
            self.db.execute(
                "UPDATE callback_requests SET status = ?, attempts = ?, last_error = ?, "
                "delivered_at = ? WHERE call_id = ?",
                [status, int(attempts), last_error, delivered_at, call_id])

    def orphaned_callbacks(self, attempted_before: datetime) -> list[tuple[str, str | None]]:
        """The pending requests last attempted (or, never attempted,
        requested) before ``attempted_before``, oldest first, with their
        ``last_attempt_at`` (see :meth:`ivr.store.protocol.CallStore.orphaned_callbacks`).
        The request times are local times with their offsets, compared
        here rather than as text; pending requests are few."""
        cutoff = attempt_time(attempted_before)
        rows = self.db.query(
            "SELECT call_id, requested_at, last_attempt_at FROM callback_requests "
            "WHERE status = 'pending' AND (last_attempt_at IS NULL OR last_attempt_at < ?) "
            "ORDER BY requested_at, call_id", [cutoff])
        return [(row["call_id"], row["last_attempt_at"]) for row in rows
                if orphaned(row["last_attempt_at"], row["requested_at"], cutoff)]

    def claim_callback(self, call_id: str, seen: str | None, at: datetime) -> bool:
        """Mark an attempt of ``call_id``'s pending request as started
        ``at`` if its last attempt is still ``seen`` (see
        :meth:`ivr.store.protocol.CallStore.claim_callback`): one
        statement, so of two processes claiming it one only gets it."""
        with self.transaction():
            cursor = self.db.execute(
                "UPDATE callback_requests SET last_attempt_at = ? WHERE call_id = ? "
                "AND status = 'pending' AND COALESCE(last_attempt_at, '') = ?",
                [attempt_time(at), call_id, seen or ""])
            return cursor.rowcount > 0
