"""One turn of a call: step the engine, perform its effects, step again.

A provider request (or a line typed into ``ivr-sim``) is one turn.  The
engine may ask for effects along the way (look-ups, text messages); the
turn performs them and feeds each answer back, until the call waits for
the caller again.

:class:`TurnSteps` is that loop, one effect at a time, so the simulator
(:func:`play_turn`, blocking) and the web server (:func:`play_turn_now`
and :func:`play_turn_async`, Deferreds with a timeout) drive exactly the
same logic.  Each effect goes to its performer: ``perform``
for a :class:`~ivr.engine.actions.Lookup`, ``send_sms`` for a
:class:`~ivr.engine.actions.SendSms`.  A performer that raises or is too slow is
answered as a failure (the look-up's ``error`` branch, the text's
``failed`` branch), never as a broken call.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Callable

from twisted.internet import defer
from twisted.python.failure import Failure

from ivr.engine import actions as act
from ivr.engine.step import step
from ivr.flow.model import Flow

#: More effects than this in one turn means the flow loops on them.
MAX_LOOKUPS_PER_TURN = 10

#: The answer to an effect when the caller hung up while it ran (on hold
#: for a slow look-up): the turn ends the call at the node that waited.
HUNG_UP = {"hung_up": True}

Perform = Callable[[act.Lookup, datetime], dict]
#: Sends a text; answers ``{"status": "sent" | "failed", "error": ..., "sid": ...}``.
SendSmsFn = Callable[[act.SendSms, datetime], dict]
Effect = act.Lookup | act.SendSms


@dataclass(slots=True)
class Turn:
    state: dict
    actions: list
    node_events: list


class TurnSteps:
    """One turn's loop: step the engine, and say which effect to perform
    next, until the call waits for the caller again.

    :meth:`begin` and :meth:`answer` each return the next effect to
    perform, or the finished :class:`Turn`.  A plain object rather than a
    generator: most turns perform no effect, or ones that answer at once,
    and finish without being suspended."""

    __slots__ = ("flow", "state", "now", "actions", "node_events", "steps")

    def __init__(self, flow: Flow, state: dict | None, now: datetime):
        self.flow, self.state, self.now = flow, state, now
        self.actions: list = []
        self.node_events: list = []
        self.steps = 0

    def begin(self, event: dict) -> Effect | Turn:
        """Run the turn's ``event``: its first effect, or the turn."""
        return self._step(event)

    def answer(self, effect: Effect, result: dict) -> Effect | Turn:
        """Give ``effect`` its answer (the payload of its result event):
        the next effect, or the turn."""
        if result is HUNG_UP:
            # The caller never heard what came after: the call ends where it waited.
            state, _out, events = step(self.flow, self.state, {"type": "hangup", "now": self.now,
                                                               "detail": "hung up on hold"})
            self.node_events.extend(events)
            return Turn(state, [act.Hangup()], self.node_events)
        if self.steps > MAX_LOOKUPS_PER_TURN:
            state, out, events = step(self.flow, self.state, {
                "type": "error", "now": self.now,
                "message": "too many look-ups or texts in one turn"})
            self.node_events.extend(events)
            return Turn(state, fold_prompts(self.actions + out), self.node_events)
        return self._step({"type": _RESULT_EVENTS[type(effect)], "now": self.now,
                           "request_id": effect.request_id, **result})

    def _step(self, event: dict) -> Effect | Turn:
        self.steps += 1
        self.state, out, events = step(self.flow, self.state, event)
        self.node_events.extend(events)
        actions, effect = self.actions, None
        for action in out:
            if not isinstance(action, act.EFFECTS):
                actions.append(action)
            elif effect is None:  # one at a time: the next step asks again
                effect = action
        if effect is None:
            return Turn(self.state, fold_prompts(actions), self.node_events)
        return effect


def play_turn(flow: Flow, state: dict | None, event: dict, perform: Perform,
              send_sms: SendSmsFn | None = None) -> Turn:
    """Play a turn, performing effects with the blocking ``perform`` (look-ups)
    and ``send_sms`` (texts; None: every text fails as not configured).

    An effect that raises is answered as a failure, so the flow takes its
    error or failed branch instead of the call failing.  The same loop as
    :func:`play_turn_async`: with blocking performers it finishes at once.
    """
    played = play_turn_now(flow, state, event, perform, None, None, send_sms=send_sms)
    if not isinstance(played, defer.Deferred):
        return played
    outcome: list = []
    played.addBoth(outcome.append)
    if not outcome:
        raise RuntimeError("a blocking performer returned a Deferred that has not fired")
    if isinstance(outcome[0], Failure):
        outcome[0].raiseException()
    return outcome[0]


