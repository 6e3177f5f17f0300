"""A fake jambonz: one inbound call as jambonz plays it to a webhook
application, written from jambonz's docs
(https://docs.jambonz.org/reference/websocket-api/call-control/verb-hook,
the verbs' pages, https://docs.jambonz.org/guides/features/securing-http-endpoints)
and jambonz-feature-server's request code, never from our renderer.

- Every request is a JSON POST: the call's information in snake case
  (``call_sid``, ``direction``, ``from``, ``to``, ``call_id``,
  ``call_status``, ``account_sid``, ``application_sid``…) plus the verb's
  result: a gather's ``reason`` (dtmfDetected with ``digits``,
  speechDetected with ``speech.alternatives[0].transcript``/``.confidence``,
  timeout), a dial's ``dial_call_status``, an enqueue's ``queue_result``
  and ``queue_time``; a redirect's hook carries the call's information only.
- With the webhook secret each request carries
  ``Jambonz-Signature: t=<unix>,v1=<hex>`` over ``"<t>.<body>"``.
- The verbs are checked (:mod:`.verbs_check`) and played in order: say,
  play and pause are heard, the call waits at a gather, a dial or an
  enqueue, a redirect is followed at once, a hangup (or the end of the
  verbs) ends the call, and the call status hook gets ``completed`` with
  its ``duration`` when the caller hangs up.
- A hook's relative URL is resolved against the call's base URL: the
  application's call webhook, replaced by a redirect to a full URL
  (https://docs.jambonz.org/verbs/verbs/redirect).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urljoin, urlsplit

from ivr.engine import actions as act
from ivr.providers.fake_call import HttpRequest, MarkupError, Next, Played, SendFn
from ivr.providers.jambonz import verbs_check
from ivr.providers.jambonz.signature import header_value

#: Redirects followed in a row before the call is given up.
MAX_REDIRECTS = 10
ACCOUNT_SID = "9351f46a-678c-43f5-b8a6-d4eb58d131af"
APPLICATION_SID = "e0c4b1a8-3b3f-4d8e-9d7e-1f2a3b4c5d6e"
#: Our dial statuses as a dial's ``dial_call_status`` and SIP status.
DIAL_STATUS = {"completed": ("completed", 200), "answered": ("completed", 200),
               "busy": ("busy", 486), "no-answer": ("no-answer", 487),
               "failed": ("failed", 503), "canceled": ("failed", 487)}


def queue_result(status: str) -> str:
    """An enqueue's ``queue_result`` for a dial status: an agent took the
    call, the caller hung up waiting, or neither."""
    if status in ("completed", "answered"):
        return "bridged"
    return "hangup" if status == "canceled" else "error"


@dataclass
class FakeJambonzCall:
    """One inbound call, as jambonz plays it to the server ``send`` reaches."""

    send: SendFn
    caller: str
    called: str
    base_url: str = "http://localhost:8080"
    secret: str | None = None
    #: Where the application's call status hook points, under ``base_url``.
    status_path: str = "jambonz/status"
    clock: Callable[[], float] = time.time
    provider: str = "jambonz"
    call_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    next: Next | None = None
    #: The gather the call waits at.
    waiting_gather: dict = field(default_factory=dict)
    #: What a hook's relative URL is resolved against.
    hook_base: str = ""

    # -- requests -----------------------------------------------------------------------
    def post(self, url: str, body: dict) -> bytes:
        """A JSON POST, signed when the fake has the webhook secret."""
        raw = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        headers = {"Content-Type": "application/json"}
        if self.secret:
            headers["Jambonz-Signature"] = header_value(self.secret, int(self.clock()), raw)
        return self.send(HttpRequest("POST", url, headers, raw))

    def call_info(self, status: str = "in-progress") -> dict:
        """What every hook of the call carries (call-info.js, snake-cased)."""
        return {"call_sid": self.call_id, "direction": "inbound", "from": self.caller,
                "to": self.called, "call_id": f"{self.call_id}@sip.example", "sip_status": 200,
                "call_status": status, "account_sid": ACCOUNT_SID,
                "application_sid": APPLICATION_SID}

    # -- FakeCall ------------------------------------------------------------------------
    def answer(self, voice_url: str) -> Played:
        """The application's call webhook."""
        self.hook_base = voice_url
        return self._request(voice_url, self.call_info("trying"))

    def press(self, digits: str) -> Played:
        """Keys at a gather: up to its ``finishOnKey``, at most ``numDigits``."""
        gather = self._expect("gather")
        sent = digits
        finish = self.waiting_gather.get("finishOnKey")
        if finish and finish in sent:
            sent = sent[:sent.index(finish)]
        if self.waiting_gather.get("numDigits"):
            sent = sent[:self.waiting_gather["numDigits"]]
        return self._request(gather.action or "", {**self.call_info(), "reason": "dtmfDetected",
                                                   "digits": sent})

    def say(self, words: str, confidence: float = 0.9) -> Played:
        """Words at a gather that listens for speech."""
        gather = self._expect("gather")
        if "speech" not in self.waiting_gather.get("input", ["digits"]):
            raise MarkupError("the gather the call waits at does not listen for speech")
        language = (self.waiting_gather.get("recognizer") or {}).get("language", "en-US")
        speech = {"language_code": language, "is_final": True,
                  "alternatives": [{"transcript": words, "confidence": confidence}]}
        return self._request(gather.action or "", {**self.call_info(), "reason": "speechDetected",
                                                   "speech": speech})

    def silence(self) -> Played:
        """Nothing until the gather times out."""
        gather = self._expect("gather")
        return self._request(gather.action or "", {**self.call_info(), "reason": "timeout"})

    def transfer_ends(self, status: str, queue_seconds: int = 0) -> Played:
        """The dial's or the enqueue's action hook."""
        nxt = self._expect("dial")
        if nxt.queue:
            result = {"queue_sid": "post-sale", "queue_time": queue_seconds,
                      "queue_result": queue_result(status)}
        else:
            dial_status, sip_status = DIAL_STATUS.get(status, ("failed", 503))
            result = {"dial_call_status": dial_status, "dial_sip_status": sip_status,
                      "dial_call_sid": str(uuid.uuid4())}
        return self._request(nxt.action or "", {**self.call_info(), **result})

    def record(self, seconds: int) -> Played:
        """jambonz keeps no voicemail: nothing ever waits for one."""
        self._expect("record")
        raise MarkupError("jambonz has no recording to report")

    def hang_up(self, duration: int, at: datetime) -> None:
        """The call status hook: ``completed`` with the call's ``duration``."""
        self.post(f"{self.base_url.rstrip('/')}/{self.status_path}",
                  {**self.call_info("completed"), "duration": max(0, duration),
                   "sip_status": 200, "call_termination_by": "caller"})
        self.next = Next("over")

    # -- playing verbs -------------------------------------------------------------------
    def _expect(self, wait: str) -> Next:
        if self.next is None or self.next.wait != wait:
            raise MarkupError(f"the call does not wait at a {wait}")
        return self.next

    def _request(self, url: str, body: dict) -> Played:
        documents: list[bytes] = []
        actions: list = []
        for _ in range(MAX_REDIRECTS + 1):
            document = self.post(url, body)
            documents.append(document)
            self.next = self._play(verbs_check.load(document, url), actions)
            if self.next.wait != "redirect":
                return Played(documents, actions)
            url, body = self.next.action or url, self.call_info()
        raise MarkupError(f"more than {MAX_REDIRECTS} redirects in a row from {url}")

    def _hook(self, hook) -> str | None:
        """A hook as an absolute URL, resolved against the call's base."""
        url = _hook_url(hook)
        if not url:
            return None
        if urlsplit(url).scheme:
            return url
        return urljoin(self.hook_base, url)

    def _play(self, verbs: list[dict], actions: list) -> Next:
        for verb in verbs:
            name = verb["verb"]
            if name in ("say", "play", "pause"):
                actions.append(verbs_check.prompt(verb))
            elif name == "gather":
                self.waiting_gather = verb
                actions.append(verbs_check.gather(verb))
                return Next("gather", self._hook(verb["actionHook"]),
                            finish_on_key=verb.get("finishOnKey"), num_digits=verb.get("numDigits"))
            elif name == "dial":
                actions.append(verbs_check.dial(verb))
                return Next("dial", self._hook(verb.get("actionHook")))
            elif name == "enqueue":
                actions.append(act.Enqueue(verb["name"], wait_url=self._hook(verb.get("waitHook"))))
                return Next("dial", self._hook(verb.get("actionHook")), queue=True)
            elif name == "redirect":
                url = self._hook(verb["actionHook"]) or ""
                if urlsplit(_hook_url(verb["actionHook"])).scheme:
                    self.hook_base = url  # a full URL: the call's new base
                actions.append(act.Redirect(url))
                return Next("redirect", url)
            elif name == "hangup":
                actions.append(act.Hangup())
                return Next("over")
            else:
                raise MarkupError(f"the fake does not play {name!r}")
        return Next("over")  # nothing left: jambonz hangs up


def _hook_url(hook) -> str:
    """A hook is a URL or an object with its ``url``."""
    return (hook.get("url") if isinstance(hook, dict) else hook) or ""


def fake_call(send: SendFn, caller: str, called: str, base_url: str,
              secret: str | None) -> FakeJambonzCall:
    """The registry's :data:`ivr.providers.registry.FakeFactory`."""
    return FakeJambonzCall(send, caller, called, base_url, secret)
