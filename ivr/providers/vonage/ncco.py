"""The engine's actions as an NCCO: a JSON array of Vonage actions.

Source: https://developer.vonage.com/voice/voice-api/ncco-reference and the
official SDKs' NCCO models (vonage-voice ``models/ncco.py``,
``models/input_types.py``, ``models/connect_endpoints.py``; @vonage/voice
``types/NCCO``): ``talk`` (``text`` up to 1,500 characters, SSML inside
``<speak>``, ``language``, ``bargeIn``, ``loop``), ``stream``
(``streamUrl``), ``input`` (``type``, ``dtmf.timeOut`` 0-10,
``dtmf.maxDigits`` 1-20, ``dtmf.submitOnHash``, ``speech.language``,
``speech.context``, ``speech.startTimeout`` 1-60, ``eventUrl``),
``connect`` (``endpoint`` phone/sip, ``from`` or ``randomFromNumber``,
``timeout``, ``eventType: synchronous``: its ``eventUrl`` may answer a
timeout with an NCCO; "a connect action ends when the endpoint you are
calling is busy or unavailable" and the next action runs; a phone
endpoint's ``onAnswer.url`` is an NCCO played to the callee first), ``conversation``
(``name``, ``startOnEnter``), ``record`` (``endOnKey``, ``timeOut`` 3-7200,
``endOnSilence`` 3-10, ``beepStart``, ``eventUrl``) and ``notify``
(``payload``, ``eventUrl``: the NCCO it answers replaces the current one).

NCCO has no redirect and no hangup: the caller's input goes to the
``input``'s ``eventUrl``, whose answer is the next NCCO; a silent caller
goes there too (``dtmf.timed_out``); a hold's poll is a ``notify``; the call
ends when the actions run out.  A transfer's outcome goes to the turn's URL
as the connect's event, and a ``notify`` to the same URL follows the
connect (or the conversation): when the transfer ends without its answer
being taken, the notify fetches that same turn's document again.  Where NCCO cannot do what an action asks,
the nearest equivalent is used and logged once (see :mod:`.gaps`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

from ivr.engine.actions import (
    Action,
    Dial,
    Enqueue,
    Gather,
    Hangup,
    Pause,
    Play,
    Record,
    Redirect,
    Say,
)
from ivr.providers.markup import reachable
from ivr.providers.urls import with_query
from ivr.providers.vonage import gaps

CONTENT_TYPE = b"application/json"
MAX_TALK_TEXT = 1500
MAX_DTMF_TIMEOUT = 10
MAX_DIGITS = 20
#: Longest SSML ``<break>`` said in one talk action.
MAX_BREAK = 10

#: What a notify tells us when its answer is the next NCCO.
POLL_PAYLOAD = {"ivr": "poll"}
RECORDED_PAYLOAD = {"ivr": "recorded"}
TRANSFER_PAYLOAD = {"ivr": "transfer"}


def render_ncco(actions: Iterable[Action], next_url: str) -> bytes:
    """The NCCO (UTF-8 JSON) for ``actions``; input, a transfer's outcome
    and a recording come back to ``next_url``.  Raises ``ValueError`` for
    an effect, an action after a terminal one, or a value NCCO cannot hold."""
    ncco: list[dict] = []
    for action in reachable(actions):
        ncco.extend(_actions(action, next_url))
    return json.dumps(ncco, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _actions(action: Action, next_url: str) -> list[dict]:
    match action:
        case Say() | Play() | Pause():
            return _prompt(action, barge_in=False)
        case Gather():
            return _gather(action, next_url)
        case Dial():
            return [_connect(action, next_url), _notify(TRANSFER_PAYLOAD, next_url)]
        case Enqueue():
            gaps.log_once("no-queue", "Vonage has no queue: the caller waits in a conversation")
            return [_conversation(action.queue, next_url), _notify(TRANSFER_PAYLOAD, next_url)]
        case Record():
            return _record(action, next_url)
        case Redirect():
            return [_notify(POLL_PAYLOAD, action.url)]
        case Hangup():
            return []  # the call ends when the actions run out
        case _:
            raise ValueError(f"cannot render {action!r} as NCCO")


def _prompt(prompt: Say | Play | Pause, barge_in: bool) -> list[dict]:
    extra = {"bargeIn": True} if barge_in else {}
    match prompt:
        case Say():
            return [_talk(prompt.ssml, prompt.language, prompt.loop, extra)]
        case Play():
            return [{"action": "stream", "streamUrl": [prompt.url], **_loop(prompt.loop), **extra}]
        case Pause():
            # A pause is said as silence: NCCO's own pause (``wait``) is too
            # recent to rely on, and a talk may come between prompts and input.
            seconds, chunks = max(1, prompt.length), []
            while seconds > 0:
                step = min(seconds, MAX_BREAK)
                chunks.append(_talk(f'<break time="{step}s"/>', None, None, extra))
                seconds -= step
            return chunks
        case _:
            raise ValueError(f"a prompt must be Say, Play or Pause, not {type(prompt).__name__}")


def _talk(ssml: str, language: str | None, loop: int | None, extra: dict) -> dict:
    text = f"<speak>{ssml}</speak>"
    if len(text) > MAX_TALK_TEXT:
        raise ValueError(f"talk text is {len(text)} characters; Vonage takes {MAX_TALK_TEXT}")
    talk = {"action": "talk", "text": text, **_loop(loop), **extra}
    if language:
        talk["language"] = language
    return talk


def _loop(loop: int | None) -> dict:
    return {"loop": loop} if loop is not None else {}


def _gather(gather: Gather, next_url: str) -> list[dict]:
    prompts = [item for prompt in gather.prompts for item in _prompt(prompt, barge_in=True)]
    types = [kind for kind in ("dtmf", "speech") if kind in gather.input.split()]
    step: dict = {"action": "input", "type": types or ["dtmf"],
                  "eventUrl": [next_url], "eventMethod": "POST"}
    if "dtmf" in step["type"]:
        if gather.timeout > MAX_DTMF_TIMEOUT:
            gaps.log_once("dtmf-timeout", "Vonage waits at most 10 s for keys: the timeout is cut")
        step["dtmf"] = {"timeOut": min(gather.timeout, MAX_DTMF_TIMEOUT),
                        # Vonage stops at 4 keys unless told more.
                        "maxDigits": min(gather.num_digits or MAX_DIGITS, MAX_DIGITS),
                        "submitOnHash": gather.finish_on_key == "#"}
        if gather.finish_on_key not in (None, "", "#"):
            gaps.log_once("finish-key", "Vonage ends input only on #: the finish key is dropped")
    if "speech" in step["type"]:
        speech: dict = {"startTimeout": max(1, min(gather.timeout, 60))}
        if gather.language:
            speech["language"] = gather.language
        if gather.hints:
            speech["context"] = list(gather.hints)
        step["speech"] = speech
    return prompts + [step]


def _connect(dial: Dial, next_url: str) -> dict:
    target = dial.target
    if target.kind == "number":
        endpoint: dict = {"type": "phone", "number": _msisdn(target.address)}
        whisper = with_query(dial.whisper_url, dial.params)
        if whisper:
            endpoint["onAnswer"] = {"url": whisper}
    elif target.kind == "sip":
        endpoint = {"type": "sip", "uri": target.address}
        if dial.params:
            endpoint["headers"] = dict(dial.params)
    elif target.kind == "queue":
        gaps.log_once("no-queue", "Vonage has no queue: the caller waits in a conversation")
        return _conversation(target.address, next_url)
    else:
        raise ValueError(f"unknown dial target kind {target.kind!r} (expected number, sip or queue)")
    connect: dict = {"action": "connect", "endpoint": [endpoint],
                     "eventType": "synchronous", "eventUrl": [next_url], "eventMethod": "POST"}
    if dial.caller_id:
        connect["from"] = _msisdn(dial.caller_id)
    else:
        connect["randomFromNumber"] = True  # one of the application's numbers
    if dial.timeout is not None:
        connect["timeout"] = dial.timeout
    return connect


def _conversation(name: str, next_url: str) -> dict:
    """The nearest NCCO has to a queue: a named conversation the caller
    waits in (``startOnEnter: false``: music until an agent, its
    moderator, joins)."""
    if not 0 < len(name) <= 100:
        raise ValueError(f"conversation name must be 1 to 100 chars, got {len(name)}")
    return {"action": "conversation", "name": name, "startOnEnter": False,
            "eventUrl": [next_url], "eventMethod": "POST"}


def _record(record: Record, next_url: str) -> list[dict]:
    step: dict = {"action": "record", "timeOut": max(3, min(record.max_length, 7200)),
                  "endOnSilence": max(3, min(record.timeout, 10)),
                  "beepStart": record.play_beep, "eventUrl": [next_url], "eventMethod": "POST"}
    if record.finish_on_key:
        step["endOnKey"] = record.finish_on_key[0]
    # The record's event answers nothing: the notify after it fetches the next NCCO.
    return [step, _notify(RECORDED_PAYLOAD, next_url)]


def _notify(payload: dict, url: str) -> dict:
    return {"action": "notify", "payload": dict(payload), "eventUrl": [url], "eventMethod": "POST"}


def _msisdn(number: str) -> str:
    """A number as Vonage writes it: international digits without ``+``."""
    digits = number[1:] if number.startswith("+") else number
    if not re.fullmatch(r"[0-9]{6,15}", digits):
        raise ValueError(f"{number[:20]!r} is not an international phone number")
    return digits
