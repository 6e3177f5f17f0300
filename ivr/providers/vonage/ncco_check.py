"""An NCCO as Vonage reads it, for the fake Vonage: each action checked
against the documented actions, their fields and ranges, and turned back
into :mod:`ivr.engine.actions`.  Written from the NCCO reference
(https://developer.vonage.com/voice/voice-api/ncco-reference) and the
official SDKs' models (vonage-voice ``models/ncco.py``,
``models/input_types.py``, ``models/connect_endpoints.py``), never from
our renderer.  A document Vonage could not play raises
:class:`ivr.providers.fake_call.MarkupError`."""

from __future__ import annotations

import json
import re

from ivr.engine import actions as act
from ivr.providers.fake_call import MarkupError

#: Each documented action and the fields it may have.
FIELDS: dict[str, frozenset[str]] = {
    "talk": frozenset({"text", "bargeIn", "loop", "level", "language", "style", "premium"}),
    "stream": frozenset({"streamUrl", "level", "bargeIn", "loop"}),
    "input": frozenset({"type", "dtmf", "speech", "eventUrl", "eventMethod"}),
    "connect": frozenset({"endpoint", "from", "randomFromNumber", "eventType", "timeout", "limit",
                          "machineDetection", "advancedMachineDetection", "eventUrl",
                          "eventMethod", "ringbackTone"}),
    "conversation": frozenset({"name", "musicOnHoldUrl", "startOnEnter", "endOnExit", "record",
                               "canSpeak", "canHear", "mute", "eventUrl", "eventMethod"}),
    "record": frozenset({"format", "split", "channels", "endOnSilence", "endOnKey", "timeOut",
                         "beepStart", "eventUrl", "eventMethod", "transcription"}),
    "notify": frozenset({"payload", "eventUrl", "eventMethod"}),
    "wait": frozenset({"timeout"}),
    "transfer": frozenset({"conversationId", "canHear", "canSpeak", "mute"}),
}
_DTMF = frozenset({"timeOut", "maxDigits", "submitOnHash"})
_SPEECH = frozenset({"uuid", "endOnSilence", "language", "context", "startTimeout", "maxDuration",
                     "saveAudio", "sensitivity"})
_BREAK = re.compile(r'<speak><break time="([0-9]+)s"/></speak>')
_SPEAK = re.compile(r"<speak>(.*)</speak>", re.DOTALL)


