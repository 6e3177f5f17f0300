"""A fake Vonage: one inbound call as the Voice API plays it, written from
Vonage's public docs (https://developer.vonage.com/voice/voice-api/webhook-reference,
the NCCO reference, the Speech Recognition guide's input payload, signed
webhooks), never from our renderer.

- The answer webhook is a GET of the answer URL with ``to``, ``from``,
  ``uuid`` and ``conversation_uuid`` in the query (numbers without ``+``).
- Every later request is a JSON POST to the URL an action names: an
  ``input``'s result (``dtmf.digits``/``dtmf.timed_out``,
  ``speech.results[].text``/``.confidence`` as a string,
  ``speech.timeout_reason``), a ``connect``'s or ``conversation``'s outcome
  (the leg's ``status``), a ``record``'s recording (``recording_url``,
  ``start_time``, ``end_time``), a ``notify``'s payload (whose answer, an
  NCCO, replaces the rest), and the ``completed`` event with its
  ``duration`` to the application's event URL.
- With the signature secret every request carries ``Authorization: Bearer``
  and an HS256 JWT with ``iat``, ``jti``, ``iss``, ``api_key``,
  ``application_id`` and ``payload_hash``.
- The NCCO is checked (:mod:`.ncco_check`) and played in order: talk and
  stream are heard, the call waits at an input, a connect, a conversation
  or a record, a notify is sent at once, and the call ends when the
  actions run out.

Not sent (our server refuses them at a turn's URL, see
:mod:`ivr.providers.vonage.webhook`): a connect's ``started``, ``ringing``
and ``answered`` progress events.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from urllib.parse import urlencode

from ivr.engine import actions as act
from ivr.providers.fake_call import HttpRequest, MarkupError, Next, Played, SendFn
from ivr.providers.vonage import ncco_check
from ivr.providers.vonage.signature import sign

#: Notify answers followed in a row before the call is given up.
MAX_NOTIFIES = 10
API_KEY = "abcd1234"
APPLICATION_ID = "aaaaaaaa-bbbb-cccc-dddd-0123456789ab"
#: Our dial statuses as the connected leg's final status.
LEG_STATUS = {"completed": "completed", "answered": "completed", "busy": "busy",
              "no-answer": "timeout", "failed": "failed", "canceled": "cancelled"}


def _digits(number: str) -> str:
    return number[1:] if number.startswith("+") else number


def _now_iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class FakeVonageCall:
    """One inbound call, as Vonage plays it to the server ``send`` reaches."""

    send: SendFn
    caller: str
    called: str
    base_url: str = "http://localhost:8080"
    secret: str | None = None
    #: Where the application's event URL points, under ``base_url``.
    status_path: str = "vonage/status"
    clock: Callable[[], float] = time.time
    provider: str = "vonage"
    call_id: str = field(default_factory=lambda: "CON-" + str(uuid.uuid4()))
    leg: str = field(default_factory=lambda: str(uuid.uuid4()))
    next: Next | None = None
    #: The NCCO actions left after the one the call waits at.
    rest: list = field(default_factory=list)
    #: The input the call waits at (its dtmf/speech settings).
    waiting_input: dict = field(default_factory=dict)
    #: Whether the connect the call waits at takes an NCCO from its eventUrl.
    synchronous: bool = False

    # -- requests -----------------------------------------------------------------------
    def _headers(self, payload_hash: str) -> dict[str, str]:
        if not self.secret:
            return {}
        claims = {"iat": int(self.clock()), "jti": str(uuid.uuid4()), "iss": "Vonage",
                  "payload_hash": payload_hash, "api_key": API_KEY,
                  "application_id": APPLICATION_ID}
        return {"Authorization": f"Bearer {sign(self.secret, claims)}"}

    def get(self, url: str, fields: dict[str, str]) -> bytes:
        """A GET with ``fields`` in the query (the answer webhook)."""
        data = json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        headers = self._headers(hashlib.sha256(data).hexdigest())
        return self.send(HttpRequest("GET", f"{url}{'&' if '?' in url else '?'}{urlencode(fields)}",
                                     headers))

    def post(self, url: str, body: dict) -> bytes:
        """A JSON POST (every event webhook)."""
        raw = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        headers = {"Content-Type": "application/json",
                   **self._headers(hashlib.sha256(raw).hexdigest())}
        return self.send(HttpRequest("POST", url, headers, raw))

    def _call_fields(self) -> dict:
        return {"from": _digits(self.caller), "to": _digits(self.called), "uuid": self.leg,
                "conversation_uuid": self.call_id}

    def _stamp(self) -> str:
        return _now_iso(datetime.fromtimestamp(self.clock(), timezone.utc))

    # -- FakeCall ------------------------------------------------------------------------
    def answer(self, voice_url: str) -> Played:
        """The answer webhook: a GET with ``to``, ``from``, ``uuid`` and
        ``conversation_uuid``, in the documented order."""
        fields = {"to": _digits(self.called), "from": _digits(self.caller),
                  "conversation_uuid": self.call_id, "uuid": self.leg}
        return self._play(self.get(voice_url, fields), voice_url)

    def press(self, digits: str) -> Played:
        """Keys at an input: up to ``#`` when ``submitOnHash``, at most ``maxDigits``."""
        dtmf = self.waiting_input.get("dtmf") or {}
        sent, most = digits, dtmf.get("maxDigits", 4)
        hashed = bool(dtmf.get("submitOnHash")) and "#" in sent
        if hashed:
            sent = sent[:sent.index("#")]
        sent = sent[:most]
        # Ended by # or by the last key allowed; otherwise by the timeout.
        return self._input({"digits": sent, "timed_out": not (hashed or len(sent) == most)}, None)

    def say(self, words: str, confidence: float = 0.9) -> Played:
        """Words at an input that listens for speech."""
        if "speech" not in self.waiting_input.get("type", ()):
            raise MarkupError("the input the call waits at does not listen for speech")
        speech = {"timeout_reason": "end_on_silence_timeout",
                  "results": [{"confidence": str(confidence), "text": words}]}
        return self._input({"digits": None, "timed_out": False}, speech)

    def silence(self) -> Played:
        """Nothing before the input times out."""
        speech = ({"timeout_reason": "start_timeout"}
                  if "speech" in self.waiting_input.get("type", ()) else None)
        return self._input({"digits": None, "timed_out": True}, speech)

    def transfer_ends(self, status: str, queue_seconds: int = 0) -> Played:
        """The connected leg's (or the conversation's) final status event.
        A synchronous connect's ``eventUrl`` answers a ``timeout`` with the
        NCCO that replaces the rest; otherwise the connect ends and the NCCO
        goes on with its next action."""
        nxt = self._expect("dial")
        body = {"from": _digits(self.called), "to": _digits(self.caller), "uuid": str(uuid.uuid4()),
                "conversation_uuid": self.call_id, "status": LEG_STATUS.get(status, "failed"),
                "direction": "outbound", "timestamp": self._stamp()}
        if body["status"] == "completed":
            body["duration"] = "60"
        answer = self.post(nxt.action or "", body)
        if body["status"] == "timeout" and self.synchronous and answer.strip():
            return self._play(answer, nxt.action or "")
        return self._continue([], [])

    def record(self, seconds: int) -> Played:
        """The record event, then what follows the record in the NCCO."""
        nxt = self._expect("record")
        end = datetime.fromtimestamp(self.clock(), timezone.utc)
        self.post(nxt.action or "", {
            "start_time": _now_iso(end - timedelta(seconds=seconds)),
            "recording_url": "https://api.nexmo.com/v1/files/" + str(uuid.uuid4()),
            "size": 12222, "recording_uuid": str(uuid.uuid4()), "end_time": _now_iso(end),
            "uuid": self.leg, "conversation_uuid": self.call_id, "timestamp": _now_iso(end)})
        return self._continue([], [])

    def hang_up(self, duration: int, at: datetime) -> None:
        """The ``completed`` event to the application's event URL."""
        self.post(f"{self.base_url.rstrip('/')}/{self.status_path}", {
            **self._call_fields(), "status": "completed", "direction": "inbound",
            "duration": str(max(0, duration)), "start_time": _now_iso(at - timedelta(seconds=duration)),
            "end_time": _now_iso(at), "timestamp": _now_iso(at)})
        self.next = Next("over")

    # -- playing NCCO --------------------------------------------------------------------
    def _expect(self, wait: str) -> Next:
        if self.next is None or self.next.wait != wait:
            raise MarkupError(f"the call does not wait at a {wait}")
        return self.next

    def _input(self, dtmf: dict, speech: dict | None) -> Played:
        nxt = self._expect("gather")
        body = {**self._call_fields(), "dtmf": dtmf, "timestamp": self._stamp()}
        if speech is not None:
            body["speech"] = speech
        return self._play(self.post(nxt.action or "", body), nxt.action or "")

    def _play(self, document: bytes, url: str) -> Played:
        """A new NCCO: it replaces whatever was left."""
        return self._run(ncco_check.load(document, url), [document], [])

    def _continue(self, documents: list, actions: list) -> Played:
        return self._run(self.rest, documents, actions)

    def _run(self, ncco: list, documents: list, actions: list) -> Played:
        prompts: list = []
        for _ in range(MAX_NOTIFIES + 1):
            for index, step in enumerate(ncco):
                kind = step["action"]
                if kind in ("talk", "stream"):
                    prompts.append(ncco_check.prompt(step))
                    continue
                self.rest = ncco[index + 1:]
                if kind == "notify":
                    answer = self.post(step["eventUrl"][0], {
                        "payload": step["payload"], "conversation_uuid": self.call_id,
                        "timestamp": self._stamp()})
                    if answer.strip():  # a new NCCO replaces the rest
                        documents.append(answer)
                        actions.extend(prompts + [_redirect(step)])
                        prompts, ncco = [], ncco_check.load(answer, step["eventUrl"][0])
                        break
                    continue
                return self._wait_at(step, prompts, documents, actions)
            else:
                # Nothing left to do: Vonage ends the call, as a hang-up would.
                actions.extend(prompts + [act.Hangup()])
                self.next, self.rest = Next("over"), []
                return Played(documents, actions)
        raise MarkupError(f"more than {MAX_NOTIFIES} notify answers in a row")

    def _wait_at(self, step: dict, prompts: list, documents: list, actions: list) -> Played:
        kind, url = step["action"], (step.get("eventUrl") or [None])[0]
        if kind == "input":
            self.waiting_input = step
            dtmf = step.get("dtmf") or {}
            actions.append(ncco_check.gather(step, prompts))
            self.next = Next("gather", url, finish_on_key="#" if dtmf.get("submitOnHash") else None,
                             num_digits=dtmf.get("maxDigits", 4))
        elif kind == "connect":
            self.synchronous = step.get("eventType") == "synchronous"
            actions.extend(prompts + [ncco_check.connect(step)])
            self.next = Next("dial", url)
        elif kind == "conversation":
            self.synchronous = False
            actions.extend(prompts + [act.Enqueue(step["name"])])
            self.next = Next("dial", url, queue=True)
        elif kind == "record":
            actions.extend(prompts + [ncco_check.record(step)])
            self.next = Next("record", url)
        else:
            raise MarkupError(f"the fake does not play {kind!r}")
        return Played(documents, actions)


def _redirect(step: dict) -> act.Redirect:
    return act.Redirect(step["eventUrl"][0])


def fake_call(send: SendFn, caller: str, called: str, base_url: str,
              secret: str | None) -> FakeVonageCall:
    """The registry's :data:`ivr.providers.registry.FakeFactory`."""
    return FakeVonageCall(send, caller, called, base_url, secret)
