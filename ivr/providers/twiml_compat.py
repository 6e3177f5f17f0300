"""What the TwiML-compatible providers (SignalWire's cXML, Telnyx's TeXML)
share with Twilio, and the one thing their fields do differently: the
shape of their identifiers.

Both post Twilio's form fields (``CallSid``, ``From``, ``Digits``,
``SpeechResult``, ``DialCallStatus``…), so Twilio's field rules
(:mod:`ivr.providers.twilio.webhook_fields`) apply as they are, except to
the identifiers, which are not Twilio's ``CA…``/``AC…`` sids: SignalWire
sends UUIDs, Telnyx ``v3:…`` call ids and UUID accounts.  A dialect names
its own rule for each identifier field and :func:`check_fields` applies
those, and Twilio's rules to everything else.
"""

from __future__ import annotations

import re

from ivr.providers.form_fields import FieldRule, check_form, checked
from ivr.providers.twilio.webhook_fields import FIELDS

__all__ = ["UUID", "check_fields", "checked_params", "id_rule"]

#: A UUID as SignalWire and Telnyx print them (8-4-4-4-12 hexadecimal digits).
UUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}", re.ASCII)


def id_rule(pattern: re.Pattern, what: str, max_length: int = 128) -> FieldRule:
    """A rule for an identifier field: the whole value matches ``pattern``."""
    return FieldRule(max_length, what, pattern)


def check_fields(form: dict[str, list[str]], required: tuple[str, ...],
                 ids: dict[str, FieldRule]) -> dict[str, str]:
    """``form`` checked as Twilio's fields are, except the identifier fields
    named in ``ids``, checked by their own rule; the last value of each
    name.  Raises :class:`FieldError` with a one-line message that never
    echoes a value."""
    return check_form(form, {**FIELDS, **ids}, required)


def checked_params(form: dict[str, list[str]], required: tuple[str, ...],
                   ids: dict[str, FieldRule]) -> dict[str, str]:
    """:func:`check_fields` for a dialect's ``check``: a bad field is a
    :class:`ivr.providers.dialect.Refusal` (400)."""
    return checked(form, {**FIELDS, **ids}, required)
