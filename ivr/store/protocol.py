"""What the server, the helpdesk sender, the reports and the dashboard
need from a call store, as a :class:`typing.Protocol`.

Three backends implement it: :class:`ivr.store.sqlite.store.CallStore`
(SQLite: migrations, sealed state, group commit and checkpoints stay with
it), :class:`ivr.store.postgres.store.PostgresCallStore` (PostgreSQL, for
several servers on one database) and :class:`ivr.store.memory.MemoryCallStore`
(dicts, for tests).  Code that only keeps and reads calls types its store as
:class:`CallStore`; the report queries over a whole log (``ivr.reports``)
read either database through the read helpers the store provides
(``ivr.store.sqlite.reads``, ``ivr.store.postgres.reads``).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Callable, Protocol, runtime_checkable

__all__ = ["CallRecord", "CallStore"]


@dataclass(frozen=True)
class CallRecord:
    """A call's saved state: ``turn`` is the last turn answered and
    ``response`` the TwiML answered for it (what a retry of it gets again)."""

    state: dict
    turn: int
    response: bytes
    ended: bool



def checked_turn(call_id: str, node_events: list[dict], summary: dict,
                 response: bytes | str) -> bytes:
    """What every backend checks before it saves a turn: the node events
    and the summary are the call's own; the answer as bytes."""
    for event in node_events:
        if event["call_id"] != call_id:
            raise ValueError(f"node event of call {event['call_id']!r} saved with {call_id!r}")
    if summary.get("call_id", call_id) != call_id:
        raise ValueError(f"summary of call {summary['call_id']!r} saved with {call_id!r}")
    return response.encode("utf-8") if isinstance(response, str) else response


def lease_window(name: str, holder: str, now: datetime,
                 ttl: timedelta) -> tuple[datetime, datetime]:
    """What every backend checks before it takes a lease: the moment and
    the end of the lease asked for, both in UTC (a naive ``now`` is UTC)."""
    if not name or not holder:
        raise ValueError("a lease needs a name and a holder")
    if ttl <= timedelta(0):
        raise ValueError(f"a lease lasts a positive time, not {ttl}")
    moment = now.replace(tzinfo=timezone.utc) if now.tzinfo is None else now.astimezone(timezone.utc)
    return moment, moment + ttl


def attempt_time(moment: datetime) -> str:
    """``moment`` as the stores keep a callback request's last attempt
    (``last_attempt_at``): UTC, fixed width, so moments compare as text
    (a naive ``moment`` is UTC)."""
    utc = moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)
    return utc.isoformat(timespec="microseconds")


def orphaned(last_attempt_at: str | None, requested_at: str, cutoff: str) -> bool:
    """Whether a pending callback request was last attempted before
    ``cutoff`` (:func:`attempt_time`), or, never attempted, requested
    before it (``requested_at`` is the flow's local time with its offset;
    one that cannot be read counts as old: better sent than never)."""
    if last_attempt_at is not None:
        return last_attempt_at < cutoff
    try:
        return attempt_time(datetime.fromisoformat(requested_at)) < cutoff
    except (TypeError, ValueError):
        return True


