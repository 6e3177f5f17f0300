"""Request bodies as providers send them, parsed strictly for any dialect:
``application/x-www-form-urlencoded`` forms (Twilio, SignalWire, Telnyx
TeXML, Plivo) and JSON objects (Vonage, jambonz).  Each refuses what the
provider never sends with a :class:`ivr.providers.dialect.Refusal` (415
for another content type, 400 for a malformed body)."""

from __future__ import annotations

import json
from urllib.parse import unquote_to_bytes

from ivr.providers.dialect import Refusal, WebhookRequest

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"


def parse_form(text: str) -> dict[str, list[str]]:
    """An ``application/x-www-form-urlencoded`` body, strictly: what
    ``urllib.parse.parse_qs(text, keep_blank_values=True,
    strict_parsing=True, errors="strict")`` gives (an empty body is no
    field), decoding only the names and values that need it.  Raises
    ``ValueError`` for a field without ``=``, ``UnicodeDecodeError`` for
    percent-encoded bytes that are not UTF-8."""
    form: dict[str, list[str]] = {}
    if not text:
        return form
    each_field = "%" in text or "+" in text
    if each_field:
        decoded = _decoded_at_once(text)
        if decoded is not None:
            text, each_field = decoded, False
    for field in text.split("&"):
        name, equals, value = field.partition("=")
        if not equals:
            raise ValueError("a form field without '='")
        if each_field:
            if "%" in name or "+" in name:
                name = _unquoted(name)
            if "%" in value or "+" in value:
                value = _unquoted(value)
        form.setdefault(name, []).append(value)
    return form


_HEX = "0123456789ABCDEFabcdef"
#: The escapes decoded in a whole body at once ("%2B" and "%2b" for "+"), and
#: their characters: those of ASCII characters but the form's "&" and "=".
_BODY_ESCAPES = {high + low: chr(int(high + low, 16)) for high in "01234567" for low in _HEX
                 if chr(int(high + low, 16)) not in "&="}


def _decoded_at_once(text: str) -> str | None:
    """``text`` with its ``+`` made spaces and its escapes decoded, in one
    pass over the whole body, when every escape in it is one of
    :data:`_BODY_ESCAPES` (what providers send: ``%2B`` in numbers, ``%3A``
    and ``%2F`` in URLs); None when one is the escape of a byte outside
    ASCII, of "&" or of "=" (then each name and value is decoded apart).
    The same fields as decoding each: an escape never spans an "&" or an
    "=", which are not hexadecimal digits, and what an escape gives is not
    read again.  A ``%`` not followed by two hexadecimal digits stays, as
    ``unquote_plus`` leaves it."""
    pieces = text.replace("+", " ").split("%")
    decoded = [pieces[0]]
    for piece in pieces[1:]:
        char = _BODY_ESCAPES.get(piece[:2])
        if char is not None:
            decoded.append(char + piece[2:])
        elif len(piece) > 1 and piece[0] in _HEX and piece[1] in _HEX:
            return None
        else:
            decoded.append("%" + piece)
    return "".join(decoded)


def _unquoted(text: str) -> str:
    """``unquote_plus(text, errors="strict")`` in one decoding of the whole
    text (``unquote_plus`` decodes each run of ASCII apart, four or five
    times in a number like ``%2B33612345678``).  The same text, and the
    same ``UnicodeDecodeError`` where it raises: a character outside ASCII
    encodes to a leading byte that no escaped byte before it may precede
    nor any escaped byte after it continue."""
    return unquote_to_bytes(text.replace("+", " ")).decode("utf-8")


def form_fields(request: WebhookRequest) -> dict[str, list[str]]:
    """The fields of a form POST (or, for a GET, of its query string)."""
    if request.method == "GET":
        return dict(request.query)
    if request.content_type != FORM:
        raise Refusal(415, f"expected an {FORM} body")
    try:
        return parse_form(request.raw.decode("utf-8"))
    except UnicodeDecodeError:  # raw or percent-encoded bytes that are not UTF-8
        raise Refusal(400, "body is not UTF-8") from None
    except ValueError:
        raise Refusal(400, "malformed form body") from None


def json_object(request: WebhookRequest) -> dict:
    """The JSON object of a POST body (or, for a GET, the query string's
    fields, one value each)."""
    if request.method == "GET":
        return {name: values[-1] for name, values in request.query.items()}
    if request.content_type != JSON:
        raise Refusal(415, f"expected an {JSON} body")
    try:
        body = json.loads(request.raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise Refusal(400, "body is not UTF-8") from None
    except ValueError:
        raise Refusal(400, "malformed JSON body") from None
    if not isinstance(body, dict):
        raise Refusal(400, "expected a JSON object")
    return body
