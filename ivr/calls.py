"""Serving live calls: one provider request in, TwiML out, the log kept.

No HTTP here (that is ``ivr.web``): this module turns a webhook's
parameters into an engine event, runs the turn on the flow version the
call started with, stores the new state, node events and call row in one
transaction, and answers.  Its promises:

- a retried turn (same ``CallSid`` and turn number) gets the same TwiML
  and is logged once;
- any exception apologises and puts the caller through to a human, and
  the call is marked ``failed``;
- a look-up slower than ``lookup_timeout`` takes the flow's error branch.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from xml.sax.saxutils import escape
from datetime import datetime, timedelta
from urllib.parse import quote
from zoneinfo import ZoneInfo

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from . import actions as act
from .engine import FAILSAFE_APOLOGY, call_summary, step
from .group_commit import GroupCommit
from .engine import new_state as fresh_state
from .helpdesk import NoHelpdesk
from .render import render_twiml
from .sms import NoSms
from .turn import play_turn_async

#: A call silent this long (seconds) while the IVR waits for the caller
#: has gone without its status callback: the sweep ends it.
SWEEP_IDLE = 3600
#: The same while with an agent, in a queue or recording: Twilio ends a
#: <Dial> after its timeLimit of 4 hours.
SWEEP_ON_TRANSFER = 4 * 3600 + 600

#: Call statuses after which the provider will not call us again.
TERMINAL_STATUSES = frozenset({"completed", "busy", "no-answer", "canceled", "failed"})



#: The agent's whisper, by language prefix.
WHISPER = {
    "fr": {"reason": "Appel du serveur vocal. Motif : {reason}.", "order": "Commande {order}."},
    "en": {"reason": "Call from the voice server. Reason: {reason}.", "order": "Order {order}."},
}


#: What a caller hears while a look-up is slow, then a pause before the poll.
HOLD_PROMPT = {
    "fr": "Un instant, je recherche votre commande.",
    "en": "One moment, I'm looking up your order.",
}
HOLD_AFTER = 1.5
HOLD_PAUSE = 2


class Held:
    """A turn still running after its request was answered with a hold.

    Its result is kept here and handed out through fresh Deferreds, as a
    retried request, a poll and a status callback may all wait for it."""

    def __init__(self, call_id: str, turn: int, work: defer.Deferred, lang: str):
        self.call_id, self.turn, self.lang, self.holds = call_id, turn, lang, 0
        self.result = None
        self._waiting: list[defer.Deferred] = []
        work.addBoth(self._done)

    @property
    def done(self) -> bool:
        return self.result is not None

    def _done(self, result):
        self.result = result
        waiting, self._waiting = self._waiting, []
        for waiter in waiting:
            waiter.callback(True)

    def answer(self) -> defer.Deferred:
        """The turn's TwiML (or its failure); only once :attr:`done`."""
        return defer.fail(self.result) if isinstance(self.result, Failure) else defer.succeed(self.result)

    def within(self, seconds: float | None, clock) -> defer.Deferred:
        """A Deferred firing True once the turn is done, or False after
        ``seconds`` (None: no limit)."""
        if self.done:
            return defer.succeed(True)
        waiter = defer.Deferred(lambda d: self._forget(d))
        self._waiting.append(waiter)
        if seconds is not None:
            timer = clock.callLater(seconds, self._give_up, waiter)
            waiter.addBoth(lambda done: (timer.active() and timer.cancel(), done)[1])
        return waiter

    def _give_up(self, waiter):
        if waiter in self._waiting:
            self._waiting.remove(waiter)
            waiter.callback(False)

    def _forget(self, waiter):
        if waiter in self._waiting:
            self._waiting.remove(waiter)


class UnknownFlow(LookupError):
    """No flow of that name is loaded."""