@runtime_checkable
class CallStore(Protocol):
    """Calls, their per-turn state, node events, status callbacks, callback
    requests and flow versions.

    Every write is atomic: it is kept whole or not at all, and when called
    inside :meth:`transaction` it is kept or dropped with the rest of it.
    Callers' numbers are never returned in clear except where a method says
    so (the state of :meth:`load_call`, :meth:`callback_request`).
    """

    def hash_caller(self, number: str | None) -> str:
        """The keyed hash of ``number`` once normalised; '' when the number
        is missing or withheld."""

    def save_flow_version(self, flow, first_seen: str | None = None) -> bool:
        """Keep ``flow``'s YAML and prompt texts; True when the version is new
        (a version already kept keeps its first ``first_seen``)."""

    def flow_version(self, flow_name: str, version: str) -> dict | None:
        """A kept version: flow, version, source, prompts ({"lang/name":
        text}), first_seen; None when unknown."""

    def load_call(self, call_id: str) -> CallRecord | None:
        """The state, last turn and last answer of ``call_id``; None if unknown."""

    def save_turn(self, call_id: str, turn: int, state: dict, response: bytes,
                  node_events: list[dict], summary: dict, caller: str,
                  callback_status: str = "not_configured") -> None:
        """Record a turn answered.  Node events already kept (same call and
        ``seq``) count once; a turn older than the one kept adds its missing
        events only; a state holding ``callback`` keeps its request once,
        with ``callback_status``.  Raises ``ValueError`` for events or a
        summary of another call."""

    def turn_writer(self, call_id: str, turn: int, state: dict, response: bytes,
                    node_events: list[dict], summary: dict, caller: str,
                    callback_status: str = "not_configured") -> Callable[[], None]:
        """:meth:`save_turn` as a function to call later (in a group
        commit's transaction), having done now what needs no database; what
        :meth:`save_turn` would raise, it raises when called."""

    def record_status(self, call_id: str, sequence: int | None, status: str, at: str,
                      duration: int | None) -> bool:
        """Keep a provider status callback; False when this (call, sequence)
        was already seen.  The call's ``provider_status`` and ``duration_s``
        follow the highest sequence.  Raises ``ValueError`` for an empty status."""

    def transaction(self) -> AbstractContextManager[None]:
        """A context in which every write is kept together on success and
        dropped together on an exception; nests."""

    def probe_write(self) -> None:
        """A small write: raises what a turn's write would raise now."""

    def node_events(self, call_id: str) -> list[dict]:
        """The call's node events, by ``seq``: call_id, seq, flow, version,
        node, kind, input, branch, detail, at."""

    def call(self, call_id: str) -> dict | None:
        """The call's summary row (``confirmed`` is 0 or 1, the caller only
        as ``caller_hash``); None when unknown."""

    def open_calls(self, older_than: str) -> list[str]:
        """Calls not ended whose state was last saved before ``older_than``
        (ISO 8601), oldest first."""

    def callback_request(self, call_id: str) -> dict | None:
        """The call's callback request with its ``number`` opened; None when
        the call asked for none."""

    def pending_callbacks(self) -> list[str]:
        """Calls whose callback request the helpdesk has not had yet, oldest first."""

    def update_callback(self, call_id: str, status: str, attempts: int,
                        last_error: str | None = None, delivered_at: str | None = None) -> None:
        """Record where the delivery of ``call_id``'s request stands; raises
        ``ValueError`` for an unknown status."""

    def orphaned_callbacks(self, attempted_before: datetime) -> list[tuple[str, str | None]]:
        """The pending requests last attempted before ``attempted_before``
        (or, never attempted, requested before it), oldest first: each
        call id with its ``last_attempt_at`` (None when never attempted),
        what :meth:`claim_callback` is then given as ``seen``."""

    def claim_callback(self, call_id: str, seen: str | None, at: datetime) -> bool:
        """Record that an attempt to send ``call_id``'s pending request
        starts ``at``, if its ``last_attempt_at`` is still ``seen`` (None:
        never attempted): whether it was, so that of several processes
        claiming the same attempt one only sends it.  False when the
        request is not pending (or not there)."""

    def drop_ended_states(self, ended_before: str) -> int:
        """Forget the state of calls ended (state last saved) before
        ``ended_before``; their events and summary stay.  How many."""

    def erase_calls(self, call_ids: list[str]) -> dict[str, int]:
        """Erase everything kept of ``call_ids``; records erased per table."""

    def forget_caller(self, number: str) -> dict[str, int]:
        """Erase every call of the caller ``number`` (or asking a callback to
        it); raises ``ValueError`` for a withheld or empty number."""

    def purge_before(self, started_before: str, batch: int = 1000) -> dict[str, int]:
        """Erase the calls started before ``started_before``; records erased per table."""

    def take_lease(self, name: str, holder: str, now: datetime, ttl: timedelta) -> bool:
        """Take or renew the lease ``name`` for ``holder`` until ``now + ttl``:
        True when it is free, expired at ``now`` or already ``holder``'s;
        False (and nothing changes) while another holder's lease is valid.
        A naive ``now`` is taken as UTC.  Raises ``ValueError`` for a
        ``ttl`` that is not positive or an empty name or holder."""

    def close(self) -> None:
        """Release what the store holds open."""
