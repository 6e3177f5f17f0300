"""Serving live calls: one provider request in, the provider's document
out, the log kept.

No HTTP here (that is ``ivr.server.web``), and no provider's field names
or markup (that is the handler's :class:`ivr.providers.dialect.Dialect`):
this module has the dialect turn a webhook's parameters into an engine
event, runs the turn on the flow version the
call started with, stores the new state, node events and call row in one
transaction, and answers.  Its promises:

- a retried turn (same call id and turn number) gets the same document
  and is logged once;
- any exception apologises and puts the caller through to a human, and
  the call is marked ``failed``;
- a look-up slower than ``lookup_timeout`` takes the flow's error branch;
- a turn the store cannot write (disk full, I/O error, database locked)
  is still answered: with the flow's apology and transfer to a human,
  kept in memory (a retry gets the same answer, the call's next turns
  go on from it) and written once the store writes again.  The failure
  is logged, counted, and ``/healthz`` answers 503 while it lasts
  (:class:`ivr.store.sqlite.storage_health.StorageHealth`).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import lru_cache, partial
from urllib.parse import quote
from zoneinfo import ZoneInfo

from twisted.internet import defer
from twisted.python.failure import Failure

from ivr.engine import actions as act
from ivr.engine.state import call_summary
from ivr.engine.state import new_state as fresh_state
from ivr.engine.step import step
from ivr.engine.turn import play_turn_now
from ivr.flow.prompts import PromptError
from ivr.phone import mask, mask_numbers
from ivr.providers.dialect import Dialect
from ivr.providers.twilio.dialect import TwilioDialect
from ivr.server.call_status import _settled, _StatusCallbacks
from ivr.server.helpdesk import NoHelpdesk
from ivr.server.holding import (
    HOLD_AFTER,
    HOLD_PAUSE,
    MAX_HOLD_ANSWERS,
    Held,
    PollsElsewhere,
    server_say,
)
from ivr.server.logs import TurnLogger
from ivr.server.playing import TurnInPlay
from ivr.server.registry import UnknownFlow
from ivr.server.served import Served
from ivr.server.sms import NoSms
from ivr.server.storage_faults import Unsaved, _StorageFaults
from ivr.store.sqlite.group_commit import GroupCommit
from ivr.store.sqlite.storage_health import StorageHealth

#: A look-up that answers while its caller hears the hold's pause waits
#: for them to come back for it (or hang up) at most the pause, a poll's
#: wait and this many seconds more; then the turn goes on as if they came.
COME_BACK_MARGIN = 5


@lru_cache(maxsize=256)
def _quoted(flow_name: str) -> str:
    """A flow's name as its URLs carry it; the same few names every turn."""
    return quote(flow_name)


#: The time zone of each name: the flows' few, looked up once a turn.
_zone = lru_cache(maxsize=64)(ZoneInfo)


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
    #: Turns committed and calls started, by provider name.
    turns_by_provider: dict = field(default_factory=dict)
    calls_by_provider: dict = field(default_factory=dict)


