"""The engine's caller-facing actions as a Plivo XML document.

Each element follows its page of Plivo's XML reference
(https://www.plivo.com/docs/voice/xml/overview) and the element classes of
plivo-python 4.63 (``plivo/xml/*Element.py``): ``Speak`` (voice, language,
loop; SSML children only with an Amazon Polly voice), ``Play``, ``Wait``,
``GetInput`` (https://plivo.com/docs/voice/xml/getinput), ``Dial`` with
``Number``/``User`` (https://plivo.com/docs/voice/xml/dial), ``Record``,
``Redirect`` and ``Hangup``.  Where Plivo cannot do what an action asks,
the nearest equivalent is used and said once in the log (see
:mod:`ivr.providers.plivo.gaps`).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable
from urllib.parse import urlencode, urlsplit, urlunsplit

from twisted.logger import Logger

from ivr.engine.actions import (
    TERMINAL,
    Action,
    Dial,
    Enqueue,
    Gather,
    Hangup,
    Lookup,
    Pause,
    Play,
    Record,
    Redirect,
    Say,
)

#: The largest document Plivo takes in answer to a request ("100 Kb":
#: https://www.plivo.com/docs/voice/xml/request/).
MAX_DOCUMENT_BYTES = 100 * 1024
#: GetInput's documented ranges (seconds, digits).
EXECUTION_TIMEOUT = (5, 60)
END_TIMEOUT = (2, 10)
MAX_NUM_DIGITS = 32
#: GetInput's hints: at most 500 phrases of 100 characters, 10,000 in all.
MAX_HINTS, MAX_HINT, MAX_HINTS_TEXT = 500, 100, 10_000
#: How long a dialled number rings when the flow does not say: Plivo's Dial
#: has no default timeout (Dial page); TwiML's default is 30 s.
DIAL_TIMEOUT = 30
#: Where a queue is dialled: Plivo XML has no queue, so a queue transfer
#: rings the SIP user named after it (a Plivo endpoint's URI is
#: ``sip:<username>@phone.plivo.com``).
QUEUE_SIP_DOMAIN = "phone.plivo.com"
#: SSML elements inside ``<Speak>`` (plivo-python ``speakElement.py`` nestables).
SSML_TAGS = frozenset({"break", "cont", "emphasis", "lang", "p", "phoneme", "prosody", "s",
                       "say-as", "sub", "w"})
#: Plivo's own voices; any other is an Amazon Polly one, ``Polly.<Name>``.
PLIVO_VOICES = {"man": "MAN", "woman": "WOMAN", "alice": "WOMAN"}

_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>'
_log = Logger()
_logged: set[str] = set()


def log_once(key: str, message: str) -> None:
    """Say in the log, once per process, that an equivalent replaced what
    the flow asked (lint names every such place beforehand)."""
    if key not in _logged:
        _logged.add(key)
        _log.info("plivo: {message}", message=message)


def render_plivo_xml(actions: Iterable[Action], action_url: str) -> bytes:
    """Caller-facing ``actions`` as a Plivo XML document (UTF-8 bytes);
    input, dial and recording results go to ``action_url`` by POST.

    Raises ``ValueError`` for what cannot become a document Plivo plays: a
    ``Lookup``, an action after a terminal one, malformed SSML, or a
    document over Plivo's 100 KB."""
    verbs: list[str] = []
    ended_by = None
    for action in actions:
        if isinstance(action, Lookup):
            raise ValueError(f"Lookup {action.request_id!r} is an effect for the runner, not for Plivo")
        if ended_by is not None:
            raise ValueError(f"{type(action).__name__} follows {type(ended_by).__name__} "
                             "and would never be reached")
        verbs.extend(_verbs(action, action_url))
        if isinstance(action, TERMINAL):
            ended_by = action
    document = f"{_DECLARATION}<Response>{''.join(verbs)}</Response>".encode()
    if len(document) > MAX_DOCUMENT_BYTES:
        raise ValueError(f"Plivo XML document is {len(document)} bytes; Plivo takes at most "
                         f"{MAX_DOCUMENT_BYTES}")
    return document


