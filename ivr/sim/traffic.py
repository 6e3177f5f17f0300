"""Ground-truth traffic: calls with known answers, played as a provider would.

Reports are only as right as the figures they are checked against.  This
module plays a seeded mix of callers through the server's own code path
(:class:`ivr.server.calls.CallHandler` on a :class:`ivr.store.sqlite.store.CallStore`, the
flows of a :class:`ivr.server.registry.FlowRegistry`, the embedded order look-ups
over the demo orders), each turn a webhook with the parameters Twilio
sends, each call ended by the ``completed`` status callback.  Time is
simulated: every call starts at a seeded moment of the traffic period,
nights, Sundays and public holidays included.

What each caller does, and how the call must end, is written down by hand
in :data:`BEHAVIOURS` (reason, outcome, transfer cause, the node where the
call leaves the flow, the nodes it reaches).  The expected figures
(:class:`Expected`) are computed from that table and the call plan
(caller, reason, start, outcome), never from what the engine logged, so a
report that disagrees with them shows a bug in the report or in the engine.

The table is written for the demo flow ``flows/post_sale.yaml`` and the
demo orders (``ivr.lookups.demo_orders``).  A caller "with the orders of" a demo
caller gets a number of its own and copies of those orders in the traffic's
database, so that only the deliberate repeat episodes call twice.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import sqlite_utils
from twisted.internet import defer, task
from twisted.python.failure import Failure

from ivr.flow.loader import load_flow
from ivr.lookups.demo_orders import (
    create_demo_db,
    demo_orders,
)
from ivr.lookups.embedded import EmbeddedOrderLookups
from ivr.providers.bodies import parse_form
from ivr.providers.fake_call import HttpRequest, Next
from ivr.providers.twilio.fake import FakeTwilioCall, TwimlError, parse_twiml
from ivr.server.calls import CallHandler
from ivr.server.registry import FlowRegistry
from ivr.sim.traffic_behaviours import BEHAVIOURS, EPISODES, FLOW_NAME, ORDERS_VALID_DAYS, Behaviour, TrafficError
from ivr.sim.traffic_plan import (
    _MAX_ORDERS,
    FIRST_GENERATED_ORDER,
    Expected,
    NumberPool,
    PlannedCall,
    _planned,
    caller_orders,
    check_figures,
    expectation,
    later,
    plan_calls,
)
from ivr.store.sqlite.store import CallStore

__all__ = ["BEHAVIOURS", "EPISODES", "Behaviour", "Expected", "NumberPool",
           "PlannedCall", "Traffic", "TrafficError", "caller_orders", "check_figures",
           "expectation", "generate", "plan_calls", "later", "play", "single_call"]

#: Where the period starts when none is given: two weeks with two Sundays
#: and Armistice Day (Wednesday 11 November), a French public holiday.
DEFAULT_START = date(2026, 11, 2)
DEFAULT_DAYS = 14
CALLED = "+33100000000"
#: Steps that hang up while the step before them is on hold.
HOLD_HANG_UPS = ("hangup on hold", "hangup on hold answered")
#: Seconds an answered or failed transfer waited in the agents' queue.
QUEUE_SECONDS = 30
ACCOUNT_SID = "AC" + "0" * 32


# --- The behaviour table ------------------------------------------------------------


# --- The call plan ---------------------------------------------------------------------


# --- When calls may start ---------------------------------------------------------------
# The post_sale flow's "support" calendar, written down again by hand:
# Monday to Friday 09:00-18:00, Saturday 09:00-12:00, closed on Sundays and
# French public holidays, 24 and 31 December until 16:00.


# --- The expected figures ------------------------------------------------------------------


# --- Playing the calls ----------------------------------------------------------------------

@dataclass
class Traffic:
    """What :func:`generate` played, and the figures it must produce."""

    plan: list
    expected: Expected


def generate(flow, database, *, calls: int, seed: int, start: date | datetime | None = None,
             days: int = DEFAULT_DAYS, repeat_window: timedelta = timedelta(hours=24),
             prompts=None, progress: Callable[[int], object] | None = None) -> Traffic:
    """Play ``calls`` planned calls to the post_sale flow into ``database``.

    ``flow`` is the flow file (its folder is loaded as the server loads
    it, prompts from ``prompts`` or ``prompts/`` beside the flows folder)
    or a loaded :class:`FlowRegistry`.  ``database`` is a path (created
    with the schema and the demo orders when missing) or a
    :class:`CallStore`.  The demo orders are dated from the first day of
    the period, as a new server dates them from the day it starts.
    ``progress`` is called with 1 after each call.
    """
    check_figures(calls, days, repeat_window)
    if not isinstance(flow, FlowRegistry):
        flow = _check_flow_file(Path(flow), prompts)
    store = database if isinstance(database, CallStore) else CallStore.open(database)
    registry = flow if isinstance(flow, FlowRegistry) else _registry(flow, store)
    current = _current(registry)
    period_start = _start_moment(start, ZoneInfo(current.timezone))
    plan = plan_calls(calls, seed, period_start, days, repeat_window)
    play(plan, registry, store, period_start.date(), progress)
    expected = expectation(plan, flow=FLOW_NAME, version=current.version, seed=seed,
                           start=period_start, days=days, repeat_window=repeat_window)
    return Traffic(plan, expected)


def play(plan: list[PlannedCall], registry: FlowRegistry, store: CallStore, today: date,
         progress: Callable[[int], object] | None = None) -> None:
    """Play ``plan`` through a :class:`CallHandler` on ``store``, over the
    demo orders dated from ``today``; ``progress(1)`` after each call."""
    _current(registry)
    _refuse_known_calls(store, plan)
    orders = _demo_orders(store, today, plan)
    clock = task.Clock()
    lookups = _Lookups(EmbeddedOrderLookups(orders).perform)
    provider = _Provider(CallHandler(registry, store, lookups.perform, clock), FLOW_NAME, lookups)
    for call in plan:
        provider.play(call)
        if progress is not None:
            progress(1)
    if clock.getDelayedCalls():
        raise TrafficError("look-up timers were left pending after the calls")


def single_call(behaviour: str, start: datetime, seed: int = 0) -> PlannedCall:
    """A plan of one call of ``behaviour`` starting at ``start``, to check
    one line of the table on its own."""
    spec = BEHAVIOURS[behaviour]
    return _planned(random.Random(seed), spec, NumberPool().take(spec.caller), start)


def _current(registry: FlowRegistry):
    current = registry.current(FLOW_NAME)
    if current is None:
        raise TrafficError(f"the behaviour table is written for the {FLOW_NAME} flow, "
                           f"which is not among the loaded flows {sorted(registry.versions())}")
    return current


@dataclass(frozen=True)
class _FlowFile:
    path: Path
    prompts: Path
    version: str


def _check_flow_file(flow_path: Path, prompts) -> _FlowFile:
    """The flow file, checked before the database is opened: it exists,
    passes validation (FlowError lists every problem) and is post_sale."""
    if not flow_path.is_file():
        raise TrafficError(f"no flow file {str(flow_path)!r}")
    prompts_dir = Path(prompts) if prompts else flow_path.resolve().parent.parent / "prompts"
    loaded = load_flow(flow_path, prompts_dir)
    if loaded.name != FLOW_NAME:
        raise TrafficError(f"the behaviour table is written for the {FLOW_NAME} flow, "
                           f"not {loaded.name!r}")
    return _FlowFile(flow_path.resolve(), prompts_dir, loaded.version)


def _registry(flow: _FlowFile, store: CallStore) -> FlowRegistry:
    """The flows of the file's folder, loaded as the server loads them."""
    registry = FlowRegistry(flow.path.parent, flow.prompts, store)
    registry.reload()
    current = registry.current(FLOW_NAME)
    if current is None or current.version != flow.version:
        raise TrafficError(f"{flow.path} is not the {FLOW_NAME} flow of its folder")
    return registry


