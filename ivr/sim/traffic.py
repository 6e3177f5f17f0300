"""Ground-truth traffic: calls with known answers, played as a provider would.

Reports are only as right as the figures they are checked against.  This
module plays a seeded mix of callers through the server's own code path
(:class:`ivr.server.calls.CallHandler` on a :class:`ivr.store.sqlite.store.CallStore`, the
flows of a :class:`ivr.server.registry.FlowRegistry`, the embedded order look-ups
over the demo orders), each turn a webhook as the call's provider sends
it (Twilio's by default; any registered provider's fake, see
:mod:`ivr.sim.traffic_player`), each call ended by the provider's
end-of-call notice.  Time is
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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import sqlite_utils
from twisted.internet import task

from ivr.flow.loader import load_flow
from ivr.lookups.demo_orders import (
    create_demo_db,
    demo_orders,
)
from ivr.lookups.embedded import EmbeddedOrderLookups
from ivr.server.calls import CallHandler
from ivr.server.registry import FlowRegistry
from ivr.sim.traffic_behaviours import BEHAVIOURS, EPISODES, FLOW_NAME, ORDERS_VALID_DAYS, Behaviour, TrafficError
from ivr.sim.traffic_ids import PLAN_PROVIDER, check_providers, every_shape, played_by
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
from ivr.sim.traffic_player import Lookups, TrafficPlayer, queue_wait_unreported
from ivr.store.sqlite.store import CallStore

__all__ = ["BEHAVIOURS", "EPISODES", "Behaviour", "Expected", "NumberPool",
           "PlannedCall", "Traffic", "TrafficError", "caller_orders", "check_figures",
           "expectation", "generate", "plan_calls", "later", "play", "played_by", "single_call"]

#: Where the period starts when none is given: two weeks with two Sundays
#: and Armistice Day (Wednesday 11 November), a French public holiday.
DEFAULT_START = date(2026, 11, 2)
DEFAULT_DAYS = 14


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
             prompts=None, progress: Callable[[int], object] | None = None,
             providers: Sequence[str] = (PLAN_PROVIDER,)) -> Traffic:
    """Play ``calls`` planned calls to the post_sale flow into ``database``.

    ``flow`` is the flow file (its folder is loaded as the server loads
    it, prompts from ``prompts`` or ``prompts/`` beside the flows folder)
    or a loaded :class:`FlowRegistry`.  ``database`` is a path (created
    with the schema and the demo orders when missing) or a
    :class:`CallStore`.  The demo orders are dated from the first day of
    the period, as a new server dates them from the day it starts.
    ``progress`` is called with 1 after each call.  ``providers`` play
    the calls in turn (one name: all of them), each with call ids of its
    own shape; the plan, and so the expected figures, are the same
    whichever provider plays them.
    """
    check_figures(calls, days, repeat_window)
    check_providers(providers)
    if not isinstance(flow, FlowRegistry):
        flow = _check_flow_file(Path(flow), prompts)
    store = database if isinstance(database, CallStore) else CallStore.open(database)
    registry = flow if isinstance(flow, FlowRegistry) else _registry(flow, store)
    current = _current(registry)
    period_start = _start_moment(start, ZoneInfo(current.timezone))
    planned = plan_calls(calls, seed, period_start, days, repeat_window)
    # Played before by any provider, the same calls would count twice (and
    # as each other's repeats).
    _refuse_known_ids(store, [call_id for call in planned for call_id in every_shape(call.call_id)])
    plan = played_by(planned, providers)
    play(plan, registry, store, period_start.date(), progress)
    expected = expectation(plan, flow=FLOW_NAME, version=current.version, seed=seed,
                           start=period_start, days=days, repeat_window=repeat_window,
                           wait_unreported=queue_wait_unreported(set(providers), current))
    return Traffic(plan, expected)


def play(plan: list[PlannedCall], registry: FlowRegistry, store: CallStore, today: date,
         progress: Callable[[int], object] | None = None) -> None:
    """Play ``plan`` through a :class:`CallHandler` on ``store``, over the
    demo orders dated from ``today``; ``progress(1)`` after each call."""
    _current(registry)
    _refuse_known_ids(store, [call.call_id for call in plan])
    orders = _demo_orders(store, today, plan)
    clock = task.Clock()
    lookups = Lookups(EmbeddedOrderLookups(orders).perform)
    player = TrafficPlayer(CallHandler(registry, store, lookups.perform, clock), FLOW_NAME, lookups)
    for call in plan:
        player.play(call)
        if progress is not None:
            progress(1)
    if clock.getDelayedCalls():
        raise TrafficError("look-up timers were left pending after the calls")


def single_call(behaviour: str, start: datetime, seed: int = 0,
                provider: str = PLAN_PROVIDER) -> PlannedCall:
    """A plan of one call of ``behaviour`` starting at ``start``, played
    by ``provider``, to check one line of the table on its own."""
    spec = BEHAVIOURS[behaviour]
    [call] = played_by([_planned(random.Random(seed), spec, NumberPool().take(spec.caller), start)],
                       (provider,))
    return call


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


def _refuse_known_ids(store: CallStore, ids: list[str]) -> None:
    for chunk in range(0, len(ids), 500):
        part = ids[chunk:chunk + 500]
        row = next(iter(store.db.query(
            f"SELECT call_id FROM calls WHERE call_id IN ({', '.join('?' for _ in part)}) LIMIT 1",
            part)), None)
        if row is not None:
            raise TrafficError("the database already holds calls of this seed and period; "
                               "use another seed or a new database")
