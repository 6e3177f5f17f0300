"""Serving live calls: one provider request in, TwiML out, the log kept.

No HTTP here (that is ``ivr.web``): this module turns a webhook's
parameters into an engine event, runs the turn on the flow version the
call started with, stores the new state, node events and call row in one
transaction, and answers.  Its promises:

- a retried turn (same ``CallSid`` and turn number) gets the same TwiML
  and is logged once;
- any exception apologises and puts the caller through to a human, and
  the call is marked ``failed``;
- a look-up slower than ``lookup_timeout`` takes the flow's error branch;
- a turn the store cannot write (disk full, I/O error, database locked)
  is still answered: with the flow's apology and transfer to a human,
  kept in memory (a retry gets the same answer, the call's next turns
  go on from it) and written once the store writes again.  The failure
  is logged, counted, and ``/healthz`` answers 503 while it lasts
  (:class:`ivr.storage_health.StorageHealth`).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field, replace
from typing import Callable
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from urllib.parse import quote
from zoneinfo import ZoneInfo

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from ivr.engine import actions as act
from ivr.engine.step import call_summary, step
from ivr.store.sqlite.group_commit import GroupCommit
from ivr.engine.step import new_state as fresh_state
from ivr.server.helpdesk import NoHelpdesk
from ivr.phone import mask
from ivr.flow.prompts import PromptError
from ivr.providers.twilio.render import render_twiml
from ivr.server.sms import NoSms
from ivr.store.sqlite.storage_health import StorageHealth, fault_cause
from ivr.store.sqlite.store import CallRecord
from ivr.engine.turn import play_turn_async

#: A call silent this long (seconds) while the IVR waits for the caller
#: has gone without its status callback: the sweep ends it.
SWEEP_IDLE = 3600
#: The same while with an agent, in a queue or recording: Twilio ends a
#: <Dial> after its timeLimit of 4 hours.
SWEEP_ON_TRANSFER = 4 * 3600 + 600

#: Seconds an ended call's state is kept, so a provider retry of its last
#: turn still gets the same TwiML; the sweep then drops it (its node
#: events and ``calls`` row stay).
STATE_KEPT_AFTER_END = 600

#: Most calls answered from memory while the store cannot write.
UNSAVED_KEPT = 10_000

#: Most of those written back by one pass once the store writes again.
UNSAVED_WRITTEN_PER_PASS = 200

#: Call statuses after which the provider will not call us again.
TERMINAL_STATUSES = frozenset({"completed", "busy", "no-answer", "canceled", "failed"})



#: Seconds a turn's look-ups may take before the caller hears the flow's
#: ``hold`` prompt, then a pause of HOLD_PAUSE seconds before the poll.
HOLD_AFTER = 1.5
HOLD_PAUSE = 2
#: How many held turns' hold answers are kept for late retries.
MAX_HOLD_ANSWERS = 10_000


class _Round:
    """One answer shared by every request that asks while it is open: all
    of them get the same bytes (or the same failure)."""

    def __init__(self):
        self.answer = None  # bytes, or the turn's Failure, once settled
        self.timer = None
        self._waiting: list[defer.Deferred] = []

    @property
    def settled(self) -> bool:
        return self.answer is not None

    def settle(self, answer) -> None:
        if self.settled:
            return
        self.answer = answer
        if self.timer is not None and self.timer.active():
            self.timer.cancel()
        waiting, self._waiting = self._waiting, []
        for waiter in waiting:
            self._fire(waiter)

    def wait(self) -> defer.Deferred:
        """A Deferred firing with the answer once settled."""
        waiter = defer.Deferred(lambda d: d in self._waiting and self._waiting.remove(d))
        if self.settled:
            self._fire(waiter)
        else:
            self._waiting.append(waiter)
        return waiter

    def _fire(self, waiter):
        if isinstance(self.answer, Failure):
            waiter.errback(self.answer)
        else:
            waiter.callback(self.answer)


#: A look-up that answers while its caller hears the hold's pause waits
#: for them to come back for it (or hang up) at most the pause, a poll's
#: wait and this many seconds more; then the turn goes on as if they came.
COME_BACK_MARGIN = 5


def server_say(flow, lang: str | None, name: str) -> act.Say | None:
    """One of the prompts the server says itself (``hold``,
    ``failsafe_apology``: see ivr.prompts.FIXED_SERVER_PROMPTS), as the
    flow rendered it when it loaded, in the flow's voice for ``lang``;
    None without a flow or that language."""
    text = flow.server_says.get(lang, {}).get(name) if flow is not None and lang else None
    if not text:
        return None
    return act.Say(text, voice=flow.voices.get(lang), language=lang)


class Held:
    """A turn whose look-ups may outlast ``hold_after`` seconds.

    Its request, and every retry of it, get one answer (the *opening*):
    the turn's TwiML if it is ready within ``hold_after``, else the hold
    ``hold_twiml(self, True)`` gives.  Polls (the caller coming back from
    the hold) share answers the same way, one poll round at a time: the
    TwiML once it is ready, else ``hold_twiml(self, False)`` after
    ``hold_after``.  ``hold_twiml`` returns None when the turn must not
    hold (only its commit is left): the answer then waits for the turn.
    So concurrent retries never get different bytes."""

    def __init__(self, call_id: str, turn: int, work: defer.Deferred, say: act.Say | None, *,
                 clock, hold_after: float, hold_twiml):
        self.call_id, self.turn = call_id, turn
        #: What the caller hears the first time they are put on hold.
        self.say = say
        self.clock, self.hold_after, self.hold_twiml = clock, hold_after, hold_twiml
        self.result = None
        self._finished = _Round()
        self.opening = self._round(True)
        self._polling: _Round | None = None
        #: Holds answered so far (the opening's and the polls').
        self.holds = 0
        #: The provider said the call ended while the turn ran: its
        #: answer will never be heard.
        self.hung_up = False
        #: Waiting to know whether the caller, between two holds, comes back.
        self._presence: list[defer.Deferred] = []
        work.addBoth(self._done)

    @property
    def done(self) -> bool:
        return self.result is not None

    def _round(self, opening: bool) -> _Round:
        round_ = _Round()
        round_.timer = self.clock.callLater(self.hold_after, self._time_up, round_, opening)
        return round_

    def _time_up(self, round_: _Round, opening: bool) -> None:
        round_.timer = None
        hold = self.hold_twiml(self, opening)
        if hold is not None:
            self.holds += 1
            round_.settle(hold)

    def _done(self, result):
        self.result = result
        for round_ in (self.opening, self._polling, self._finished):
            if round_ is not None:
                round_.settle(result)

    def poll(self) -> defer.Deferred:
        """The answer for a poll: joins the open poll round, or starts one.
        A poll is the caller back from the hold's pause."""
        self._presence_known(self.hung_up)  # may finish the turn at once
        if self._polling is None or self._polling.settled:
            if self.done:
                return self.finished()
            self._polling = self._round(False)
        return self._polling.wait()

    def finished(self) -> defer.Deferred:
        """A Deferred firing with the turn's TwiML (or failing) once it is done."""
        return self._finished.wait()

    def hang_up(self) -> None:
        """The provider says the call ended: the turn's answer will never be heard."""
        self.hung_up = True
        self._presence_known(True)

    def caller_gone(self, seconds: float) -> defer.Deferred:
        """Whether the caller left before hearing the answer: True once
        the provider said the call ended; False at once while a request
        waits for the answer (or none was put on hold).  Between two holds
        (the caller hears a pause), it fires when the caller comes back
        (False) or hangs up (True), or False after ``seconds``."""
        if self.hung_up:
            return defer.succeed(True)
        if self.holds == 0 or self._request_waiting():
            return defer.succeed(False)
        asked = defer.Deferred()
        self._presence.append(asked)
        timer = self.clock.callLater(seconds, self._presence_known, False)
        asked.addBoth(lambda gone: (timer.active() and timer.cancel(), gone)[1])
        return asked

    def _request_waiting(self) -> bool:
        """Whether a request of the caller's waits for an answer now."""
        return not self.opening.settled or (self._polling is not None and not self._polling.settled)

    def _presence_known(self, gone: bool) -> None:
        asked, self._presence = self._presence, []
        for waiter in asked:
            waiter.callback(gone)


