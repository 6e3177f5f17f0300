"""SignalWire's webhook fields: Twilio's (cXML posts the same form fields,
https://developer.signalwire.com/compatibility-api/xml/voice/gather), with
SignalWire's identifiers, which are UUIDs (``CallSid``, ``AccountSid``:
the project id…), as in the SDK's own test requests (``signalwire`` 2.1.1,
``signalwire/tests/test_request_validator.py``)."""

from __future__ import annotations

from ivr.providers.twiml_compat import UUID, id_rule

#: The identifier fields and their rule; every other field is Twilio's.
ID_FIELDS = {name: id_rule(UUID, "a UUID", 36)
             for name in ("CallSid", "AccountSid", "ParentCallSid", "DialCallSid", "QueueSid",
                          "RecordingSid", "X-IVR-Call")}


def is_call_id(value: str) -> bool:
    """Whether ``value`` is a SignalWire call id (a UUID)."""
    return bool(UUID.fullmatch(value))
