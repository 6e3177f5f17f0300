"""What Twilio's webhook fields say: the engine event of a turn, the call's
end by the provider's clock, and counts sent as text."""

from __future__ import annotations

from datetime import datetime
from email.utils import parsedate_to_datetime
from zoneinfo import ZoneInfo

from ivr.providers.dialect import StatusNotice
from ivr.providers.values import confidence, count

#: Enqueue action results (Twilio's ``QueueResult``) after which the call
#: is over as far as the flow is concerned: an agent took it, or the
#: caller hung up while waiting (abandoned in the queue, still a transfer).
#: The others (``queue-full``, ``error``, ``system-error``, ``leave``,
#: ``redirected``) mean nobody took the call: the flow's ``no_answer``.
_QUEUE_ENDED = ("bridged", "bridging-in-process", "redirected-from-bridged", "hangup")


def provider_end(params: dict, state: dict, received: datetime) -> datetime | None:
    """When the call ended, by a status callback's ``CallDuration`` (seconds
    since the start), else its ``Timestamp`` (RFC 2822): see
    :meth:`ivr.providers.dialect.StatusNotice.ended_at`."""
    notice = StatusNotice("", params.get("CallStatus", ""), False,
                          duration=count(params.get("CallDuration")),
                          timestamp=_rfc2822(params.get("Timestamp")))
    return notice.ended_at(state, received)


def _rfc2822(text: str | None) -> datetime | None:
    """A time such as ``Tue, 24 Nov 2026 09:05:03 +0000``; None if it is not one."""
    try:
        moment = parsedate_to_datetime((text or "").strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if moment is None:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=ZoneInfo("UTC"))


def event_from(params: dict, state: dict) -> dict:
    """The engine event a webhook carries, given what the call waits for."""
    waiting = state.get("waiting")
    if waiting == "dial":
        queue_result = params.get("QueueResult")
        status = params.get("DialCallStatus") or _queue_status(queue_result)
        event = {"type": "dial_result", "status": status or "failed"}
        if queue_result is not None:
            event.update(queue_result=queue_result, queue_seconds=count(params.get("QueueTime")))
        return event
    if waiting == "record":
        return {"type": "recorded", "url": params.get("RecordingUrl"),
                "duration": params.get("RecordingDuration")}
    if params.get("Digits") and params["Digits"] != "hangup":
        return {"type": "digits", "digits": params["Digits"]}
    if params.get("SpeechResult"):
        return {"type": "speech", "text": params["SpeechResult"],
                "confidence": confidence(params.get("Confidence"))}
    return {"type": "silence"}


def _queue_status(result: str | None) -> str | None:
    """An Enqueue action's QueueResult, as a dial status."""
    if result is None:
        return None
    return "completed" if result in _QUEUE_ENDED else "failed"


