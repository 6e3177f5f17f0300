"""The call log and the call state, in SQLite (through sqlite-utils).

One database holds what a call needs to continue after a restart and what
the reports count (definitions: docs/deflection.md; promises: docs/reliability.md):

``call_state``     per call: the last turn answered, the engine state after
                   it and the TwiML answered, so a provider retry of that
                   turn gets the same answer and a restart loses nothing.
``node_events``    every node a call reached, keyed by (call_id, seq): a
                   retried turn that logs the same events counts them once.
``calls``          one row per call: reason, outcome, cause, hand-off (and
                   what happened there: answered, abandoned in the queue,
                   no answer), and the caller as a keyed hash, never the
                   raw number.
``node_reached``   per flow version and node, how many calls reached it
                   (each call's first event there, ``first_visit``): what
                   the funnel reads, counted as the events are written.
``status_events``  provider status callbacks, keyed by (call_id, sequence).
``flow_versions``  the YAML and prompt texts of every flow version that ran.
``meta``           the store's own settings (the caller-hash key when none
                   is configured).
``callback_requests``  one row per call that asked to be called back: the
                   number (sealed), reason, order, preferred slot,
                   whether the helpdesk was told and when it was last
                   tried (``ivr.server.helpdesk``).
``leases``         who runs the work that must run once however many
                   server processes share the file, and until when.

Caller numbers.  Reports see only ``calls.caller_hash``, an HMAC-SHA256 of
the normalised number.  The engine state must keep the number itself (a
callback reads it back, a look-up searches orders by it), so before the state
is written every string in it equal to the caller's number or to a callback
number is *sealed* (encrypted and authenticated with a key derived from the
same secret) and opened again by :meth:`CallStore.load_call`.  The raw number
is therefore never written to the database file.  When no ``caller_key`` is
configured the secret lives in the ``meta`` table of the same file: that
keeps hashes stable across restarts and numbers out of exports and backups
of the tables, but whoever has the whole file can recover them; configure
``caller_key`` (kept outside the database) when that matters.

Every write method is one transaction (``BEGIN IMMEDIATE`` ... ``COMMIT``),
committed before it returns, or a savepoint inside the caller's
:meth:`CallStore.transaction`; inside :meth:`CallStore.group_transaction`
(how :mod:`ivr.store.sqlite.group_commit` writes many turns with one
commit), part of the whole, with no savepoint.  A store's connection belongs to the thread
that opened it; open one store per thread or process (WAL lets them share
the file).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from collections import OrderedDict
from contextlib import AbstractContextManager
from functools import partial
from typing import Callable, NamedTuple

import phonenumbers
import sqlite_utils
from cryptography.fernet import InvalidToken

from ivr.phone import is_withheld
from ivr.store.protocol import CallRecord, checked_turn
from ivr.store.sqlite.callbacks import (
    _KEY_NAME,
    _SEAL_PREFIX,
    _CallbackRequests,
    _sealer,
    stored_caller_key,
)
from ivr.store.sqlite.leases import _Leases
from ivr.store.sqlite.migrations import CALLBACK_STATUSES, _apply_migrations
from ivr.store.sqlite.node_log import LoggedNodes, _NodeLog
from ivr.store.sqlite.retention import _Retention
from ivr.store.sqlite.sql import _text, _update_sql, _upsert_sql, _utc_iso, _utc_now
from ivr.store.sqlite.state_seal import CallKeys, _SealedStates, gcm_siv_cipher
from ivr.store.sqlite.transactions import Transaction
from ivr.store.sqlite.writer_lock import NO_WRITER_LOCK, writer_lock_beside

__all__ = ["CALLBACK_STATUSES", "CallRecord", "CallStore", "NO_SEQUENCE", "stored_caller_key"]


#: The sequence stored for a status callback that carries none.  It ranks
#: below every numbered callback (providers count from 0), and a second
#: unnumbered callback for the same call is a duplicate: without a number
#: there is no telling which of two came last, and a call has one final status.
NO_SEQUENCE = -1

#: The columns of a ``calls`` row a turn writes, in the order
#: ``CallStore._call_row`` gives their values.
CALL_COLUMNS = ("call_id", "flow", "version", "started_at", "ended_at", "caller_hash",
                "country", "lang", "reason", "outcome", "cause", "confirmed", "handoff_kind",
                "handoff_target", "steps", "exit_node", "ivr_seconds", "sms_sent",
                "transfer_result", "queue_seconds", "provider")

#: Calls whose last saved record is kept in memory (see ``load_call``).
LIVE_CALLS_KEPT = 2048


class _Kept(NamedTuple):
    """The last save of a live call, as written: the record, its sealed
    state, its ``calls`` row and, when known, its logged nodes.  (A named
    tuple rather than a frozen dataclass, whose ``__init__`` sets each
    field through ``object.__setattr__``: 3.5 thousand instructions to
    make one instead of 7.9, and a turn makes one.)"""

    record: CallRecord
    state_json: bytearray
    row: tuple
    logged: LoggedNodes | None = None


class _PreparedTurn(NamedTuple):
    """A turn's writes made ready (see :meth:`CallStore.turn_writer`): the
    answer as bytes, the sealed state, the events' rows and the ``calls``
    row."""

    call_id: str
    turn: int
    state: dict
    response: bytes
    state_json: bytearray
    updated_at: str
    events: tuple
    row: tuple
    callback_status: str


class CallStore(_CallbackRequests, _Retention, _Leases, _NodeLog, _SealedStates):
    """Calls, their per-turn state, node events, status callbacks and flow
    versions, in SQLite: the SQLite backend of :class:`ivr.store.protocol.CallStore`."""

    #: Taken around each write transaction (see ivr.store.sqlite.writer_lock);
    #: :meth:`open` gives a store on a file the lock beside it.
    writer_lock = NO_WRITER_LOCK
    #: Whether this store's outermost transaction is open, whether its
    #: nested writes skip their savepoints, and ``data_version`` once read
    #: in it (see ivr.store.sqlite.transactions).
    _txn_open = _txn_whole = False
    _txn_version: int | None = None

    def __init__(self, db: sqlite_utils.Database, caller_key: bytes | None = None):
        if caller_key is not None and (not isinstance(caller_key, bytes) or not caller_key):
            raise TypeError("caller_key must be non-empty bytes")
        self._reached: dict[tuple, int] = {}
        self.db = db
        self._migrate(db)
        self._key = caller_key if caller_key is not None else self._stored_key()
        self._hashes: dict[str, str] = {}
        self._live: OrderedDict[str, CallRecord] = OrderedDict()
        self._fernet = _sealer(self._key)
        self._state_cipher = gcm_siv_cipher(self._key)
        self._call_keys = CallKeys(self._key)

    #: Brings a database up to this store's schema (a backend's own migrations).
    _migrate = staticmethod(_apply_migrations)

    @classmethod
    def open(cls, path, caller_key: bytes | None = None, *, synchronous: str = "NORMAL",
             busy_timeout_ms: int = 5000) -> "CallStore":
        """A store on the file ``path``, in WAL mode.

        ``synchronous=NORMAL`` (the default) keeps every committed turn
        through a crash of the process; a power cut or OS crash may lose the
        last commits.  Pass ``synchronous="FULL"`` to survive those too, at
        an fsync per commit.
        """
        if synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"unknown synchronous mode {synchronous!r}")
        db = sqlite_utils.Database(path)
        db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        db.enable_wal()
        db.execute(f"PRAGMA synchronous = {synchronous.upper()}")
        store = cls(db, caller_key)
        store.writer_lock = writer_lock_beside(path, busy_timeout_ms / 1000)
        return store

    def close(self) -> None:
        self.db.close()
        self.writer_lock.close()

    def __repr__(self) -> str:  # never show the key
        return f"<CallStore {self.db!r}>"

    # -- callers --------------------------------------------------------------------
    def hash_caller(self, number: str | None) -> str:
        """The keyed hash (HMAC-SHA256, hex) of ``number`` once normalised;
        '' when the number is missing or withheld."""
        if is_withheld(number):
            return ""
        cached = self._hashes.get(number)
        if cached is None:
            cached = keyed_hash(self._key, number)
            if len(self._hashes) > 10_000:  # every turn of a call hashes the same number
                self._hashes.clear()
            self._hashes[number] = cached
        return cached

    # -- flow versions --------------------------------------------------------------
    def save_flow_version(self, flow, first_seen: str | None = None) -> bool:
        """Keep ``flow``'s YAML and prompt texts; True when the version is new.

        A version is a digest of its YAML and prompts, so a version already
        stored is kept as it is (with its first ``first_seen``)."""
        sources = getattr(getattr(flow, "prompts", None), "sources", None) or {}
        prompts = {f"{lang}/{name}": text for (lang, name), text in sorted(sources.items())}
        with self.transaction():
            cursor = self.db.execute(
                "INSERT INTO flow_versions (flow, version, source, prompts_json, first_seen) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (flow, version) DO NOTHING",
                [flow.name, flow.version, flow.source or "",
                 json.dumps(prompts, ensure_ascii=False, sort_keys=True),
                 first_seen or _utc_now()])
            return cursor.rowcount > 0

    def flow_version(self, flow_name: str, version: str) -> dict | None:
        """The stored version: flow, version, source, prompts ({"lang/name": text}), first_seen."""
        row = self._one("SELECT * FROM flow_versions WHERE flow = ? AND version = ?",
                        [flow_name, version])
        if row is None:
            return None
        row["prompts"] = json.loads(row.pop("prompts_json"))
        return row

    # -- turns ----------------------------------------------------------------------
    def load_call(self, call_id: str) -> CallRecord | None:
        """The state, last turn and last answer of ``call_id``; None if unknown.

        The record this store saved last for the call is kept in memory and
        used while the database still holds exactly what was saved then
        (another process may have saved the call since), saving the
        decryption of every turn."""
        row = self.db.conn.execute(
            "SELECT turn, state_json, response FROM call_state WHERE call_id = ?",
            [call_id]).fetchone()
        if row is None:
            return None
        kept = self._kept_as_stored(call_id, row[1])
        if kept is not None:
            return kept.record
        state = self._open_state(call_id, row[1])
        return CallRecord(state=state, turn=row[0], response=bytes(row[2]),
                          ended=bool(state.get("ended")))

    def save_turn(self, call_id: str, turn: int, state: dict, response: bytes,
                  node_events: list[dict], summary: dict, caller: str,
                  callback_status: str = "not_configured") -> None:
        """Record a turn answered, in one transaction committed before returning.

        The node events are inserted unless already stored (a retried turn
        counts once).  A turn older than the one stored (a late retry that
        raced a newer turn) adds its missing events but changes neither the
        state nor the calls row.  A state holding a callback request
        (``state["callback"]``, see :func:`ivr.engine.step.callback_request`)
        stores it with ``callback_status`` unless the call's request is
        already stored, so the turn that kept the number writes it once.
        """
        self._write_turn(self._prepared_turn(call_id, turn, state, response, node_events,
                                             summary, caller, callback_status))

    def turn_writer(self, call_id: str, turn: int, state: dict, response: bytes,
                    node_events: list[dict], summary: dict, caller: str,
                    callback_status: str = "not_configured") -> Callable[[], None]:
        """:meth:`save_turn` as a function to call later, in a group
        commit's transaction: the checks, the caller's hash, the sealed
        state and the rows are made now, so the transaction holds the
        writers' lock (which the other processes wait for) for its
        statements alone.  A check that fails raises when it is called."""
        try:
            prepared = self._prepared_turn(call_id, turn, state, response, node_events,
                                           summary, caller, callback_status)
        except Exception as error:  # noqa: BLE001 - raised where save_turn would raise it
            return partial(_raise, error)
        return partial(self._write_turn, prepared)

    def _prepared_turn(self, call_id: str, turn: int, state: dict, response: bytes,
                       node_events: list[dict], summary: dict, caller: str,
                       callback_status: str) -> _PreparedTurn:
        """What :meth:`save_turn` writes, made without the database."""
        response = checked_turn(call_id, node_events, summary, response)
        # The live state holds the caller's number: sealed as a whole.
        state_json = self._seal_state(call_id, state)
        updated_at = _utc_iso(state.get("now")) or _utc_now()
        events = tuple((call_id, int(event["seq"]), event["flow"], event["version"],
                        event["node"], event["kind"], _text(event.get("input")),
                        _text(event.get("branch")), _text(event.get("detail")), event["at"])
                       for event in node_events)
        row = self._call_row(call_id, summary, self.hash_caller(caller))
        return _PreparedTurn(call_id, int(turn), state, response, state_json, updated_at,
                             events, row, callback_status)

    def _write_turn(self, turn: _PreparedTurn) -> None:
        """Write a prepared turn, in one transaction (see :meth:`save_turn`)."""
        call_id, state = turn.call_id, turn.state
        # A bytearray, as the sealed state (see _SealedStates._seal_state).
        values = [turn.turn, turn.state_json, bytearray(turn.response), turn.updated_at,
                  call_id]
        # Fresh lists: the log appends each event's first-visit flag.
        rows = [list(event) for event in turn.events]
        with self.transaction():
            current, before = self._replace_state(call_id, values)
            logged = self._log_events(call_id, rows, before.logged if before else None)
            if current:
                self._write_call_row(call_id, turn.row, before.row if before else None)
                kept = _Kept(CallRecord(state=state, turn=turn.turn, response=turn.response,
                                        ended=bool(state.get("ended"))),
                             turn.state_json, turn.row, logged)
            if state.get("callback"):
                self._insert_callback(call_id, state, turn.callback_status)
        if current:
            self._keep(call_id, kept)
        elif call_id in self._live:
            # A late retry may have logged events the kept record does not
            # know of (and its commit is not known here): they are read again.
            self._live[call_id] = self._live[call_id]._replace(logged=None)

    def _replace_state(self, call_id: str, values: list) -> tuple[bool, "_Kept | None"]:
        """Store the call's new state unless a later turn is stored: whether
        it was stored, and this store's last save when the database still
        held it (its ``calls`` row is then known).  ``values`` are the
        turn, sealed state, response, time and call id."""
        kept = self._live.get(call_id)
        if kept is not None and values[0] >= kept.record.turn:
            # Replaced only if still what this store saved last: one
            # statement both checks and writes.
            cursor = self.db.conn.execute(
                "UPDATE call_state SET turn = ?, state_json = ?, response = ?, updated_at = ? "
                "WHERE call_id = ? AND state_json = ?", values + [kept.state_json])
            if cursor.rowcount:
                return True, kept
        cursor = self.db.conn.execute(
            "INSERT INTO call_state (turn, state_json, response, updated_at, call_id) "
            "VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (call_id) DO UPDATE SET turn = excluded.turn, "
            "state_json = excluded.state_json, response = excluded.response, "
            "updated_at = excluded.updated_at WHERE excluded.turn >= call_state.turn", values)
        return cursor.rowcount > 0, None

    def _call_row(self, call_id: str, summary: dict, caller_hash: str) -> tuple:
        """The call's ``calls`` row after a turn, in the order of
        :data:`CALL_COLUMNS`."""
        handoff = summary.get("handoff") or {}
        kind, target = handoff.get("kind"), handoff.get("target")
        if kind == "callback" and target:
            target = self.hash_caller(target)  # a caller's phone number, like caller_hash
        get = summary.get
        return (call_id, summary["flow"], summary["version"], summary["started_at"],
                get("ended_at"), caller_hash, get("country"), get("lang"), get("reason"),
                get("outcome"), get("cause"), 1 if get("confirmed") else 0, kind,
                _text(target), int(get("steps") or 0), get("exit_node"), get("ivr_seconds"),
                int(get("sms_sent") or 0), get("transfer_result"), get("queue_seconds"),
                get("provider"))

    def _write_call_row(self, call_id: str, row: tuple, before: tuple | None) -> None:
        """Write the call's ``calls`` row (see :meth:`_call_row`).  ``before``
        is the row as stored, when known: only the columns that changed are
        then written, which leaves the report indexes alone on most turns
        (rewriting every column rewrote every index entry of the row)."""
        if before is None:
            self.db.conn.execute(_upsert_sql(CALL_COLUMNS), row)
            # A status callback may have arrived before the first turn was saved.
            self._refresh_provider_status(call_id)
            return
        changed = [(column, value) for column, value, old in zip(CALL_COLUMNS, row, before)
                   if value != old]
        if changed:
            self.db.conn.execute(_update_sql(tuple(column for column, _ in changed)),
                                 [value for _, value in changed] + [call_id])


    # -- provider status callbacks ------------------------------------------------------
    def record_status(self, call_id: str, sequence: int | None, status: str, at: str,
                      duration: int | None) -> bool:
        """Keep a status callback; False when this (call, sequence) was already seen.

        ``calls.provider_status`` and ``duration_s`` follow the callback with
        the highest sequence, whatever order they arrive in.  ``sequence``
        None is stored as :data:`NO_SEQUENCE`.
        """
        status = (status or "").strip().lower()
        if not status:
            raise ValueError("empty call status")
        sequence = NO_SEQUENCE if sequence is None else int(sequence)
        with self.transaction():
            cursor = self.db.conn.execute(
                "INSERT INTO status_events (call_id, sequence, status, at, duration_s) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (call_id, sequence) DO NOTHING",
                [call_id, sequence, status, at, None if duration is None else int(duration)])
            if cursor.rowcount == 0:
                return False
            self._refresh_provider_status(call_id)
            return True

    def _refresh_provider_status(self, call_id: str) -> None:
        self.db.conn.execute(
            "UPDATE calls SET (provider_status, duration_s) = ("
            "  SELECT status, duration_s FROM status_events"
            "  WHERE status_events.call_id = calls.call_id ORDER BY sequence DESC LIMIT 1) "
            "WHERE call_id = ? AND EXISTS (SELECT 1 FROM status_events WHERE call_id = ?)",
            [call_id, call_id])

    # -- erasing --------------------------------------------------------------------
    def probe_write(self) -> None:
        """A small write, committed: raises what a turn's write would raise
        while the disk is full, failing or locked."""
        with self.transaction():
            self.db.conn.execute(
                "INSERT INTO meta (key, value) VALUES ('write_probe', ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value", [_utc_now()])


    # -- reading --------------------------------------------------------------------
    def node_events(self, call_id: str) -> list[dict]:
        return list(self.db.query(
            "SELECT call_id, seq, flow, version, node, kind, input, branch, detail, at "
            "FROM node_events WHERE call_id = ? ORDER BY seq", [call_id]))

    def call(self, call_id: str) -> dict | None:
        """The ``calls`` row as stored (``confirmed`` is 0 or 1)."""
        return self._one("SELECT * FROM calls WHERE call_id = ?", [call_id])

    def open_calls(self, older_than: str) -> list[str]:
        """Calls not ended whose state was last saved before ``older_than``
        (ISO 8601; compared in UTC when it has an offset), oldest first."""
        cutoff = _utc_iso(older_than) or older_than
        return [row["call_id"] for row in self.db.query(
            "SELECT s.call_id FROM calls c INDEXED BY idx_calls_open "
            "JOIN call_state s ON s.call_id = c.call_id "
            "WHERE c.ended_at IS NULL AND s.updated_at < ? ORDER BY s.updated_at, s.call_id",
            [cutoff])]

    # -- internals ------------------------------------------------------------------
    def _keep(self, call_id: str, kept: "_Kept") -> None:
        self._live[call_id] = kept
        self._live.move_to_end(call_id)
        if len(self._live) > LIVE_CALLS_KEPT:
            self._live.popitem(last=False)

    def _kept_as_stored(self, call_id: str, state_json: bytes | str) -> "_Kept | None":
        """What this store saved last for ``call_id``, if the database still
        holds it: each save seals the state afresh (a new random IV), so an
        identical sealed state means nobody saved the call since."""
        kept = self._live.get(call_id)
        if kept is not None and kept.state_json == state_json:
            return kept
        return None

    def _one(self, sql: str, params: list) -> dict | None:
        return next(iter(self.db.query(sql, params)), None)

    def transaction(self) -> AbstractContextManager[None]:
        """One write transaction, committed on exit.  BEGIN IMMEDIATE takes
        the write lock up front, so a concurrent writer waits (busy_timeout)
        instead of failing half-way; the writer lock beside the file
        (:attr:`writer_lock`) has the writers of other processes wait for
        it in the kernel rather than in SQLite's busy handler.  Nested in a
        caller's transaction, a savepoint: it rolls back alone, and the
        caller commits (but see :meth:`group_transaction`)."""
        return Transaction(self)

    def group_transaction(self) -> AbstractContextManager[None]:
        """A transaction that is kept or dropped whole: the writes nested in
        it take no savepoint, so one that fails leaves its statements done
        so far in it, and the caller must roll the whole transaction back
        (as :class:`ivr.store.sqlite.group_commit.GroupCommit` does)."""
        return Transaction(self, whole=True)

    def _stored_key(self) -> bytes:
        key = stored_caller_key(self.db)
        if key is None:
            with self.transaction():  # two processes racing: the first insert wins
                self.db.execute("INSERT INTO meta (key, value) VALUES (?, ?) "
                                "ON CONFLICT (key) DO NOTHING", [_KEY_NAME, secrets.token_hex(32)])
            key = stored_caller_key(self.db)
        return key

    def _seal(self, text: str) -> str:
        return _SEAL_PREFIX + self._fernet.encrypt(text.encode("utf-8")).decode("ascii")

    def _open_sealed(self, value: str) -> str:
        if not value.startswith(_SEAL_PREFIX):
            raise ValueError("call state is not sealed")
        try:
            return self._fernet.decrypt(value[len(_SEAL_PREFIX):].encode("ascii")).decode("utf-8")
        except InvalidToken:
            raise ValueError("call state sealed with another caller key") from None


def _raise(error: Exception) -> None:
    raise error


def keyed_hash(key: bytes, number: str | None) -> str:
    """The HMAC-SHA256 (hex) of ``number`` once normalised, with ``key``;
    '' for a number that is missing or withheld.  What ``calls.caller_hash``
    holds: a report finds a caller's calls by it, without the number."""
    if is_withheld(number):
        return ""
    normal = normalise_number(number)
    return hmac.new(key, normal.encode("utf-8"), hashlib.sha256).hexdigest() if normal else ""


def normalise_number(number: str | None) -> str:
    """The form a number is hashed in: E.164 when it has a country code
    ("+33 6 12-34-56-78" → "+33612345678"), else its digits; other
    identifiers (SIP addresses) lower-cased."""
    text = (number or "").strip()
    if text.lower().startswith("tel:"):
        text = text[4:]
    compact = re.sub(r"[\s().\-/]", "", text)
    if re.fullmatch(r"\+\d+", compact):
        try:
            parsed = phonenumbers.parse(compact, None)
            return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
        except phonenumbers.NumberParseException:
            return compact
    if re.fullmatch(r"\d+", compact):
        return compact
    return text.lower()



