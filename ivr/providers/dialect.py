"""What the server needs of a voice provider, whichever it is: the
:class:`Dialect` protocol, and the provider-neutral facts it hands over.

A dialect has four parts: **verify** (the signature of a raw request),
**event_from** (a provider request as an engine event), **render** (the
engine's actions as the provider's document) and **status_from** (the
provider's end-of-call notice).  The call handler and the web resources
speak only through it; the engine and the flow never change per provider.
Implementations: :class:`ivr.providers.twilio.dialect.TwilioDialect` and,
for tests, :class:`ivr.providers.memory.RecordingDialect`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable
from zoneinfo import ZoneInfo

from ivr.engine.actions import Action

#: How far a provider's end-of-call time may be ahead of our clock (clock
#: skew) before it is taken for garbage.
END_SKEW = timedelta(minutes=5)


class Refusal(ValueError):
    """A provider request refused before anything reads it: the HTTP
    ``code`` (4xx) and a one-line ``reason`` that never echoes a value."""

    def __init__(self, code: int, reason: str):
        super().__init__(reason)
        self.code, self.reason = code, reason


@dataclass(frozen=True)
class CallFacts:
    """Who a request is about: the provider's call id, the caller's and
    the called number (empty when the provider did not send them)."""

    call_id: str
    caller: str = ""
    called: str = ""


@dataclass(frozen=True)
class StatusNotice:
    """A provider's call-status notice.  ``status`` is the provider's own
    word for it (kept as sent); ``final`` says the provider will not call
    again; ``sequence`` orders notices of one call; ``duration`` (seconds
    since the call started) and ``timestamp`` date the call's end."""

    call_id: str
    status: str
    final: bool
    sequence: int | None = None
    duration: int | None = None
    timestamp: datetime | None = None

    def ended_at(self, state: dict, received: datetime) -> datetime | None:
        """When the call ended: its start plus ``duration``, else
        ``timestamp``.  A value before the call's last turn or after the
        notice arrived (beyond :data:`END_SKEW`) is passed over; None when
        neither is usable."""
        last = datetime.fromisoformat(state["now"])
        # Added in UTC: "+" on a local time misses a change of clocks.
        latest = received.astimezone(ZoneInfo("UTC")) + END_SKEW
        candidates = [self.timestamp]
        if self.duration is not None:
            candidates.insert(0, datetime.fromisoformat(state["started_at"])
                              + timedelta(seconds=self.duration))
        for moment in candidates:
            if moment is not None and last <= moment <= latest:
                return moment
        return None


#: Reads one request header by its lower-case name (None when absent).
HeaderFn = Callable[[bytes], "bytes | None"]


@runtime_checkable
class Dialect(Protocol):
    """One voice provider's requests, signatures and markup."""

    #: Short name of the provider ("twilio").
    name: str
    #: The HTTP content type of what :meth:`render` returns.
    content_type: bytes
    #: Fields a voice request and a status notice must carry.
    voice_fields: tuple[str, ...]
    status_fields: tuple[str, ...]

    def verify(self, secret: str, url: str, form: dict[str, list[str]], raw: bytes,
               header: HeaderFn) -> None:
        """Raise :class:`Refusal` (403) unless the request to ``url`` is
        signed with ``secret``; ``form`` is its parsed body, ``raw`` its bytes."""

    def is_signed(self, header: HeaderFn) -> bool:
        """Whether the request carries this provider's signature at all."""

    def check(self, form: dict[str, list[str]], required: tuple[str, ...] = ()) -> dict[str, str]:
        """The request's parameters (one value each), checked against the
        provider's field rules; raises :class:`Refusal` (400)."""

    def is_call_id(self, value: str) -> bool:
        """Whether ``value`` has the shape of the provider's call ids."""

    def call_facts(self, params: dict) -> CallFacts:
        """The call a request is about, and its caller and called numbers."""

    def event_from(self, params: dict, state: dict) -> dict:
        """The engine event a turn's request carries, given the call's state
        (what it waits for)."""

    def status_from(self, params: dict) -> StatusNotice:
        """The end-of-call notice a status request carries."""

    def render(self, actions: Iterable[Action], next_url: str) -> bytes:
        """The provider's document for ``actions``; the caller's answer (and
        a silent caller) comes back to ``next_url``."""