def _verbs(action: Action, action_url: str) -> list[str]:
    match action:
        case Say() | Play() | Pause():
            return [_prompt(action)]
        case Gather():
            # Plivo goes on to the next element when nobody answers: the
            # silent caller is sent back to the engine.
            return [_get_input(action, action_url), _element("Redirect", _text(action_url), method="POST")]
        case Dial():
            return [_dial(action, action_url)]
        case Enqueue():
            return [_element("Dial", _queue_user(action.queue), action=action_url or None,
                             method="POST", confirmSound=_whisper(None, action.params, action_url))]
        case Record():
            return [_element("Record", None, action=action_url or None, method="POST",
                             maxLength=action.max_length, timeout=action.timeout,
                             finishOnKey=action.finish_on_key or "none", playBeep=action.play_beep)]
        case Redirect():
            return [_element("Redirect", _text(action.url), method="POST")]
        case Hangup():
            return ["<Hangup />"]
    raise ValueError(f"cannot render {action!r} as Plivo XML")


def _prompt(prompt: Say | Play | Pause) -> str:
    match prompt:
        case Say():
            return _speak(prompt)
        case Play():
            return _element("Play", _text(prompt.url), loop=prompt.loop)
        case Pause():
            return _element("Wait", None, length=max(1, prompt.length))
    raise ValueError(f"a prompt must be Say, Play or Pause, not {type(prompt).__name__}")


def plivo_voice(voice: str | None) -> str | None:
    """Our voice name as Plivo's: ``WOMAN``/``MAN``, or an Amazon Polly
    voice ``Polly.<Name>``.  Plivo's SSML page names Polly voices without
    an engine suffix, so ``-Neural``/``-Generative`` is dropped (whether
    Plivo takes the suffix is not documented).  None: Plivo's default."""
    if not voice:
        return None
    if voice.startswith("Polly."):
        return voice.split("-", 1)[0]
    return PLIVO_VOICES.get(voice.lower())


def _speak(say: Say) -> str:
    try:
        element = ET.fromstring(f"<Speak>{say.ssml}</Speak>")
    except ET.ParseError as exc:
        raise ValueError(f"Say text is not a well-formed XML fragment ({exc}): {say.ssml[:80]!r}") from None
    voice = plivo_voice(say.voice)
    for node in element.iter():
        if node is not element and node.tag not in SSML_TAGS:
            raise ValueError(f"<{node.tag}> in Say text is not an SSML element Plivo accepts")
    if len(element) and not (voice or "").startswith("Polly."):
        # SSML only works with a Polly voice: the words are kept, the markup is not.
        log_once("ssml", "SSML needs an Amazon Polly voice on Plivo: spoken as plain text")
        element = ET.fromstring(f"<Speak>{_text(''.join(element.itertext()))}</Speak>")
    element.attrib = _attributes(voice=voice, language=say.language, loop=say.loop)
    return ET.tostring(element, encoding="unicode")


def _get_input(gather: Gather, action_url: str) -> str:
    timeout = _clamp(gather.timeout, *EXECUTION_TIMEOUT)
    if timeout != gather.timeout:
        log_once(f"timeout{gather.timeout}", f"GetInput's executionTimeout is 5 to 60 s: "
                 f"{gather.timeout} s became {timeout} s")
    dtmf, speech = "dtmf" in gather.input, "speech" in gather.input
    return _element(
        "GetInput",
        "".join(_prompt(prompt) for prompt in gather.prompts),
        action=action_url or None,
        method="POST",
        inputType=gather.input,
        executionTimeout=timeout,
        # Twilio's timeout also bounds the gap between keys: Plivo's own attribute.
        digitEndTimeout=_clamp(gather.timeout, *END_TIMEOUT) if dtmf else None,
        speechEndTimeout=_speech_end(gather.speech_timeout) if speech else None,
        numDigits=min(gather.num_digits, MAX_NUM_DIGITS) if gather.num_digits else None,
        finishOnKey=_finish_on_key(gather.finish_on_key) if dtmf else None,
        hints=_hints(gather.hints) if speech else None,
        language=gather.language if speech else None,
    )