class CallHandler(_StatusCallbacks, _StorageFaults):
    log = TurnLogger()

    def __init__(self, registry, store, perform, clock, *, lookup_timeout: float = 4.0,
                 fallback: act.DialTarget | None = None, base_url: str = "",
                 group_commit: GroupCommit | None = None, hold_after: float = HOLD_AFTER,
                 send_sms=None, helpdesk=None, dialect: Dialect | None = None,
                 read_in_thread=None):
        self.registry, self.store, self.perform, self.clock = registry, store, perform, clock
        #: Runs a turn's read of the store off the reactor's thread and
        #: returns a Deferred (a store across the network, PostgreSQL);
        #: None reads at once (SQLite, memory).
        self.read_in_thread = read_in_thread
        #: The provider's requests and markup; Twilio's unless told.
        self.dialect: Dialect = dialect or TwilioDialect()
        #: How requests are read when a route does not say (its dialect at the root).
        self.served = Served(self.dialect)
        #: Told of each callback request once its turn is committed
        #: (``ivr.server.helpdesk``); without one requests are kept, not sent.
        self.helpdesk = helpdesk or NoHelpdesk()
        #: Sends the flows' texts (``ivr.server.sms``); without one they all fail.
        self.send_sms = send_sms or NoSms().send
        #: When set, turns are committed in groups (see ivr.store.sqlite.group_commit);
        #: else each turn commits before ``voice`` returns.
        self.group_commit = group_commit
        self.lookup_timeout = lookup_timeout
        self.fallback = fallback
        self.base_url = base_url.rstrip("/")
        self.counters = Counters()
        #: Seconds a turn's look-ups may take before the caller is put on hold.
        self.hold_after = hold_after
        #: The turns in play that requests of their call may join.
        self._held: dict[str, Held | TurnInPlay] = {}
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
        #: Polls for turns another server process plays (several share the
        #: store): none waits unless set (ivr.server.tap does, for workers).
        self.polls_elsewhere = PollsElsewhere(0)
        #: The handler's logger, bound once (the class's makes one at each read).
        self.log = self.log

    def action_url(self, flow_name: str, turn: int, served: Served | None = None) -> str:
        """Where the provider sends the answer to ``turn``: the turn number
        lets a retried request be recognised; under the route prefix of the
        provider ``served``, and its request's base URL when it has one."""
        return f"{self._base(served)}/{served.prefix if served else ''}voice/{_quoted(flow_name)}?turn={turn}"

    def poll_url(self, flow_name: str, turn: int, served: Served | None = None) -> str:
        """Where a caller on hold comes back for the answer to ``turn``."""
        return f"{self.action_url(flow_name, turn, served)}&hold=1"

    def _base(self, served: Served | None) -> str:
        return served.base if served is not None and served.base is not None else self.base_url

    def voice(self, flow_name: str, turn: int, params: dict,
              now: datetime | None = None, poll: bool = False,
              served: Served | None = None) -> defer.Deferred:
        """Answer one voice webhook (the dialect's ``params``) of a call: a
        Deferred firing with the provider's document.

        ``now`` replaces the clock for this turn (``ivr-sim`` against a
        server started with ``--simulated-clock``).  A turn whose look-ups
        take longer than ``hold_after`` is answered with a hold (see
        :meth:`_hold`) and goes on; ``poll`` is the caller coming back
        from it.  ``served`` is the provider whose route the request came
        by (the handler's own dialect unless told)."""
        try:
            answer = self.answer(flow_name, turn, params, now, poll, served)
        except Exception:  # noqa: BLE001 - the Deferred carries it
            return defer.fail()
        return answer if isinstance(answer, defer.Deferred) else defer.succeed(answer)

    def answer(self, flow_name: str, turn: int, params: dict, now: datetime | None = None,
               poll: bool = False, served: Served | None = None) -> bytes | defer.Deferred:
        """:meth:`voice`, with the document itself when it is ready at once
        (a retry, a replay, a turn committed without group commit), else a
        Deferred of it; raises what the Deferred would fail with."""
        served = served or self.served
        call_id = served.dialect.call_facts(params).call_id
        joined = self._join_held(call_id, turn, poll)
        if joined is not None:
            return joined
        held_answer = self._hold_answers.get(call_id)
        if held_answer is not None and held_answer[0] == turn and not poll:
            return held_answer[1]  # a retry of a request answered with a hold
        if self.read_in_thread is not None:
            return defer.ensureDeferred(
                self._answer_read_in_thread(flow_name, turn, params, now, poll, served, call_id))
        try:
            record = self._last_record(call_id)
            if record is None and turn > 0 and self._state_dropped(call_id):
                return self._long_ended(call_id, turn, served)
        except Exception as error:  # noqa: BLE001 - the store cannot even read
            return self._unreadable(flow_name, turn, params, now, error, served)
        return self._answer_from(record, flow_name, turn, params, now, poll, served, call_id)

    async def _answer_read_in_thread(self, flow_name, turn, params, now, poll, served,
                                     call_id) -> bytes:
        """:meth:`answer` for a store read off the reactor's thread."""
        try:
            # A call answered from memory goes on from there, not from a
            # store that may be the one that hangs.
            unsaved = self._unsaved.get(call_id)
            record = (unsaved.record if unsaved is not None
                      else await self.read_in_thread(self.store.load_call, call_id))
            if record is None and turn > 0 and await self.read_in_thread(self._state_dropped,
                                                                         call_id):
                return self._long_ended(call_id, turn, served)
            if record is not None and not self.registry.knows(record.state["flow"],
                                                              record.state["version"]):
                # A version this process never loaded is rebuilt from the store.
                await self.read_in_thread(self.registry.version, record.state["flow"],
                                          record.state["version"])
        except Exception as error:  # noqa: BLE001 - the store cannot even read
            return self._unreadable(flow_name, turn, params, now, error, served)
        joined = self._join_held(call_id, turn, poll)  # a copy of it came while we read
        if joined is not None:
            return await joined
        answer = self._answer_from(record, flow_name, turn, params, now, poll, served, call_id)
        return (await answer) if isinstance(answer, defer.Deferred) else answer

    def _long_ended(self, call_id: str, turn: int, served: Served) -> bytes:
        self.log.info("turn {call} {turn} of a call ended long ago: hung up",
                      call=call_id, turn=turn)
        return served.dialect.render([act.Hangup()], "")

    def _answer_from(self, record, flow_name, turn, params, now, poll, served,
                     call_id) -> bytes | defer.Deferred:
        """The answer to a turn of a call whose last answered turn is ``record``."""
        if poll and (record is None or record.turn < turn) and self.polls_elsewhere.wait(call_id, turn):
            return self._hold_again(flow_name, turn, served)  # the turn plays in another process
        if record is not None and (turn <= record.turn or poll):
            # A retry; or a poll for a turn this process no longer holds (it
            # restarted): the caller hears the last question again.
            self.counters.replayed += 1
            self.log.info("turn {call} {turn} replayed", call=call_id, turn=turn)
            return record.response
        self._hold_answers.pop(call_id, None)  # a new turn: older ones are not retried
        storing: list = []  # _play puts the turn there when only its commit is left
        work = self._play(flow_name, turn, params, now, record, call_id, storing, served)
        if not isinstance(work, defer.Deferred) or work.called:
            return work
        # Retries, polls and the status callback join the turn while it
        # plays.  One waiting only for its commit never holds: it lets go
        # of them itself once committed (TurnInPlay.committed).
        if storing:
            self._held[call_id] = storing[0]
            return work
        held = self._held[call_id] = Held(
            call_id, turn, work, self._hold_prompt(record, flow_name),
            clock=self.clock, hold_after=self.hold_after,
            hold_twiml=lambda held, opening: self._hold_twiml(held, flow_name, storing, opening,
                                                              served))
        work.addBoth(self._release, call_id, held)
        return held.join()

    def _join_held(self, call_id: str, turn: int, poll: bool) -> defer.Deferred | None:
        """The answer of this turn when it is already being played (a
        retry, or the caller coming back from a hold); None when it is not."""
        held = self._held.get(call_id)
        if held is None or held.turn != turn:
            return None
        return held.poll() if poll else held.join()

    def _play(self, flow_name, turn, params, now, record, call_id: str, storing=None,
              served: Served | None = None) -> bytes | defer.Deferred:
        """Play the turn of the call ``call_id`` (the one ``params`` name), store
        it, and return its document (or a Deferred of it).  ``storing`` (a
        list) gets an item once the turn waits only for its commit."""
        served = served or self.served
        dialect = served.dialect
        if record is None:
            facts = dialect.call_facts(params)
            call_id = facts.call_id
            flow = self.registry.current(flow_name)
            if flow is None:
                raise UnknownFlow(flow_name)
            state = None
            event = {"type": "start", "call_id": call_id, "caller": facts.caller,
                     "called": facts.called, "provider": served.name}
            self.counters.calls_started += 1
            by_provider = self.counters.calls_by_provider
            by_provider[served.name] = by_provider.get(served.name, 0) + 1
        else:
            state = record.state
            flow = (self.registry.version(state["flow"], state["version"])
                    or self.registry.current(state["flow"]))
            event = dialect.event_from(params, state)
        event["now"] = now or self._now(flow.timezone if flow else "UTC")
        if flow is not None and flow is not self._apologies_of:
            self._remember_apologies(flow)
        playing = TurnInPlay(self, call_id, turn, flow, state, event,
                             self.action_url(flow_name, turn + 1, served), dialect, storing)
        try:
            if flow is None:
                raise UnknownFlow(f"{state['flow']} version {state['version']}")
            played = play_turn_now(
                flow, state, event, self.perform, self.clock, self.lookup_timeout,
                send_sms=self.send_sms, caller_gone=playing.caller_gone)
        except Exception:  # noqa: BLE001 - the caller must reach a human
            return playing.failed(Failure())
        if isinstance(played, defer.Deferred):  # a look-up answers later
            return played.addCallbacks(playing.played, playing.failed, callbackArgs=(served,))
        return playing.played(played, served)

    # -- holding a caller while a slow look-up goes on ---------------------------------
    def _hold_twiml(self, held: "Held", flow_name: str, storing: list, opening: bool,
                    served: Served | None = None) -> bytes | None:
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
        body = self._hold(held, flow_name, opening, served or self.served)
        if opening:
            self._hold_answers[held.call_id] = (held.turn, body)
            if len(self._hold_answers) > MAX_HOLD_ANSWERS:
                self._hold_answers.popitem(last=False)
        return body

    def _hold_again(self, flow_name: str, turn: int, served: Served) -> bytes:
        """A pause and the same poll again: for a caller whose held turn
        another process plays, until the store has its answer."""
        return served.dialect.render(
            [act.Pause(HOLD_PAUSE), act.Redirect(self.poll_url(flow_name, turn, served))], "")

    def _hold(self, held: "Held", flow_name: str, first: bool, served: Served) -> bytes:
        actions = [held.say] if first and held.say is not None else []
        actions += [act.Pause(HOLD_PAUSE),
                    act.Redirect(self.poll_url(flow_name, held.turn, served))]
        return served.dialect.render(actions, "")

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

    def _caller_gone(self, call_id: str, turn: int) -> bool | defer.Deferred:
        """Whether the caller of a turn on hold hung up before its answer
        (see :meth:`Held.caller_gone`): asked as each look-up answers.
        False at once for a turn that was never put on hold."""
        held = self._held.get(call_id)
        if not isinstance(held, Held) or held.turn != turn:
            return False
        return held.caller_gone(HOLD_PAUSE + self.hold_after + COME_BACK_MARGIN)

    def _release(self, _result, call_id, held):
        if self._held.get(call_id) is held:
            del self._held[call_id]

    def status_committed(self, params: dict, now: datetime | None = None,
                         served: Served | None = None) -> defer.Deferred:
        """:meth:`status`, committed with the group of turns when the
        handler commits in groups: a Deferred of its result once it is
        committed.  A call's turn still in play is committed first."""
        try:
            notice = (served or self.served).dialect.status_from(params)
        except Exception:  # noqa: BLE001 - the Deferred carries it
            return defer.fail()
        held = self._held.get(notice.call_id)
        if held is not None:
            if notice.final:
                held.hang_up()  # at the node the turn waits at, not the one after
            return defer.ensureDeferred(self._status_after(held, notice, params, now, served))
        return self._commit_status(notice, params, now, served)

    async def _status_after(self, held: Held | TurnInPlay, notice, params, now, served) -> bool:
        await _settled(held.finished())  # its last turn must be saved first
        return await self._commit_status(notice, params, now, served)

    def _commit_status(self, notice, params, now, served) -> defer.Deferred:
        if self.group_commit is None:
            return defer.maybeDeferred(self.status, params, now, served)
        # Counted and logged once committed (the group commit's ``then``),
        # without a callback of its own on the request's Deferred.
        return self.group_commit.write(partial(self._apply_status, notice, now),
                                       partial(self._status_committed, notice,
                                               self._unsaved.get(notice.call_id)))

    def _with_whisper(self, action, served: Served):
        """A transfer to a phone number first tells the agent why the caller
        calls (see :meth:`whisper`); SIP transfers carry it as headers."""
        if isinstance(action, act.Dial) and action.target.kind == "number" and not action.whisper_url:
            return replace(action, whisper_url=f"{self._base(served)}/{served.prefix}whisper")
        return action

    def whisper(self, params: dict, served: Served | None = None) -> bytes | defer.Deferred:
        """What the agent hears before being put through: the reason and the
        order number, so they need not ask again (a Deferred of it when the
        store is read off the reactor).  A store that cannot read the call
        puts the agent through without a word: never a failed whisper, which
        would leave the caller unconnected."""
        dialect = (served or self.served).dialect
        call_id = params.get("X-IVR-Call", "")
        if self.read_in_thread is not None:
            return self.read_in_thread(self.store.load_call, call_id).addBoth(
                self._whisper_of, call_id, params, dialect)
        try:
            record = self.store.load_call(call_id)
        except Exception:  # noqa: BLE001 - the agent is put through all the same
            return self._whisper_of(Failure(), call_id, params, dialect)
        return self._whisper_of(record, call_id, params, dialect)

    def _whisper_of(self, record, call_id: str, params: dict, dialect) -> bytes:
        if isinstance(record, Failure):
            self.storage.failed(record.value, f"whisper of {call_id}")
            record = None
        state = record.state if record else {}
        flow = self.registry.current(state.get("flow", "")) if state else None
        lang = flow.default_language if flow else "fr-FR"
        reason = params.get("X-IVR-Reason", "")
        reason_text = (flow.reason_text(reason, lang) if flow else None) or reason.replace("_", " ")
        order = "".join(c for c in params.get("X-IVR-Order", "") if c.isalnum())
        if flow is None:
            return dialect.render([], "")  # the agent is put through without a word
        try:
            sentence = flow.prompts.render(lang, "agent_whisper", {"reason": reason_text, "order": order})
        except PromptError:
            self.log.failure("the agent whisper of {flow} failed", flow=flow.name)
            return dialect.render([], "")
        return dialect.render([act.Say(sentence, voice=flow.voices.get(lang), language=lang)], "")

    def describe(self, call_id: str) -> dict | None | defer.Deferred:
        """What a test client may know of a call: where it is, its node
        events and its summary, without the caller's number (a number to
        call back shows only its last two digits); a Deferred of it when
        the store is read off the reactor.  Raises (fails with) what the
        store raises."""
        if self.read_in_thread is not None:
            return self.read_in_thread(self._description, call_id)
        return self._description(call_id)

    def _description(self, call_id: str) -> dict | None:
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
        return datetime.fromtimestamp(self.clock.seconds(), _zone(timezone))

    def _writer(self, call_id, turn, state, body, node_events):
        """The writes of a turn, as a function to run now or in a group commit."""
        summary = call_summary(state)
        return self.store.turn_writer(call_id, turn, state, body, node_events, summary,
                                      caller=state["caller"],
                                      callback_status=self.helpdesk.initial_status)

    def _saved(self, call_id, turn, state):
        """Count and log a turn once it is committed."""
        self.counters.turns += 1
        provider = state.get("provider") or self.served.name
        by_provider = self.counters.turns_by_provider
        by_provider[provider] = by_provider.get(provider, 0) + 1
        outcome = state["outcome"]
        if state["ended"]:
            self.counters.by_outcome[outcome] = self.counters.by_outcome.get(outcome, 0) + 1
        self.log.info("turn {call} {turn} at {node} outcome {outcome}", call=call_id, turn=turn,
                      node=state["node"], outcome=outcome or "ongoing")

    def _fail_safe(self, flow, state, event, url, dialect: Dialect | None = None,
                   error: Exception | None = None):
        """Apologise and transfer: through the engine's own fail-safe when
        the flow is known, else to the server's fallback destination, in
        ``dialect`` (the handler's own unless told).  The engine logs
        ``error`` (numbers masked) as the fail-safe's cause."""
        dialect = dialect or self.dialect
        self.counters.failsafe += 1
        if flow is not None:
            message = "turn failed" if error is None else mask_numbers(
                f"turn failed: {type(error).__name__}: {error}")
            try:
                new_state, actions, node_events = step(
                    flow, state, {**event, "type": "error", "message": message})
                return new_state, dialect.render(actions, url), node_events
            except Exception:  # noqa: BLE001 - fall through to the last resort
                self.log.failure("the flow's own fail-safe failed")
        return self._last_resort(flow, state, event, url, dialect)

    def _remember_apologies(self, flow):
        self._apologies_of = flow
        for lang in flow.languages:
            say = server_say(flow, lang, "failsafe_apology")
            if say is not None:
                self._apologies[lang] = say

    def _last_resort(self, flow, state, event, url, dialect: Dialect):
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
        return ended, dialect.render(actions, url), []


