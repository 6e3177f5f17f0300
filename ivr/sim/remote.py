"""A call played against a running server, the way the provider plays it.

``ivr-sim test --url`` and ``ivr-sim call --url`` use :class:`RemoteCall`
instead of :class:`ivr.sim.call.SimCall`: the same inputs (keys, speech,
silence, a dial result, a voicemail, a hang-up), but each one becomes the
webhook request a provider would send, to the server at ``base_url``.  The
provider is the fake of the provider named (:mod:`ivr.providers.registry`:
each provider's :class:`ivr.providers.fake_call.FakeCall`), Twilio's
unless told; this module only carries its requests over HTTP.  Twilio's:

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
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib import error as urlerror
from urllib import request as urlrequest
from urllib.parse import quote, urlsplit

from ivr.i18n import N_, _
from ivr.providers.fake_call import FakeCall, HttpRequest, MarkupError, Next, Played, SendFn
from ivr.providers.registry import provider as registered
from ivr.providers.twilio.fake import TwimlError
from ivr.providers.twilio.fake import parse_twiml as _parse_twiml
from ivr.providers.twilio.fake import snippet as _snippet
from ivr.sim.call import SECONDS_PER_TURN, SIMULATED_QUEUE_SECONDS, InputNotExpected, SimTurn

#: Seconds to wait for the server's answer (Twilio gives up after 15).
TIMEOUT = 20.0
SIMULATED_TIME_HEADER = "X-IVR-Simulated-Time"
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class RemoteError(Exception):
    """The server could not be reached or refused a request."""


def parse_twiml(document: bytes, url: str) -> tuple[list, Next]:
    """:func:`ivr.providers.twilio.fake.parse_twiml`, failing with :class:`RemoteError`."""
    try:
        return _parse_twiml(document, url)
    except TwimlError as error:
        raise RemoteError(str(error)) from None


@dataclass
class RemoteCall:
    """A call to the flow ``flow_name`` of the server at ``base_url``, as
    the provider named ``provider`` plays it (signed with ``token``, its
    secret, when given).

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
    provider: str = "twilio"
    timeout: float = TIMEOUT
    #: The provider's id of the call (its fake makes one per call).
    call_id: str = field(init=False, default="")
    #: Carries each request and returns the answer's body (raising
    #: :class:`RemoteError` on a refusal); None: over HTTP to ``base_url``.
    transport: SendFn | None = None
    state: dict | None = None
    summary: dict = field(default_factory=dict)
    turns: list = field(default_factory=list)

    def __post_init__(self):
        self.base_url = self.base_url.rstrip("/")
        self._provider = registered(self.provider)
        self._fake: FakeCall = self._provider.fake(self._send, self.caller, self.called,
                                                   self.base_url, self.token)
        self.call_id = self._fake.call_id
        self._started_at = self.at
        self._status_sent = False
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
        url = f"{self.base_url}/{self._provider.prefix}voice/{quote(self.flow_name, safe='')}"
        return self._turn("call", lambda: self._fake.answer(url))

    def press(self, digits: str) -> SimTurn:
        self._expect("gather", N_("keys"))
        return self._turn(f"press {digits}", lambda: self._fake.press(digits))

    def say(self, words: str) -> SimTurn:
        self._expect("gather", N_("speech"))
        return self._turn(f"say {words}", lambda: self._fake.say(words))

    def silence(self) -> SimTurn:
        self._expect("gather", N_("silence"))
        return self._turn("silence", self._fake.silence)

    def hangup(self) -> SimTurn:
        return self._end_turn("hangup")

    def dial_result(self, status: str) -> SimTurn:
        self._expect("dial", _("a dial result ({status})").format(status=status))
        return self._turn(f"dial {status}",
                          lambda: self._fake.transfer_ends(status, SIMULATED_QUEUE_SECONDS))

    def recorded(self, seconds: int = 20) -> SimTurn:
        self._expect("record", N_("a recording"))
        return self._turn("record", lambda: self._fake.record(seconds))

    def wait(self, seconds: int) -> None:
        self.at += timedelta(seconds=seconds)

    # -- one turn --------------------------------------------------------------------
    def _expect(self, wait: str, what: str) -> Next:
        nxt = self._fake.next
        waits = nxt.wait if nxt else "over"
        if nxt is None or waits != wait:
            doing = {"gather": N_("keys or speech"), "dial": N_("the result of a transfer"),
                     "record": N_("a recording"), "over": N_("nothing: it is over"),
                     "redirect": N_("a redirect")}.get(waits, waits)
            raise InputNotExpected(_("cannot send {what}: the call waits for {doing}").format(
                what=_(what), doing=_(doing)))
        return nxt

    def _turn(self, label: str, play) -> SimTurn:
        """Play one input through the fake (``play()``); once the call is
        over on the provider's side, its end-of-call notice is sent."""
        try:
            played: Played = play()
        except MarkupError as error:
            raise RemoteError(str(error)) from None
        if self._fake.next is None or self._fake.next.wait == "over":
            self._send_status()
        return self._record(label, played.actions, b"\n".join(played.documents))

    def _end_turn(self, label: str) -> SimTurn:
        """The call ends on the provider's side: only the status callback."""
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
        duration = int((self.at - self._started_at).total_seconds())
        self._fake.hang_up(duration, self.at)

    def _describe(self) -> dict:
        url = f"{self.base_url}/calls/{quote(self.call_id, safe='')}"
        headers = {"Authorization": f"Bearer {self.dashboard_token}"} if self.dashboard_token else {}
        request = HttpRequest("GET", url, headers)
        sign = getattr(self._fake, "sign", None)  # signed like a webhook, when the fake can
        if sign is not None and self.token:
            request = sign(request)
        body = self._send(request)
        try:
            described = json.loads(body)
        except ValueError:
            raise RemoteError(f"GET {url}: expected JSON, got {_snippet(body)}") from None
        if not isinstance(described, dict):
            raise RemoteError(f"GET {url}: expected a JSON object, got {_snippet(body)}")
        return described

    # -- HTTP ------------------------------------------------------------------------
    def _send(self, request: HttpRequest) -> bytes:
        """Send one request of the provider's (or ours), at the simulated time."""
        method, url = request.method, request.url
        headers = {SIMULATED_TIME_HEADER: self.at.isoformat(), **request.headers}
        if self.transport is not None:
            return self.transport(HttpRequest(method, url, headers, request.body))
        data = request.body if method != "GET" else None
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