def _hints(hints: tuple[str, ...]) -> str | None:
    """The phrases Plivo takes, in order, within its documented limits."""
    kept: list[str] = []
    for phrase in hints:
        if "," in phrase or len(phrase) > MAX_HINT or len(kept) == MAX_HINTS:
            continue
        if len(",".join(kept + [phrase])) > MAX_HINTS_TEXT:
            break
        kept.append(phrase)
    if len(kept) < len(hints):
        log_once("hints", "GetInput takes at most 500 hints of 100 characters: some were left out")
    return ",".join(kept) or None


def _speech_end(value: str | None) -> str | None:
    if value is None or value == "auto":
        return value
    try:
        return str(_clamp(int(value), *END_TIMEOUT))
    except ValueError:
        return "auto"


def _finish_on_key(key: str | None) -> str | None:
    if key is None:
        return None
    return key if key else "none"


def _dial(dial: Dial, action_url: str) -> str:
    target = dial.target
    if target.kind == "number":
        noun = _element("Number", _text(target.address))
    elif target.kind == "sip":
        address = target.address if target.address.startswith("sip:") else f"sip:{target.address}"
        noun = _element("User", _text(address))
    elif target.kind == "queue":
        noun = _queue_user(target.address)
    else:
        raise ValueError(f"unknown dial target kind {target.kind!r} (expected number, sip or queue)")
    return _element("Dial", noun, action=action_url or None, method="POST",
                    timeout=dial.timeout or DIAL_TIMEOUT, callerId=dial.caller_id,
                    confirmSound=_whisper(dial.whisper_url, dial.params, action_url))


def _queue_user(queue: str) -> str:
    """The nearest Plivo has to a queue: the SIP user named after it."""
    log_once("queue", "Plivo XML has no queue: queue transfers ring the SIP user "
             f"sip:<queue>@{QUEUE_SIP_DOMAIN} instead")
    return _element("User", _text(f"sip:{queue}@{QUEUE_SIP_DOMAIN}"))


def _whisper(url: str | None, params: tuple[tuple[str, str], ...], action_url: str) -> str | None:
    """Dial's ``confirmSound``: a URL Plivo fetches by POST when the agent
    answers, whose Speak is played to the agent alone (Dial page).  It is
    the whisper URL with the reason and order in its query; without one,
    the server's ``whisper`` route beside the voice route."""
    if url is None:
        if "/voice/" not in action_url:
            return None
        url = action_url.rsplit("/voice/", 1)[0] + "/whisper"
    if not params:
        return url
    parts = urlsplit(url)
    query = "&".join(part for part in (parts.query, urlencode(params)) if part)
    return urlunsplit(parts._replace(query=query))


# --- Helpers ------------------------------------------------------------------


def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(high, value))


def _element(tag: str, inner: str | None, **attrs: object) -> str:
    attributes = "".join(f' {name}="{_attribute(value)}"' for name, value in _attributes(**attrs).items())
    return f"<{tag}{attributes}>{inner}</{tag}>" if inner else f"<{tag}{attributes} />"


def _text(value: str | None) -> str | None:
    if not value:
        return value
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _attribute(value: str) -> str:
    return (_text(value) or "").replace('"', "&quot;").replace("\r", "&#13;").replace(
        "\n", "&#10;").replace("\t", "&#09;")


def _attributes(**attrs: object) -> dict[str, str]:
    return {name: ("true" if value else "false") if isinstance(value, bool) else str(value)
            for name, value in sorted(attrs.items()) if value is not None}
