"""What Telnyx's TeXML requests say: the engine event of a turn is
Twilio's reading of the same fields (``Digits``, ``SpeechResult``,
``DialCallStatus``, ``QueueResult``, ``RecordingUrl``…), and a status
callback's ``Timestamp`` is ISO 8601 ("2024-01-15T10:30:00Z"), not
RFC 2822 (https://developers.telnyx.com/api-reference/callbacks/texml-call-completed)."""

from __future__ import annotations

from datetime import datetime, timezone

from ivr.providers.dialect import StatusNotice
from ivr.providers.twilio.dialect import TERMINAL_STATUSES
from ivr.providers.twilio.events import event_from
from ivr.providers.values import count

__all__ = ["event_from", "iso_time", "status_from"]


def iso_time(text: str | None) -> datetime | None:
    """An ISO 8601 time with its offset (``Z`` is UTC); None if it is not one."""
    if not text or len(text) > 40:
        return None
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


def status_from(params: dict) -> StatusNotice:
    """A TeXML status callback: ``CallStatus``, ``SequenceNumber``,
    ``CallDuration`` and ``Timestamp``."""
    status = params.get("CallStatus", "")
    return StatusNotice(params["CallSid"], status, status in TERMINAL_STATUSES,
                        sequence=count(params.get("SequenceNumber")),
                        duration=count(params.get("CallDuration")),
                        timestamp=iso_time(params.get("Timestamp")))
