"""The provider's webhook fields and what each may hold, declared once.

Every webhook (``/voice``, ``/status``, ``/whisper``) is checked against
:data:`FIELDS` before anything reads it, so the handler only ever sees
identifiers of the right shape, numbers of ASCII digits within range and
text of a bounded size without control characters.  A field the table does
not name is still accepted (the provider adds fields over time), within
:data:`OTHER_FIELD_MAX` characters.  A problem is a :class:`FieldError`
whose message is one line naming the field, never echoing its value.
"""

from __future__ import annotations

import re

from ivr.providers.form_fields import (
    MAX_FIELDS,
    OTHER_FIELD_MAX,
    FieldError,
    FieldRule,
    check_form,
)

__all__ = ["FIELDS", "FieldError", "FieldRule", "MAX_FIELDS", "OTHER_FIELD_MAX",
           "check_fields", "is_call_sid"]


def _sid(prefix: str) -> re.Pattern:
    return re.compile(prefix + "[0-9a-fA-F]{32}", re.ASCII)


_CALL_SID = _sid("CA")


def _number(at_most: int) -> FieldRule:
    # ASCII digits only: str.isdigit() takes "²", which int() refuses.
    return FieldRule(len(str(at_most)), "a whole number in ASCII digits",
                     re.compile("[0-9]+", re.ASCII), at_most=at_most)


def _sid_rule(prefix: str) -> FieldRule:
    return FieldRule(34, f"{prefix} followed by 32 hexadecimal digits", _sid(prefix))


def _text(max_length: int, what: str = "text") -> FieldRule:
    return FieldRule(max_length, what)


CALL_STATUSES = frozenset({"queued", "initiated", "ringing", "in-progress", "completed",
                           "busy", "failed", "no-answer", "canceled"})
DIAL_STATUSES = frozenset({"completed", "answered", "busy", "no-answer", "failed", "canceled"})
QUEUE_RESULTS = frozenset({"bridged", "bridging-in-process", "error", "hangup", "leave",
                           "redirected", "redirected-from-bridged", "queue-full",
                           "system-error", "system-shutdown"})
_ADDRESS = _text(128, "a phone number or address")

#: Every field the server reads, and the provider's identifiers and numbers.
FIELDS: dict[str, FieldRule] = {
    "CallSid": _sid_rule("CA"),
    "ParentCallSid": _sid_rule("CA"),
    "DialCallSid": _sid_rule("CA"),
    "AccountSid": _sid_rule("AC"),
    "QueueSid": _sid_rule("QU"),
    "RecordingSid": _sid_rule("RE"),
    "From": _ADDRESS, "To": _ADDRESS, "Caller": _ADDRESS, "Called": _ADDRESS,
    "ForwardedFrom": _ADDRESS,
    "CallStatus": FieldRule(16, "a call status such as completed", choices=CALL_STATUSES),
    "DialCallStatus": FieldRule(16, "a dial status such as completed", choices=DIAL_STATUSES),
    "QueueResult": FieldRule(32, "a queue result such as bridged", choices=QUEUE_RESULTS),
    "Digits": FieldRule(64, "keys (0-9, * and #) or hangup",
                        re.compile(r"[0-9*#]*|hangup", re.ASCII)),
    "SpeechResult": _text(4096),
    "UnstableSpeechResult": _text(4096),
    # Not read by the server: any decimal number, as providers print floats.
    "Confidence": FieldRule(32, "a decimal number",
                            re.compile(r"[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?", re.ASCII)),
    "SequenceNumber": _number(999_999_999),
    "CallDuration": _number(9_999_999),
    "DialCallDuration": _number(9_999_999),
    "RecordingDuration": _number(9_999_999),
    "QueueTime": _number(9_999_999),
    "RecordingUrl": FieldRule(2048, "an http(s) URL", re.compile(r"https?://\S+", re.ASCII)),
    "Timestamp": _text(64),
    "ApiVersion": _text(32),
    "Direction": _text(32),
    # Our own, in the query of the whisper URL a transfer carries.
    "X-IVR-Reason": FieldRule(64, "a reason name", re.compile(r"[A-Za-z0-9_]+", re.ASCII)),
    "X-IVR-Call": _sid_rule("CA"),
    "X-IVR-Order": _text(64, "an order number"),
}


def is_call_sid(value: str) -> bool:
    """Whether ``value`` is a Twilio call id: ``CA`` and 32 hex digits."""
    return bool(_CALL_SID.fullmatch(value))


def check_fields(form: dict[str, list[str]], required: tuple[str, ...] = ()) -> dict[str, str]:
    """``form`` (each name's values) checked against :data:`FIELDS` (see
    :func:`ivr.providers.form_fields.check_form`); the last value of each
    name.  Raises :class:`FieldError`."""
    return check_form(form, FIELDS, required)
