"""One turn of a call: step the engine, perform its look-ups, step again.

A provider request (or a line typed into ``ivr-sim``) is one turn.  The
engine may ask for look-ups along the way; the turn performs them and
feeds each answer back, until the call waits for the caller again.

:func:`turn_steps` is that loop as a generator that yields each look-up
and receives its answer, so the simulator (:func:`play_turn`, blocking)
and the web server (:func:`play_turn_async`, Deferreds with a timeout)
drive exactly the same logic.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Callable, Generator

from twisted.internet import defer

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


def turn_steps(flow: Flow, state: dict | None, event: dict) -> Generator[act.Lookup, dict, Turn]:
    """Run ``event`` through the engine; yield each look-up, receive its
    answer (a ``lookup_result`` payload), and return the :class:`Turn`."""
    actions, node_events = [], []
    for _ in range(MAX_LOOKUPS_PER_TURN + 1):
        state, out, events = step(flow, state, event)
        node_events.extend(events)
        lookups = [a for a in out if isinstance(a, act.Lookup)]
        actions.extend(a for a in out if not isinstance(a, act.Lookup))
        if not lookups:
            return Turn(state, fold_prompts(actions), node_events)
        result = yield lookups[0]
        event = {"type": "lookup_result", "now": event["now"],
                 "request_id": lookups[0].request_id, **result}
    state, out, events = step(flow, state, {"type": "error", "now": event["now"],
                                            "message": "too many look-ups in one turn"})
    return Turn(state, fold_prompts(actions + out), node_events + events)


def play_turn(flow: Flow, state: dict | None, event: dict, perform: Perform) -> Turn:
    """Play a turn, performing look-ups with the blocking ``perform``.

    A look-up that raises is answered as an error, so the flow takes its
    error branch instead of the call failing.
    """
    steps = turn_steps(flow, state, event)
    answer = None
    while True:
        try:
            lookup = steps.send(answer)
        except StopIteration as done:
            return done.value
        try:
            answer = perform(lookup, event["now"])
        except Exception as error:  # noqa: BLE001 - the flow's error branch handles it
            answer = lookup_error(error)


async def play_turn_async(flow: Flow, state: dict | None, event: dict, perform,
                          clock, timeout: float) -> Turn:
    """Play a turn whose look-ups may return Deferreds.

    Each look-up gets ``timeout`` seconds on ``clock``; a slow or failing
    one is answered as an error so the caller goes down the error branch
    well before the provider gives up on the request.
    """
    steps = turn_steps(flow, state, event)
    answer = None
    while True:
        try:
            lookup = steps.send(answer)
        except StopIteration as done:
            return done.value
        pending = defer.maybeDeferred(perform, lookup, event["now"])
        pending.addTimeout(timeout, clock)
        try:
            answer = await pending
        except Exception as error:  # noqa: BLE001 - timeouts and failures alike
            answer = lookup_error(error)


def lookup_error(error: BaseException) -> dict:
    """The answer of a look-up that failed: the flow's error branch."""
    if isinstance(error, defer.TimeoutError):
        return {"status": "error", "error": "timeout"}
    return {"status": "error", "error": f"{type(error).__name__}: {error}"}


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
                action = replace(action, prompts=tuple(lead) + action.prompts)
        result.append(action)
    return result
