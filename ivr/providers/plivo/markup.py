"""Plivo XML read back as Plivo reads it, for the fake: what each element
may hold, checked against Plivo's documentation, and the document turned
back into :mod:`ivr.engine.actions`.

Written from Plivo's XML reference, not from our renderer: the elements
of a ``Response`` and their attributes (https://www.plivo.com/docs/voice/xml/overview
and each element's page; the element classes of plivo-python 4.63
``plivo/xml``), GetInput's ranges (https://plivo.com/docs/voice/xml/getinput:
``executionTimeout`` 5–60, ``digitEndTimeout`` and ``speechEndTimeout``
2–10 or ``auto``, ``numDigits`` 1–32, one ``finishOnKey`` key or
``none``, hints at most 500 phrases of 100 characters and 10,000 in all),
Dial's (https://plivo.com/docs/voice/xml/dial: a ``Number`` or ``User``
inside, ``callerName`` at most 50 characters) and Speak's (SSML only with
an Amazon Polly voice, at most 3,000 characters:
https://www.plivo.com/docs/voice/concepts/ssml).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from ivr.engine import actions as act
from ivr.providers.fake_call import MarkupError
from ivr.providers.markup_rules import ssml_inside

#: The largest answer Plivo takes (https://www.plivo.com/docs/voice/xml/request/).
MAX_DOCUMENT_BYTES = 100 * 1024

#: Attributes of each element Plivo documents; None: not checked.
ATTRIBUTES: dict[str, frozenset[str] | None] = {
    "Response": frozenset(),
    "Speak": frozenset({"voice", "language", "loop"}),
    "Play": frozenset({"loop"}),
    "Wait": frozenset({"length", "silence", "minSilence", "beep"}),
    "GetInput": frozenset({
        "action", "method", "inputType", "executionTimeout", "digitEndTimeout",
        "speechEndTimeout", "finishOnKey", "numDigits", "speechModel", "hints", "language",
        "interimSpeechResultsCallback", "interimSpeechResultsCallbackMethod", "log", "redirect",
        "profanityFilter"}),
    "Dial": frozenset({
        "action", "method", "hangupOnStar", "timeLimit", "timeout", "callerId", "callerName",
        "confirmSound", "confirmKey", "confirmTimeout", "dialMusic", "callbackUrl",
        "callbackMethod", "redirect", "digitsMatch", "digitsMatchBLeg", "sipHeaders"}),
    "Number": frozenset({"sendDigits", "sendDigitsMode", "sendOnPreanswer"}),
    "User": frozenset({"sendDigits", "sendOnPreanswer", "sipHeaders", "sipAuthUsername",
                       "sipAuthPassword"}),
    "Record": frozenset({
        "action", "method", "fileFormat", "redirect", "timeout", "maxLength", "finishOnKey",
        "playBeep", "recordSession", "startOnDialAnswer", "recordChannelType",
        "transcriptionType", "transcriptionUrl", "transcriptionMethod",
        "transcriptionReportType", "callbackUrl", "callbackMethod"}),
    "Redirect": frozenset({"method"}),
    "Hangup": frozenset({"reason", "schedule"}),
}
#: Elements a Response holds (plivo-python ``ResponseElement`` nestables);
#: the fake plays those in :data:`ATTRIBUTES` and refuses the others.
VERBS = frozenset({"Conference", "Dial", "DTMF", "GetDigits", "GetInput", "Hangup", "Message",
                   "MultiPartyCall", "Play", "PreAnswer", "Record", "Redirect", "Speak", "Stream",
                   "Wait"})
CHILDREN = {"GetInput": frozenset({"Speak", "Play", "Wait"}),
            "Dial": frozenset({"Number", "User"})}
SSML_TAGS = frozenset({"break", "cont", "emphasis", "lang", "p", "phoneme", "prosody", "s",
                       "say-as", "sub", "w"})
_KEY = re.compile(r"[0-9*#]")
_URL = re.compile(r"https?://\S+")


@dataclass
class Step:
    """What one element makes Plivo do next: ``wait`` is "gather", "dial",
    "record", "redirect", or "next" (go on with the following element)."""

    wait: str
    element: ET.Element
    action: act.Action | None
    url: str | None = None


def parse_document(document: bytes, url: str) -> list[ET.Element]:
    """The elements of a Plivo XML ``document`` fetched from ``url``, each
    checked; raises :class:`MarkupError` for one Plivo could not play."""
    if len(document) > MAX_DOCUMENT_BYTES:
        raise MarkupError(f"{url}: the answer is {len(document)} bytes; Plivo takes {MAX_DOCUMENT_BYTES}")
    try:
        root = ET.fromstring(document)
    except ET.ParseError as error:
        raise MarkupError(f"{url}: the answer is not XML ({error})") from None
    if root.tag != "Response":
        raise MarkupError(f"{url}: the root is <{root.tag}>, not <Response>")
    if root.attrib:
        raise MarkupError(f"{url}: <Response> takes no attribute")
    for element in root:
        if element.tag not in VERBS:
            raise MarkupError(f"{url}: <{element.tag}> is not a Plivo XML element")
        if element.tag not in ATTRIBUTES:
            raise MarkupError(f"{url}: the fake Plivo does not play <{element.tag}>")
        _check(element, url)
    return list(root)


def _check(element: ET.Element, url: str) -> None:
    allowed = ATTRIBUTES[element.tag] or frozenset()
    for name in element.attrib:
        if name not in allowed:
            raise MarkupError(f"{url}: <{element.tag}> has no attribute {name!r}")
    if element.tag != "Speak":
        for child in element:
            if child.tag not in CHILDREN.get(element.tag, ()):
                raise MarkupError(f"{url}: <{child.tag}> may not appear inside <{element.tag}>")
            _check(child, url)
    problem = _RULES.get(element.tag, lambda e: None)(element)
    if problem:
        raise MarkupError(f"{url}: <{element.tag}> {problem}")


def _int_in(element: ET.Element, name: str, low: int, high: int | None = None,
            words: tuple[str, ...] = ()) -> str | None:
    value = element.get(name)
    if value is None or value in words:
        return None
    if not value.isascii() or not value.isdigit() or int(value) < low or (high and int(value) > high):
        span = f"{low} to {high}" if high else f"at least {low}"
        return f"{name} must be {span}{' or ' + ' or '.join(words) if words else ''}, not {value!r}"
    return None


def _method(element: ET.Element) -> str | None:
    return None if element.get("method", "POST") in ("GET", "POST") else "method must be GET or POST"


def _action_url(element: ET.Element, required: bool) -> str | None:
    action = element.get("action")
    if action is None:
        return "needs an action URL" if required else None
    return None if _URL.fullmatch(action) else "action must be a fully qualified URL"


def _speak_rules(element: ET.Element) -> str | None:
    voice = element.get("voice", "WOMAN")
    if voice not in ("WOMAN", "MAN") and not re.fullmatch(r"Polly\.[A-Za-z]+", voice):
        return f"voice must be WOMAN, MAN or Polly.<Name>, not {voice!r}"
    if len(element) and not voice.startswith("Polly."):
        return "holds SSML, which needs a Polly voice"
    for node in element.iter():
        if node is not element and node.tag not in SSML_TAGS:
            return f"holds <{node.tag}>, which is not SSML Plivo takes"
    if len("".join(element.itertext())) > 3000:
        return "is longer than 3,000 characters"
    return _int_in(element, "loop", 0)


def _get_input_rules(element: ET.Element) -> str | None:
    input_type = element.get("inputType")
    if input_type not in ("dtmf", "speech", "dtmf speech"):
        return f"inputType must be dtmf, speech or dtmf speech, not {input_type!r}"
    key = element.get("finishOnKey")
    if key is not None and key not in ("", "none") and not _KEY.fullmatch(key):
        return f"finishOnKey must be one of 0-9, * and #, or none, not {key!r}"
    return (_action_url(element, required=True) or _method(element)
            or _int_in(element, "executionTimeout", 5, 60)
            or _int_in(element, "digitEndTimeout", 2, 10, ("auto",))
            or _int_in(element, "speechEndTimeout", 2, 10, ("auto",))
            or _int_in(element, "numDigits", 1, 32) or _hints_problem(element.get("hints")))


def _hints_problem(hints: str | None) -> str | None:
    if hints is None:
        return None
    phrases = hints.split(",")
    if not hints or len(phrases) > 500 or len(hints) > 10_000 or any(len(p) > 100 for p in phrases):
        return "hints must be 1 to 500 phrases of at most 100 characters, 10,000 in all"
    return None


def _dial_rules(element: ET.Element) -> str | None:
    if not len(element):
        return "needs a Number or User inside"
    for noun in element:
        if not (noun.text or "").strip():
            return f"holds an empty <{noun.tag}>"
        if noun.tag == "User" and not noun.text.strip().startswith("sip:"):
            return "holds a User that is not a sip: URI"
    if len(element.get("callerName", "")) > 50:
        return "callerName is longer than 50 characters"
    confirm = element.get("confirmSound")
    if confirm is not None and not _URL.fullmatch(confirm):
        return "confirmSound must be a fully qualified URL"
    return _action_url(element, required=False) or _method(element) or _int_in(element, "timeout", 1)


def _record_rules(element: ET.Element) -> str | None:
    key = element.get("finishOnKey")
    if key is not None and key not in ("", "none") and not re.fullmatch(r"[0-9*#]+", key):
        return f"finishOnKey must be keys or none, not {key!r}"
    return (_action_url(element, required=False) or _method(element)
            or _int_in(element, "timeout", 1) or _int_in(element, "maxLength", 1))


def _url_body(element: ET.Element) -> str | None:
    return None if _URL.fullmatch((element.text or "").strip()) else "must hold a fully qualified URL"


_RULES = {
    "Speak": _speak_rules,
    "Play": lambda e: _url_body(e) or _int_in(e, "loop", 0),
    "Wait": lambda e: _int_in(e, "length", 1),
    "GetInput": _get_input_rules,
    "Dial": _dial_rules,
    "Record": _record_rules,
    "Redirect": lambda e: _url_body(e) or _method(e),
    "Hangup": lambda e: None,
}


# --- Elements back into actions ---------------------------------------------------


def step_of(element: ET.Element) -> Step:
    """The action an element holds and what Plivo does after it."""
    tag = element.tag
    if tag in ("Speak", "Play", "Wait"):
        return Step("next", element, prompt(element))
    if tag == "GetInput":
        return Step("gather", element, _gather(element), element.get("action"))
    if tag == "Dial":
        return Step("dial", element, _dial(element), element.get("action"))
    if tag == "Record":
        return Step("record", element, act.Record(
            max_length=_int(element.get("maxLength")) or 60,
            timeout=_int(element.get("timeout")) or 15,
            finish_on_key=element.get("finishOnKey", "#"),
            play_beep=element.get("playBeep", "true") == "true"), element.get("action"))
    if tag == "Redirect":
        target = (element.text or "").strip()
        return Step("redirect", element, act.Redirect(target), target)
    return Step("over", element, act.Hangup())


def prompt(element: ET.Element):
    """A Speak, Play or Wait as the engine's prompt."""
    if element.tag == "Speak":
        return act.Say(ssml_inside(element), voice=element.get("voice"), language=element.get("language"),
                       loop=_int(element.get("loop")))
    if element.tag == "Play":
        return act.Play((element.text or "").strip(), loop=_int(element.get("loop")))
    return act.Pause(_int(element.get("length")) or 1)


def _gather(element: ET.Element) -> act.Gather:
    key = element.get("finishOnKey")
    return act.Gather(
        prompts=tuple(prompt(child) for child in element),
        input=element.get("inputType", "dtmf"),
        num_digits=_int(element.get("numDigits")),
        finish_on_key="" if key == "none" else key,
        timeout=_int(element.get("executionTimeout")) or 15,
        speech_timeout=element.get("speechEndTimeout"),
        hints=tuple(h.strip() for h in (element.get("hints") or "").split(",") if h.strip()),
        language=element.get("language"))


def _dial(element: ET.Element) -> act.Dial:
    noun = element[0]
    address = (noun.text or "").strip()
    target = act.DialTarget("number", address) if noun.tag == "Number" else act.DialTarget(
        "sip", address)
    return act.Dial(target, timeout=_int(element.get("timeout")), caller_id=element.get("callerId"),
                    whisper_url=element.get("confirmSound"))


def _int(value: str | None) -> int | None:
    return int(value) if value is not None and value.isascii() and value.isdigit() else None

