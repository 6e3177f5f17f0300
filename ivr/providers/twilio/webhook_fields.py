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
from dataclasses import dataclass

__all__ = ["FIELDS", "FieldError", "FieldRule", "MAX_FIELDS", "OTHER_FIELD_MAX",
           "check_fields", "is_call_sid"]

#: The most fields a webhook may carry; Twilio's voice webhooks have about 30.
MAX_FIELDS = 100
#: The longest field name, and the longest value of a field not in FIELDS.
MAX_NAME = 64
#: Large enough for the JSON of the provider's add-on results (``AddOns``).
OTHER_FIELD_MAX = 16 * 1024

#: Characters XML 1.0 cannot carry, and that no provider field holds: C0
#: controls other than tab, line feed and carriage return, DEL, and the two
#: non-characters U+FFFE and U+FFFF.
_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff]")
_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,%d}" % MAX_NAME, re.ASCII)


def _sid(prefix: str) -> re.Pattern:
    return re.compile(prefix + "[0-9a-fA-F]{32}", re.ASCII)


_CALL_SID = _sid("CA")


@dataclass(frozen=True)
class FieldRule:
    """What one field may hold.  ``what`` says it in words for the refusal;
    ``pattern`` must match the whole value; ``choices`` lists the only
    values allowed; ``at_most`` bounds a number of ASCII digits."""

    max_length: int
    what: str
    pattern: re.Pattern | None = None
    choices: frozenset | None = None
    at_most: int | None = None

    def problem(self, value: str) -> str | None:
        """Why ``value`` does not fit, or None."""
        if self.at_most is not None and self.pattern.fullmatch(value):
            # Digits checked before int(): a 20-digit number is refused unread.
            too_big = len(value.lstrip("0")) > len(str(self.at_most)) or int(value) > self.at_most
            return f"must be at most {self.at_most}" if too_big else None
        if len(value) > self.max_length:
            return f"longer than {self.max_length} characters"
        if self.choices is not None and value not in self.choices:
            return f"must be {self.what}"
        if self.pattern is not None and not self.pattern.fullmatch(value):
            return f"must be {self.what}"
        return None


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


class FieldError(ValueError):
    """A webhook field that does not fit its rule; the message is one line."""


def is_call_sid(value: str) -> bool:
    """Whether ``value`` is a Twilio call id: ``CA`` and 32 hex digits."""
    return bool(_CALL_SID.fullmatch(value))


def check_fields(form: dict[str, list[str]], required: tuple[str, ...] = ()) -> dict[str, str]:
    """``form`` (each name's values) checked against :data:`FIELDS`; the
    last value of each name.  Raises :class:`FieldError` for too many
    fields, a bad name, a missing ``required`` field, a control character
    or a value that breaks its rule."""
    if len(form) > MAX_FIELDS:
        raise FieldError(f"more than {MAX_FIELDS} fields")
    for name in required:
        if not form.get(name) or not form[name][-1]:
            raise FieldError(f"missing {name}")
    params = {}
    for name, values in form.items():
        if not _NAME.fullmatch(name):
            raise FieldError("a field name is not a short ASCII word")
        if len(values) > 10:
            raise FieldError(f"{name} is repeated more than 10 times")
        rule = FIELDS.get(name)
        for value in values:
            if _FORBIDDEN.search(value):
                raise FieldError(f"{name} holds a control character")
            why = rule.problem(value) if rule else (
                f"longer than {OTHER_FIELD_MAX} characters" if len(value) > OTHER_FIELD_MAX else None)
            if why:
                raise FieldError(f"{name} {why}")
        params[name] = values[-1]
    return params
