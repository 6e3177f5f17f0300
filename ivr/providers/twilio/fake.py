"""A fake Twilio: the requests Twilio sends and how it plays TwiML, written
from Twilio's public documentation (not from our renderer), for
``ivr-sim --url``, the traffic generator and the tests.

:class:`FakeTwilioCall` is one call as Twilio sees it.  It shapes each
request (the form fields of a voice webhook, a Gather, Dial, Enqueue or
Record action and a status callback), signs it with ``X-Twilio-Signature``
when given the auth token (or ``X-Twilio-Signature`` in HMAC-SHA256 with
``X-Twilio-Webhooks-Signature-Settings`` when given a shared key), and
executes the TwiML answer: it follows a document that only redirects,
remembers where a Gather's answer goes (its ``action``, turn number
included, and the ``<Redirect>`` after it for a silent caller), and where a
Dial, Enqueue or Record reports.  It implements
:class:`ivr.providers.fake_call.FakeCall`; how a request reaches the server
is the caller's: ``send(HttpRequest)`` returns the answer's bytes (an HTTP
POST for ``ivr-sim --url``, the web resources in memory in tests, the
handler for the traffic generator).
"""

from __future__ import annotations

import hashlib
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import format_datetime
from urllib.parse import unquote, urlencode, urljoin
from xml.sax.saxutils import escape

from ivr.engine import actions as act
from ivr.providers.bodies import FORM
from ivr.providers.fake_call import HttpRequest, MarkupError, Next, Played, SendFn
from ivr.providers.twilio.signature import shared_key_headers, signed_headers

#: Redirects followed in a row before the call is given up, as Twilio would.
MAX_REDIRECTS = 10
#: Confidence sent with every SpeechResult.
SPEECH_CONFIDENCE = "0.9"
API_VERSION = "2010-04-01"
ACCOUNT_SID = "AC" + "0" * 32
#: Fields of a Gather action that a later request of the call does not carry.
_ANSWER_FIELDS = ("Digits", "SpeechResult", "Confidence")


class TwimlError(MarkupError):
    """The server's answer is not TwiML Twilio could play."""


def new_call_sid() -> str:
    """A fresh Twilio call id: ``CA`` and 32 hex digits."""
    return "CA" + uuid.uuid4().hex


def queue_result(status: str) -> str:
    """The Enqueue action's ``QueueResult`` for a dial status: an agent
    took the call (``bridged``), the caller hung up (``hangup``), or not."""
    if status in ("completed", "answered"):
        return "bridged"
    if status == "canceled":
        return "hangup"
    return "error"


