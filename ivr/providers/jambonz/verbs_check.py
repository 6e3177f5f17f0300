"""jambonz verbs as jambonz reads them, for the fake jambonz: each verb
checked against the schema the official node-client validates with
(@jambonz/verb-specifications 0.1.13 ``specs.json``: its property names,
types and required properties, for the verbs and nested objects an IVR
uses), and turned back into :mod:`ivr.engine.actions`.  Never written from
our renderer.  A document jambonz would refuse raises
:class:`ivr.providers.fake_call.MarkupError`."""

from __future__ import annotations

import json
import re

from ivr.engine import actions as act
from ivr.providers.fake_call import MarkupError

_HOOK = "object|string"
#: Per verb or nested object: its properties' types ("#name" is a nested
#: object), and its required properties.
SCHEMA: dict[str, tuple[dict[str, str], tuple[str, ...]]] = {
    "say": ({"id": "string", "text": "string|array", "instructions": "string", "stream": "boolean",
             "loop": "number|string", "synthesizer": "#synthesizer", "earlyMedia": "boolean",
             "disableTtsCache": "boolean", "closeStreamOnEmpty": "boolean"}, ()),
    "play": ({"id": "string", "url": "string|array", "loop": "number|string",
              "earlyMedia": "boolean", "seekOffset": "number|string",
              "timeoutSecs": "number|string", "actionHook": _HOOK}, ("url",)),
    "pause": ({"id": "string", "length": "number"}, ("length",)),
    "gather": ({"id": "string", "actionHook": _HOOK, "finishOnKey": "string", "input": "array",
                "numDigits": "number", "minDigits": "number", "maxDigits": "number",
                "interDigitTimeout": "number", "partialResultHook": _HOOK,
                "speechTimeout": "number", "listenDuringPrompt": "boolean",
                "dtmfBargein": "boolean", "bargein": "boolean", "minBargeinWordCount": "number",
                "timeout": "number", "recognizer": "#recognizer", "play": "#play", "say": "#say",
                "fillerNoise": "object", "actionHookDelayAction": "object"}, ()),
    "dial": ({"id": "string", "actionHook": _HOOK, "onHoldHook": _HOOK,
              "answerOnBridge": "boolean", "callerId": "string", "callerName": "string",
              "confirmHook": _HOOK, "referHook": _HOOK, "dialMusic": "string",
              "dtmfCapture": "object", "dtmfHook": _HOOK, "headers": "object",
              "anchorMedia": "boolean", "exitMediaPath": "boolean",
              "boostAudioSignal": "number|string", "target": "[#target]", "timeLimit": "number",
              "timeout": "number", "proxy": "string", "tag": "object", "forwardPAI": "boolean"},
             ("target",)),
    "enqueue": ({"id": "string", "name": "string", "actionHook": _HOOK, "waitHook": _HOOK,
                 "priority": "number"}, ("name",)),
    "dequeue": ({"id": "string", "name": "string", "actionHook": _HOOK, "timeout": "number",
                 "beep": "boolean", "callSid": "string"}, ("name",)),
    "redirect": ({"id": "string", "actionHook": _HOOK, "statusHook": _HOOK}, ("actionHook",)),
    "hangup": ({"id": "string", "headers": "object"}, ()),
    "synthesizer": ({"vendor": "string", "label": "string", "language": "string",
                     "voice": "string|object", "fallbackVendor": "string",
                     "fallbackLabel": "string", "fallbackLanguage": "string",
                     "fallbackVoice": "string|object", "engine": "string", "gender": "string",
                     "options": "object"}, ("vendor",)),
    "recognizer": ({"vendor": "string", "label": "string", "language": "string",
                    "hints": "array", "hintsBoost": "number", "altLanguages": "array",
                    "profanityFilter": "boolean", "interim": "boolean",
                    "punctuation": "boolean"}, ()),
    "target": ({"type": "string", "confirmHook": _HOOK, "method": "string", "headers": "object",
                "from": "object", "name": "string", "number": "string", "sipUri": "string",
                "auth": "object", "vmail": "boolean", "tenant": "string", "trunk": "string",
                "overrideTo": "string", "proxy": "string"}, ("type",)),
}
#: Verbs a jambonz application may return that the fake does not play.
OTHER_VERBS = frozenset({"alert", "answer", "conference", "config", "dialogflow", "dtmf", "dub",
                         "leave", "lex", "listen", "llm", "message", "rasa", "rest:dial",
                         "sip:decline", "sip:refer", "sip:request", "tag", "transcribe"})
_ENUMS = {("target", "type"): {"phone", "sip", "user", "teams"},
          ("synthesizer", "engine"): {"standard", "neural", "generative", "long-form"}}
