"""What Plivo's callback fields say: the engine event of a turn and the
end-of-call notice of the hangup URL.

The events are those the Twilio dialect produces (``digits``, ``speech``
with its confidence, ``silence``, ``dial_result``, ``recorded``), so the
engine never knows which provider spoke.
"""

from __future__ import annotations

from ivr.providers.dialect import StatusNotice
from ivr.providers.values import confidence, count

#: Plivo's ``DialStatus`` values (the Dial page's action parameters:
#: https://plivo.com/docs/voice/xml/dial) as the engine's dial statuses,
#: which are Twilio's words.
DIAL_STATUSES = {
    "completed": "completed",
    "busy": "busy",
    "failed": "failed",
    "timeout": "no-answer",
    "no-answer": "no-answer",
    "cancel": "canceled",
}

#: ``CallStatus`` values after which Plivo will not call again (the
#: request parameters page: https://www.plivo.com/docs/voice/xml/request/).
TERMINAL_STATUSES = frozenset({"completed", "busy", "failed", "timeout", "no-answer", "canceled"})


def event_from(params: dict, state: dict) -> dict:
    """The engine event a callback carries, given what the call waits for."""
    waiting = state.get("waiting")
    if waiting == "dial":
        return _dial_result(params, state)
    if waiting == "record":
        return {"type": "recorded", "url": params.get("RecordUrl"),
                "duration": params.get("RecordingDuration")}
    # GetInput's action: InputType says which input came; an empty Digits
    # and Speech (or a Redirect after the GetInput) is a silent caller.
    if params.get("Digits") and params.get("InputType", "dtmf") == "dtmf":
        return {"type": "digits", "digits": params["Digits"]}
    if params.get("Speech"):
        return {"type": "speech", "text": params["Speech"],
                "confidence": confidence(params.get("SpeechConfidenceScore"))}
    return {"type": "silence"}


def _dial_result(params: dict, state: dict) -> dict:
    """A Dial's action.  A queue transfer was dialled (Plivo has no queue):
    the caller hanging up while it rang is Twilio's queue ``hangup``
    (abandoned in the queue, still a transfer), without the wait, which
    Plivo's Dial action does not report."""
    status = DIAL_STATUSES.get(params.get("DialStatus", ""), "failed")
    handoff = state.get("handoff") or {}
    if handoff.get("kind") == "queue":
        if status == "canceled":
            return {"type": "dial_result", "status": "completed", "queue_result": "hangup",
                    "queue_seconds": None}
        return {"type": "dial_result", "status": status,
                "queue_result": "bridged" if status == "completed" else "error", "queue_seconds": None}
    return {"type": "dial_result", "status": status}


def status_from(params: dict) -> StatusNotice:
    """The hangup URL's notice: ``CallStatus`` and ``Duration`` (seconds).
    Its ``EndTime`` is in the console's local time zone, which the request
    does not say, so only the duration dates the end.  Any notice with a
    ``HangupCause`` is the last."""
    status = params.get("CallStatus", "")
    final = status in TERMINAL_STATUSES or bool(params.get("HangupCause"))
    return StatusNotice(params["CallUUID"], status, final, duration=count(params.get("Duration")))
