"""The engine's actions as jambonz verbs: a JSON array.

Sources: https://docs.jambonz.org/verbs/verbs/say (and ``/play``,
``/pause``, ``/gather``, ``/dial``, ``/enqueue``, ``/redirect``,
``/hangup``) and the schema the official node-client validates with,
@jambonz/verb-specifications 0.1.13 ``specs.json``: ``say`` (``text``,
SSML allowed, ``synthesizer`` with its required ``vendor``, ``loop``),
``play`` (``url``), ``pause`` (``length``), ``gather`` (``input``
digits/speech, ``actionHook``, ``timeout``, ``numDigits``,
``finishOnKey``, ``recognizer.language``/``.hints``, one nested ``say``
or ``play``), ``dial`` (``target`` phone/sip, ``actionHook``,
``confirmHook`` played to the callee first, ``timeout``, ``callerId``,
``headers``), ``enqueue`` (``name``, ``actionHook``, ``waitHook``),
``redirect`` (``actionHook``) and ``hangup``.

jambonz has a redirect and queues, so a hold polls with ``redirect`` and a
queue is a queue; a silent caller's gather reports ``reason: timeout`` to
its ``actionHook``.  It keeps no voicemail: see :mod:`.gaps`.
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
from ivr.providers.jambonz import gaps
from ivr.providers.markup import reachable
from ivr.providers.urls import with_query

CONTENT_TYPE = b"application/json"
_POLLY = re.compile(r"Polly\.([A-Za-z]+)(-Neural)?\Z")


def render_verbs(actions: Iterable[Action], next_url: str) -> bytes:
    """The verbs (UTF-8 JSON) for ``actions``; answers come back to
    ``next_url``.  Raises ``ValueError`` for an effect, an action after a
    terminal one, or a value jambonz cannot take."""
    verbs: list[dict] = []
    for action in reachable(actions):
        verbs.extend(_verbs(action, next_url))
    return json.dumps(verbs, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _verbs(action: Action, next_url: str) -> list[dict]:
    match action:
        case Say() | Play() | Pause():
            return [_prompt(action)]
        case Gather():
            return _gather(action, next_url)
        case Dial():
            return [_dial(action, next_url)]
        case Enqueue():
            return [_enqueue(action.queue, action.wait_url, action.params, next_url)]
        case Record():
            gaps.log_once("no-record", "jambonz keeps no voicemail: the flow goes on unrecorded")
            return [{"verb": "pause", "length": 1}, {"verb": "redirect", "actionHook": next_url}]
        case Redirect():
            return [{"verb": "redirect", "actionHook": action.url}]
        case Hangup():
            return [{"verb": "hangup"}]
        case _:
            raise ValueError(f"cannot render {action!r} as jambonz verbs")


def _prompt(prompt: Say | Play | Pause) -> dict:
    match prompt:
        case Say():
            return _say(prompt.ssml, prompt.voice, prompt.language, prompt.loop)
        case Play():
            return {"verb": "play", "url": prompt.url, **_loop(prompt.loop)}
        case Pause():
            return {"verb": "pause", "length": max(1, prompt.length)}
        case _:
            raise ValueError(f"a prompt must be Say, Play or Pause, not {type(prompt).__name__}")


def _say(ssml: str, voice: str | None, language: str | None, loop: int | None) -> dict:
    say: dict = {"verb": "say", "text": f"<speak>{ssml}</speak>", **_loop(loop)}
    synthesizer = _synthesizer(voice, language)
    if synthesizer:
        say["synthesizer"] = synthesizer
    return say


def _synthesizer(voice: str | None, language: str | None) -> dict | None:
    """Our Amazon Polly voice names (``Polly.Lea-Neural``) as jambonz's
    ``aws`` vendor; any other voice is left to the application's default
    synthesizer, which then also picks the language."""
    match = _POLLY.match(voice or "")
    if match is None:
        if voice:
            gaps.log_once("voice", "a voice that is not Amazon Polly's is left to the "
                                   "application's default synthesizer")
        return None
    synthesizer = {"vendor": "aws", "voice": match.group(1)}
    if language:
        synthesizer["language"] = language
    if match.group(2):
        synthesizer["engine"] = "neural"
    return synthesizer


def _loop(loop: int | None) -> dict:
    return {"loop": loop} if loop is not None else {}


def _gather(gather: Gather, next_url: str) -> list[dict]:
    inputs = [name for kind, name in (("dtmf", "digits"), ("speech", "speech"))
              if kind in gather.input.split()]
    verb: dict = {"verb": "gather", "input": inputs or ["digits"], "actionHook": next_url,
                  "timeout": gather.timeout, "dtmfBargein": True}
    if gather.num_digits:
        verb["numDigits"] = gather.num_digits
    if gather.finish_on_key:
        verb["finishOnKey"] = gather.finish_on_key
    if "speech" in verb["input"]:
        verb["bargein"] = True
        recognizer: dict = {}
        if gather.language:
            recognizer["language"] = gather.language
        if gather.hints:
            recognizer["hints"] = list(gather.hints)
        if recognizer:
            verb["recognizer"] = recognizer
    before, nested = _nested_prompt(gather.prompts)
    verb.update(nested)
    return before + [verb]


def _nested_prompt(prompts) -> tuple[list[dict], dict]:
    """A gather nests one ``say`` (or one ``play``): spoken prompts and
    pauses become one SSML text; otherwise the prompts play before it,
    without barge-in."""
    if not prompts:
        return [], {}
    if all(isinstance(p, (Say, Pause)) for p in prompts):
        first = next((p for p in prompts if isinstance(p, Say)), None)
        # Joined by a space: one prompt's last sentence is not run into the next's.
        text = " ".join(p.ssml if isinstance(p, Say) else f'<break time="{p.length}s"/>'
                        for p in prompts)
        say = _say(text, first.voice if first else None, first.language if first else None, None)
        return [], {"say": {k: v for k, v in say.items() if k != "verb"}}
    if len(prompts) == 1 and isinstance(prompts[0], Play):
        play = _prompt(prompts[0])
        return [], {"play": {k: v for k, v in play.items() if k != "verb"}}
    gaps.log_once("gather-prompts", "a gather nests one say or play: mixed prompts play before it")
    return [_prompt(p) for p in prompts], {}


def _dial(dial: Dial, next_url: str) -> dict:
    target = dial.target
    if target.kind == "number":
        endpoint: dict = {"type": "phone", "number": target.address}
    elif target.kind == "sip":
        endpoint = {"type": "sip", "sipUri": target.address}
    elif target.kind == "queue":
        return _enqueue(target.address, dial.whisper_url, dial.params, next_url)
    else:
        raise ValueError(f"unknown dial target kind {target.kind!r} (expected number, sip or queue)")
    verb: dict = {"verb": "dial", "target": [endpoint], "actionHook": next_url}
    whisper = with_query(dial.whisper_url, dial.params)
    if whisper:
        verb["confirmHook"] = whisper
    if dial.params:
        # Custom SIP headers on the call to the agent.
        verb["headers"] = dict(dial.params)
    if dial.timeout is not None:
        verb["timeout"] = dial.timeout
    if dial.caller_id:
        verb["callerId"] = dial.caller_id
    return verb


def _enqueue(name: str, wait_url: str | None, params, next_url: str) -> dict:
    if not 0 < len(name) <= 64:
        raise ValueError(f"queue name must be 1 to 64 chars, got {len(name)}")
    verb = {"verb": "enqueue", "name": name, "actionHook": next_url}
    wait = with_query(wait_url, params)
    if wait:
        verb["waitHook"] = wait
    return verb