_SPEAK = re.compile(r"<speak>(.*)</speak>", re.DOTALL)


def load(document: bytes, url: str) -> list[dict]:
    """The verbs of a document fetched from ``url``, each one checked."""
    try:
        verbs = json.loads(document.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise MarkupError(f"{url}: the answer is not JSON ({error})") from None
    if not isinstance(verbs, list):
        raise MarkupError(f"{url}: jambonz expects a JSON array of verbs")
    for index, verb in enumerate(verbs):
        if not isinstance(verb, dict) or not isinstance(verb.get("verb"), str):
            raise MarkupError(f"{url} [{index}]: each verb is an object with a 'verb'")
        name = verb["verb"]
        if name not in SCHEMA or name in ("synthesizer", "recognizer", "target"):
            kind = "a verb the fake does not play" if name in OTHER_VERBS else "not a jambonz verb"
            raise MarkupError(f"{url} [{index}]: {name!r} is {kind}")
        check(name, {k: v for k, v in verb.items() if k != "verb"}, f"{url} [{index}] {name}")
    return verbs


def check(name: str, value, where: str) -> None:
    """``value`` against the schema of ``name``."""
    if not isinstance(value, dict):
        raise MarkupError(f"{where} must be an object")
    properties, required = SCHEMA[name]
    for field in required:
        if field not in value:
            raise MarkupError(f"{where} requires {field!r}")
    for field, item in value.items():
        if field not in properties:
            raise MarkupError(f"{where} has no property {field!r}")
        _check_type(properties[field], item, f"{where}.{field}")
        allowed = _ENUMS.get((name, field))
        if allowed is not None and item not in allowed:
            raise MarkupError(f"{where}.{field} must be one of {sorted(allowed)}")


def _check_type(spec: str, value, where: str) -> None:
    if spec.startswith("[#"):
        if not isinstance(value, list) or not value:
            raise MarkupError(f"{where} must be a non-empty array")
        for item in value:
            check(spec[2:-1], item, where)
        return
    if spec.startswith("#"):
        check(spec[1:], value, where)
        return
    kinds = {"string": str, "number": (int, float), "boolean": bool, "object": dict,
             "array": list}
    if isinstance(value, bool) and "boolean" not in spec:
        raise MarkupError(f"{where} must be {spec}")
    if not any(isinstance(value, kinds[kind]) for kind in spec.split("|")):
        raise MarkupError(f"{where} must be {spec}")


# --- Back into engine actions ---------------------------------------------------


def say(verb: dict) -> act.Say:
    spoken = _SPEAK.fullmatch(verb["text"]) if isinstance(verb.get("text"), str) else None
    synthesizer = verb.get("synthesizer") or {}
    voice = synthesizer.get("voice")
    if synthesizer.get("vendor") == "aws" and voice:
        voice = f"Polly.{voice}" + ("-Neural" if synthesizer.get("engine") == "neural" else "")
    return act.Say(spoken.group(1) if spoken else str(verb.get("text")), voice=voice,
                   language=synthesizer.get("language"), loop=_int(verb.get("loop")))


def prompt(verb: dict):
    if verb["verb"] == "say":
        return say(verb)
    if verb["verb"] == "play":
        url = verb["url"][0] if isinstance(verb["url"], list) else verb["url"]
        return act.Play(url, loop=_int(verb.get("loop")))
    return act.Pause(int(verb["length"]))


def gather(verb: dict) -> act.Gather:
    prompts: tuple = ()
    if "say" in verb:
        prompts = (say(verb["say"]),)
    elif "play" in verb:
        prompts = (prompt({"verb": "play", **verb["play"]}),)
    recognizer = verb.get("recognizer") or {}
    return act.Gather(prompts=prompts,
                      input=" ".join("dtmf" if i == "digits" else i for i in verb.get("input", ["digits"])),
                      num_digits=verb.get("numDigits"), finish_on_key=verb.get("finishOnKey"),
                      timeout=verb.get("timeout", 5), hints=tuple(recognizer.get("hints", ())),
                      language=recognizer.get("language"))


def dial(verb: dict) -> act.Dial:
    target = verb["target"][0]
    kind = "sip" if target["type"] == "sip" else "number"
    address = target.get("sipUri") if kind == "sip" else target.get("number")
    confirm = verb.get("confirmHook") or target.get("confirmHook")
    return act.Dial(act.DialTarget(kind, str(address)), timeout=verb.get("timeout"),
                    caller_id=verb.get("callerId"),
                    params=tuple((verb.get("headers") or {}).items()),
                    whisper_url=confirm if isinstance(confirm, str) else None)


def _int(value) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None
