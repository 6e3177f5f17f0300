"""Turn the engine's caller-facing actions into a TwiML document.

The output is serialised the way twilio-python does it (ElementTree,
attributes sorted, booleans as ``"true"``/``"false"``, ``None`` attributes
dropped, empty elements as ``<Hangup />``, no pretty-printing), so a document
can be compared byte for byte with what the official library would emit.
Facts about verbs, attributes and limits come from Twilio's TwiML reference
(twilio.com/docs/voice/twiml).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from functools import lru_cache
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

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

#: Twilio rejects a response body of this size or more (error 11750).
MAX_DOCUMENT_BYTES = 64 * 1024
MAX_QUEUE_NAME = 64
#: A ``<Sip>`` URI must be under 255 chars, its ``?headers`` part under 1,024.
MAX_SIP_URI = 255
MAX_SIP_HEADERS = 1024

#: SSML elements Twilio accepts inside ``<Say>`` (telephony.md §2.2).
SSML_TAGS = frozenset(
    {"break", "emphasis", "lang", "p", "phoneme", "prosody", "s", "say-as", "sub", "w"}
)

_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>'
# Header names go into the URI unescaped, so anything beyond these would
# split or corrupt the header list (Twilio warning 13252).
_SIP_HEADER_NAME = re.compile(r"[A-Za-z0-9-]+\Z")


def render_twiml(actions: Iterable[Action], action_url: str, *, method: str = "POST") -> bytes:
    """Render caller-facing actions as a TwiML document (UTF-8 bytes).

    ``action_url`` is where the provider reports the outcome of Gather,
    Dial, Enqueue and Record, and ``method`` is how it must request that
    URL; the Redirect that follows every Gather uses the same pair so a
    silent caller comes back to the engine.  ``Redirect`` actions carry
    their own URL and are always requested with POST.

    Raises ``ValueError`` when the actions cannot become a safe document:
    a ``Lookup`` (effects never reach the provider), an action after a
    terminal one (it would never run), malformed SSML, an over-long queue
    name or SIP URI, an unknown dial target, or a document of 64 kB or more.
    Callers are expected to fall back to a safe response.
    """
    if method not in ("GET", "POST"):
        raise ValueError(f"method must be 'GET' or 'POST', not {method!r}")
    verbs: list[bytes] = []
    ended_by = None
    for action in actions:
        if isinstance(action, Lookup):
            raise ValueError(
                f"Lookup {action.request_id!r} is an effect for the runner; it cannot be sent to the provider"
            )
        if ended_by is not None:
            raise ValueError(
                f"{type(action).__name__} follows {type(ended_by).__name__} and would never be reached"
            )
        _add_verb(verbs, action, action_url, method)
        if isinstance(action, TERMINAL):
            ended_by = action

    body = b"".join(verbs)
    document = _DECLARATION + (b"<Response>" + body + b"</Response>" if body else b"<Response />")
    if len(document) >= MAX_DOCUMENT_BYTES:
        raise ValueError(
            f"TwiML document is {len(document)} bytes; Twilio refuses {MAX_DOCUMENT_BYTES} or more"
        )
    return document


# --- One element per action ---------------------------------------------------
# Elements are written as strings, exactly as ElementTree would serialise
# them (a turn renders one document, and building a tree to serialise it
# was a tenth of the turn's time), then encoded to UTF-8 each on its own:
# a Gather, most of a document, is kept encoded.


def _add_verb(out: list[bytes], action: Action, action_url: str, method: str) -> None:
    match action:
        case Gather():
            out.append(_gather(tuple([_prompt(prompt) for prompt in action.prompts]), action_url,
                               method, action.input, action.num_digits, action.finish_on_key,
                               action.timeout, action.speech_timeout, action.hints,
                               action.language))
        case _:
            out.append(_verb(action, action_url, method).encode("utf-8"))


def _verb(action: Action, action_url: str, method: str) -> str:
    """The element of an action other than a Gather."""
    match action:
        case Say() | Play() | Pause():
            return _prompt(action)
        case Dial():
            return _dial(action, action_url, method)
        case Enqueue():
            return _element(
                "Enqueue",
                _text(_queue_name(action.queue)),
                action=action_url,
                method=method,
                waitUrl=_with_query(action.wait_url, action.params),
            )
        case Record():
            return _element(
                "Record",
                None,
                action=action_url,
                method=method,
                maxLength=action.max_length,
                timeout=action.timeout,
                finishOnKey=action.finish_on_key,
                playBeep=action.play_beep,
            )
        case Redirect():
            return _element("Redirect", _text(action.url), method="POST")
        case Hangup():
            return "<Hangup />"
        case _:
            raise ValueError(f"cannot render {action!r} as TwiML")


# A flow's menus come back call after call, with the same action URL at
# the same turn: each distinct Gather is serialised once.  Keyed by type too,
# so that a timeout of 5 and one of 5.0 are not taken for each other.
@lru_cache(maxsize=4096, typed=True)
def _gather(prompts: tuple[str, ...], action_url: str, method: str, input: str,
            num_digits: int | None, finish_on_key: str | None, timeout: int,
            speech_timeout: str | None, hints: tuple[str, ...], language: str | None) -> bytes:
    """A ``<Gather>`` around ``prompts`` (each serialised), then its
    ``<Redirect>``, in UTF-8.  Keyed by the prompts' elements, which
    :func:`_say` keeps, rather than by their text joined: a tuple of kept
    strings hashes without reading them."""
    gather = _element(
        "Gather",
        "".join(prompts),
        action=action_url,
        method=method,
        input=input,
        numDigits=num_digits,
        finishOnKey=finish_on_key,
        timeout=timeout,
        speechTimeout=speech_timeout,
        hints=", ".join(hints) or None,
        language=language,
    )
    # With no input Twilio falls through to the next verb, and with
    # none it hangs up: send the silent caller back to the engine.
    return (gather + _element("Redirect", _text(action_url), method=method)).encode("utf-8")


def _prompt(prompt: Say | Play | Pause) -> str:
    match prompt:
        case Say():
            return _say(prompt.ssml, prompt.voice, prompt.language, prompt.loop)
        case Play():
            return _element("Play", _text(prompt.url), loop=prompt.loop)
        case Pause():
            return _element("Pause", None, length=prompt.length)
        case _:
            raise ValueError(f"a Gather prompt must be Say, Play or Pause, not {type(prompt).__name__}")


@lru_cache(maxsize=4096)
def _say(ssml: str, voice: str | None, language: str | None, loop: int | None) -> str:
    """A ``<Say>`` element.  Most prompts are said word for word again and
    again, so each distinct one is checked and serialised once."""
    # The fragment is already escaped and may hold SSML elements: parsing it
    # (rather than setting it as text) nests the SSML and avoids &amp;amp;.
    try:
        element = ET.fromstring(f"<Say>{ssml}</Say>")
    except ET.ParseError as exc:
        raise ValueError(f"Say text is not a well-formed XML fragment ({exc}): {ssml[:80]!r}") from None
    for node in element.iter():
        if node is not element and node.tag not in SSML_TAGS:
            raise ValueError(f"<{node.tag}> in Say text is not an SSML element Twilio accepts")
        # Same attribute order as twilio-python, whatever order the template used.
        node.attrib = dict(sorted(node.attrib.items()))
    element.attrib = _attributes(voice=voice, language=language, loop=loop)
    return ET.tostring(element, encoding="unicode")


def _dial(dial: Dial, action_url: str, method: str) -> str:
    target = dial.target
    if target.kind == "number":
        inner = _element("Number", _text(target.address), url=_with_query(dial.whisper_url, dial.params))
    elif target.kind == "sip":
        inner = _element("Sip", _text(_sip_uri(target.address, dial.params)), url=dial.whisper_url)
    elif target.kind == "queue":
        inner = _element("Queue", _text(_queue_name(target.address)),
                         url=_with_query(dial.whisper_url, dial.params))
    else:
        raise ValueError(f"unknown dial target kind {target.kind!r} (expected number, sip or queue)")
    return _element("Dial", inner, action=action_url, method=method, timeout=dial.timeout,
                    callerId=dial.caller_id)


# --- Helpers ------------------------------------------------------------------


def _element(tag: str, inner: str | None, **attrs: object) -> str:
    """``<tag attrs>inner</tag>`` (``inner`` already serialised), or
    ``<tag attrs />`` when it is empty, as ElementTree writes it."""
    attributes = "".join(f' {name}="{_attribute(value)}"' for name, value in _attributes(**attrs).items())
    return f"<{tag}{attributes}>{inner}</{tag}>" if inner else f"<{tag}{attributes} />"


# A document's texts and attribute values are mostly the same few strings
# (the action URL, "POST", "dtmf speech", a language): each is escaped once.
@lru_cache(maxsize=4096)
def _text(value: str | None) -> str | None:
    if not value:
        return value
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@lru_cache(maxsize=4096)
def _attribute(value: str) -> str:
    return (_text(value).replace('"', "&quot;").replace("\r", "&#13;")
            .replace("\n", "&#10;").replace("\t", "&#09;"))


def _attributes(**attrs: object) -> dict[str, str]:
    # Sorted, as twilio-python writes them.
    return {
        name: ("true" if value else "false") if isinstance(value, bool) else str(value)
        for name, value in sorted(attrs.items())
        if value is not None
    }


def _with_query(url: str | None, params: tuple[tuple[str, str], ...]) -> str | None:
    """``url`` with ``params`` added to its query string.  Without a URL the
    params have nowhere to travel and are dropped."""
    if url is None or not params:
        return url
    # urlsplit keeps an existing query and any #fragment (connection overrides) in place.
    parts = urlsplit(url)
    query = "&".join(part for part in (parts.query, urlencode(params)) if part)
    return urlunsplit(parts._replace(query=query))


def _sip_uri(address: str, params: tuple[tuple[str, str], ...]) -> str:
    headers = []
    for name, value in params:
        if not _SIP_HEADER_NAME.match(name):
            raise ValueError(f"SIP header name {name!r} may only use letters, digits and '-'")
        headers.append(f"{name}={quote(value, safe='')}")
    uri = address
    if headers:
        uri += ("&" if "?" in address else "?") + "&".join(headers)
    header_part = uri.partition("?")[2]
    if len(header_part) >= MAX_SIP_HEADERS:
        raise ValueError(f"SIP headers are {len(header_part)} chars; they must be under {MAX_SIP_HEADERS}")
    if len(uri) >= MAX_SIP_URI:
        raise ValueError(f"SIP URI is {len(uri)} chars; it must be under {MAX_SIP_URI}: {uri[:80]!r}")
    return uri


def _queue_name(name: str) -> str:
    if not 0 < len(name) <= MAX_QUEUE_NAME:
        raise ValueError(f"queue name must be 1 to {MAX_QUEUE_NAME} chars, got {len(name)}: {name[:80]!r}")
    return name


# --- Checking a finished document ---------------------------------------------

# Attribute names Twilio documents per element (telephony.md §2).  None: the
# reference lists none for that element, so its attributes are not checked.
_ATTRIBUTES: dict[str, frozenset[str] | None] = {
    "Response": frozenset(),
    "Say": frozenset({"voice", "language", "loop"}),
    "Play": frozenset({"loop", "digits"}),
    "Pause": frozenset({"length"}),
    "Gather": frozenset(
        {
            "action", "method", "input", "numDigits", "timeout", "finishOnKey", "speechTimeout",
            "language", "hints", "speechModel", "enhanced", "profanityFilter", "actionOnEmptyResult",
            "partialResultCallback", "partialResultCallbackMethod", "maxSpeechTime", "bargeIn", "debug",
        }
    ),
    "Dial": frozenset(
        {
            "action", "method", "timeout", "callerId", "answerOnBridge", "record",
            "recordingStatusCallback", "recordingStatusCallbackMethod", "recordingStatusCallbackEvent",
            "recordingTrack", "trim", "hangupOnStar", "timeLimit", "ringTone", "callReason", "referUrl",
            "referMethod", "sequential", "recordingConfigurationId", "events",
        }
    ),
    "Number": frozenset(
        {
            "sendDigits", "url", "method", "statusCallbackEvent", "statusCallback",
            "statusCallbackMethod", "byoc", "machineDetection",
        }
    ),
    "Sip": frozenset(
        {
            "username", "password", "url", "method", "statusCallbackEvent", "statusCallback",
            "statusCallbackMethod", "machineDetection",
        }
    ),
    "Client": frozenset({"url", "method", "statusCallbackEvent", "statusCallback", "statusCallbackMethod"}),
    "Queue": frozenset({"url", "method", "reservationSid", "postWorkActivitySid"}),
    "Conference": None,
    "Enqueue": frozenset({"action", "method", "waitUrl", "waitUrlMethod", "workflowSid", "maxQueueSize"}),
    "Task": None,
    "Identity": frozenset(),
    "Parameter": None,
    "Leave": frozenset(),
    "Redirect": frozenset({"method"}),
    "Hangup": frozenset(),
    "Reject": frozenset({"reason"}),
    "Record": frozenset(
        {
            "action", "method", "timeout", "finishOnKey", "maxLength", "playBeep", "trim", "transcribe",
            "transcribeCallback", "recordingStatusCallback", "recordingStatusCallbackMethod",
            "recordingStatusCallbackEvent",
        }
    ),
}

# Elements allowed inside each element (telephony.md §2.11); absent means none.
_CHILDREN: dict[str, frozenset[str]] = {
    "Response": frozenset(
        {"Say", "Play", "Pause", "Gather", "Dial", "Enqueue", "Leave", "Redirect", "Hangup", "Reject", "Record"}
    ),
    "Gather": frozenset({"Say", "Play", "Pause"}),
    "Dial": frozenset({"Number", "Sip", "Queue", "Client", "Conference"}),
    "Say": SSML_TAGS,
    **{tag: SSML_TAGS for tag in SSML_TAGS},
    "Enqueue": frozenset({"Task"}),
    "Client": frozenset({"Identity", "Parameter"}),
    "Hangup": frozenset({"Parameter"}),
}

_TERMINAL_VERBS = frozenset(cls.__name__ for cls in TERMINAL) | {"Reject"}


def validate_twiml(document: bytes) -> list[str]:
    """Return the problems that would make Twilio refuse or misplay ``document``.

    An empty list means none were found.  Checks: size under 64 kB, no
    leading whitespace, well-formed XML, root ``<Response>``, known verbs
    only, legal nesting (Gather: Say/Play/Pause; Dial: Number, Sip, Queue,
    Client, Conference; Say: SSML), documented attribute names with their
    exact case, and nothing after a terminal verb except the single
    ``<Redirect>`` right after a ``<Gather>``.
    """
    problems = []
    if len(document) >= MAX_DOCUMENT_BYTES:
        problems.append(f"document is {len(document)} bytes; Twilio refuses {MAX_DOCUMENT_BYTES} or more")
    if document[:1].isspace():
        problems.append("whitespace before the start of the document")
    try:
        root = ET.fromstring(document)
    except ET.ParseError as exc:
        return problems + [f"not well-formed XML: {exc}"]
    if root.tag != "Response":
        return problems + [f"root element is <{root.tag}>, not <Response>"]
    return problems + _element_problems(root, "Response") + _order_problems(root)


def _element_problems(element: ET.Element, path: str) -> list[str]:
    problems = []
    allowed = _ATTRIBUTES.get(element.tag)
    if allowed is not None:
        for name in element.attrib:
            if name not in allowed:
                # Names are case-sensitive: point at the documented spelling.
                spelling = [known for known in allowed if known.lower() == name.lower()]
                hint = f" (did you mean {spelling[0]!r}?)" if spelling else ""
                problems.append(f"{path}: <{element.tag}> has no attribute {name!r}{hint}")
    children = _CHILDREN.get(element.tag, frozenset())
    for index, child in enumerate(element, start=1):
        child_path = f"{path}/{child.tag}[{index}]"
        if child.tag in children:
            problems += _element_problems(child, child_path)
        else:
            problems.append(f"{child_path}: <{child.tag}> may not appear inside <{element.tag}>")
    return problems


def _order_problems(response: ET.Element) -> list[str]:
    verbs = list(response)
    for index, verb in enumerate(verbs):
        if verb.tag in _TERMINAL_VERBS:
            rest = verbs[index + 1 :]
            if verb.tag == "Gather" and rest and rest[0].tag == "Redirect":
                rest = rest[1:]
            if rest:
                unreachable = ", ".join(f"<{later.tag}>" for later in rest)
                return [f"Response: {unreachable} after <{verb.tag}> would never be reached"]
            return []
    return []