def load(document: bytes, url: str) -> list[dict]:
    """The actions of an NCCO fetched from ``url``, each one checked."""
    try:
        ncco = json.loads(document.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise MarkupError(f"{url}: the answer is not JSON ({error})") from None
    if not isinstance(ncco, list):
        raise MarkupError(f"{url}: an NCCO is a JSON array of actions")
    for index, action in enumerate(ncco):
        check_action(action, f"{url} [{index}]")
    _check_barge_in(ncco, url)
    return ncco


def check_action(action, where: str) -> None:
    """One action against its documented fields and ranges."""
    if not isinstance(action, dict) or action.get("action") not in FIELDS:
        raise MarkupError(f"{where}: not a documented NCCO action")
    name = action["action"]
    unknown = set(action) - FIELDS[name] - {"action"}
    if unknown:
        raise MarkupError(f"{where}: {name} has no field {sorted(unknown)[0]!r}")
    if "eventUrl" in action:
        _url_list(action["eventUrl"], f"{where}: {name}.eventUrl")
    check = _CHECKS.get(name)
    if check:
        check(action, f"{where}: {name}")


def _url_list(value, where: str) -> str:
    if (not isinstance(value, list) or len(value) != 1 or not isinstance(value[0], str)
            or not value[0].startswith(("http://", "https://"))):
        raise MarkupError(f"{where} must be an array of one http(s) URL")
    return value[0]


def _range(value, low, high, where: str, kind=int) -> None:
    if value is None:
        return
    if not isinstance(value, kind) or isinstance(value, bool) or not low <= value <= high:
        raise MarkupError(f"{where} must be from {low} to {high}")


def _check_talk(action: dict, where: str) -> None:
    text = action.get("text")
    if not isinstance(text, str) or not text:
        raise MarkupError(f"{where}.text is required")
    if len(text) > 1500:
        raise MarkupError(f"{where}.text is longer than 1500 characters")
    _range(action.get("loop"), 0, 1_000_000, f"{where}.loop")


def _check_stream(action: dict, where: str) -> None:
    _url_list(action.get("streamUrl"), f"{where}.streamUrl")
    _range(action.get("loop"), 0, 1_000_000, f"{where}.loop")


def _check_input(action: dict, where: str) -> None:
    types = action.get("type")
    if not isinstance(types, list) or not types or not set(types) <= {"dtmf", "speech"}:
        raise MarkupError(f"{where}.type must list dtmf and/or speech")
    dtmf, speech = action.get("dtmf") or {}, action.get("speech") or {}
    if not isinstance(dtmf, dict) or set(dtmf) - _DTMF:
        raise MarkupError(f"{where}.dtmf has a field NCCO does not document")
    if not isinstance(speech, dict) or set(speech) - _SPEECH:
        raise MarkupError(f"{where}.speech has a field NCCO does not document")
    _range(dtmf.get("timeOut"), 0, 10, f"{where}.dtmf.timeOut")
    _range(dtmf.get("maxDigits"), 1, 20, f"{where}.dtmf.maxDigits")
    _range(speech.get("startTimeout"), 1, 60, f"{where}.speech.startTimeout")
    context = speech.get("context", [])
    if not isinstance(context, list) or not all(isinstance(c, str) for c in context):
        raise MarkupError(f"{where}.speech.context must be an array of strings")


def _check_connect(action: dict, where: str) -> None:
    endpoints = action.get("endpoint")
    if not isinstance(endpoints, list) or len(endpoints) != 1 or not isinstance(endpoints[0], dict):
        raise MarkupError(f"{where}.endpoint must be an array of one endpoint")
    endpoint = endpoints[0]
    if endpoint.get("type") == "phone":
        if not re.fullmatch(r"[0-9]{6,15}", str(endpoint.get("number", ""))):
            raise MarkupError(f"{where}: a phone endpoint's number is international digits")
        on_answer = endpoint.get("onAnswer")
        if on_answer is not None and not isinstance((on_answer or {}).get("url"), str):
            raise MarkupError(f"{where}: onAnswer needs a url")
    elif endpoint.get("type") == "sip":
        if not str(endpoint.get("uri", "")).startswith(("sip:", "sips:")):
            raise MarkupError(f"{where}: a sip endpoint needs a sip: uri")
    elif endpoint.get("type") not in ("app", "websocket", "vbc"):
        raise MarkupError(f"{where}: unknown endpoint type")
    if ("from" in action) == bool(action.get("randomFromNumber")):
        raise MarkupError(f"{where}: give exactly one of from and randomFromNumber")
    if action.get("eventType") not in (None, "synchronous"):
        raise MarkupError(f"{where}.eventType can only be synchronous")
    _range(action.get("limit"), 1, 7200, f"{where}.limit")


def _check_conversation(action: dict, where: str) -> None:
    if not isinstance(action.get("name"), str) or not action["name"]:
        raise MarkupError(f"{where}.name is required")


def _check_record(action: dict, where: str) -> None:
    _range(action.get("timeOut"), 3, 7200, f"{where}.timeOut")
    _range(action.get("endOnSilence"), 3, 10, f"{where}.endOnSilence")
    key = action.get("endOnKey")
    if key is not None and not (isinstance(key, str) and re.fullmatch(r"[0-9#*]", key)):
        raise MarkupError(f"{where}.endOnKey must be one key")


def _check_notify(action: dict, where: str) -> None:
    if not isinstance(action.get("payload"), dict) or "eventUrl" not in action:
        raise MarkupError(f"{where} needs a payload object and an eventUrl")


_CHECKS = {"talk": _check_talk, "stream": _check_stream, "input": _check_input,
           "connect": _check_connect, "conversation": _check_conversation,
           "record": _check_record, "notify": _check_notify}


def _check_barge_in(ncco: list[dict], url: str) -> None:
    """"If you set bargeIn to true the next non-talk action in the NCCO stack
    must be an input action" (NCCO reference, talk)."""
    for index, action in enumerate(ncco):
        if action["action"] in ("talk", "stream") and action.get("bargeIn"):
            later = next((a for a in ncco[index + 1:] if a["action"] not in ("talk", "stream")), None)
            if later is None or later["action"] != "input":
                raise MarkupError(f"{url} [{index}]: bargeIn needs an input after it")


# --- Back into engine actions ---------------------------------------------------


def prompt(action: dict):
    """A talk or stream action as a prompt (a talk of silence as a Pause)."""
    if action["action"] == "stream":
        return act.Play(action["streamUrl"][0], loop=action.get("loop"))
    text = action["text"]
    pause = _BREAK.fullmatch(text)
    if pause:
        return act.Pause(int(pause.group(1)))
    spoken = _SPEAK.fullmatch(text)
    return act.Say(spoken.group(1) if spoken else text, language=action.get("language"),
                   loop=action.get("loop"))


def gather(action: dict, prompts: list) -> act.Gather:
    dtmf, speech = action.get("dtmf") or {}, action.get("speech") or {}
    return act.Gather(prompts=tuple(prompts), input=" ".join(action["type"]),
                      num_digits=dtmf.get("maxDigits", 4),
                      finish_on_key="#" if dtmf.get("submitOnHash") else None,
                      timeout=dtmf.get("timeOut", speech.get("startTimeout", 3)),
                      hints=tuple(speech.get("context", ())), language=speech.get("language"))


def connect(action: dict) -> act.Dial:
    endpoint = action["endpoint"][0]
    if endpoint["type"] == "sip":
        return act.Dial(act.DialTarget("sip", endpoint["uri"]), timeout=action.get("timeout"),
                        params=tuple((endpoint.get("headers") or {}).items()))
    return act.Dial(act.DialTarget("number", "+" + str(endpoint.get("number", ""))),
                    timeout=action.get("timeout"),
                    caller_id=("+" + action["from"]) if "from" in action else None,
                    whisper_url=(endpoint.get("onAnswer") or {}).get("url"))


def record(action: dict) -> act.Record:
    return act.Record(max_length=action.get("timeOut", 7200), timeout=action.get("endOnSilence", 3),
                      finish_on_key=action.get("endOnKey", ""), play_beep=bool(action.get("beepStart")))
