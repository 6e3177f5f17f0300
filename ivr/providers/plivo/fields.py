"""Plivo's callback fields and what each may hold, checked before anything
reads them: identifiers of the right shape, numbers of ASCII digits within
range, bounded text without control characters.  A field not named here
is still accepted (Plivo adds fields over time) within
:data:`OTHER_FIELD_MAX` characters.

Fields: the standard request parameters
(https://www.plivo.com/docs/voice/xml/request/), GetInput's action
parameters (https://plivo.com/docs/voice/xml/getinput), Dial's
(https://plivo.com/docs/voice/xml/dial), Record's
(https://www.plivo.com/docs/voice/xml/record) and the hangup URL's
(``Duration``, ``BillDuration``, ``HangupCause``).
"""

from __future__ import annotations

import re

from ivr.providers.form_fields import FieldRule, check_form

__all__ = ["FIELDS", "check_fields", "is_call_uuid"]

#: A Plivo call id (``CallUUID``): a UUID, e.g. 90b6eb07-796c-4d86-a4fd-44ed11667ddb.
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}",
                   re.ASCII)
_WORD = re.compile(r"[A-Za-z_\- ]*", re.ASCII)


def _number(at_most: int, signed: bool = False) -> FieldRule:
    # Record's durations are -1 while a session recording goes on (Record page).
    pattern = re.compile(("-?" if signed else "") + "[0-9]+", re.ASCII)
    return FieldRule(len(str(at_most)) + signed, "a whole number in ASCII digits", pattern,
                     at_most=None if signed else at_most)


def _word(max_length: int, what: str) -> FieldRule:
    return FieldRule(max_length, what, _WORD)


_ADDRESS = FieldRule(256, "a phone number or SIP address")
_UUID_RULE = FieldRule(36, "a UUID", _UUID)

#: Every field the server reads, and Plivo's identifiers and numbers.
FIELDS: dict[str, FieldRule] = {
    "CallUUID": _UUID_RULE,
    "ALegUUID": _UUID_RULE,
    "DialALegUUID": _UUID_RULE,
    # Empty when the dialled party never answered (Dial page).
    "DialBLegUUID": FieldRule(36, "a UUID or nothing", re.compile(f"(?:{_UUID.pattern})?", re.ASCII)),
    "From": _ADDRESS, "To": _ADDRESS, "ForwardedFrom": _ADDRESS,
    "CallStatus": _word(32, "a call status such as completed"),
    "Direction": _word(32, "inbound or outbound"),
    "InputType": _word(16, "dtmf or speech"),
    "Digits": FieldRule(64, "keys (0-9, * and #)", re.compile(r"[0-9*#]*", re.ASCII)),
    "Speech": FieldRule(4096, "text"),
    "SpeechConfidenceScore": FieldRule(32, "a decimal number",
                                       re.compile(r"[0-9]*(\.[0-9]+)?([eE][-+]?[0-9]+)?", re.ASCII)),
    "DialStatus": _word(32, "a dial status such as completed"),
    "DialRingStatus": _word(8, "true or false"),
    "DialHangupCause": _word(64, "a hangup cause"),
    "HangupCause": _word(64, "a hangup cause"),
    "Duration": _number(9_999_999),
    "BillDuration": _number(9_999_999),
    "RecordUrl": FieldRule(2048, "an http(s) URL", re.compile(r"https?://\S+", re.ASCII)),
    "RecordingDuration": _number(9_999_999, signed=True),
    "RecordingDurationMs": _number(9_999_999_999, signed=True),
    # Our own, in the query of the whisper URL a transfer carries.
    "X-IVR-Reason": FieldRule(64, "a reason name", re.compile(r"[A-Za-z0-9_]+", re.ASCII)),
    "X-IVR-Call": _UUID_RULE,
    "X-IVR-Order": FieldRule(64, "an order number"),
}


def is_call_uuid(value: str) -> bool:
    """Whether ``value`` has the shape of a Plivo ``CallUUID``."""
    return bool(_UUID.fullmatch(value))


def check_fields(form: dict[str, list[str]], required: tuple[str, ...] = ()) -> dict[str, str]:
    """``form`` checked against :data:`FIELDS` (see
    :func:`ivr.providers.form_fields.check_form`); the last value of each
    name.  Raises :class:`ivr.providers.form_fields.FieldError` (a
    one-line message naming the field, never its value)."""
    return check_form(form, FIELDS, required)
