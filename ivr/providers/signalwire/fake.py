"""A fake SignalWire, written from SignalWire's compatibility (cXML)
documentation, for ``ivr-sim --provider signalwire`` and the tests.

- Requests: form POSTs with Twilio's field names and SignalWire's UUID
  identifiers, as SignalWire's own SDK tests record real requests
  (``signalwire`` 2.1.1, ``signalwire/tests/test_request_validator.py``):
  ``CallSid``, ``AccountSid`` (the project), ``ApiVersion`` 2010-04-01,
  ``Direction``, ``From``, ``To``, ``CallStatus``; status callbacks add
  ``CallbackSource`` and an RFC 2822 ``Timestamp``.
- Gather's action gets ``Digits`` or ``SpeechResult`` and ``Confidence``;
  without input the next verb runs (actionOnEmptyResult defaults to false):
  https://developer.signalwire.com/compatibility-api/xml/voice/gather
- Dial's action gets ``DialCallStatus``, ``DialCallSid``, ``DialCallDuration``;
  Enqueue's ``QueueResult``, ``QueueSid``, ``QueueTime``
  (https://developer.signalwire.com/compatibility-api/xml/voice/enqueue);
  Record's ``RecordingUrl``, ``RecordingDuration``, ``RecordingSid``.
- Signed with ``X-SignalWire-Signature`` (the compatibility scheme) when
  given the signing key.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from email.utils import format_datetime

from ivr.providers.markup_rules import MarkupRules, keys, number_in, one_of, problems
from ivr.providers.signalwire.signature import signed_headers
from ivr.providers.twiml_compat_fake import CompatFakeCall

PROJECT_ID = "6bfbbe86-a901-4197-8759-2a0de1fa319d"
API_VERSION = "2010-04-01"

_STATUS_CALLBACK = frozenset({"statusCallback", "statusCallbackEvent", "statusCallbackMethod"})
_RECORDING_CALLBACK = frozenset({"recordingStatusCallback", "recordingStatusCallbackEvent",
                                 "recordingStatusCallbackMethod"})
_VERBS = frozenset({"Say", "Play", "Pause", "Gather", "Dial", "Enqueue", "Leave", "Redirect",
                    "Hangup", "Reject", "Record"})

def _voice(value: str) -> str | None:
    """Say's voices: man, woman, alice, Polly.<Voice>[-Neural], gcloud.<Voice>."""
    if value in ("man", "woman", "alice") or value.startswith(("Polly.", "gcloud.")):
        return None
    return "must be man, woman, alice, Polly.<Voice> or gcloud.<Voice>"


#: cXML voice verbs and nouns as SignalWire documents them
#: (https://developer.signalwire.com/compatibility-api/xml/voice/).
RULES = MarkupRules(
    attributes={
        "Response": frozenset(),
        "Say": frozenset({"voice", "language", "loop"}),
        "Play": frozenset({"loop", "digits"}),
        "Pause": frozenset({"length"}),
        "Gather": frozenset({"action", "actionOnEmptyResult", "enhanced", "finishOnKey", "hints",
                             "input", "language", "method", "numDigits", "partialResultCallback",
                             "partialResultCallbackMethod", "profanityFilter", "speechTimeout",
                             "speechModel", "timeout"}),
        "Dial": frozenset({"action", "answerOnBridge", "callerId", "hangupOnStar", "method", "record",
                           "ringTone", "timeLimit", "timeout", "trim"}) | _RECORDING_CALLBACK,
        "Number": frozenset({"sendDigits", "url", "method"}) | _STATUS_CALLBACK,
        "Sip": frozenset({"username", "password", "url", "method"}) | _STATUS_CALLBACK,
        "Queue": frozenset({"url", "method"}),
        "Enqueue": frozenset({"action", "method", "waitUrl", "waitUrlMethod"}),
        "Leave": frozenset(),
        "Redirect": frozenset({"method"}),
        "Hangup": frozenset(),
        "Reject": frozenset({"reason"}),
        "Record": frozenset({"action", "method", "timeout", "finishOnKey", "maxLength", "playBeep",
                             "trim", "transcribe", "transcribeCallback"}) | _RECORDING_CALLBACK,
    },
    children={"Response": _VERBS, "Gather": frozenset({"Say", "Play", "Pause"}),
              "Dial": frozenset({"Number", "Sip", "Queue", "Conference"})},
    values={("Say", "voice"): _voice,
            ("Gather", "input"): one_of("dtmf", "speech", "dtmf speech", "speech dtmf"),
            ("Gather", "finishOnKey"): keys,
            ("Gather", "timeout"): number_in(1, 3600),
            ("Gather", "numDigits"): number_in(1, 128),
            ("Gather", "method"): one_of("GET", "POST"),
            ("Redirect", "method"): one_of("GET", "POST"),
            ("Enqueue", "method"): one_of("GET", "POST"),
            ("Dial", "method"): one_of("GET", "POST"),
            ("Record", "method"): one_of("GET", "POST"),
            ("Record", "finishOnKey"): keys,
            ("Pause", "length"): number_in(1, 3600)},
)


def queue_result(status: str) -> str:
    """Enqueue's ``QueueResult`` for a dial status: an agent took the call
    (``bridged``), the caller hung up (``hangup``), or nobody did (``error``)."""
    if status in ("completed", "answered"):
        return "bridged"
    return "hangup" if status == "canceled" else "error"


class FakeSignalWireCall(CompatFakeCall):
    """One inbound call as SignalWire plays it; ``secret`` is the signing key."""

    provider = "signalwire"
    status_path = "signalwire/status"

    def new_call_id(self) -> str:
        return str(uuid.uuid4())

    def fields(self, status: str) -> dict[str, str]:
        return {"CallSid": self.call_id, "AccountSid": PROJECT_ID, "ApiVersion": API_VERSION,
                "Direction": "inbound", "From": self.caller, "To": self.called, "CallStatus": status}

    def headers(self, url: str, body: bytes, params: dict[str, str]) -> dict[str, str]:
        return signed_headers(self.secret, url, params) if self.secret else {}

    def problems(self, document: bytes) -> list[str]:
        return problems(document, RULES)

    def transfer_result(self, status: str, queue_seconds: int) -> dict[str, str]:
        if self.next is not None and self.next.queue:
            return {"QueueResult": queue_result(status), "QueueSid": str(uuid.uuid4()),
                    "QueueTime": str(queue_seconds)}
        result = {"DialCallStatus": status, "DialCallSid": str(uuid.uuid4())}
        if status in ("completed", "answered"):
            result["DialCallDuration"] = "60"
        return result

    def recording(self, seconds: int) -> dict[str, str]:
        return {"RecordingUrl": "https://files.signalwire.invalid/recording.wav",
                "RecordingDuration": str(seconds), "RecordingSid": str(uuid.uuid4()), "Digits": "#"}

    def status_fields(self, duration: int, at: datetime) -> dict[str, str]:
        return {"CallDuration": str(duration), "CallbackSource": "call-progress-events",
                "Timestamp": format_datetime(at.astimezone(timezone.utc))}
