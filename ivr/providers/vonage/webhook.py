"""What Vonage's webhooks carry: the field rules, the call id, the engine
event of a turn and the end-of-call notice.

Sources: https://developer.vonage.com/voice/voice-api/webhook-reference
(answer: ``to``, ``from``, ``uuid``, ``conversation_uuid``; events:
``status`` started, ringing, answered, busy, cancelled, unanswered,
rejected, failed, timeout, completed with ``duration``, ``end_time`` and
``timestamp``; record: ``recording_url``, ``start_time``, ``end_time``;
input: ``dtmf.digits``, ``dtmf.timed_out``, ``speech.results[].text`` and
``.confidence`` (a string), ``speech.timeout_reason``), the Speech
Recognition guide's input payload, and vonage-dotnet-sdk
``Vonage/Voice/EventWebhooks`` (``Notification``: ``payload``,
``conversation_uuid``, ``timestamp``, no ``uuid``).

The call is known by its ``conversation_uuid``: every request of the call
carries it (a ``notify`` request has no ``uuid``, and the events of a
``connect`` carry the new leg's ``uuid``).
"""

from __future__ import annotations

import re
from datetime import datetime

from ivr.providers import json_fields as jf
from ivr.providers.dialect import Refusal, StatusNotice
from ivr.providers.values import confidence

#: Call statuses after which Vonage will not report on the leg again.
FINAL_STATUSES = frozenset({"completed", "busy", "cancelled", "unanswered", "rejected",
                            "failed", "timeout"})
#: Statuses of a leg still going: at a turn's URL (a ``connect``'s
#: eventUrl) they are not the transfer's outcome.
PROGRESS_STATUSES = frozenset({"started", "ringing", "answered", "human", "machine"})
STATUSES = FINAL_STATUSES | PROGRESS_STATUSES | {"disconnected", "transfer", "transcribed"}

#: A connect's outcome as the engine's dial status.
DIAL_STATUS = {"completed": "completed", "busy": "busy", "timeout": "no-answer",
               "unanswered": "no-answer", "cancelled": "canceled", "rejected": "failed",
               "failed": "failed"}
#: A conversation's leg status as a queue's result: an agent took the
#: call, the caller hung up while waiting, or neither.
QUEUE_RESULT = {"completed": "bridged", "cancelled": "hangup"}

_ADDRESS = jf.text(128, what="a phone number or address")
_TIME = jf.text(64)

RULES: dict[str, jf.Rule] = {
    "conversation_uuid": jf.uuid_rule("CON-"),
    "uuid": jf.uuid_rule(),
    "to": _ADDRESS, "from": _ADDRESS,
    "status": jf.choice(STATUSES, "a Vonage call status such as completed"),
    "direction": jf.choice(frozenset({"inbound", "outbound"}), "inbound or outbound"),
    "duration": jf.number(9_999_999),
    "timestamp": _TIME, "start_time": _TIME, "end_time": _TIME,
    "recording_url": jf.text(2048, re.compile(r"https?://\S+", re.ASCII), "an http(s) URL"),
    # Our own, in the query of the whisper URL a transfer carries.
    "X-IVR-Reason": jf.text(64, re.compile(r"[A-Za-z0-9_]+", re.ASCII), "a reason name"),
    "X-IVR-Call": jf.uuid_rule("CON-"),
    "X-IVR-Order": jf.text(64, what="an order number"),
}

_CALL_ID = re.compile("CON-" + jf.UUID.pattern, re.ASCII)


def is_call_id(value: str) -> bool:
    """``CON-`` and a UUID: a Vonage conversation."""
    return bool(_CALL_ID.fullmatch(value))


def check(fields: dict, required: tuple[str, ...], voice_fields: tuple[str, ...]) -> dict:
    """The fields, checked (see :func:`ivr.providers.json_fields.check_json`).
    At a turn's URL, a leg's progress (started, ringing, answered) is refused:
    only a connect's outcome is the turn's answer."""
    params = jf.check_json(fields, RULES, required)
    if required == voice_fields and params.get("status") in PROGRESS_STATUSES:
        raise Refusal(400, "a call progress event is not a turn's answer")
    return params


def event_from(params: dict, state: dict) -> dict:
    """The engine event a turn's request carries, given what the call waits for."""
    waiting = state.get("waiting")
    if waiting == "dial":
        status = DIAL_STATUS.get(params.get("status") or "", "failed")
        event = {"type": "dial_result", "status": status}
        if (state.get("handoff") or {}).get("kind") == "queue":
            # A conversation stands in for the queue: its leg's status is the
            # result, in the words the engine reads (Twilio's QueueResult);
            # a caller who hung up while waiting ended the queue, as Twilio says.
            result = QUEUE_RESULT.get(params.get("status") or "", "error")
            event.update(status="completed" if result != "error" else status,
                         queue_result=result, queue_seconds=None)
        return event
    if waiting == "record":
        return {"type": "recorded", "url": params.get("recording_url"),
                "duration": _seconds_between(params.get("start_time"), params.get("end_time"))}
    digits = _digits(params.get("dtmf"))
    if digits:
        return {"type": "digits", "digits": digits}
    said = _best_result(params.get("speech"))
    if said is not None:
        return {"type": "speech", "text": said[0], "confidence": said[1]}
    return {"type": "silence"}


def status_from(params: dict) -> StatusNotice:
    """An event webhook: ``status``, ``duration`` and ``end_time`` (else
    ``timestamp``)."""
    status = params.get("status") or ""
    duration = params.get("duration")
    return StatusNotice(params["conversation_uuid"], status, status in FINAL_STATUSES,
                        duration=int(duration) if duration not in (None, "") else None,
                        timestamp=iso_time(params.get("end_time") or params.get("timestamp")))


def iso_time(value) -> datetime | None:
    """An ISO 8601 time such as ``2020-01-01T12:00:00.000Z``; None if it is not one."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def _seconds_between(start, end) -> int | None:
    first, last = iso_time(start), iso_time(end)
    if first is None or last is None or last < first:
        return None
    return int((last - first).total_seconds())


def _digits(dtmf) -> str:
    """Keys pressed: ``dtmf.digits`` (older payloads sent ``dtmf`` as a string)."""
    value = dtmf.get("digits") if isinstance(dtmf, dict) else dtmf
    if isinstance(value, str) and re.fullmatch(r"[0-9*#]{1,64}", value):
        return value
    return ""


def _best_result(speech) -> tuple[str, float | None] | None:
    """The first (best) recognition result's text and confidence (0..1)."""
    results = speech.get("results") if isinstance(speech, dict) else None
    if not isinstance(results, list) or not results or not isinstance(results[0], dict):
        return None
    text = results[0].get("text")
    if not isinstance(text, str) or not text.strip():
        return None
    return text, confidence(results[0].get("confidence"))