@dataclass
class FakeTwilioCall:
    """One inbound call, as Twilio plays it to the server ``send`` reaches
    (a :class:`ivr.providers.fake_call.FakeCall`)."""

    send: SendFn
    caller: str
    called: str
    call_id: str = field(default_factory=new_call_sid)
    account_sid: str = ACCOUNT_SID
    #: When set, every request is signed with it (``X-Twilio-Signature``).
    auth_token: str | None = None
    #: What the call waits for, from the last document; None before it starts.
    next: Next | None = None
    #: Status callbacks sent so far (their ``SequenceNumber``).
    sequence: int = 0
    #: The server's public URL: the status callback goes to ``<base_url>/status``.
    base_url: str = ""
    #: When set (and no auth token), requests are signed with this shared
    #: key in HMAC-SHA256, as a Webhook Setting makes Twilio do.
    shared_key: str | None = None
    #: The shared key's id Twilio names in the settings header.
    shared_key_id: str = "webhooks_sharedkey_sim"

    provider = "twilio"

    # -- the FakeCall protocol ---------------------------------------------------------
    def answer(self, voice_url: str) -> Played:
        """Twilio's first request to the number's voice URL (``ringing``)."""
        return Played(*self.request(voice_url, {}, status="ringing"))

    def press(self, digits: str) -> Played:
        return self._answer_gather(self.keys(digits))

    def say(self, words: str, confidence: float = 0.9) -> Played:
        return self._answer_gather({"SpeechResult": words, "Confidence": f"{confidence:g}"})

    def silence(self) -> Played:
        """The Gather times out: Twilio goes on to the verb after it (our
        Redirect), or hangs up when there is none."""
        gather = self._waiting("gather")
        if gather.after is None:
            self.next = Next("over")
            return Played([], [])
        return Played(*self.request(gather.after, {}))

    def transfer_ends(self, status: str, queue_seconds: int = 0) -> Played:
        dial = self._waiting("dial")
        if dial.action is None:  # no action: the call ends with the transfer
            self.next = Next("over")
            return Played([], [])
        return Played(*self.request(dial.action, self.transfer_result(status, queue_seconds)))

    def record(self, seconds: int) -> Played:
        return Played(*self.request(self._waiting("record").action or "", self.recording(seconds)))

    def hang_up(self, duration: int, at: datetime) -> None:
        """The ``completed`` status callback, to the number's status URL."""
        self.next = Next("over")
        self.post(f"{self.base_url.rstrip('/')}/status", self.status_callback(duration, at))

    def _answer_gather(self, fields: dict) -> Played:
        return Played(*self.request(self._waiting("gather").action or "", fields))

    def _waiting(self, wait: str) -> Next:
        waits = self.next.wait if self.next else "over"
        if self.next is None or waits != wait:
            raise MarkupError(f"the call waits for {waits}, not {wait}")
        return self.next

    def post(self, url: str, params: dict) -> bytes:
        """Send one form POST, signed as Twilio signs it."""
        headers = {"Content-Type": FORM, **self.headers(url, params)}
        return self.send(HttpRequest("POST", url, headers, urlencode(params).encode("utf-8")))

    # -- request shapes ----------------------------------------------------------------
    def params(self, status: str = "in-progress") -> dict:
        """The fields every voice webhook of the call carries."""
        return {"CallSid": self.call_id, "AccountSid": self.account_sid, "From": self.caller,
                "To": self.called, "Caller": self.caller, "Called": self.called,
                "CallStatus": status, "Direction": "inbound", "ApiVersion": API_VERSION}

    def keys(self, digits: str) -> dict:
        """A Gather's answer to keys pressed: Twilio stops at the
        ``finishOnKey`` (not sent) or after ``numDigits`` keys."""
        sent, gather = digits, self.next or Next("gather")
        if gather.finish_on_key and gather.finish_on_key in sent:
            sent = sent[:sent.index(gather.finish_on_key)]
        if gather.num_digits:
            sent = sent[:gather.num_digits]
        return {"Digits": sent}

    @staticmethod
    def speech(words: str) -> dict:
        """A Gather's answer to words said."""
        return {"SpeechResult": words, "Confidence": SPEECH_CONFIDENCE}

    def transfer_result(self, status: str, queue_seconds: int) -> dict:
        """The action of the Dial or Enqueue the call waits at, for a dial
        ``status``; ``queue_seconds`` is the wait in the queue."""
        if self.next is not None and self.next.queue:
            return {"QueueResult": queue_result(status), "QueueSid": "QU" + "0" * 32,
                    "QueueTime": str(queue_seconds)}
        answered = status in ("completed", "answered")
        params = {"DialCallStatus": status, "DialCallSid": self._child_sid(),
                  "DialBridged": "true" if answered else "false"}
        if answered:
            params["DialCallDuration"] = "60"
        return params

    @staticmethod
    def recording(seconds: int | str, url: str = "https://recordings.invalid/sim.wav") -> dict:
        """A Record's action: the message left, ended with ``#``."""
        return {"RecordingUrl": url, "RecordingDuration": str(seconds),
                "RecordingSid": "RE" + "0" * 32, "Digits": "#"}

    def status_callback(self, duration: int, at: datetime) -> dict:
        """The ``completed`` status callback, ``duration`` seconds after the
        start, sent at ``at``; numbered in the call's sequence."""
        params = {**self.params("completed"), "CallDuration": str(max(0, duration)),
                  "SequenceNumber": str(self.sequence), "CallbackSource": "call-progress-events",
                  "Timestamp": format_datetime(at.astimezone(timezone.utc), usegmt=True)}
        self.sequence += 1
        return params

    def headers(self, url: str, params: dict | None) -> dict[str, str]:
        """The signature headers of a request to ``url`` (none without a secret)."""
        if self.auth_token:
            return signed_headers(self.auth_token, url, params or {})
        if self.shared_key:
            return shared_key_headers(self.shared_key, self.shared_key_id, url, params or {})
        return {}

    def sign(self, request: HttpRequest) -> HttpRequest:
        """``request`` (a GET of ours, e.g. ``/calls/<id>``) signed as Twilio signs."""
        return HttpRequest(request.method, request.url,
                           {**request.headers, **self.headers(request.url, {})}, request.body)

    def _child_sid(self) -> str:
        # The transfer's own call: a stable id per call and turn.
        return "CA" + hashlib.md5(f"{self.call_id}/{self.sequence}/dial".encode()).hexdigest()

    # -- executing TwiML ---------------------------------------------------------------
    def request(self, url: str, extra: dict, status: str = "in-progress"
                ) -> tuple[list[bytes], list]:
        """Send a webhook to ``url`` and play its answer: a document that
        only redirects is followed at once (the call's own fields only).
        The documents fetched and the actions they hold; :attr:`next` says
        what the call waits for then."""
        documents: list[bytes] = []
        actions: list = []
        for _ in range(MAX_REDIRECTS + 1):
            body = self.post(url, {**self.params(status), **extra})
            documents.append(body)
            parsed, self.next = parse_twiml(body, url)
            actions.extend(parsed)
            if self.next.wait != "redirect":
                return documents, actions
            url, extra, status = self.next.action or url, {}, "in-progress"
        raise TwimlError(f"more than {MAX_REDIRECTS} redirects in a row from {url}")


