"""A call played against a running server, the way the provider plays it.

``ivr-sim test --url`` and ``ivr-sim call --url`` use :class:`RemoteCall`
instead of :class:`ivr.sim.call.SimCall`: the same inputs (keys, speech,
silence, a dial result, a voicemail, a hang-up), but each one becomes the
webhook request a provider would send, to the server at ``base_url``:

- form POSTs carrying ``CallSid`` (a fresh one per call), ``AccountSid``,
  ``From``, ``To``, ``CallStatus``, ``Direction`` and ``ApiVersion``, plus
  ``Digits`` / ``SpeechResult`` on a Gather action, ``DialCallStatus`` on a
  Dial action, ``QueueResult`` on an Enqueue action and ``RecordingUrl`` on
  a Record action, as Twilio's webhook reference lists them;
- signed with ``X-Twilio-Signature`` over the exact URL requested when an
  auth token is given;
- the TwiML answer is parsed back into :mod:`ivr.engine.actions`; a silent caller
  follows the Redirect after the Gather, and a document that only
  redirects is followed at once;
- when the call is over on the provider's side (``<Hangup/>``, nothing left
  to play, or the caller hangs up), the status callback ``completed`` is
  posted to ``/status``, once.

After each turn ``GET /calls/<CallSid>`` tells where the call is, what it
logged and how it ended, so scenario expectations are checked exactly as
offline.  Each request carries ``X-IVR-Simulated-Time``; only a server
started with ``--simulated-clock`` honours it.

Standard library only and blocking: this is a command-line tool.
"""

from __future__ import annotations

import json
import socket
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from urllib import error as urlerror
from urllib import request as urlrequest
from urllib.parse import quote, unquote, urlencode, urljoin, urlsplit
from xml.sax.saxutils import escape

from ivr.engine import actions as act
from ivr.providers.twilio.signature import signed_headers
from ivr.sim.call import (
    SECONDS_PER_TURN,
    SIMULATED_QUEUE_SECONDS,
    InputNotExpected,
    SimTurn,
    queue_result,
)

#: Seconds to wait for the server's answer (Twilio gives up after 15).
TIMEOUT = 20.0
#: Redirects followed in a row before the call is given up, as a provider would.
MAX_REDIRECTS = 10
#: Confidence sent with every SpeechResult.
SPEECH_CONFIDENCE = "0.9"
API_VERSION = "2010-04-01"
SIMULATED_TIME_HEADER = "X-IVR-Simulated-Time"
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class RemoteError(Exception):
    """The server could not be reached or refused a request."""


def new_call_sid() -> str:
    """A fresh Twilio-style call id: ``CA`` and 32 hex digits."""
    return "CA" + uuid.uuid4().hex


@dataclass
class _Next:
    """What the provider does next, from the last TwiML document."""

    wait: str                       # "gather", "dial", "record" or "over"
    action: str | None = None       # where the answer goes
    after: str | None = None        # the Redirect after a Gather (a silent caller)
    queue: bool = False             # the transfer is an <Enqueue>, not a <Dial>
    finish_on_key: str | None = "#"
    num_digits: int | None = None


