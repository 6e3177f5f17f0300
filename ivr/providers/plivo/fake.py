"""A fake Plivo: the requests Plivo sends and how it plays Plivo XML, written
from Plivo's public documentation (not from our renderer), for
``ivr-sim --provider plivo``, the traffic generator and the tests.

:class:`FakePlivoCall` is one inbound call as Plivo plays it
(:class:`ivr.providers.fake_call.FakeCall`).  Every request is a form
POST carrying the standard parameters (``CallUUID``, ``From``, ``To``,
``CallStatus``, ``Direction``: https://www.plivo.com/docs/voice/xml/request/),
signed with ``X-Plivo-Signature-V3`` and its nonce when given the auth
token.  The answer is played as Plivo plays it (:mod:`ivr.providers.plivo.markup`):
elements in order; a ``GetInput`` sends the input to its ``action``
(``InputType``, ``Digits``, ``Speech``, ``SpeechConfidenceScore``) and,
when nobody answers, Plivo goes on with the next element; a ``Dial``
reports to its ``action`` (``DialStatus``…) after fetching its
``confirmSound`` for the agent who answers; a ``Record`` to its
``action`` (``RecordUrl``, ``RecordingDuration``…); a ``Redirect`` is
followed at once; the end of the call goes to the hangup URL
(``CallStatus=completed``, ``Duration``, ``HangupCause``…), which is
``<base>/<prefix>status`` beside the answer URL.
"""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from urllib.parse import urlencode

from ivr.providers.fake_call import HttpRequest, MarkupError, Next, Played, SendFn
from ivr.providers.plivo.markup import parse_document, step_of
from ivr.providers.plivo.signature import signed_headers

#: Redirects followed in a row before the call is given up.
MAX_REDIRECTS = 10
FORM = "application/x-www-form-urlencoded"
#: When the fake's recordings start (``RecordingStartMs``, epoch milliseconds).
RECORDING_STARTED_MS = 1_764_000_000_000
#: The engine's (Twilio's) dial statuses as Plivo's ``DialStatus``
#: (https://plivo.com/docs/voice/xml/dial, action parameters).
DIAL_STATUS = {"completed": "completed", "answered": "completed", "busy": "busy",
               "no-answer": "no-answer", "failed": "failed", "canceled": "cancel"}
_HANGUP_CAUSES = {"completed": "NORMAL_CLEARING", "busy": "USER_BUSY", "no-answer": "NO_ANSWER",
                  "failed": "CALL_REJECTED", "cancel": "ORIGINATOR_CANCEL"}


def new_call_uuid() -> str:
    """A fresh Plivo call id: a UUID."""
    return str(uuid.uuid4())


