"""Telnyx TeXML's webhook fields: Twilio's names (TeXML posts them as a
form), with Telnyx's identifiers: call ids such as
``v3:9X2vxPDFY2RHSJ1EdMS0RHRksMTg7ldNxdjWbVr9zBjbGjGsSe-aiQ`` and UUID
accounts, as the TeXML callback pages show them
(https://developers.telnyx.com/api-reference/callbacks/texml-call-answered,
.../texml-call-completed)."""

from __future__ import annotations

import re

from ivr.providers.twiml_compat import UUID, id_rule

#: A Telnyx call id: a version, a colon, then base64url characters.
CALL_ID = re.compile(r"v[0-9]{1,2}:[A-Za-z0-9_-]{1,200}", re.ASCII)
#: Other identifiers (queue, recording, connection): not documented in
#: detail, so any short token of these characters.
_TOKEN = re.compile(r"[A-Za-z0-9:_.-]{1,128}", re.ASCII)

_CALL = id_rule(CALL_ID, "a Telnyx call id (v3:…)", 204)

#: The identifier fields and their rule; every other field is Twilio's.
ID_FIELDS = {
    **{name: _CALL for name in ("CallSid", "CallSidLegacy", "ParentCallSid", "ParentCallSidLegacy",
                                "DialCallSid", "DialCallSidLegacy", "CallControlId", "X-IVR-Call")},
    "AccountSid": id_rule(UUID, "a UUID", 36),
    **{name: id_rule(_TOKEN, "an identifier") for name in ("QueueSid", "RecordingSid", "ConnectionId")},
}


def is_call_id(value: str) -> bool:
    """Whether ``value`` is a Telnyx call id."""
    return bool(CALL_ID.fullmatch(value))
