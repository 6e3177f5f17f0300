"""What jambonz's webhooks carry: the field rules, the call id, the engine
event of a turn and the end-of-call notice.

Sources: https://docs.jambonz.org/reference/websocket-api/call-control/verb-hook
and the verbs' pages (gather: ``reason`` dtmfDetected, speechDetected,
timeout; ``digits``; ``speech.alternatives[0].transcript`` and
``.confidence``; dial: ``dial_call_status``; enqueue: ``queue_result``
bridged, error, hangup or leave, ``queue_time``); jambonz-feature-server
``lib/session/call-info.js`` (every hook carries the call's ``call_sid``,
``direction``, ``from``, ``to``, ``call_status`` and, once known,
``duration``, snake-cased by ``lib/utils/http-requestor.js``),
``lib/tasks/gather.js``, ``lib/tasks/enqueue.js`` and
``lib/utils/constants.json`` (``CallStatus``, ``QueueResults``).
"""

from __future__ import annotations

import re

from ivr.providers import json_fields as jf
from ivr.providers.dialect import StatusNotice
from ivr.providers.values import confidence, count

#: jambonz's CallStatus values (constants.json).
CALL_STATUSES = frozenset({"trying", "ringing", "early-media", "in-progress", "queued",
                           "failed", "busy", "no-answer", "completed"})
FINAL_STATUSES = frozenset({"failed", "busy", "no-answer", "completed"})
QUEUE_RESULTS = frozenset({"bridged", "error", "hangup", "leave"})
#: A queue result after which the call is over for the flow: an agent took
#: it, or the caller hung up while waiting.
_QUEUE_ENDED = frozenset({"bridged", "hangup"})
#: A dial's status as the engine's.
_DIAL_STATUS = {"completed": "completed", "in-progress": "answered", "busy": "busy",
                "no-answer": "no-answer", "failed": "failed"}

_ADDRESS = jf.text(256, what="a phone number or address")

RULES: dict[str, jf.Rule] = {
    "call_sid": jf.uuid_rule(),
    "parent_call_sid": jf.uuid_rule(),
    "dial_call_sid": jf.uuid_rule(),
    "from": _ADDRESS, "to": _ADDRESS,
    "direction": jf.choice(frozenset({"inbound", "outbound"}), "inbound or outbound"),
    "call_status": jf.choice(CALL_STATUSES, "a jambonz call status such as completed"),
    "dial_call_status": jf.choice(CALL_STATUSES, "a jambonz call status such as completed"),
    "queue_result": jf.choice(QUEUE_RESULTS, "a queue result such as bridged"),
    "reason": jf.text(64),
    "digits": jf.text(64, re.compile(r"[0-9*#]*", re.ASCII), "keys (0-9, * and #)"),
    "duration": jf.number(9_999_999),
    "queue_time": jf.number(9_999_999),
    # Our own, in the query of the whisper URL a transfer carries.
    "X-IVR-Reason": jf.text(64, re.compile(r"[A-Za-z0-9_]+", re.ASCII), "a reason name"),
    "X-IVR-Call": jf.uuid_rule(),
    "X-IVR-Order": jf.text(64, what="an order number"),
}


def is_call_id(value: str) -> bool:
    """A jambonz ``call_sid``: a UUID."""
    return bool(jf.UUID.fullmatch(value))


def check(fields: dict, required: tuple[str, ...]) -> dict:
    """See :func:`ivr.providers.json_fields.check_json`."""
    return jf.check_json(fields, RULES, required)


def event_from(params: dict, state: dict) -> dict:
    """The engine event a hook carries, given what the call waits for."""
    waiting = state.get("waiting")
    if waiting == "dial":
        result = params.get("queue_result")
        if result is not None:
            return {"type": "dial_result",
                    "status": "completed" if result in _QUEUE_ENDED else "failed",
                    "queue_result": result, "queue_seconds": count(params.get("queue_time"))}
        return {"type": "dial_result",
                "status": _DIAL_STATUS.get(params.get("dial_call_status") or "", "failed")}
    if waiting == "record":
        # jambonz keeps no recording we could point at (see the gaps).
        return {"type": "recorded", "url": None, "duration": None}
    reason = params.get("reason")
    if reason == "dtmfDetected" and params.get("digits"):
        return {"type": "digits", "digits": params["digits"]}
    if reason == "speechDetected":
        said = _best_alternative(params.get("speech"))
        if said is not None:
            return {"type": "speech", "text": said[0], "confidence": said[1]}
    return {"type": "silence"}


def status_from(params: dict) -> StatusNotice:
    """A call status hook: ``call_status`` and, at the end, ``duration``."""
    status = params.get("call_status") or ""
    return StatusNotice(params["call_sid"], status, status in FINAL_STATUSES,
                        duration=count(params.get("duration")))


def _best_alternative(speech) -> tuple[str, float | None] | None:
    alternatives = speech.get("alternatives") if isinstance(speech, dict) else None
    if not isinstance(alternatives, list) or not alternatives or not isinstance(alternatives[0], dict):
        return None
    text = alternatives[0].get("transcript")
    if not isinstance(text, str) or not text.strip():
        return None
    score = alternatives[0].get("confidence")
    # A number only: jambonz sends one, never its text.
    return text.strip(), confidence(score) if isinstance(score, (int, float)) else None