@dataclass
class FakePlivoCall:
    """One inbound call, as Plivo plays it to the server ``send`` reaches."""

    send: SendFn
    caller: str
    called: str
    base_url: str = ""
    #: The auth token: when set, every request is signed with it.
    secret: str | None = None
    provider: str = "plivo"
    call_id: str = field(default_factory=new_call_uuid)
    next: Next | None = None
    #: The hangup URL; set from the answer URL when the call is answered.
    hangup_url: str | None = None
    #: What is left of the last document when the call waits (Plivo goes
    #: on with it when a GetInput hears nothing or a Dial has no action).
    _rest: list[ET.Element] = field(default_factory=list)
    _confirm: str | None = None
    _input: str = ""

    # -- request shapes ------------------------------------------------------------------
    def params(self, status: str = "in-progress") -> dict[str, str]:
        """The standard parameters of every request of the call."""
        return {"CallUUID": self.call_id, "From": self.caller, "To": self.called,
                "CallStatus": status, "Direction": "inbound"}

    def request(self, url: str, extra: dict[str, str], status: str = "in-progress") -> bytes:
        """POST the call's parameters and ``extra`` to ``url``: the answer."""
        params = {**self.params(status), **extra}
        headers = {"Content-Type": FORM}
        if self.secret:
            headers.update(signed_headers(self.secret, "POST", url, params))
        return self.send(HttpRequest("POST", url, headers, urlencode(params).encode()))

    # -- the FakeCall protocol -----------------------------------------------------------
    def answer(self, voice_url: str) -> Played:
        """Plivo answers and requests the application's answer URL."""
        self.hangup_url = voice_url.rsplit("/voice/", 1)[0] + "/status"
        return self._fetch(voice_url, {}, status="ringing")

    def press(self, digits: str) -> Played:
        gather = self._waiting("gather", "dtmf")
        return self._fetch(gather.action or "", {"InputType": "dtmf", "Digits": self._keys(digits),
                                                  "Speech": ""})

    def say(self, words: str, confidence: float = 0.9) -> Played:
        gather = self._waiting("gather", "speech")
        return self._fetch(gather.action or "", {
            "InputType": "speech", "Digits": "", "Speech": words,
            "SpeechConfidenceScore": f"{confidence:.2f}", "BilledAmount": "0.00500"})

    def silence(self) -> Played:
        """Nobody answers the GetInput: Plivo goes on with the next element."""
        self._waiting("gather", None)
        return self._play_rest()

    def transfer_ends(self, status: str, queue_seconds: int = 0) -> Played:
        """The Dial ends: the agent who answers first hears its
        ``confirmSound``; then its action hears the ``DialStatus``.  Plivo
        has no queue, so ``queue_seconds`` has nowhere to go."""
        dial = self._waiting("dial", None)
        plivo_status = DIAL_STATUS.get(status, "failed")
        documents = []
        if plivo_status == "completed" and self._confirm:
            documents.append(self._agent_hears(self._confirm))
        if dial.action is None:
            played = self._play_rest()
        else:
            answered = plivo_status == "completed"
            played = self._fetch(dial.action, {
                "DialStatus": plivo_status, "DialRingStatus": "true" if plivo_status != "failed" else "false",
                "DialHangupCause": _HANGUP_CAUSES[plivo_status], "DialALegUUID": self.call_id,
                "DialBLegUUID": self._b_leg() if answered else ""})
        return Played(documents + played.documents, played.actions)

    def record(self, seconds: int) -> Played:
        recording = self._waiting("record", None)
        start = RECORDING_STARTED_MS
        return self._fetch(recording.action or "", {
            "RecordUrl": "https://media.plivo.invalid/Recording/sim.mp3",
            "RecordingID": self._b_leg(), "RecordingDuration": str(seconds),
            "RecordingDurationMs": str(seconds * 1000), "RecordingStartMs": str(start),
            "RecordingEndMs": str(start + seconds * 1000)})

    def hang_up(self, duration: int, at: datetime) -> None:
        """The call ends: Plivo requests the hangup URL."""
        end = at.astimezone(timezone.utc)
        duration = max(0, duration)
        times = {"StartTime": _plivo_time(end - timedelta(seconds=duration)),
                 "AnswerTime": _plivo_time(end - timedelta(seconds=duration)),
                 "EndTime": _plivo_time(end)}
        self.request(self.hangup_url or f"{self.base_url.rstrip('/')}/plivo/status", {
            "HangupCause": "NORMAL_CLEARING", "Duration": str(duration),
            "BillDuration": str(duration), "TotalCost": "0.00000", **times}, status="completed")
        self.next = Next("over")

    # -- playing documents ---------------------------------------------------------------
    def _fetch(self, url: str, extra: dict[str, str], status: str = "in-progress") -> Played:
        """Request ``url`` and play what it answers, following redirects."""
        documents: list[bytes] = []
        actions: list = []
        for _ in range(MAX_REDIRECTS + 1):
            body = self.request(url, extra, status)
            documents.append(body)
            self._rest = parse_document(body, url)
            redirect = self._run(actions)
            if redirect is None:
                return Played(documents, actions)
            url, extra, status = redirect, {}, "in-progress"
        raise MarkupError(f"more than {MAX_REDIRECTS} redirects in a row from {url}")

    def _play_rest(self) -> Played:
        """Go on with the rest of the last document."""
        actions: list = []
        redirect = self._run(actions)
        if redirect is None:
            return Played([], actions)
        followed = self._fetch(redirect, {})
        return Played(followed.documents, actions + followed.actions)

    def _run(self, actions: list) -> str | None:
        """Play elements until one waits; the URL of a Redirect reached."""
        while self._rest:
            step = step_of(self._rest.pop(0))
            actions.append(step.action)
            if step.wait == "redirect":
                return step.url
            if step.wait == "over":
                break
            if step.wait != "next":
                self.next = self._next_of(step)
                return None
        self.next = Next("over")  # nothing left, or a Hangup: Plivo ends the call
        return None

    def _next_of(self, step) -> Next:
        element = step.element
        if step.wait == "gather":
            self._confirm, self._input = None, element.get("inputType", "")
            following = self._rest[0] if self._rest else None
            after = ((following.text or "").strip()
                     if following is not None and following.tag == "Redirect" else None)
            # finishOnKey defaults to #; "none" (or empty) means no key ends the input.
            key = element.get("finishOnKey", "#")
            return Next("gather", step.url, after, finish_on_key=None if key in ("", "none") else key,
                        num_digits=step.action.num_digits)
        if step.wait == "dial":
            self._confirm = element.get("confirmSound")
            return Next("dial", step.url)
        return Next("record", step.url)

    def _waiting(self, wait: str, input_kind: str | None) -> Next:
        if self.next is None or self.next.wait != wait:
            raise MarkupError(f"the call does not wait at a {wait} but at "
                              f"{self.next.wait if self.next else 'nothing'}")
        if input_kind and input_kind not in self._input:
            raise MarkupError(f"the GetInput does not listen for {input_kind}")
        return self.next

    def _keys(self, digits: str) -> str:
        """What Plivo sends for keys pressed: up to the ``finishOnKey`` (not
        sent) and at most ``numDigits`` of them."""
        gather = self.next or Next("gather")
        if gather.finish_on_key and gather.finish_on_key in digits:
            digits = digits[:digits.index(gather.finish_on_key)]
        return digits[:gather.num_digits] if gather.num_digits else digits

    def _agent_hears(self, url: str) -> bytes:
        """The confirmSound, fetched by POST for the agent's leg: it may hold
        only Play, Wait and Speak (Dial page)."""
        headers = {"Content-Type": FORM}
        params = {"CallUUID": self._b_leg(), "From": self.called, "To": "agent",
                  "CallStatus": "in-progress", "Direction": "outbound"}
        if self.secret:
            headers.update(signed_headers(self.secret, "POST", url, params))
        body = self.send(HttpRequest("POST", url, headers, urlencode(params).encode()))
        for element in parse_document(body, url):
            if element.tag not in ("Play", "Wait", "Speak"):
                raise MarkupError(f"{url}: a confirmSound may hold only Play, Wait and Speak, "
                                  f"not <{element.tag}>")
        return body

    def _b_leg(self) -> str:
        # The agent's leg: a stable id per call.
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.call_id}/b-leg"))


def _plivo_time(moment: datetime) -> str:
    """Plivo's ``yyyy-MM-dd HH:mm:ss`` (the console's time zone; UTC here)."""
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def fake_call(send: SendFn, caller: str, called: str, base_url: str,
              secret: str | None) -> FakePlivoCall:
    """The registry's :data:`ivr.providers.registry.FakeFactory` for Plivo."""
    return FakePlivoCall(send, caller, called, base_url, secret)


__all__ = ["DIAL_STATUS", "FakePlivoCall", "fake_call", "new_call_uuid"]
