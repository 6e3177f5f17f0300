"""One turn of a call: step the engine, perform its look-ups, step again.

A provider request (or a line typed into ``ivr-sim``) is one turn.  The
engine may ask for look-ups along the way; the turn performs them and
feeds each answer back, until the call waits for the caller again.  The
web server does the same with Deferreds; both share :func:`fold_prompts`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Callable

from . import actions as act
from .engine import step
from .model import Flow

#: More look-ups than this in one turn means the flow loops on them.
MAX_LOOKUPS_PER_TURN = 10

Perform = Callable[[act.Lookup, datetime], dict]


@dataclass
class Turn:
    state: dict
    actions: list
    node_events: list


def play_turn(flow: Flow, state: dict | None, event: dict, perform: Perform) -> Turn:
    """Run ``event`` through the engine, performing look-ups with ``perform``.

    A look-up that raises is answered as an error, so the flow takes its
    error branch instead of the call failing.
    """
    actions, node_events = [], []
    for _ in range(MAX_LOOKUPS_PER_TURN + 1):
        state, out, events = step(flow, state, event)
        node_events.extend(events)
        lookups = [a for a in out if isinstance(a, act.Lookup)]
        actions.extend(a for a in out if not isinstance(a, act.Lookup))
        if not lookups:
            return Turn(state, fold_prompts(actions), node_events)
        lookup = lookups[0]
        try:
            result = perform(lookup, event["now"])
        except Exception as error:  # noqa: BLE001 - the flow's error branch handles it
            result = {"status": "error", "error": f"{type(error).__name__}: {error}"}
        event = {"type": "lookup_result", "now": event["now"],
                 "request_id": lookup.request_id, **result}
    state, out, events = step(flow, state, {"type": "error", "now": event["now"],
                                            "message": "too many look-ups in one turn"})
    return Turn(state, fold_prompts(actions + out), node_events + events)


def fold_prompts(actions: list) -> list:
    """Move the prompts that come right before a Gather inside it, so the
    caller can answer while they play (barge-in)."""
    result: list = []
    for action in actions:
        if isinstance(action, act.Gather):
            lead = []
            while result and isinstance(result[-1], (act.Say, act.Play, act.Pause)):
                lead.insert(0, result.pop())
            if lead:
                action = act.Gather(**{**action.__dict__, "prompts": tuple(lead) + action.prompts})
        result.append(action)
    return result