def _start_moment(start, zone: ZoneInfo) -> datetime:
    if start is None:
        start = DEFAULT_START
    if not isinstance(start, datetime):
        start = datetime.combine(start, time(0))
    return start.replace(tzinfo=zone) if start.tzinfo is None else start.astimezone(zone)


def _demo_orders(store: CallStore, today: date, plan: list):
    """The demo orders in the call log's database, and the orders of the
    plan's generated callers: created when missing, re-dated to the period
    when the file holds only such orders (those of earlier traffic too)."""
    last_call = max(call.start for call in plan)
    if last_call.date() > today + timedelta(days=ORDERS_VALID_DAYS):
        raise TrafficError(f"calls until {last_call:%Y-%m-%d} outlive the demo orders' story "
                           f"({ORDERS_VALID_DAYS} days from {today})")
    generated = NumberPool().with_orders()
    phones = {call.caller for call in plan if call.caller in generated}
    # The orders live in the call log's SQLite file; beside a log kept
    # elsewhere (PostgreSQL), in memory for this play.
    db = store.db if isinstance(store.db, sqlite_utils.Database) else sqlite_utils.Database(memory=True)
    if "orders" in db.table_names():
        demo = {order.number for order in demo_orders(today)}
        others = []
        for row in db.query("SELECT number, phone FROM orders"):
            if row["number"] in demo:
                continue
            if row["phone"] in generated and _is_generated(row["number"], generated[row["phone"]][1]):
                phones.add(row["phone"])
            else:
                others.append(row["number"])
        if others:
            raise TrafficError(f"the database holds orders that are not demo orders "
                               f"({', '.join(sorted(others)[:3])}{', …' if len(others) > 3 else ''}); "
                               "generated traffic needs a new database or one with only the demo orders")
    orders = create_demo_db(db, today)
    orders.add_many(order for phone in sorted(phones)
                    for order in caller_orders(*generated[phone], phone=phone, today=today))
    return orders