class UnknownFlow(LookupError):
    """No flow of that name is loaded."""


@dataclass
class Unsaved:
    """A call answered from memory because the store could not write its
    turn: the record as answered, and the writes the store still owes."""

    record: CallRecord
    write: Callable[[], object]


def _both(first, then):
    """The writes of ``first`` then ``then``, as one write."""
    def write():
        first()
        return then()
    return write


@dataclass
class Counters:
    """What /metrics reports."""

    turns: int = 0
    replayed: int = 0
    holds: int = 0
    failsafe: int = 0
    calls_started: int = 0
    status_callbacks: int = 0
    #: Turns answered from memory because the store could not write them.
    unsaved_turns: int = 0
    by_outcome: dict = field(default_factory=dict)


class CallHandler:
    log = Logger()

    def __init__(self, registry, store, perform, clock, *, lookup_timeout: float = 4.0,
                 fallback: act.DialTarget | None = None, base_url: str = "",
                 group_commit: GroupCommit | None = None, hold_after: float = HOLD_AFTER,
                 send_sms=None, helpdesk=None):
        self.registry, self.store, self.perform, self.clock = registry, store, perform, clock
        #: Told of each callback request once its turn is committed
        #: (``ivr.helpdesk``); without one requests are kept, not sent.
        self.helpdesk = helpdesk or NoHelpdesk()
        #: Sends the flows' texts (``ivr.sms``); without one they all fail.
        self.send_sms = send_sms or NoSms().send
        #: When set, turns are committed in groups (see ivr.group_commit);
        #: else each turn commits before ``voice`` returns.
        self.group_commit = group_commit
        self.lookup_timeout = lookup_timeout
        self.fallback = fallback
        self.base_url = base_url.rstrip("/")
        self.counters = Counters()
        #: Seconds a turn's look-ups may take before the caller is put on hold.
        self.hold_after = hold_after
        self._held: dict[str, Held] = {}
        #: Whether the store writes (``/healthz``, ``/metrics``).
        self.storage = StorageHealth()
        #: Calls answered from memory while the store could not write.
        self._unsaved: OrderedDict[str, Unsaved] = OrderedDict()
        #: call -> (turn, hold TwiML) of turns whose request was answered
        #: with a hold, so a retry after the turn is done still gets it.
        self._hold_answers: OrderedDict[str, tuple[int, bytes]] = OrderedDict()
        #: The fail-safe apology of each language, from the flows played:
        #: a call whose flow version is gone still hears one.
        self._apologies: dict[str, act.Say] = {}
        self._apologies_of = None

    def action_url(self, flow_name: str, turn: int) -> str:
        """Where the provider sends the answer to ``turn``: the turn number
        lets a retried request be recognised."""
        return f"{self.base_url}/voice/{quote(flow_name)}?turn={turn}"

    def poll_url(self, flow_name: str, turn: int) -> str:
        """Where a caller on hold comes back for the answer to ``turn``."""
        return f"{self.action_url(flow_name, turn)}&hold=1"

    async def voice(self, flow_name: str, turn: int, params: dict,
                    now: datetime | None = None, poll: bool = False) -> bytes:
        """Answer one voice webhook of call ``params['CallSid']``.

        ``now`` replaces the clock for this turn (``ivr-sim`` against a
        server started with ``--simulated-clock``).  A turn whose look-ups
        take longer than ``hold_after`` is answered with a hold (see
        :meth:`_hold`) and goes on; ``poll`` is the caller coming back
        from it."""
        call_id = params["CallSid"]
        held = self._held.get(call_id)
        if held is not None and held.turn == turn:
            return await (held.poll() if poll else held.opening.wait())
        held_answer = self._hold_answers.get(call_id)
        if held_answer is not None and held_answer[0] == turn and not poll:
            return held_answer[1]  # a retry of a request answered with a hold
        try:
            record = self._last_record(call_id)
            if record is None and turn > 0 and self._state_dropped(call_id):
                self.log.info("turn {call} {turn} of a call ended long ago: hung up",
                              call=call_id, turn=turn)
                return render_twiml([act.Hangup()], "")
        except Exception as error:  # noqa: BLE001 - the store cannot even read
            return self._unreadable(flow_name, turn, params, now, error)
        if record is not None and (turn <= record.turn or poll):
            # A retry; or a poll for a turn this process no longer holds (it
            # restarted): the caller hears the last question again.
            self.counters.replayed += 1
            self.log.info("turn {call} {turn} replayed", call=call_id, turn=turn)
            return record.response
        self._hold_answers.pop(call_id, None)  # a new turn: older ones are not retried
        storing = []  # _play notes when only the commit is left
        work = defer.ensureDeferred(self._play(flow_name, turn, params, now, record, storing))
        if work.called:
            return await work
        held = self._held[call_id] = Held(
            call_id, turn, work, self._hold_prompt(record, flow_name), clock=self.clock,
            hold_after=self.hold_after,
            hold_twiml=lambda held, opening: self._hold_twiml(held, flow_name, storing, opening))
        work.addBoth(self._release, call_id, held)
        return await held.opening.wait()

    async def _play(self, flow_name, turn, params, now, record, storing=None) -> bytes:
        """Play the turn, store it, and return its TwiML.  ``storing`` (a
        list) gets an item once the turn waits only for its commit."""
        call_id = params["CallSid"]
        if record is None:
            flow = self.registry.current(flow_name)
            if flow is None:
                raise UnknownFlow(flow_name)
            state = None
            event = {"type": "start", "call_id": call_id, "caller": params.get("From", ""),
                     "called": params.get("To", "")}
            self.counters.calls_started += 1
        else:
            state = record.state
            flow = (self.registry.version(state["flow"], state["version"])
                    or self.registry.current(state["flow"]))
            event = event_from(params, state)
        event["now"] = now or self._now(flow.timezone if flow else "UTC")
        if flow is not None and flow is not self._apologies_of:
            self._remember_apologies(flow)
        url = self.action_url(flow_name, turn + 1)
        try:
            if flow is None:
                raise UnknownFlow(f"{state['flow']} version {state['version']}")
            result = await play_turn_async(flow, state, event, self.perform, self.clock,
                                           self.lookup_timeout, send_sms=self.send_sms,
                                           caller_gone=lambda: self._caller_gone(call_id, turn))
            new_state, node_events = result.state, result.node_events
            actions = [self._with_whisper(a) for a in result.actions]
            body = render_twiml(actions, url)
        except Exception:  # noqa: BLE001 - the caller must reach a human
            self.log.failure("turn {call} {turn} failed; routing to a human", call=call_id, turn=turn)
            new_state, body, node_events = self._fail_safe(flow, state, event, url)
        pending = self._unsaved.get(call_id)
        write = self._writer(call_id, turn, new_state, body, node_events)
        if pending is not None:  # the call's turns answered from memory are written first
            write = _both(pending.write, write)
        try:
            await self._commit(write, storing, turn)
        except Exception as error:  # noqa: BLE001 - the caller must still be answered
            return self._answer_unsaved(call_id, turn, flow, state, event, url, error, pending,
                                        (new_state, body, node_events))
        self._written(call_id, pending)
        self._saved(call_id, turn, new_state)
        if new_state.get("callback") and not (state or {}).get("callback"):
            self.helpdesk.requested(call_id)  # this turn kept the number, now committed
        if self._unsaved:
            self.save_unsaved()
        return body

    async def _commit(self, write, storing, turn):
        """Run ``write`` now, or in the next group commit."""
        if self.group_commit is None:
            write()
            return
        if storing is not None:
            storing.append(turn)
        await self.group_commit.write(write)

    # -- a store that cannot write -------------------------------------------------------
    def _last_record(self, call_id: str) -> CallRecord | None:
        """The call's last answered turn: from memory when the store could
        not write it, else from the store."""
        unsaved = self._unsaved.get(call_id)
        return unsaved.record if unsaved is not None else self.store.load_call(call_id)

    def _state_dropped(self, call_id: str) -> bool:
        """Whether the call ended and the sweep dropped its state: a very
        late request must not start it again (nor rewrite its log)."""
        row = self.store.call(call_id)
        return row is not None and row["ended_at"] is not None

    def _answer_unsaved(self, call_id, turn, flow, state, event, url, error, pending, played):
        """The turn could not be written: answer it from memory.  A call
        that was going on hears the flow's apology and is put through to
        its human destination (the engine's fail-safe); one already
        answered from memory (on its way to that human) goes on as played.
        The answer and its writes are kept until the store writes again."""
        cause = self.storage.failed(error, f"turn {turn} of {call_id}")
        self.counters.unsaved_turns += 1
        new_state, body, node_events = played
        if pending is None and new_state["outcome"] != "failed":
            new_state, body, node_events = self._fail_safe(flow, state, event, url)
        write = self._writer(call_id, turn, new_state, body, node_events)
        if pending is not None:
            write = _both(pending.write, write)
        self._keep_unsaved(call_id, Unsaved(
            CallRecord(state=new_state, turn=turn, response=body,
                       ended=bool(new_state.get("ended"))), write))
        self.log.warn("turn {call} {turn} answered from memory ({cause}) at {node}",
                      call=call_id, turn=turn, cause=cause, node=new_state["node"])
        return body

    def _unreadable(self, flow_name, turn, params, now, error) -> bytes:
        """The store cannot even read the call: apologise and put the
        caller through to the current flow's human, keeping nothing (its
        state, if any, is the store's)."""
        self.storage.failed(error, f"state of {params['CallSid']}")
        flow = self.registry.current(flow_name)
        if flow is None:
            raise UnknownFlow(flow_name)
        event = {"type": "start", "call_id": params["CallSid"], "caller": params.get("From", ""),
                 "called": params.get("To", ""), "now": now or self._now(flow.timezone)}
        _state, body, _events = self._fail_safe(flow, None, event,
                                                self.action_url(flow_name, turn + 1))
        return body

    def _keep_unsaved(self, call_id: str, unsaved: Unsaved) -> None:
        self._unsaved[call_id] = unsaved
        self._unsaved.move_to_end(call_id)
        if len(self._unsaved) > UNSAVED_KEPT:
            dropped, _ = self._unsaved.popitem(last=False)
            self.log.error("call {call} answered from memory is forgotten: more than {most} "
                           "calls wait for the store", call=dropped, most=UNSAVED_KEPT)

    def _written(self, call_id: str, unsaved: Unsaved | None) -> None:
        """A write committed: the store works, and ``unsaved`` (the call's
        turns answered from memory, written with it) is no longer owed."""
        self.storage.succeeded()
        if unsaved is not None and self._unsaved.get(call_id) is unsaved:
            del self._unsaved[call_id]
            if unsaved.record.state.get("callback"):
                self.helpdesk.requested(call_id)

    def save_unsaved(self, most: int = UNSAVED_WRITTEN_PER_PASS) -> int:
        """Write up to ``most`` of the calls answered from memory, oldest
        first, stopping at the first failure; how many were written."""
        written = 0
        for call_id, unsaved in list(self._unsaved.items())[:most]:
            try:
                with self.store.transaction():
                    unsaved.write()
            except Exception as error:  # noqa: BLE001 - kept for the next pass
                self.storage.failed(error, f"turns of {call_id} answered from memory")
                if fault_cause(error) is not None:
                    break
                # Its writes are broken, not the store: trying again cannot help.
                if self._unsaved.get(call_id) is unsaved:
                    del self._unsaved[call_id]
                continue
            self._written(call_id, unsaved)
            written += 1
        if written:
            self.log.info("{count} calls answered from memory are now written, {left} left",
                          count=written, left=len(self._unsaved))
        return written

    @property
    def calls_in_memory(self) -> int:
        """Calls answered from memory whose turns the store still owes."""
        return len(self._unsaved)

    def probe_storage(self) -> bool:
        """While writes fail (or calls wait in memory), try a write: the
        health recovers without waiting for a call.  True when the store
        writes.  Never raises (it runs from a timer)."""
        if self.storage.ok and not self._unsaved:
            return True
        try:
            self.store.probe_write()
        except Exception as error:  # noqa: BLE001 - still failing
            self.storage.failed(error, "probe")
            return False
        self.storage.succeeded()
        self.save_unsaved()
        return self.storage.ok

    # -- holding a caller while a slow look-up goes on ---------------------------------
    def _hold_twiml(self, held: "Held", flow_name: str, storing: list, opening: bool) -> bytes | None:
        """What a turn still running after ``hold_after`` answers: "one
        moment" (for the turn's own request: ``opening``), a pause, and a
        redirect to the poll URL; None when only its commit is left (only
        a slow look-up puts the caller on hold, never the commit).  The
        look-up's own timeout ends the wait by sending the turn down the
        flow's error branch."""
        if storing:
            return None
        self.counters.holds += 1
        self.log.info("turn {call} {turn} on hold ({holds})", call=held.call_id,
                      turn=held.turn, holds="opening" if opening else "poll")
        body = self._hold(held, flow_name, opening)
        if opening:
            self._hold_answers[held.call_id] = (held.turn, body)
            if len(self._hold_answers) > MAX_HOLD_ANSWERS:
                self._hold_answers.popitem(last=False)
        return body

    def _hold(self, held: "Held", flow_name: str, first: bool) -> bytes:
        actions = [held.say] if first and held.say is not None else []
        actions += [act.Pause(HOLD_PAUSE), act.Redirect(self.poll_url(flow_name, held.turn))]
        return render_twiml(actions, "")

    def _hold_prompt(self, record, flow_name) -> act.Say | None:
        """"One moment" in the call's language and the flow's voice (the
        flow's ``hold`` prompt, said when the flow was loaded); None when
        the flow is gone, and the caller only hears the pause."""
        if record is not None:
            state = record.state
            flow = (self.registry.version(state["flow"], state["version"])
                    or self.registry.current(state["flow"]))
            lang = state["lang"]
        else:
            flow = self.registry.current(flow_name)
            lang = flow.default_language if flow else None
        return server_say(flow, lang, "hold")

    def _caller_gone(self, call_id: str, turn: int) -> defer.Deferred:
        """Whether the caller of a turn on hold hung up before its answer
        (see :meth:`Held.caller_gone`): asked as each look-up answers."""
        held = self._held.get(call_id)
        if held is None or held.turn != turn:
            return defer.succeed(False)
        return held.caller_gone(HOLD_PAUSE + self.hold_after + COME_BACK_MARGIN)

    def _release(self, _result, call_id, held):
        if self._held.get(call_id) is held:
            del self._held[call_id]

    def status(self, params: dict, now: datetime | None = None) -> bool:
        """Take a status callback and commit it; True when it was new.  A
        terminal status ends the call: one still waiting for the caller was
        abandoned.  ``now`` replaces the clock, as for :meth:`voice`."""
        if self.group_commit is not None:
            self.group_commit.flush()  # the call's last turn may be queued
        pending = self._unsaved.get(params["CallSid"])
        try:
            with self.store.transaction():
                new, ended = self._apply_status(params, now)
        except Exception as error:
            if fault_cause(error) is not None:
                self.storage.failed(error, f"status of {params['CallSid']}")
            raise
        self._written(params["CallSid"], pending)
        return self._status_taken(new, ended)

    async def status_committed(self, params: dict, now: datetime | None = None) -> bool:
        """:meth:`status`, committed with the group of turns when the
        handler commits in groups; the result once it is committed."""
        held = self._held.get(params["CallSid"])
        if held is not None:
            if params.get("CallStatus", "") in TERMINAL_STATUSES:
                held.hang_up()  # at the node the turn waits at, not the one after
            await _settled(held.finished())  # its last turn must be saved first
        if self.group_commit is None:
            return self.status(params, now)
        pending = self._unsaved.get(params["CallSid"])
        try:
            new, ended = await self.group_commit.write(lambda: self._apply_status(params, now))
        except Exception as error:
            if fault_cause(error) is not None:
                self.storage.failed(error, f"status of {params['CallSid']}")
            raise
        self._written(params["CallSid"], pending)
        return self._status_taken(new, ended)

    def _apply_status(self, params, now):
        """The writes of a status callback (database only): whether it was
        new, and the (call, turn, state) it ended, if any.  The call ends
        when the provider says it did (see :func:`provider_end`), so the
        last prompt counts in its time."""
        call_id, status = params["CallSid"], params.get("CallStatus", "")
        pending = self._unsaved.get(call_id)
        if pending is not None:  # its turns answered from memory come first
            pending.write()
        if status in TERMINAL_STATUSES:
            self._hold_answers.pop(call_id, None)
        received = now or self._now("UTC")
        new = self.store.record_status(
            call_id, _count(params.get("SequenceNumber")), status,
            received.isoformat(), _count(params.get("CallDuration")))
        if not new or status not in TERMINAL_STATUSES:
            return new, None
        record = self.store.load_call(call_id)
        if record is None:
            return new, None
        state = record.state
        ended_at = provider_end(params, state, received)
        if record.ended:
            self._end_later(call_id, record, ended_at)
            return new, None
        flow = (self.registry.version(state["flow"], state["version"])
                or self.registry.current(state["flow"]))
        if flow is None:
            self.log.error("call {call} ended on unknown flow {flow}", call=call_id, flow=state["flow"])
            return new, None
        ended = (ended_at or received).astimezone(ZoneInfo(flow.timezone))
        new_state, _actions, node_events = step(flow, state, {"type": "hangup", "now": ended})
        self._writer(call_id, record.turn, new_state, record.response, node_events)()
        return new, (call_id, record.turn, new_state)

    def _end_later(self, call_id, record, ended_at):
        """A call we ended (a goodbye, a transfer) ended for the provider
        after its last prompt: move its end there, so that prompt counts."""
        state = record.state
        if ended_at is None or not state.get("ended_at"):
            return
        if ended_at <= datetime.fromisoformat(state["ended_at"]):
            return
        local = ended_at.astimezone(datetime.fromisoformat(state["ended_at"]).tzinfo)
        self._writer(call_id, record.turn, {**state, "ended_at": local.isoformat()},
                     record.response, [])()

    def _status_taken(self, new: bool, ended) -> bool:
        self.counters.status_callbacks += 1
        if ended is not None:
            self._saved(*ended)
        return new

    def sweep(self, idle: float = SWEEP_IDLE, on_transfer: float = SWEEP_ON_TRANSFER,
              state_kept: float = STATE_KEPT_AFTER_END) -> int:
        """End the calls the provider never closed (a lost status callback):
        those silent for ``idle`` seconds, or ``on_transfer`` seconds while
        with an agent or in a queue.  Each ends as a hang-up at its last
        turn, so it counts as abandoned unless a human already had it, and
        its time with the IVR is not stretched to the sweep.  Then drop the
        state of the calls ended more than ``state_kept`` seconds ago (see
        :meth:`ivr.store.CallStore.drop_ended_states`).  Returns how many
        calls were ended.  A store that cannot write stops the sweep until
        its next run; it never raises (it runs from a timer)."""
        if self.group_commit is not None:
            self.group_commit.flush()
        now = datetime.fromtimestamp(self.clock.seconds(), ZoneInfo("UTC"))
        try:
            ended = self._end_silent_calls(now, idle, on_transfer)
            dropped = self.store.drop_ended_states((now - timedelta(seconds=state_kept)).isoformat())
        except Exception as error:  # noqa: BLE001 - the next sweep tries again
            self.storage.failed(error, "sweep")
            return 0
        if ended:
            self.log.info("sweep ended {count} calls with no status callback", count=len(ended))
        if dropped:
            self.log.info("sweep dropped the state of {count} ended calls", count=dropped)
        return len(ended)

    def _end_silent_calls(self, now, idle, on_transfer) -> list[str]:
        ended = []
        for call_id in self.store.open_calls((now - timedelta(seconds=idle)).isoformat()):
            if call_id in self._unsaved:
                continue  # answered from memory since: the store's state is behind
            record = self.store.load_call(call_id)
            state = record.state
            quiet_since = datetime.fromisoformat(state["now"])
            if state["waiting"] in ("dial", "record") and (now - quiet_since).total_seconds() < on_transfer:
                continue  # still with an agent, in a queue or leaving a message
            flow = (self.registry.version(state["flow"], state["version"])
                    or self.registry.current(state["flow"]))
            if flow is None:
                continue
            event = {"type": "hangup", "now": quiet_since, "detail": "no status callback"}
            with self.store.transaction():
                new_state, _actions, node_events = step(flow, state, event)
                self._writer(call_id, record.turn, new_state, record.response, node_events)()
            self.storage.succeeded()
            self._saved(call_id, record.turn, new_state)
            ended.append(call_id)
        return ended

    def purge(self, days: float) -> dict:
        """Erase the calls that started more than ``days`` days ago, with
        everything logged of them (``--retention-days``); the rows erased
        per table.  Never raises (it runs from a timer)."""
        now = datetime.fromtimestamp(self.clock.seconds(), ZoneInfo("UTC"))
        cutoff = (now - timedelta(days=days)).isoformat()
        try:
            erased = self.store.purge_before(cutoff)
        except Exception as error:  # noqa: BLE001 - tomorrow's run tries again
            self.storage.failed(error, "retention purge")
            return {}
        self.log.info("retention: erased the calls started before {cutoff}: {calls} calls, "
                      "{rows} rows", cutoff=cutoff, calls=erased.get("calls", 0),
                      rows=sum(erased.values()))
        return erased

    def _with_whisper(self, action):
        """A transfer to a phone number first tells the agent why the caller
        calls (see :meth:`whisper`); SIP transfers carry it as headers."""
        if isinstance(action, act.Dial) and action.target.kind == "number" and not action.whisper_url:
            return replace(action, whisper_url=f"{self.base_url}/whisper")
        return action

    def whisper(self, params: dict) -> bytes:
        """What the agent hears before being put through: the reason and the
        order number, so they need not ask again."""
        record = self.store.load_call(params.get("X-IVR-Call", ""))
        state = record.state if record else {}
        flow = self.registry.current(state.get("flow", "")) if state else None
        lang = flow.default_language if flow else "fr-FR"
        reason = params.get("X-IVR-Reason", "")
        reason_text = (flow.reason_text(reason, lang) if flow else None) or reason.replace("_", " ")
        order = "".join(c for c in params.get("X-IVR-Order", "") if c.isalnum())
        if flow is None:
            return render_twiml([], "")  # the agent is put through without a word
        try:
            sentence = flow.prompts.render(lang, "agent_whisper", {"reason": reason_text, "order": order})
        except PromptError:
            self.log.failure("the agent whisper of {flow} failed", flow=flow.name)
            return render_twiml([], "")
        return render_twiml([act.Say(sentence, voice=flow.voices.get(lang), language=lang)], "")

    def describe(self, call_id: str) -> dict | None:
        """What a test client may know of a call: where it is, its node
        events and its summary, without the caller's number (a number to
        call back shows only its last two digits)."""
        record = self.store.load_call(call_id)
        if record is None:
            return None
        state = record.state
        summary = {k: v for k, v in call_summary(state).items() if k != "caller"}
        if (summary.get("handoff") or {}).get("kind") == "callback" and summary["handoff"]["target"]:
            # The number to call back is the caller's: shown masked, like in logs.
            summary["handoff"] = {**summary["handoff"],
                                  "target": mask(str(summary["handoff"]["target"]))}
        return {"call_id": call_id, "turn": record.turn, "node": state.get("node"),
                "waiting": state.get("waiting"), "ended": bool(state.get("ended")),
                "summary": summary, "node_events": self.store.node_events(call_id)}

    # -- internals -----------------------------------------------------------------
    def _now(self, timezone: str) -> datetime:
        return datetime.fromtimestamp(self.clock.seconds(), ZoneInfo(timezone))

    def _writer(self, call_id, turn, state, body, node_events):
        """The writes of a turn, as a function to run now or in a group commit."""
        summary = call_summary(state)
        return lambda: self.store.save_turn(call_id, turn, state, body, node_events, summary,
                                            caller=state["caller"],
                                            callback_status=self.helpdesk.initial_status)

    def _saved(self, call_id, turn, state):
        """Count and log a turn once it is committed."""
        self.counters.turns += 1
        outcome = state["outcome"]
        if state["ended"]:
            self.counters.by_outcome[outcome] = self.counters.by_outcome.get(outcome, 0) + 1
        self.log.info("turn {call} {turn} at {node} outcome {outcome}", call=call_id, turn=turn,
                      node=state["node"], outcome=outcome or "ongoing")

    def _fail_safe(self, flow, state, event, url):
        """Apologise and transfer: through the engine's own fail-safe when
        the flow is known, else to the server's fallback destination."""
        self.counters.failsafe += 1
        if flow is not None:
            try:
                new_state, actions, node_events = step(
                    flow, state, {**event, "type": "error", "message": "turn failed"})
                return new_state, render_twiml(actions, url), node_events
            except Exception:  # noqa: BLE001 - fall through to the last resort
                self.log.failure("the flow's own fail-safe failed")
        return self._last_resort(flow, state, event, url)

    def _remember_apologies(self, flow):
        self._apologies_of = flow
        for lang in flow.languages:
            say = server_say(flow, lang, "failsafe_apology")
            if say is not None:
                self._apologies[lang] = say

    def _last_resort(self, flow, state, event, url):
        """Apologise and dial the server's fallback (or hang up): even the
        flow's own fail-safe failed, or the call's flow version is gone.
        A call without state has a flow: unknown flows are refused earlier."""
        ended = dict(state or fresh_state(flow, event, event["now"]))
        say = server_say(flow, ended["lang"], "failsafe_apology") or self._apologies.get(ended["lang"])
        actions = ([say] if say else []) + [act.Dial(self.fallback) if self.fallback else act.Hangup()]
        ended.update(ended=True, outcome="failed", cause="error", waiting=None,
                         ended_at=event["now"].isoformat(),
                         handoff={"kind": self.fallback.kind, "target": self.fallback.address,
                                  "node": None} if self.fallback else None)
        return ended, render_twiml(actions, url), []


