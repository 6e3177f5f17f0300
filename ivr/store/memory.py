"""An in-memory call store, for tests: the behaviours of
:class:`ivr.store.protocol.CallStore` over plain dicts.

Nothing is written anywhere, so states are kept as given (copied, never
sealed); numbers are still hashed with a key of the store's own, so
``calls`` rows look as the SQLite backend's do.  One thread only.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import secrets
from contextlib import contextmanager
from datetime import datetime, timedelta
from functools import partial
from typing import Callable, Iterator

import orjson

from ivr.phone import is_withheld
from ivr.store.protocol import CallRecord, attempt_time, checked_turn, lease_window, orphaned
from ivr.store.sqlite.migrations import CALLBACK_STATUSES
from ivr.store.sqlite.sql import _text, _utc_iso, _utc_now
from ivr.store.sqlite.store import NO_SEQUENCE, normalise_number

__all__ = ["MemoryCallStore"]

#: The kinds of records kept per call, named as the SQLite backend's tables
#: (what the erasing methods count).
_CALL_TABLES = ("node_events", "status_events", "callback_requests", "call_state", "calls")


class MemoryCallStore:
    """Calls, their per-turn state, node events, status callbacks, callback
    requests and flow versions, in memory."""

    def __init__(self, caller_key: bytes | None = None):
        self._key = caller_key or secrets.token_bytes(32)
        self._data: dict[str, dict] = {table: {} for table in _CALL_TABLES}
        self._flows: dict[tuple[str, str], dict] = {}
        #: lease name -> (holder, until)
        self._leases: dict[str, tuple[str, datetime]] = {}

    def close(self) -> None:
        """Nothing to release."""

    def __repr__(self) -> str:  # never show the key
        return f"<MemoryCallStore {len(self._data['calls'])} calls>"

    # -- callers --------------------------------------------------------------------
    def hash_caller(self, number: str | None) -> str:
        """The keyed hash of ``number`` once normalised; '' when withheld."""
        if is_withheld(number):
            return ""
        normal = normalise_number(number)
        return hmac.new(self._key, normal.encode("utf-8"), hashlib.sha256).hexdigest() if normal else ""

    # -- flow versions --------------------------------------------------------------
    def save_flow_version(self, flow, first_seen: str | None = None) -> bool:
        """Keep ``flow``'s YAML and prompt texts; True when the version is new."""
        key = (flow.name, flow.version)
        if key in self._flows:
            return False
        sources = getattr(getattr(flow, "prompts", None), "sources", None) or {}
        self._flows[key] = {
            "flow": flow.name, "version": flow.version, "source": flow.source or "",
            "prompts": {f"{lang}/{name}": text for (lang, name), text in sorted(sources.items())},
            "first_seen": first_seen or _utc_now()}
        return True

    def flow_version(self, flow_name: str, version: str) -> dict | None:
        """A kept version: flow, version, source, prompts, first_seen."""
        found = self._flows.get((flow_name, version))
        return copy.deepcopy(found) if found else None

    # -- turns ----------------------------------------------------------------------
    def load_call(self, call_id: str) -> CallRecord | None:
        """The state, last turn and last answer of ``call_id``; None if unknown."""
        kept = self._data["call_state"].get(call_id)
        if kept is None:
            return None
        state = orjson.loads(kept["state"])
        return CallRecord(state=state, turn=kept["turn"], response=kept["response"],
                          ended=bool(state.get("ended")))

    def turn_writer(self, call_id: str, turn: int, state: dict, response: bytes,
                    node_events: list[dict], summary: dict, caller: str,
                    callback_status: str = "not_configured") -> Callable[[], None]:
        """:meth:`save_turn`, to call later (see
        :meth:`ivr.store.protocol.CallStore.turn_writer`); it needs no
        preparing."""
        return partial(self.save_turn, call_id, turn, state, response, node_events, summary,
                       caller, callback_status)

    def save_turn(self, call_id: str, turn: int, state: dict, response: bytes,
                  node_events: list[dict], summary: dict, caller: str,
                  callback_status: str = "not_configured") -> None:
        """Record a turn answered (see :meth:`ivr.store.protocol.CallStore.save_turn`)."""
        response = checked_turn(call_id, node_events, summary, response)
        with self.transaction():
            events = self._data["node_events"].setdefault(call_id, {})
            for event in node_events:
                events.setdefault(int(event["seq"]), _event_row(call_id, event))
            kept = self._data["call_state"].get(call_id)
            if kept is None or int(turn) >= kept["turn"]:
                # Serialised, as a backend that writes it would: later
                # changes to ``state`` by the caller do not reach the store.
                self._data["call_state"][call_id] = {
                    "turn": int(turn), "state": orjson.dumps(state), "response": bytes(response),
                    "updated_at": _utc_iso(state.get("now")) or _utc_now()}
                self._write_call_row(call_id, summary, caller)
            if state.get("callback") and call_id not in self._data["callback_requests"]:
                self._insert_callback(call_id, state, callback_status)

    def _write_call_row(self, call_id: str, summary: dict, caller: str) -> None:
        handoff = summary.get("handoff") or {}
        kind, target = handoff.get("kind"), handoff.get("target")
        if kind == "callback" and target:
            target = self.hash_caller(target)
        before = self._data["calls"].get(call_id, {})
        self._data["calls"][call_id] = {
            "call_id": call_id, "flow": summary["flow"], "version": summary["version"],
            "started_at": summary["started_at"], "ended_at": summary.get("ended_at"),
            "caller_hash": self.hash_caller(caller), "country": summary.get("country"),
            "lang": summary.get("lang"), "reason": summary.get("reason"),
            "outcome": summary.get("outcome"), "cause": summary.get("cause"),
            "confirmed": 1 if summary.get("confirmed") else 0,
            "handoff_kind": kind, "handoff_target": _text(target),
            "steps": int(summary.get("steps") or 0),
            "provider_status": before.get("provider_status"),
            "duration_s": before.get("duration_s"),
            "exit_node": summary.get("exit_node"), "ivr_seconds": summary.get("ivr_seconds"),
            "sms_sent": int(summary.get("sms_sent") or 0),
            "transfer_result": summary.get("transfer_result"),
            "queue_seconds": summary.get("queue_seconds"),
            "provider": summary.get("provider"),
        }
        self._refresh_provider_status(call_id)

    # -- provider status callbacks ------------------------------------------------------
    def record_status(self, call_id: str, sequence: int | None, status: str, at: str,
                      duration: int | None) -> bool:
        """Keep a status callback; False when this (call, sequence) was already seen."""
        status = (status or "").strip().lower()
        if not status:
            raise ValueError("empty call status")
        sequence = NO_SEQUENCE if sequence is None else int(sequence)
        events = self._data["status_events"].setdefault(call_id, {})
        if sequence in events:
            return False
        events[sequence] = {"call_id": call_id, "sequence": sequence, "status": status,
                            "at": at, "duration_s": None if duration is None else int(duration)}
        self._refresh_provider_status(call_id)
        return True

    def _refresh_provider_status(self, call_id: str) -> None:
        row, events = self._data["calls"].get(call_id), self._data["status_events"].get(call_id)
        if row is not None and events:
            last = events[max(events)]
            row["provider_status"], row["duration_s"] = last["status"], last["duration_s"]

    def probe_write(self) -> None:
        """Memory does not fill up: nothing to raise."""

    # -- reading --------------------------------------------------------------------
    def node_events(self, call_id: str) -> list[dict]:
        """The call's node events, by ``seq``."""
        events = self._data["node_events"].get(call_id, {})
        return [dict(events[seq]) for seq in sorted(events)]

    def call(self, call_id: str) -> dict | None:
        """The call's summary row; None when unknown."""
        row = self._data["calls"].get(call_id)
        return dict(row) if row is not None else None

    def open_calls(self, older_than: str) -> list[str]:
        """Calls not ended whose state was last saved before ``older_than``, oldest first."""
        cutoff = _utc_iso(older_than) or older_than
        found = [(state["updated_at"], call_id) for call_id, state in self._data["call_state"].items()
                 if call_id in self._data["calls"] and self._data["calls"][call_id]["ended_at"] is None
                 and state["updated_at"] < cutoff]
        return [call_id for _, call_id in sorted(found)]

    # -- callback requests ----------------------------------------------------------
    def _insert_callback(self, call_id: str, state: dict, status: str) -> None:
        _check_callback_status(status)
        request = state["callback"]
        self._data["callback_requests"][call_id] = {
            "call_id": call_id, "flow": state["flow"], "version": state["version"],
            "requested_at": request["requested_at"], "number": request["number"],
            "number_hash": self.hash_caller(request["number"]), "lang": request.get("lang"),
            "reason": request.get("reason") or "not_stated",
            "order_number": _text(request.get("order_number")), "slot": _text(request.get("slot")),
            "status": status, "attempts": 0, "last_error": None, "delivered_at": None,
            "last_attempt_at": None}

    def callback_request(self, call_id: str) -> dict | None:
        """The call's callback request with its number; None when none."""
        row = self._data["callback_requests"].get(call_id)
        return dict(row) if row is not None else None

    def pending_callbacks(self) -> list[str]:
        """Calls whose callback request the helpdesk has not had yet, oldest first."""
        return [row["call_id"] for row in sorted(
            self._data["callback_requests"].values(), key=lambda r: (r["requested_at"], r["call_id"]))
            if row["status"] == "pending"]

    def update_callback(self, call_id: str, status: str, attempts: int,
                        last_error: str | None = None, delivered_at: str | None = None) -> None:
        """Record where the delivery of ``call_id``'s request stands."""
        _check_callback_status(status)
        row = self._data["callback_requests"].get(call_id)
        if row is not None:
            row.update(status=status, attempts=int(attempts), last_error=last_error,
                       delivered_at=delivered_at)

    def orphaned_callbacks(self, attempted_before: datetime) -> list[tuple[str, str | None]]:
        """Pending requests last attempted (or requested) before
        ``attempted_before``, oldest first, with their ``last_attempt_at``."""
        cutoff = attempt_time(attempted_before)
        return [(row["call_id"], row["last_attempt_at"]) for row in sorted(
            self._data["callback_requests"].values(), key=lambda r: (r["requested_at"], r["call_id"]))
            if row["status"] == "pending"
            and orphaned(row["last_attempt_at"], row["requested_at"], cutoff)]

    def claim_callback(self, call_id: str, seen: str | None, at: datetime) -> bool:
        """Mark an attempt as started ``at`` if the last one is still ``seen``."""
        row = self._data["callback_requests"].get(call_id)
        if row is None or row["status"] != "pending" or row["last_attempt_at"] != seen:
            return False
        row["last_attempt_at"] = attempt_time(at)
        return True

    # -- forgetting -----------------------------------------------------------------
    def drop_ended_states(self, ended_before: str) -> int:
        """Forget the states of calls ended before ``ended_before``; how many."""
        cutoff = _utc_iso(ended_before) or ended_before
        states, calls = self._data["call_state"], self._data["calls"]
        dropped = [call_id for call_id, state in states.items() if state["updated_at"] < cutoff
                   and calls.get(call_id, {}).get("ended_at") is not None]
        for call_id in dropped:
            del states[call_id]
        return len(dropped)

    def erase_calls(self, call_ids: list[str]) -> dict[str, int]:
        """Erase everything kept of ``call_ids``; records erased per table."""
        counts = dict.fromkeys(_CALL_TABLES, 0)
        for table in _CALL_TABLES:
            for call_id in call_ids:
                found = self._data[table].pop(call_id, None)
                if found is not None:
                    counts[table] += len(found) if table in ("node_events", "status_events") else 1
        return counts

    def forget_caller(self, number: str) -> dict[str, int]:
        """Erase every call of the caller ``number``."""
        digest = self.hash_caller(number)
        if not digest:
            raise ValueError(f"{number!r} is not a caller's number")
        ids = {call_id for call_id, row in self._data["calls"].items()
               if row["caller_hash"] == digest
               or (row["handoff_kind"] == "callback" and row["handoff_target"] == digest)}
        ids |= {call_id for call_id, row in self._data["callback_requests"].items()
                if row["number_hash"] == digest}
        return self.erase_calls(sorted(ids))

    def purge_before(self, started_before: str, batch: int = 1000) -> dict[str, int]:
        """Erase the calls started before ``started_before`` (``batch`` is
        the SQLite backend's; memory erases them at once)."""
        limit = datetime.fromisoformat(started_before)
        ids = [call_id for call_id, row in self._data["calls"].items()
               if datetime.fromisoformat(row["started_at"]) < limit]
        return self.erase_calls(ids)

    # -- transactions ---------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Writes kept together: an exception restores what was kept before."""
        before = copy.deepcopy((self._data, self._flows, self._leases))
        try:
            yield
        except BaseException:
            self._data, self._flows, self._leases = before
            raise

    #: A group commit's transaction: a transaction.
    group_transaction = transaction

    # -- leases ---------------------------------------------------------------------
    def take_lease(self, name: str, holder: str, now: datetime, ttl: timedelta) -> bool:
        """Take or renew the lease ``name`` for ``holder`` until ``now + ttl``
        (see :meth:`ivr.store.protocol.CallStore.take_lease`)."""
        moment, until = lease_window(name, holder, now, ttl)
        kept = self._leases.get(name)
        if kept is not None and kept[0] != holder and kept[1] > moment:
            return False
        self._leases[name] = (holder, until)
        return True


def _event_row(call_id: str, event: dict) -> dict:
    return {"call_id": call_id, "seq": int(event["seq"]), "flow": event["flow"],
            "version": event["version"], "node": event["node"], "kind": event["kind"],
            "input": _text(event.get("input")), "branch": _text(event.get("branch")),
            "detail": _text(event.get("detail")), "at": event["at"]}


def _check_callback_status(status: str) -> None:
    if status not in CALLBACK_STATUSES:
        raise ValueError(f"unknown callback status {status!r}; expected one of "
                         f"{', '.join(CALLBACK_STATUSES)}")