def _is_generated(number: str, place: int) -> bool:
    first = FIRST_GENERATED_ORDER + place * _MAX_ORDERS
    return number.isdigit() and first <= int(number) < first + _MAX_ORDERS


def _refuse_known_calls(store: CallStore, plan: list) -> None:
    ids = [c.call_id for c in plan]
    for chunk in range(0, len(ids), 500):
        part = ids[chunk:chunk + 500]
        row = next(iter(store.db.query(
            f"SELECT call_id FROM calls WHERE call_id IN ({', '.join('?' for _ in part)}) LIMIT 1",
            part)), None)
        if row is not None:
            raise TrafficError("the database already holds calls of this seed and period; "
                               "use another seed or a new database")


class _Lookups:
    """The embedded order look-ups, answered at once, or, while ``slow``,
    only when :meth:`answer` is called: a look-up that keeps its caller on
    hold."""

    def __init__(self, perform):
        self._perform = perform
        self.slow = False
        self.pending: list = []

    def perform(self, lookup, now):
        if not self.slow:
            return self._perform(lookup, now)
        answer = defer.Deferred()
        self.pending.append((answer, lookup, now))
        return answer

    def answer(self) -> None:
        """Answer the look-ups held back, as they would have answered."""
        self.slow = False
        pending, self.pending = self.pending, []
        for answer, lookup, now in pending:
            answer.callback(self._perform(lookup, now))