@dataclass
class RemoteCall:
    """A call to the flow ``flow_name`` of the server at ``base_url``.

    Same public interface as :class:`ivr.sim.call.SimCall`: ``start``, ``press``,
    ``say``, ``silence``, ``hangup``, ``dial_result``, ``recorded`` and
    ``wait``; ``turns``, ``state`` (``node``, ``waiting``, ``ended``),
    ``ended``, ``waiting_node`` and ``summary``.
    """

    base_url: str
    flow_name: str
    caller: str
    at: datetime
    token: str | None = None
    #: Sent as a Bearer token to read ``/calls/<sid>`` (the server's dashboard token).
    dashboard_token: str | None = None
    called: str = "+33100000000"
    call_id: str = field(default_factory=new_call_sid)
    account_sid: str = "AC" + "0" * 32
    timeout: float = TIMEOUT
    state: dict | None = None
    summary: dict = field(default_factory=dict)
    turns: list = field(default_factory=list)

    def __post_init__(self):
        self.base_url = self.base_url.rstrip("/")
        self._next: _Next | None = None
        self._started_at = self.at
        self._status_sent = False
        self._sequence = 0
        self._last_seq = 0
        proxies = {} if urlsplit(self.base_url).hostname in _LOOPBACK else None
        self._opener = urlrequest.build_opener(urlrequest.ProxyHandler(proxies))

    # -- the SimCall interface -------------------------------------------------------
    @property
    def ended(self) -> bool:
        """Whether the server says the call ended, or the provider's side
        hung up (the status callback was sent)."""
        return self._status_sent or bool(self.state and self.state["ended"])

    @property
    def waiting_node(self) -> str | None:
        return self.state["node"] if self.state and not self.ended else None

    def start(self) -> SimTurn:
        url = f"{self.base_url}/voice/{quote(self.flow_name, safe='')}"
        return self._turn("call", url, {}, status="ringing")

    def press(self, digits: str) -> SimTurn:
        gather = self._expect("gather", "keys")
        sent, key = digits, gather.finish_on_key
        if key and key in sent:
            sent = sent[:sent.index(key)]  # the provider stops there and does not send the key
        if gather.num_digits:
            sent = sent[:gather.num_digits]  # it stops listening after that many keys
        return self._turn(f"press {digits}", gather.action, {"Digits": sent})

    def say(self, words: str) -> SimTurn:
        gather = self._expect("gather", "speech")
        return self._turn(f"say {words}", gather.action,
                          {"SpeechResult": words, "Confidence": SPEECH_CONFIDENCE})

    def silence(self) -> SimTurn:
        gather = self._expect("gather", "silence")
        if gather.after is None:  # nothing after the Gather: the provider hangs up
            return self._end_turn("silence")
        return self._turn("silence", gather.after, {})

    def hangup(self) -> SimTurn:
        return self._end_turn("hangup")

    def dial_result(self, status: str) -> SimTurn:
        dial = self._expect("dial", f"a dial result ({status})")
        if dial.action is None:  # no action: the call ends after the transfer
            return self._end_turn(f"dial {status}")
        if dial.queue:
            params = {"QueueResult": queue_result(status), "QueueSid": "QU" + "0" * 32,
                      "QueueTime": str(SIMULATED_QUEUE_SECONDS)}
        else:
            params = {"DialCallStatus": status, "DialCallSid": "CA" + uuid.uuid4().hex,
                      "DialBridged": "true" if status in ("completed", "answered") else "false"}
            if status in ("completed", "answered"):
                params["DialCallDuration"] = "60"
        return self._turn(f"dial {status}", dial.action, params)

    def recorded(self, seconds: int = 20) -> SimTurn:
        record = self._expect("record", "a recording")
        return self._turn("record", record.action, {
            "RecordingUrl": "https://recordings.invalid/sim.wav",
            "RecordingDuration": str(seconds), "RecordingSid": "RE" + "0" * 32, "Digits": "#"})

    def wait(self, seconds: int) -> None:
        self.at += timedelta(seconds=seconds)

    # -- one turn --------------------------------------------------------------------
    def _expect(self, wait: str, what: str) -> _Next:
        waits = self._next.wait if self._next else "over"
        if waits != wait:
            doing = {"gather": "keys or speech", "dial": "the result of a transfer",
                     "record": "a recording", "over": "nothing: it is over"}[waits]
            raise InputNotExpected(f"cannot send {what}: the call waits for {doing}")
        return self._next

    def _turn(self, label: str, url: str, extra: dict, status: str = "in-progress") -> SimTurn:
        documents, actions = [], []
        for _ in range(MAX_REDIRECTS + 1):
            body = self._post(url, {**self._params(status), **extra})
            documents.append(body)
            parsed, self._next = parse_twiml(body, url)
            actions.extend(parsed)
            if self._next.wait != "redirect":
                break
            url, extra, status = self._next.action, {}, "in-progress"
        else:
            raise RemoteError(f"more than {MAX_REDIRECTS} redirects in a row from {url}")
        if self._next.wait == "over":
            self._send_status()
        return self._record(label, actions, b"\n".join(documents))

    def _end_turn(self, label: str) -> SimTurn:
        """The call ends on the provider's side: only the status callback."""
        self._next = _Next("over")
        self._send_status()
        return self._record(label, [], b"")

    def _record(self, label: str, actions: list, twiml: bytes) -> SimTurn:
        described = self._describe()
        self.state = {"node": described.get("node"), "waiting": described.get("waiting"),
                      "ended": bool(described.get("ended")), "turn": described.get("turn")}
        self.summary = described.get("summary") or {}
        events = [e for e in described.get("node_events") or [] if e.get("seq", 0) > self._last_seq]
        self._last_seq = max([self._last_seq] + [e.get("seq", 0) for e in events])
        turn = SimTurn(len(self.turns), label, actions, events, twiml, self.waiting_node)
        self.turns.append(turn)
        self.at += timedelta(seconds=SECONDS_PER_TURN)
        return turn

    def _send_status(self) -> None:
        if self._status_sent:
            return
        self._status_sent = True
        duration = max(0, int((self.at - self._started_at).total_seconds()))
        params = {**self._params("completed"), "CallDuration": str(duration),
                  "SequenceNumber": str(self._sequence), "CallbackSource": "call-progress-events",
                  "Timestamp": format_datetime(self.at.astimezone(timezone.utc), usegmt=True)}
        self._sequence += 1
        self._post(f"{self.base_url}/status", params)

    def _describe(self) -> dict:
        url = f"{self.base_url}/calls/{quote(self.call_id, safe='')}"
        body = self._request("GET", url, None, bearer=self.dashboard_token)
        try:
            described = json.loads(body)
        except ValueError:
            raise RemoteError(f"GET {url}: expected JSON, got {_snippet(body)}") from None
        if not isinstance(described, dict):
            raise RemoteError(f"GET {url}: expected a JSON object, got {_snippet(body)}")
        return described

    # -- HTTP ------------------------------------------------------------------------
    def _params(self, status: str) -> dict:
        return {"CallSid": self.call_id, "AccountSid": self.account_sid, "From": self.caller,
                "To": self.called, "Caller": self.caller, "Called": self.called,
                "CallStatus": status, "Direction": "inbound", "ApiVersion": API_VERSION}

    def _post(self, url: str, params: dict) -> bytes:
        return self._request("POST", url, params)

    def _request(self, method: str, url: str, params: dict | None,
                 bearer: str | None = None) -> bytes:
        headers = {SIMULATED_TIME_HEADER: self.at.isoformat()}
        if bearer:
            headers["Authorization"] = f"Bearer {bearer}"
        data = None
        if params is not None:
            data = urlencode(params).encode("utf-8")
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        if self.token:
            headers.update(signed_headers(self.token, url, params or {}))
        req = urlrequest.Request(url, data=data, headers=headers, method=method)
        try:
            with self._opener.open(req, timeout=self.timeout) as response:
                return response.read()
        except urlerror.HTTPError as error:
            body = error.read() or b""
            raise RemoteError(f"{method} {url}: HTTP {error.code}: {_snippet(body)}") from None
        except urlerror.URLError as error:
            raise RemoteError(f"{method} {url}: cannot reach the server ({error.reason})") from None
        except (socket.timeout, TimeoutError):
            raise RemoteError(f"{method} {url}: no answer within {self.timeout:g} s") from None
        except OSError as error:
            raise RemoteError(f"{method} {url}: {error}") from None