def _count(value: str | None) -> int | None:
    """A provider's count (sequence number, duration): ASCII digits, at
    most nine of them, else None (``str.isdigit`` takes "²")."""
    if value and len(value) <= 9 and value.isascii() and value.isdigit():
        return int(value)
    return None


async def _settled(d: defer.Deferred) -> None:
    """Wait for ``d`` whatever its outcome (its failure is the turn's, already answered)."""
    try:
        await d
    except defer.CancelledError:
        raise
    except Exception:  # noqa: BLE001 - reported by the turn's own request
        pass


#: How far a provider's end-of-call time may be ahead of our clock (clock
#: skew) before it is taken for garbage.
END_SKEW = timedelta(minutes=5)


def provider_end(params: dict, state: dict, received: datetime) -> datetime | None:
    """When the call ended, by the provider's end-of-call notice: the
    call's start plus ``CallDuration`` (seconds), else its ``Timestamp``
    (RFC 2822).  A value missing, garbled, before our last webhook or
    after the notice arrived (beyond :data:`END_SKEW`) is passed over;
    None when neither is usable."""
    last = datetime.fromisoformat(state["now"])
    # Added in UTC: "+" on a local time misses a change of clocks.
    latest = received.astimezone(ZoneInfo("UTC")) + END_SKEW
    duration = _count(params.get("CallDuration"))
    candidates = [_rfc2822(params.get("Timestamp"))]
    if duration is not None:
        candidates.insert(0, datetime.fromisoformat(state["started_at"]) + timedelta(seconds=duration))
    for moment in candidates:
        if moment is not None and last <= moment <= latest:
            return moment
    return None


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
            event.update(queue_result=queue_result, queue_seconds=_count(params.get("QueueTime")))
        return event
    if waiting == "record":
        return {"type": "recorded", "url": params.get("RecordingUrl"),
                "duration": params.get("RecordingDuration")}
    if params.get("Digits") and params["Digits"] != "hangup":
        return {"type": "digits", "digits": params["Digits"]}
    if params.get("SpeechResult"):
        return {"type": "speech", "text": params["SpeechResult"],
                "confidence": _confidence(params.get("Confidence"))}
    return {"type": "silence"}


#: Enqueue action results (Twilio's ``QueueResult``) after which the call
#: is over as far as the flow is concerned: an agent took it, or the
#: caller hung up while waiting (abandoned in the queue, still a transfer).
#: The others (``queue-full``, ``error``, ``system-error``, ``leave``,
#: ``redirected``) mean nobody took the call: the flow's ``no_answer``.
_QUEUE_ENDED = ("bridged", "bridging-in-process", "redirected-from-bridged", "hangup")


def _queue_status(result: str | None) -> str | None:
    """An Enqueue action's QueueResult, as a dial status."""
    if result is None:
        return None
    return "completed" if result in _QUEUE_ENDED else "failed"


def _confidence(value) -> float | None:
    """The recogniser's confidence in 0..1, or None when it sent none (or nonsense)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if 0.0 <= number <= 1.0 else None