class _Provider:
    """Plays a planned call to the handler through the fake Twilio
    (:class:`ivr.providers.twilio.fake.FakeTwilioCall`): webhooks at the
    TwiML's action URLs, the Redirect after a Gather for a silent caller,
    ``QueueResult`` after an Enqueue, ``DialCallStatus`` after a Dial, the
    poll at a hold's Redirect, and the ``completed`` status callback at
    the end; each request goes straight to the handler."""

    def __init__(self, handler: CallHandler, flow_name: str, lookups: _Lookups):
        self.handler, self.flow_name, self.lookups = handler, flow_name, lookups
        #: The time of the request being sent.
        self._now: datetime | None = None

    def play(self, call: PlannedCall) -> None:
        twilio = FakeTwilioCall(self._send, call.caller, CALLED, call.call_id, ACCOUNT_SID)
        url = self.handler.action_url(self.flow_name, 0).split("?")[0]
        nxt = self._turn(twilio, url, {}, call.start, status="ringing")
        steps = call.spec.steps
        for index, step in enumerate(steps):
            now = later(call.start, call.times[index])
            if step == "hangup":
                if nxt.wait == "over":
                    raise self._misfit(call, index, "the call is already over")
                break
            if step == "hold" or step in HOLD_HANG_UPS:
                if index == 0 or steps[index - 1] in ("hangup", "hold", *HOLD_HANG_UPS):
                    raise self._misfit(call, index, "a hold must follow the step put on hold")
                continue  # played with the step before it
            extra, url = self._answer(call, index, step, twilio)
            if url is None:  # a silence with nothing after the Gather: the provider hangs up
                break
            if index + 1 < len(steps) and steps[index + 1] in HOLD_HANG_UPS:
                return self._hang_up_on_hold(call, index, url, {**twilio.params(), **extra},
                                             self._ended(call, twilio))
            if index + 1 < len(steps) and steps[index + 1] == "hold":
                nxt = self._wait_on_hold(call, index, url, twilio, extra)
                continue
            nxt = self._turn(twilio, url, extra, now)
        else:
            if nxt.wait != "over":
                raise self._misfit(call, len(steps), f"the call still waits for {nxt.wait}")
        self.handler.status(*self._ended(call, twilio))

    @staticmethod
    def _ended(call, twilio: FakeTwilioCall) -> tuple[dict, datetime]:
        """The ``completed`` status callback of ``call``, and when it comes."""
        end = later(call.start, call.times[-1])
        return twilio.status_callback(call.times[-1], end), end

    def _put_on_hold(self, call, index, url, params) -> bytes:
        """Send step ``index`` with its look-ups held back past the hold's
        wait: the hold's TwiML ("one moment", a pause, a Redirect back)."""
        self.lookups.slow = True
        opening = self._start_voice(url, params, later(call.start, call.times[index]))
        if opening or not self.lookups.pending:
            self.lookups.slow = False
            raise self._misfit(call, index, "the step has no look-up to wait for")
        self.handler.clock.advance(self.handler.hold_after)
        if not opening or b"hold=1" not in self._answered(opening):
            raise self._misfit(call, index, "the caller was not put on hold")
        return opening[0]

    def _wait_on_hold(self, call, index, url, twilio: FakeTwilioCall, extra: dict) -> Next:
        """Step ``index`` put on hold; its look-ups answer during the
        hold's pause and the caller comes back for the answer (the hold's
        Redirect, with the call's own fields only)."""
        opening = self._put_on_hold(call, index, url, {**twilio.params(), **extra})
        _actions, back = self._parsed(twilio, opening, url)
        self.lookups.answer()
        now = later(call.start, call.times[index + 1])
        answered = self._start_voice(back.action, twilio.params(), now)
        if not answered:
            raise self._misfit(call, index + 1, "the answer was not ready when the caller came back")
        _actions, twilio.next = self._parsed(twilio, self._answered(answered), back.action)
        if twilio.next.wait == "redirect":
            return self._turn(twilio, twilio.next.action, {}, now)
        return twilio.next

    def _hang_up_on_hold(self, call, index, url, params, ended) -> None:
        """Play step ``index`` with its look-ups held back past the hold's
        wait: the caller hears "one moment" and a pause, then hangs up,
        before the look-ups answer or (``hangup on hold answered``) after
        they answered during the pause.  The status callback waits for
        the turn, as the server's does."""
        self._put_on_hold(call, index, url, params)
        answered_first = call.spec.steps[index + 1] == "hangup on hold answered"
        if answered_first:
            self.lookups.answer()
        status = []
        defer.ensureDeferred(self.handler.status_committed(*ended)).addBoth(status.append)
        if not answered_first:
            self.lookups.answer()
        if not status:
            raise TrafficError(f"{call.call_id}: the hang-up on hold was never taken")
        self._answered(status)

    def _answer(self, call, index, step, twilio: FakeTwilioCall):
        """The parameters of the webhook ``step`` sends, and its URL."""
        nxt = twilio.next
        word, _, rest = step.partition(" ")
        wanted = {"say": "gather", "silence": "gather", "dial": "dial", "record": "record"}.get(word, "gather")
        if nxt.wait != wanted:
            raise self._misfit(call, index, f"the call waits for {nxt.wait}")
        if word == "say":
            return twilio.speech(rest), nxt.action
        if word == "silence":
            return {}, nxt.after
        if word == "dial":
            waited = call.queue_seconds(index) if nxt.queue and rest == "canceled" else QUEUE_SECONDS
            return twilio.transfer_result(rest, waited), nxt.action
        if word == "record":
            return twilio.recording(rest, "https://recordings.invalid/traffic.wav"), nxt.action
        return twilio.keys(step), nxt.action

    def _turn(self, twilio: FakeTwilioCall, url: str, extra: dict, now: datetime,
              status: str = "in-progress") -> Next:
        """Send a webhook at ``now`` and play its answer; what the call waits for then."""
        self._now = now
        try:
            twilio.request(url, extra, status)
        except TwimlError as error:
            raise TrafficError(f"{twilio.call_id}: {error}") from None
        return twilio.next

    @staticmethod
    def _parsed(twilio: FakeTwilioCall, body: bytes, url: str) -> tuple[list, Next]:
        try:
            return parse_twiml(body, url)
        except TwimlError as error:
            raise TrafficError(f"{twilio.call_id}: {error}") from None

    def _send(self, request: HttpRequest) -> bytes:
        """The fake's form POST, straight to the handler."""
        form = parse_form(request.body.decode("utf-8"))
        return self._voice(request.url, {name: values[-1] for name, values in form.items()},
                           self._now)

    def _voice(self, url: str, params: dict, now: datetime) -> bytes:
        answered = self._start_voice(url, params, now)
        if not answered:
            raise TrafficError("a turn did not answer at once: the embedded look-ups should never wait")
        return self._answered(answered)

    def _start_voice(self, url: str, params: dict, now: datetime) -> list:
        """Send a voice webhook: a list that gets its answer (or failure)."""
        query = parse_qs(urlsplit(url).query)
        turn = int(query.get("turn", ["0"])[-1])
        poll = query.get("hold") == ["1"]  # back from a hold
        answered = []
        defer.ensureDeferred(self.handler.voice(self.flow_name, turn, params, now=now, poll=poll)
                             ).addBoth(answered.append)
        return answered

    @staticmethod
    def _answered(answered: list):
        if isinstance(answered[0], Failure):
            answered[0].raiseException()
        return answered[0]

    @staticmethod
    def _misfit(call, index, why) -> TrafficError:
        steps = call.spec.steps
        step = steps[index] if index < len(steps) else "(end of script)"
        return TrafficError(f"behaviour {call.behaviour!r} no longer fits the flow: "
                            f"step {index + 1} ({step}): {why}")
