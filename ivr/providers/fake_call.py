"""What a fake provider is: one inbound call as that provider plays it,
written from the provider's public documentation (never from our own
renderer), for ``ivr-sim test --url … --provider NAME``, the traffic
generator and the tests.

Each provider package has one fake (``ivr/providers/<name>/fake.py``)
that implements :class:`FakeCall`: it shapes each request the provider
sends (method, URL, headers with the provider's signature, body), hands
it to a transport (:data:`SendFn`: an HTTP request for ``ivr-sim --url``,
a direct call of the web resource in tests), then executes the answer the
way the provider would: it parses the document back into
:mod:`ivr.engine.actions`, follows what only redirects, and remembers
where the caller's next input goes (:class:`Next`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, runtime_checkable


class MarkupError(ValueError):
    """The server's answer is not a document the provider could play."""


@dataclass(frozen=True)
class HttpRequest:
    """One request a provider sends: ``headers`` include the content type
    and the signature; ``body`` is empty for a GET (its fields are in the
    URL's query string)."""

    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


#: Sends a request and returns the answer's body (raises on a non-2xx).
SendFn = Callable[[HttpRequest], bytes]


@dataclass
class Next:
    """What the provider does next, from the last document it played."""

    wait: str                       # "gather", "dial", "record", "redirect" or "over"
    action: str | None = None       # where the answer goes
    after: str | None = None        # where a silent caller goes, when not ``action``
    queue: bool = False             # the transfer waits in a queue, not a plain dial
    finish_on_key: str | None = "#"
    num_digits: int | None = None


@dataclass
class Played:
    """What one input made the provider fetch and play: the documents it
    received (raw bytes, in order) and the engine actions they hold."""

    documents: list[bytes]
    actions: list


@runtime_checkable
class FakeCall(Protocol):
    """One inbound call as a provider plays it to the server its ``send``
    reaches.  Every method sends the request(s) the provider would send and
    plays the answer; :attr:`next` then says what the call waits for."""

    #: The provider's short name, as in :attr:`ivr.providers.dialect.Dialect.name`.
    provider: str
    #: The provider's id for this call (fresh per call, in the provider's format).
    call_id: str
    next: Next | None

    def answer(self, voice_url: str) -> Played:
        """The call is answered: the provider's first request to the flow's
        voice URL (``<base>/<prefix>voice/<flow>``)."""

    def press(self, digits: str) -> Played:
        """The caller presses ``digits`` at the input the call waits at."""

    def say(self, words: str, confidence: float = 0.9) -> Played:
        """The caller says ``words``; the recogniser's ``confidence``."""

    def silence(self) -> Played:
        """The caller says and presses nothing until the input times out."""

    def transfer_ends(self, status: str, queue_seconds: int = 0) -> Played:
        """The dial or queue the call waits at ends with a Twilio-style dial
        ``status`` ("completed", "busy", "no-answer", "failed", "canceled":
        the caller hung up while waiting); ``queue_seconds`` waited."""

    def record(self, seconds: int) -> Played:
        """The caller leaves a message of ``seconds``."""

    def hang_up(self, duration: int, at: datetime) -> None:
        """The call ends ``duration`` seconds after it started: the
        provider's end-of-call notice, sent at ``at``."""