def fake_call(send: SendFn, caller: str, called: str, base_url: str,
              secret: str | None) -> FakeTwilioCall:
    """A :class:`FakeTwilioCall` as the registry builds fakes: requests
    signed with the auth token ``secret`` when given."""
    return FakeTwilioCall(send, caller, called, auth_token=secret, base_url=base_url)


# --- TwiML back into actions -------------------------------------------------------


def parse_twiml(document: bytes, url: str) -> tuple[list, Next]:
    """The actions of a TwiML ``document`` fetched from ``url`` and what
    Twilio does once they have played (URLs resolved against ``url``)."""
    try:
        root = ET.fromstring(document)
    except ET.ParseError as error:
        raise TwimlError(f"{url}: the answer is not TwiML ({error}): {snippet(document)}") from None
    if root.tag != "Response":
        raise TwimlError(f"{url}: the answer's root is <{root.tag}>, not <Response>")
    actions: list = []
    verbs = list(root)
    for index, element in enumerate(verbs):
        tag = element.tag
        if tag in ("Say", "Play", "Pause"):
            actions.append(_prompt(element))
        elif tag == "Gather":
            actions.append(_gather(element))
            following = verbs[index + 1] if index + 1 < len(verbs) else None
            after = (urljoin(url, (following.text or "").strip())
                     if following is not None and following.tag == "Redirect" else None)
            return actions, Next("gather", urljoin(url, element.get("action") or url), after,
                                 finish_on_key=element.get("finishOnKey", "#") or None,
                                 num_digits=actions[-1].num_digits)
        elif tag == "Dial":
            actions.append(_dial(element))
            return actions, Next("dial", _action(element, url))
        elif tag == "Enqueue":
            actions.append(act.Enqueue((element.text or "").strip(), wait_url=element.get("waitUrl")))
            return actions, Next("dial", _action(element, url), queue=True)
        elif tag == "Record":
            actions.append(act.Record(
                max_length=_int(element.get("maxLength")) or 3600,
                timeout=_int(element.get("timeout")) or 5,
                finish_on_key=element.get("finishOnKey", "1234567890*#"),
                play_beep=element.get("playBeep", "true") == "true"))
            return actions, Next("record", urljoin(url, element.get("action") or url))
        elif tag == "Redirect":
            target = urljoin(url, (element.text or "").strip())
            actions.append(act.Redirect(target))
            return actions, Next("redirect", target)
        elif tag in ("Hangup", "Reject"):
            actions.append(act.Hangup())
            return actions, Next("over")
    return actions, Next("over")  # nothing left to play: Twilio hangs up


def _gather(element: ET.Element) -> act.Gather:
    return act.Gather(
        prompts=tuple(_prompt(p) for p in element if p.tag in ("Say", "Play", "Pause")),
        input=element.get("input", "dtmf"),
        num_digits=_int(element.get("numDigits")),
        finish_on_key=element.get("finishOnKey"),
        timeout=_int(element.get("timeout")) or 5,
        speech_timeout=element.get("speechTimeout"),
        hints=tuple(h.strip() for h in (element.get("hints") or "").split(",") if h.strip()),
        language=element.get("language"))


def _prompt(element: ET.Element):
    if element.tag == "Say":
        inner = escape(element.text or "") + "".join(
            ET.tostring(child, encoding="unicode") for child in element)
        return act.Say(inner, voice=element.get("voice"), language=element.get("language"),
                       loop=_int(element.get("loop")))
    if element.tag == "Play":
        return act.Play((element.text or "").strip(), loop=_int(element.get("loop")))
    return act.Pause(_int(element.get("length")) or 1)


def _dial(element: ET.Element) -> act.Dial:
    noun = next((child for child in element if child.tag in ("Number", "Sip", "Queue", "Client")), None)
    if noun is None:
        target = act.DialTarget("number", (element.text or "").strip())
        whisper = None
        params: tuple = ()
    else:
        kind = {"Number": "number", "Sip": "sip", "Queue": "queue", "Client": "client"}[noun.tag]
        address = (noun.text or "").strip()
        params = ()
        if kind == "sip" and "?" in address:  # headers travel in the URI
            address, _, headers = address.partition("?")
            params = tuple((name, unquote(value)) for name, _, value in
                           (part.partition("=") for part in headers.split("&") if part))
        target = act.DialTarget(kind, address)
        whisper = noun.get("url")
    return act.Dial(target, timeout=_int(element.get("timeout")), caller_id=element.get("callerId"),
                    params=params, whisper_url=whisper)


def _action(element: ET.Element, url: str) -> str | None:
    action = element.get("action")
    return urljoin(url, action) if action else None


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def snippet(body: bytes, limit: int = 300) -> str:
    """The start of a body, for an error message."""
    text = body.decode("utf-8", "replace").strip()
    return (text[:limit] + "…") if len(text) > limit else (text or "(empty body)")
