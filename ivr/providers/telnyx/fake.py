"""A fake Telnyx, written from Telnyx's TeXML documentation, for
``ivr-sim --provider telnyx`` and the tests.

- Requests: form POSTs with the fields of the TeXML callback pages
  (https://developers.telnyx.com/api-reference/callbacks/texml-call-answered):
  ``AccountSid`` (a UUID), ``CallSid`` and ``CallSidLegacy`` (``v3:…``),
  ``CallStatus``, ``ConnectionId``, ``From``, ``To``; the end-of-call
  notice (.../texml-call-completed) adds ``CallbackSource``,
  ``SequenceNumber``, ``CallDuration`` and an ISO 8601 ``Timestamp``.
- Gather's action gets ``Digits``, or ``SpeechResult`` and ``Confidence``
  (https://developers.telnyx.com/api-reference/callbacks/texml-gather).
  Dial's action gets ``DialCallStatus`` and ``DialCallSid`` (as in the
  completed callback); Enqueue's, whose fields the Enqueue page does not
  list, Twilio's ``QueueResult`` and ``QueueTime``; Record's
  ``RecordingUrl`` and ``RecordingDuration``.
- Every request is signed as Telnyx signs it: Ed25519 over
  ``"{timestamp}|{body}"`` with the private key the fake holds
  (``secret``, base64), the timestamp from ``clock``.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from datetime import datetime, timezone

from ivr.providers.fake_call import SendFn
from ivr.providers.markup_rules import MarkupRules, keys, number_in, one_of, problems
from ivr.providers.telnyx.signature import signed_headers
from ivr.providers.twiml_compat_fake import CompatFakeCall

ACCOUNT_SID = "f5586561-8ff0-4291-a51b-c7dfe4139ff9"
CONNECTION_ID = "1234567890"

_CALLBACK = frozenset({"statusCallback", "statusCallbackEvent", "statusCallbackMethod"})
_VERBS = frozenset({"Say", "Play", "Pause", "Gather", "Dial", "Enqueue", "Leave", "Redirect",
                    "Hangup", "Reject", "Record"})
_ENGINES = ("Google", "Telnyx", "Azure", "Deepgram", "xAI", "AssemblyAI", "google", "telnyx")

#: TeXML verbs and nouns as Telnyx documents them
#: (https://developers.telnyx.com/docs/voice/programmable-voice/texml-verbs/…).
#: Gather's and Dial's attributes and ranges are their pages' tables (Gather
#: has no ``method``); nouns per the TwiML compatibility page (no ``Client``).
RULES = MarkupRules(
    attributes={
        "Response": frozenset(),
        "Say": frozenset({"voice", "language", "loop", "gender", "effect", "voiceSpeed"}),
        "Play": frozenset({"loop", "digits"}),
        "Pause": frozenset({"length"}),
        "Gather": frozenset({"action", "timeout", "input", "speechTimeout", "partialResultCallback",
                             "partialResultCallbackMethod", "profanityFilter", "useEnhanced", "hints",
                             "transcriptionEngine", "apiKeyRef", "region", "finishOnKey", "numDigits",
                             "language", "validDigits", "invalidDigitsAction", "minDigits",
                             "maxDigits"}),
        "Dial": frozenset({"action", "method", "callerId", "fromDisplayName", "timeout", "timeLimit",
                           "hangupOnStar", "record", "recordingChannels", "recordMaxLength",
                           "recordingStatusCallback", "recordingStatusCallbackMethod",
                           "recordingStatusCallbackEvent", "answerOnBridge", "ringTone"}),
        "Number": frozenset({"url", "method", "sendDigits"}) | _CALLBACK,
        "Sip": frozenset({"url", "method", "username", "password"}) | _CALLBACK,
        "Queue": frozenset({"url", "method"}),
        "Enqueue": frozenset({"action", "method", "waitUrl", "waitUrlMethod"}),
        "Leave": frozenset(),
        "Redirect": frozenset({"method"}),
        "Hangup": frozenset(),
        "Reject": frozenset({"reason"}),
        "Record": frozenset({"action", "method", "timeout", "finishOnKey", "maxLength", "playBeep",
                             "trim", "recordingStatusCallback", "recordingStatusCallbackMethod",
                             "recordingStatusCallbackEvent"}),
    },
    children={"Response": _VERBS, "Gather": frozenset({"Say", "Play", "Pause"}),
              "Dial": frozenset({"Number", "Sip", "Queue", "Conference"})},
    values={("Say", "loop"): number_in(0, 10),
            ("Gather", "timeout"): number_in(1, 120),
            ("Gather", "input"): one_of("dtmf", "speech", "dtmf speech"),
            ("Gather", "finishOnKey"): keys,
            ("Gather", "minDigits"): number_in(1, 128),
            ("Gather", "maxDigits"): number_in(1, 128),
            ("Gather", "numDigits"): number_in(1, 128),
            ("Gather", "transcriptionEngine"): one_of(*_ENGINES),
            ("Gather", "speechTimeout"): number_in(0, 600),
            ("Enqueue", "method"): one_of("GET", "POST"),
            ("Redirect", "method"): one_of("GET", "POST"),
            ("Dial", "method"): one_of("GET", "POST"),
            ("Dial", "timeout"): number_in(5, 120),
            ("Dial", "timeLimit"): number_in(60, 14400),
            ("Record", "method"): one_of("GET", "POST"),
            ("Record", "finishOnKey"): keys},
)


def new_call_id() -> str:
    """A fresh Telnyx call id: ``v3:`` and 54 base64url characters."""
    return "v3:" + secrets.token_urlsafe(40)


def queue_result(status: str) -> str:
    """Enqueue's ``QueueResult`` for a dial status (Twilio's values)."""
    if status in ("completed", "answered"):
        return "bridged"
    return "hangup" if status == "canceled" else "error"


class FakeTelnyxCall(CompatFakeCall):
    """One inbound call as Telnyx plays it; ``secret`` is the base64 Ed25519
    private key it signs with (the server is given its public key,
    :func:`ivr.providers.telnyx.signature.public_key_of`)."""

    provider = "telnyx"
    status_path = "telnyx/status"

    def __init__(self, send: SendFn, caller: str, called: str, base_url: str,
                 secret: str | None = None, call_id: str | None = None,
                 clock: Callable[[], float] = time.time):
        super().__init__(send, caller, called, base_url, secret, call_id)
        self.clock = clock

    def new_call_id(self) -> str:
        return new_call_id()

    def fields(self, status: str) -> dict[str, str]:
        return {"AccountSid": ACCOUNT_SID, "CallSid": self.call_id, "CallSidLegacy": self.call_id,
                "CallStatus": status, "ConnectionId": CONNECTION_ID, "From": self.caller,
                "To": self.called}

    def headers(self, url: str, body: bytes, params: dict[str, str]) -> dict[str, str]:
        return signed_headers(self.secret, int(self.clock()), body) if self.secret else {}

    def problems(self, document: bytes) -> list[str]:
        return problems(document, RULES)

    def transfer_result(self, status: str, queue_seconds: int) -> dict[str, str]:
        if self.next is not None and self.next.queue:
            return {"QueueResult": queue_result(status), "QueueTime": str(queue_seconds)}
        return {"DialCallStatus": status, "DialCallSid": new_call_id()}

    def recording(self, seconds: int) -> dict[str, str]:
        return {"RecordingUrl": "https://files.telnyx.invalid/recording.wav",
                "RecordingDuration": str(seconds)}

    def status_fields(self, duration: int, at: datetime) -> dict[str, str]:
        stamp = at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        return {"CallbackSource": "call-progress-events", "SequenceNumber": str(self.sequence),
                "CallDuration": str(duration), "Timestamp": stamp}
