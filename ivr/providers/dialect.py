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
from typing import NamedTuple, Protocol, runtime_checkable
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


# CallFacts, StatusNotice and WebhookRequest are made for every request:
# named tuples, as immutable as frozen dataclasses, cost a fifth as much
# to make (a frozen dataclass sets each field through object.__setattr__).


class CallFacts(NamedTuple):
    """Who a request is about: the provider's call id, the caller's and
    the called number (empty when the provider did not send them)."""

    call_id: str
    caller: str = ""
    called: str = ""


class StatusNotice(NamedTuple):
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


class WebhookRequest(NamedTuple):
    """A provider's request as received, before anything trusts it.

    ``url`` is the URL the provider requested (the public base URL, then
    the path and query string), which is what most providers sign ("" when
    the server checks no signature of the request: only ``verify`` reads it);
    ``content_type`` is the lower-case media type without parameters
    ("" when absent); ``query`` is the parsed query string; ``raw`` the body
    (already bounded in size by the web layer); ``now`` the server's time
    of receipt in seconds since the epoch (its clock, or the simulated time
    of a test call), None when the caller does not say."""

    method: str
    url: str
    content_type: str
    raw: bytes
    query: dict[str, list[str]]
    header: HeaderFn
    now: float | None = None

    def received_at(self, clock: Callable[[], float]) -> float:
        """When the request arrived, for a signature's timestamp window:
        ``now`` when given, else ``clock()``."""
        return self.now if self.now is not None else clock()


@dataclass(frozen=True)
class Gap:
    """Something a flow asks that a provider cannot do as asked: the
    flow's ``node`` (and ``field`` when one is at fault), a one-line
    ``message`` that names the nearest equivalent used at run time, and a
    ``code`` for lint (``provider-no-queue``…)."""

    node: str
    field: str | None
    message: str
    code: str


@runtime_checkable
class Dialect(Protocol):
    """One voice provider's requests, signatures and markup.

    The server reads a request in this order: :meth:`parse` (body syntax),
    :meth:`verify` (when a secret is configured for the provider), then
    :meth:`check` (the fields a route needs); a :class:`Refusal` at any
    step is the request's 4xx.  ``params`` is whatever :meth:`check`
    returns (one value per form field, or a JSON object): only the dialect
    itself reads inside it."""

    #: Short name of the provider ("twilio"); also its route prefix
    #: (``/<name>/voice/<flow>``), except Twilio's, which keeps ``/voice``.
    name: str
    #: The HTTP content type of what :meth:`render` returns.
    content_type: bytes
    #: HTTP methods the provider uses for a voice turn ("POST", or "GET").
    voice_methods: tuple[str, ...]
    #: Whether the URLs in its documents must be absolute (with no public
    #: URL configured, the server then writes the request's own scheme and
    #: host); else they are relative to the request, as TwiML allows.
    absolute_urls: bool
    #: Fields a voice request and a status notice must carry.
    voice_fields: tuple[str, ...]
    status_fields: tuple[str, ...]

    def parse(self, request: WebhookRequest) -> dict:
        """The request's fields, from its body (form or JSON, by the
        provider's content type) or its query string (GET); raises
        :class:`Refusal` (415 for a content type the provider never sends,
        400 for a malformed body)."""

    def verify(self, secret: str, request: WebhookRequest, fields: dict) -> None:
        """Raise :class:`Refusal` (403) unless ``request`` is signed with
        ``secret`` (the provider's configured signing secret or public key)
        exactly as the provider documents it; ``fields`` is :meth:`parse`'s
        result.  Never echoes a value in the reason."""

    def is_signed(self, header: HeaderFn) -> bool:
        """Whether the request carries this provider's signature at all."""

    def check(self, fields: dict, required: tuple[str, ...] = ()) -> dict:
        """The request's parameters, checked against the provider's field
        rules; raises :class:`Refusal` (400)."""

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
        a silent caller) comes back to ``next_url``.  A
        :class:`ivr.engine.actions.Redirect` (the hold-and-poll of a slow
        look-up) is rendered the provider's own way."""

    def gaps(self, flow) -> list[Gap]:
        """What ``flow`` (an :class:`ivr.flow.model.Flow`) asks that this
        provider cannot do as asked; empty when it can do everything."""
