"""One inbound call as a TwiML-compatible provider plays it: the common
part of the fakes of SignalWire (cXML) and Telnyx (TeXML), which both
post Twilio's form fields to the URLs a document names and execute the
verbs as TwiML does.

:class:`CompatFakeCall` implements :class:`ivr.providers.fake_call.FakeCall`:
it posts ``application/x-www-form-urlencoded`` requests through a
:data:`ivr.providers.fake_call.SendFn`, refuses a document the provider
could not play (:meth:`CompatFakeCall.problems`, :class:`MarkupError`),
executes it (Twilio's fake's reading of the verbs, reused:
:func:`ivr.providers.twilio.fake.parse_twiml`), follows a document that
only redirects, and remembers where the caller's next input goes.  Each
provider's fake says what differs: its call ids, the fields every request
carries, the answer of each input, its signature and its verbs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import datetime
from urllib.parse import urlencode

from ivr.providers.bodies import FORM
from ivr.providers.fake_call import HttpRequest, MarkupError, Next, Played, SendFn
from ivr.providers.twilio.fake import FakeTwilioCall, TwimlError, parse_twiml

#: Redirects followed in a row before the call is given up.
MAX_REDIRECTS = 10


class CompatFakeCall(ABC):
    """One call as a TwiML-compatible provider plays it to ``send``."""

    provider = ""
    #: Where the end-of-call notice goes, under ``base_url``.
    status_path = "status"

    def __init__(self, send: SendFn, caller: str, called: str, base_url: str,
                 secret: str | None = None, call_id: str | None = None):
        self.send, self.caller, self.called = send, caller, called
        self.base_url = base_url.rstrip("/")
        self.secret = secret
        self.call_id = call_id or self.new_call_id()
        self.next: Next | None = None
        #: Status notices sent so far.
        self.sequence = 0
        #: Every request sent, in order (for tests).
        self.sent: list[HttpRequest] = []

    # -- what each provider says -----------------------------------------------------
    @abstractmethod
    def new_call_id(self) -> str:
        ...

    @abstractmethod
    def fields(self, status: str) -> dict[str, str]:
        """The fields every request of the call carries."""
        ...

    @abstractmethod
    def headers(self, url: str, body: bytes, params: dict[str, str]) -> dict[str, str]:
        """The signature headers of a request (none without a secret)."""
        ...

    @abstractmethod
    def problems(self, document: bytes) -> list[str]:
        """Why the provider could not play ``document`` (empty: it can)."""
        ...

    def keys(self, digits: str) -> dict[str, str]:
        """A Gather's answer to keys pressed: the provider stops at the
        finish key (not sent) or after the number of digits asked, as
        Twilio does (its fake's reading, reused: it only reads ``next``)."""
        return FakeTwilioCall.keys(self, digits)  # type: ignore[arg-type]

    def speech(self, words: str, confidence: float) -> dict[str, str]:
        return {"SpeechResult": words, "Confidence": f"{confidence:.2f}"}

    @abstractmethod
    def transfer_result(self, status: str, queue_seconds: int) -> dict[str, str]:
        ...

    @abstractmethod
    def recording(self, seconds: int) -> dict[str, str]:
        ...

    @abstractmethod
    def status_fields(self, duration: int, at: datetime) -> dict[str, str]:
        ...

    # -- FakeCall ---------------------------------------------------------------------
    def answer(self, voice_url: str) -> Played:
        return self._play(voice_url, {}, "ringing")

    def press(self, digits: str) -> Played:
        return self._play(self._at("gather").action, self.keys(digits))

    def say(self, words: str, confidence: float = 0.9) -> Played:
        return self._play(self._at("gather").action, self.speech(words, confidence))

    def silence(self) -> Played:
        gather = self._at("gather")
        if gather.after is None:  # nothing after the Gather: the call ends
            self.next = Next("over")
            return Played([], [])
        return self._play(gather.after, {})

    def transfer_ends(self, status: str, queue_seconds: int = 0) -> Played:
        transfer = self._at("dial")
        if transfer.action is None:  # no action: the call ends with the transfer
            self.next = Next("over")
            return Played([], [])
        return self._play(transfer.action, self.transfer_result(status, queue_seconds))

    def record(self, seconds: int) -> Played:
        return self._play(self._at("record").action, self.recording(seconds))

    def hang_up(self, duration: int, at: datetime) -> None:
        self.next = Next("over")
        params = {**self.fields("completed"), **self.status_fields(max(0, duration), at)}
        self.sequence += 1
        self.post(f"{self.base_url}/{self.status_path}", params)

    # -- requests and documents -------------------------------------------------------
    def post(self, url: str, params: dict[str, str]) -> bytes:
        """Post ``params`` as a form to ``url``, signed; the answer's body."""
        body = urlencode(params).encode("utf-8")
        request = HttpRequest("POST", url, {"Content-Type": FORM, **self.headers(url, body, params)}, body)
        self.sent.append(request)
        return self.send(request)

    def _at(self, wait: str) -> Next:
        if self.next is None or self.next.wait != wait:
            waits = self.next.wait if self.next else "nothing: the call has not started"
            raise MarkupError(f"{self.provider}: the call waits for {waits}, not {wait}")
        return self.next

    def _play(self, url: str | None, extra: dict[str, str], status: str = "in-progress") -> Played:
        if not url:
            raise MarkupError(f"{self.provider}: no URL to send the input to")
        documents: list[bytes] = []
        actions: list = []
        for _ in range(MAX_REDIRECTS + 1):
            body = self.post(url, {**self.fields(status), **extra})
            documents.append(body)
            problems = self.problems(body)
            if problems:
                raise MarkupError(f"{self.provider} could not play the answer of {url}: {'; '.join(problems)}")
            try:
                parsed, after = parse_twiml(body, url)
            except TwimlError as error:
                raise MarkupError(str(error)) from None
            actions.extend(parsed)
            self.next = Next(after.wait, after.action, after.after, after.queue,
                             after.finish_on_key, after.num_digits)
            if after.wait != "redirect":
                return Played(documents, actions)
            url, extra, status = after.action or url, {}, "in-progress"
        raise MarkupError(f"{self.provider}: more than {MAX_REDIRECTS} redirects in a row from {url}")