# --- TwiML back into actions -------------------------------------------------------


def parse_twiml(document: bytes, url: str) -> tuple[list, _Next]:
    """The actions of a TwiML ``document`` fetched from ``url`` and what the
    provider does once they have played (URLs resolved against ``url``)."""
    try:
        root = ET.fromstring(document)
    except ET.ParseError as error:
        raise RemoteError(f"{url}: the answer is not TwiML ({error}): {_snippet(document)}") from None
    if root.tag != "Response":
        raise RemoteError(f"{url}: the answer's root is <{root.tag}>, not <Response>")
    actions: list = []
    verbs = list(root)
    for index, element in enumerate(verbs):
        tag = element.tag
        if tag in ("Say", "Play", "Pause"):
            actions.append(_prompt(element))
        elif tag == "Gather":
            actions.append(act.Gather(
                prompts=tuple(_prompt(p) for p in element if p.tag in ("Say", "Play", "Pause")),
                input=element.get("input", "dtmf"),
                num_digits=_int(element.get("numDigits")),
                finish_on_key=element.get("finishOnKey"),
                timeout=_int(element.get("timeout")) or 5,
                speech_timeout=element.get("speechTimeout"),
                hints=tuple(h.strip() for h in (element.get("hints") or "").split(",") if h.strip()),
                language=element.get("language")))
            following = verbs[index + 1] if index + 1 < len(verbs) else None
            after = (urljoin(url, (following.text or "").strip())
                     if following is not None and following.tag == "Redirect" else None)
            return actions, _Next("gather", urljoin(url, element.get("action") or url), after,
                                  finish_on_key=element.get("finishOnKey", "#") or None,
                                  num_digits=actions[-1].num_digits)
        elif tag == "Dial":
            actions.append(_dial(element))
            return actions, _Next("dial", _action(element, url))
        elif tag == "Enqueue":
            actions.append(act.Enqueue((element.text or "").strip(), wait_url=element.get("waitUrl")))
            return actions, _Next("dial", _action(element, url), queue=True)
        elif tag == "Record":
            actions.append(act.Record(
                max_length=_int(element.get("maxLength")) or 3600,
                timeout=_int(element.get("timeout")) or 5,
                finish_on_key=element.get("finishOnKey", "1234567890*#"),
                play_beep=element.get("playBeep", "true") == "true"))
            return actions, _Next("record", urljoin(url, element.get("action") or url))
        elif tag == "Redirect":
            target = urljoin(url, (element.text or "").strip())
            actions.append(act.Redirect(target))
            return actions, _Next("redirect", target)
        elif tag in ("Hangup", "Reject"):
            actions.append(act.Hangup())
            return actions, _Next("over")
    return actions, _Next("over")  # nothing left to play: the provider hangs up


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


def _snippet(body: bytes, limit: int = 300) -> str:
    text = body.decode("utf-8", "replace").strip()
    return (text[:limit] + "…") if len(text) > limit else (text or "(empty body)")
