"""A call's state: the state a call starts with, and what is read from it."""

from __future__ import annotations

import copy
from datetime import datetime

from ivr.engine.moments import iso_text
from ivr.flow.model import REASON_NOT_STATED, Flow
from ivr.phone import country_of


def call_summary(state: dict) -> dict:
    """The call's one-row record: reason, outcome and cause, as the log keeps them."""
    return {
        "call_id": state["call_id"], "flow": state["flow"], "version": state["version"],
        "started_at": state["started_at"], "ended_at": state.get("ended_at"),
        "caller": state["caller"], "country": state["country"], "lang": state["lang"],
        "reason": state["reason"] or REASON_NOT_STATED,
        "outcome": state["outcome"],
        # A cause says why a human was needed; other outcomes have none.
        "cause": state["cause"] if state["outcome"] in ("transferred", "failed") else None,
        "confirmed": state["confirmed"], "handoff": state["handoff"],
        "steps": state["steps"], "exit_node": exit_node(state),
        "sms_sent": state.get("sms_sent", 0),
        "ivr_seconds": ivr_seconds(state),
        "transfer_result": state.get("transfer_result"),
        "queue_seconds": state.get("queue_seconds"),
        "provider": state.get("provider"),
    }


def callback_request(state: dict) -> dict | None:
    """The callback the caller asked for, once the number is kept: the
    number (their own E.164 number, or the digits typed), ``reason``,
    ``order_number`` (None when no order is known), ``slot`` (None when the
    node has none), ``lang``, ``node`` and ``requested_at`` (the flow's
    local time).  None when the call asked for none."""
    return state.get("callback")


def final_reason_answered(state: dict) -> bool:
    """Whether a ``resolves`` node answered the reason the call is counted
    under (the last one marked).  A state saved before answers were kept
    per reason only knows that something was answered."""
    if "answered" not in state:
        return bool(state.get("resolved"))
    return state["reason"] in state["answered"]


def exit_node(state: dict) -> str | None:
    """Where an ended call left the flow: the node it hung up at or ended
    on, or, when a human took it, the node where it first turned to one
    (a menu's escape, an exhausted retry, an order not found)."""
    if state["outcome"] in ("transferred", "failed"):
        return (state.get("exit_node") or (state["handoff"] or {}).get("node")
                or state["node"])
    return state["node"] if state["ended"] else None


def ivr_seconds(state: dict) -> float | None:
    """Seconds an ended call spent with the IVR: until it was put through
    to a live human, else until it ended."""
    left = state.get("transferred_at") or (state["ended"] and state.get("ended_at"))
    if not left:
        return None
    seconds = (datetime.fromisoformat(left) - datetime.fromisoformat(state["started_at"])).total_seconds()
    return max(0.0, seconds)


#: Values a call may share with its flow: nothing can change them.
_IMMUTABLE = frozenset({str, int, float, bool, type(None)})


def _own_copy(variables) -> dict:
    """The flow's variables, as a call's own: a list or a dict is copied
    (deeply), a text or a number is shared."""
    return {name: value if type(value) in _IMMUTABLE else copy.deepcopy(value)
            for name, value in variables.items()}


def new_state(flow: Flow, event: dict, now: datetime) -> dict:
    """The state of a call that starts with ``event``: the caller's
    language comes from the event, else their number's country, else the
    flow's default."""
    caller = event.get("caller") or ""
    country = country_of(caller)
    lang = event.get("lang")
    if lang not in flow.languages:
        lang = flow.country_languages.get(country) if country else None
    if lang is None:
        lang = flow.other_countries_language if country and flow.other_countries_language else flow.default_language
    started = iso_text(now)
    return {
        "call_id": event.get("call_id", "unknown"), "flow": flow.name, "version": flow.version,
        "caller": caller, "called": event.get("called", ""), "country": country,
        # The voice provider the call came by ("twilio"…), None when not told.
        "provider": event.get("provider"),
        "lang": lang, "started_at": started, "now": started,
        "ended_at": None, "node": None, "waiting": None, "request": None,
        "vars": _own_copy(flow.variables), "digits": "", "speech": "",
        "no_input": 0, "no_match": 0, "visits": {}, "steps": 0, "seq": 0,
        "reason": None, "resolved": False, "answered": [], "reason_asked": None,
        "confirmed": False,
        "cause": None, "exit_node": None, "handoff": None, "transferred_at": None,
        "outcome": None, "ended": False, "callback": None, "pending": None,
    }