async def play_turn_async(flow: Flow, state: dict | None, event: dict, perform,
                          clock, timeout: float | None, send_sms=None,
                          caller_gone: Callable[[], bool | defer.Deferred] | None = None) -> Turn:
    """Play a turn whose effects may return Deferreds.

    Each effect gets ``timeout`` seconds on ``clock`` (None: no limit); a
    slow or failing one is answered as a failure so the caller goes down
    the error (or failed) branch well before the provider gives up on the
    request.  When ``caller_gone()`` (a flag or a Deferred of one, asked as
    each effect answers) says the caller hung up before hearing the
    answer, the call ends at the node that waited for the effect (see
    :data:`HUNG_UP`).
    """
    played = play_turn_now(flow, state, event, perform, clock, timeout, send_sms, caller_gone)
    return (await played) if isinstance(played, defer.Deferred) else played


def play_turn_now(flow: Flow, state: dict | None, event: dict, perform,
                  clock, timeout: float | None, send_sms=None,
                  caller_gone: Callable[[], bool | defer.Deferred] | None = None,
                  ) -> Turn | defer.Deferred:
    """:func:`play_turn_async`, run now: the :class:`Turn` when every
    effect answers at once (an exception raised here), else a Deferred of
    it, the rest of the turn driven by Twisted from where it waits."""
    performers = _performers(perform, send_sms)
    now = event["now"]
    steps = TurnSteps(flow, state, now)
    played = steps.begin(event)
    while not isinstance(played, Turn):
        effect = played
        answer = _answer_now(performers[type(effect)], effect, now)
        gone = None if isinstance(answer, defer.Deferred) or caller_gone is None else caller_gone()
        if isinstance(gone, defer.Deferred) and gone.called and isinstance(gone.result, bool):
            gone = gone.result  # known now: no need to wait
        if isinstance(gone, bool):
            answer, gone = (HUNG_UP if gone else answer), None
        if isinstance(answer, defer.Deferred) or gone is not None:
            return defer.Deferred.fromCoroutine(_go_on(
                steps, effect, answer, gone, performers, now, clock, timeout, caller_gone))
        played = steps.answer(effect, answer)
    return played


async def _go_on(steps: TurnSteps, effect: Effect, answer, gone: bool | defer.Deferred | None,
                 performers: dict, now: datetime, clock, timeout: float | None,
                 caller_gone: Callable[[], bool | defer.Deferred] | None) -> Turn:
    """The rest of a turn from an effect whose answer (or whether its
    caller is gone) is not known yet."""
    while True:
        if isinstance(answer, defer.Deferred):  # it answers later: within the timeout
            if timeout is not None:
                answer.addTimeout(timeout, clock)
            try:
                answer = await answer
            except Exception as error:  # noqa: BLE001 - timeouts and failures alike
                answer = effect_failed(effect, error)
        if gone is None and caller_gone is not None:
            gone = caller_gone()
        if gone is not None and (gone if isinstance(gone, bool) else await gone):
            answer = HUNG_UP
        played = steps.answer(effect, answer)
        if isinstance(played, Turn):
            return played
        effect, gone = played, None
        answer = _answer_now(performers[type(effect)], effect, now)


def _answer_now(performer, effect: Effect, now: datetime) -> dict | defer.Deferred:
    """The performer's answer to ``effect`` when it gives one at once (the
    failure's answer when it raises), else a Deferred of it.  An answer
    given at once cannot be late: it needs no Deferred and no timer."""
    try:
        answer = performer(effect, now)
    except Exception as error:  # noqa: BLE001 - the flow's error (or failed) branch
        return effect_failed(effect, error)
    if isinstance(answer, dict):
        return answer
    return defer.maybeDeferred(lambda: answer)  # a Deferred, a coroutine or a Failure


def _performers(perform, send_sms) -> dict:
    return {act.Lookup: perform, act.SendSms: send_sms or sms_not_configured}


def sms_not_configured(sms: act.SendSms, now: datetime) -> dict:
    """The answer to every text when no sender is configured."""
    return {"status": "failed", "sid": None, "error": "SMS not configured"}


def effect_failed(effect, error: BaseException) -> dict:
    """The answer of an effect whose performer raised or timed out."""
    return sms_error(error) if isinstance(effect, act.SendSms) else lookup_error(error)


def lookup_error(error: BaseException) -> dict:
    """The answer of a look-up that failed: the flow's error branch."""
    if isinstance(error, defer.TimeoutError):
        return {"status": "error", "error": "timeout"}
    return {"status": "error", "error": f"{type(error).__name__}: {error}"}


def sms_error(error: BaseException) -> dict:
    """The answer of a text that could not be sent: the flow's failed branch."""
    return {**lookup_error(error), "status": "failed"}


#: The event that carries each kind of effect's answer back to the engine.
_RESULT_EVENTS = {act.Lookup: "lookup_result", act.SendSms: "sms_result"}


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