@dataclass
class Counters:
    """What /metrics reports."""

    turns: int = 0
    replayed: int = 0
    holds: int = 0
    failsafe: int = 0
    calls_started: int = 0
    status_callbacks: int = 0
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
            return await self._answer_or_hold(held, flow_name, self.hold_after)  # a poll, or a retry
        record = self.store.load_call(call_id)
        if record is not None and (turn <= record.turn or poll):
            # A retry; or a poll for a turn this process no longer holds (it
            # restarted): the caller hears the last question again.
            self.counters.replayed += 1
            self.log.info("turn {call} {turn} replayed", call=call_id, turn=turn)
            return record.response
        storing = []  # _play notes when only the commit is left
        work = defer.ensureDeferred(self._play(flow_name, turn, params, now, record, storing))
        if work.called:
            return await work
        held = self._held[call_id] = Held(call_id, turn, work, self._hold_language(record, flow_name))
        work.addBoth(self._release, call_id, held)
        # Only a slow look-up puts the caller on hold, never the commit.
        return await self._answer_or_hold(held, flow_name, None if storing else self.hold_after)

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
        url = self.action_url(flow_name, turn + 1)
        try:
            if flow is None:
                raise UnknownFlow(f"{state['flow']} version {state['version']}")
            result = await play_turn_async(flow, state, event, self.perform, self.clock,
                                           self.lookup_timeout, send_sms=self.send_sms)
            new_state, node_events = result.state, result.node_events
            actions = [self._with_whisper(a) for a in result.actions]
            body = render_twiml(actions, url)
        except Exception:  # noqa: BLE001 - the caller must reach a human
            self.log.failure("turn {call} {turn} failed; routing to a human", call=call_id, turn=turn)
            new_state, body, node_events = self._fail_safe(flow, state, event, url)
        write = self._writer(call_id, turn, new_state, body, node_events)
        if self.group_commit is None:
            write()
        else:
            if storing is not None:
                storing.append(turn)
            await self.group_commit.write(write)
        self._saved(call_id, turn, new_state)
        if new_state.get("callback") and not (state or {}).get("callback"):
            self.helpdesk.requested(call_id)  # this turn kept the number, now committed
        return body

    # -- holding a caller while a slow look-up goes on ---------------------------------
    async def _answer_or_hold(self, held: "Held", flow_name: str,
                              hold_after: float | None) -> bytes:
        """The turn's answer if it comes within ``hold_after`` seconds (None:
        no limit), else a hold: the caller hears "one moment" (the first
        time) and a pause, then comes back to the poll URL.  The look-up's
        own timeout ends the wait by sending the turn down the flow's error
        branch."""
        if not await held.within(hold_after, self.clock):
            self.counters.holds += 1
            first = held.holds == 0
            held.holds += 1
            self.log.info("turn {call} {turn} on hold ({holds})", call=held.call_id,
                          turn=held.turn, holds=held.holds)
            return self._hold(held, flow_name, first)
        return await held.answer()

    def _hold(self, held: "Held", flow_name: str, first: bool) -> bytes:
        lang = held.lang
        actions = [act.Say(HOLD_PROMPT.get(lang[:2], HOLD_PROMPT["en"]), language=lang)] if first else []
        actions += [act.Pause(HOLD_PAUSE), act.Redirect(self.poll_url(flow_name, held.turn))]
        return render_twiml(actions, "")

    def _hold_language(self, record, flow_name) -> str:
        if record is not None:
            return record.state["lang"]
        flow = self.registry.current(flow_name)
        return flow.default_language if flow else "en-US"

    def _release(self, _result, call_id, held):
        if self._held.get(call_id) is held:
            del self._held[call_id]

    def status(self, params: dict, now: datetime | None = None) -> bool:
        """Take a status callback and commit it; True when it was new.  A
        terminal status ends the call: one still waiting for the caller was
        abandoned.  ``now`` replaces the clock, as for :meth:`voice`."""
        if self.group_commit is not None:
            self.group_commit.flush()  # the call's last turn may be queued
        with self.store.transaction():
            new, ended = self._apply_status(params, now)
        return self._status_taken(new, ended)

    async def status_committed(self, params: dict, now: datetime | None = None) -> bool:
        """:meth:`status`, committed with the group of turns when the
        handler commits in groups; the result once it is committed."""
        held = self._held.get(params["CallSid"])
        if held is not None:
            await held.within(None, self.clock)  # its last turn must be saved first
        if self.group_commit is None:
            return self.status(params, now)
        new, ended = await self.group_commit.write(lambda: self._apply_status(params, now))
        return self._status_taken(new, ended)

    def _apply_status(self, params, now):
        """The writes of a status callback (database only): whether it was
        new, and the (call, turn, state) it ended, if any."""
        call_id, status = params["CallSid"], params.get("CallStatus", "")
        sequence = params.get("SequenceNumber")
        duration = params.get("CallDuration")
        new = self.store.record_status(
            call_id, int(sequence) if sequence and sequence.isdigit() else None, status,
            (now or self._now("UTC")).isoformat(),
            int(duration) if duration and duration.isdigit() else None)
        if not new or status not in TERMINAL_STATUSES:
            return new, None
        record = self.store.load_call(call_id)
        if record is None or record.ended:
            return new, None
        state = record.state
        flow = (self.registry.version(state["flow"], state["version"])
                or self.registry.current(state["flow"]))
        if flow is None:
            self.log.error("call {call} ended on unknown flow {flow}", call=call_id, flow=state["flow"])
            return new, None
        new_state, _actions, node_events = step(
            flow, state, {"type": "hangup", "now": now or self._now(flow.timezone)})
        self._writer(call_id, record.turn, new_state, record.response, node_events)()
        return new, (call_id, record.turn, new_state)

    def _status_taken(self, new: bool, ended) -> bool:
        self.counters.status_callbacks += 1
        if ended is not None:
            self._saved(*ended)
        return new

    def sweep(self, idle: float = SWEEP_IDLE, on_transfer: float = SWEEP_ON_TRANSFER) -> int:
        """End the calls the provider never closed (a lost status callback):
        those silent for ``idle`` seconds, or ``on_transfer`` seconds while
        with an agent or in a queue.  Each ends as a hang-up at its last
        turn, so it counts as abandoned unless a human already had it, and
        its time with the IVR is not stretched to the sweep.  Returns how
        many were ended."""
        if self.group_commit is not None:
            self.group_commit.flush()
        now = datetime.fromtimestamp(self.clock.seconds(), ZoneInfo("UTC"))
        ended = []
        for call_id in self.store.open_calls((now - timedelta(seconds=idle)).isoformat()):
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
            self._saved(call_id, record.turn, new_state)
            ended.append(call_id)
        if ended:
            self.log.info("sweep ended {count} calls with no status callback", count=len(ended))
        return len(ended)

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
        reason_text = (flow.reasons.get(reason) if flow else None) or reason.replace("_", " ")
        order = " ".join(params.get("X-IVR-Order", ""))
        text = WHISPER.get(lang[:2], WHISPER["en"])
        sentence = text["reason"].format(reason=reason_text)
        if order:
            sentence += " " + text["order"].format(order=order)
        return render_twiml([act.Say(escape(sentence), language=lang)], "")

    def describe(self, call_id: str) -> dict | None:
        """What a test client may know of a call: where it is, its node
        events and its summary, without the caller's number."""
        record = self.store.load_call(call_id)
        if record is None:
            return None
        state = record.state
        summary = {k: v for k, v in call_summary(state).items() if k != "caller"}
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

    def _last_resort(self, flow, state, event, url):
        """Apologise and dial the server's fallback (or hang up): even the
        flow's own fail-safe failed, or the call's flow version is gone.
        A call without state has a flow: unknown flows are refused earlier."""
        ended = dict(state or fresh_state(flow, event, event["now"]))
        lang = ended["lang"]
        say = act.Say(FAILSAFE_APOLOGY.get(lang[:2], FAILSAFE_APOLOGY["en"]), language=lang)
        actions = [say, act.Dial(self.fallback) if self.fallback else act.Hangup()]
        ended.update(ended=True, outcome="failed", cause="error", waiting=None,
                         ended_at=event["now"].isoformat(),
                         handoff={"kind": self.fallback.kind, "target": self.fallback.address,
                                  "node": None} if self.fallback else None)
        return ended, render_twiml(actions, url), []


def event_from(params: dict, state: dict) -> dict:
    """The engine event a webhook carries, given what the call waits for."""
    waiting = state.get("waiting")
    if waiting == "dial":
        status = params.get("DialCallStatus") or _queue_status(params.get("QueueResult"))
        return {"type": "dial_result", "status": status or "failed"}
    if waiting == "record":
        return {"type": "recorded", "url": params.get("RecordingUrl"),
                "duration": params.get("RecordingDuration")}
    if params.get("Digits") and params["Digits"] != "hangup":
        return {"type": "digits", "digits": params["Digits"]}
    if params.get("SpeechResult"):
        return {"type": "speech", "text": params["SpeechResult"],
                "confidence": _confidence(params.get("Confidence"))}
    return {"type": "silence"}


def _queue_status(result: str | None) -> str | None:
    """An Enqueue action's QueueResult, as a dial status."""
    if result is None:
        return None
    return "completed" if result in ("bridged", "bridging-in-process", "hangup") else "failed"


def _confidence(value) -> float | None:
    """The recogniser's confidence in 0..1, or None when it sent none (or nonsense)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if 0.0 <= number <= 1.0 else None
