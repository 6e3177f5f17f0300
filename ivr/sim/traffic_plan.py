"""The traffic generator's plan: which calls start when, from which numbers
about which orders, and the figures the call log should then show."""

from __future__ import annotations

import bisect
import json
import random
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field, replace
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path

import holidays as holidays_lib

from ivr.flow.model import OUTCOMES, REASON_NOT_STATED, TRANSFER_CAUSES
from ivr.lookups.demo_orders import (
    DEMO_CALLERS,
    demo_orders,
)
from ivr.sim.traffic_behaviours import (
    BEHAVIOURS,
    EPISODES,
    FLOW_NAME,
    MAX_DAYS,
    NEW_EN,
    NEW_FR,
    ORDERS_VALID_DAYS,
    WITHHELD,
    WITHHELD_NUMBER,
    Behaviour,
    TrafficError,
)


def check_figures(calls: int, days: int, repeat_window: timedelta) -> None:
    """Refuse figures the plan cannot honour, before any file is touched."""
    if calls < 1:
        raise TrafficError(f"the number of calls must be at least 1, got {calls}")
    if not 1 <= days <= MAX_DAYS:
        raise TrafficError(f"days must be between 1 and {MAX_DAYS} (the demo orders' story "
                           f"holds for {ORDERS_VALID_DAYS} days), got {days}")
    if not timedelta(minutes=30) <= repeat_window <= timedelta(days=1):
        raise TrafficError(f"the repeat window must be between 30 minutes and 24 hours, "
                           f"got {repeat_window}")


@dataclass(frozen=True)
class PlannedCall:
    """One call to play: who, when, which behaviour; ``times`` are the
    seconds after ``start`` at which each step happens, then the status
    callback."""

    call_id: str
    behaviour: str
    caller: str
    start: datetime
    times: tuple
    episode: str | None = None
    #: The voice provider that plays the call (its fake), by registry name.
    provider: str = "twilio"

    @property
    def spec(self) -> Behaviour:
        return BEHAVIOURS[self.behaviour]

    def ivr_seconds(self) -> int:
        """Seconds the call spends with the IVR, from the script: until the
        turn that puts it in the agents' queue, else until it ends (the
        status callback: the last prompt counts)."""
        for index, step in enumerate(self.spec.steps):
            # A dial nobody answered keeps the call in the IVR; one who
            # hangs up in the queue had left it.
            if step == "dial completed" or (step == "dial canceled" and self.spec.handoff == "queue"):
                return self.times[index - 1] if index else 0
        return self.times[-1]

    def transfer_result(self) -> tuple[str | None, int | None]:
        """What happened at the human's end, from the script: ``answered``,
        ``abandoned_in_queue`` with the seconds waited there, or
        ``no_answer``; (None, None) for a call never put through."""
        for index, step in enumerate(self.spec.steps):
            if step == "dial completed":
                return "answered", None
            if step == "dial canceled" and self.spec.handoff == "queue":
                return "abandoned_in_queue", self.queue_seconds(index)
            if step.startswith("dial "):
                return "no_answer", None
        return None, None

    def queue_seconds(self, index: int) -> int:
        """Seconds in the queue before the dial step ``index`` ends it."""
        return self.times[index] - (self.times[index - 1] if index else 0)


def plan_calls(calls: int, seed: int, start: datetime, days: int,
               repeat_window: timedelta = timedelta(hours=24)) -> list[PlannedCall]:
    """The calls to play, the same for the same arguments, in the order
    they start."""
    check_figures(calls, days, repeat_window)
    end = start + timedelta(days=days)
    slots = {"any": [(start, end)], "open": _open_slots(start, end), "closed": _closed_slots(start, end)}
    for hours in ("open", "closed"):
        if not slots[hours]:
            raise TrafficError(f"the period {start:%Y-%m-%d} + {days} days has no "
                               f"{'business hours' if hours == 'open' else 'closed hours'}; "
                               "give more days")
    rng = random.Random(seed)
    numbers = NumberPool()
    units = [(b.name, None) for b in BEHAVIOURS.values() if b.weight] + \
            [(None, e.name) for e in EPISODES.values()]
    weights = [BEHAVIOURS[b].weight if b else EPISODES[e].weight for b, e in units]
    singles = [(b, e) for b, e in units if b]
    plan: list[PlannedCall] = []
    while len(plan) < calls:
        behaviour, episode = rng.choices(units, weights)[0]
        if episode and calls - len(plan) < 2:
            behaviour, episode = rng.choices(singles, [BEHAVIOURS[b].weight for b, _ in singles])[0]
        if behaviour:
            spec = BEHAVIOURS[behaviour]
            caller = numbers.take(spec.caller)
            plan.append(_planned(rng, spec, caller, _sample(rng, slots[spec.hours])))
            continue
        ep = EPISODES[episode]
        first = BEHAVIOURS[ep.first]
        caller = numbers.take(first.caller)
        at = _sample(rng, slots[first.hours])
        window = int(repeat_window.total_seconds())
        low, high = (window + 300, window + 12 * 3600) if ep.after_window else (300, window - 300)
        plan.append(_planned(rng, first, caller, at, episode))
        plan.append(_planned(rng, BEHAVIOURS[ep.second], caller,
                             later(at, rng.randint(low, high)), episode))
    _separate(plan, repeat_window)
    return sorted(plan, key=lambda c: (c.start.timestamp(), c.call_id))


def later(moment: datetime, seconds: float) -> datetime:
    """``moment`` plus ``seconds`` of elapsed time, in its timezone.  Plain
    ``+`` on an aware datetime adds wall-clock time, an hour off across a
    change of clocks."""
    return (moment.astimezone(timezone.utc) + timedelta(seconds=seconds)).astimezone(moment.tzinfo)


def _planned(rng, spec: Behaviour, caller: str, at: datetime, episode=None) -> PlannedCall:
    elapsed, times = 0, []
    for step in spec.steps:
        elapsed += _step_seconds(rng, step)
        times.append(elapsed)
    times.append(elapsed if spec.steps[-1].startswith("hangup") else elapsed + rng.randint(1, 3))
    return PlannedCall(f"CA{rng.getrandbits(128):032x}", spec.name, caller, at, tuple(times), episode)


def _step_seconds(rng, step: str) -> int:
    """How long before this input reaches the server: the prompts heard,
    then the caller's answer (a conversation with the agent for a dial)."""
    if step == "silence":
        return 5 + rng.randint(3, 10)   # the Gather's timeout after the prompt
    if step == "dial completed":
        return rng.randint(60, 600)
    if step == "dial canceled":          # waited in the queue, then hung up
        return rng.randint(20, 300)
    if step.startswith("dial "):
        return rng.randint(30, 120)
    if step.startswith("record"):
        return int(step.split()[1]) + rng.randint(2, 5)
    return rng.randint(3, 12)


def _separate(plan: list, window: timedelta) -> None:
    """Move calls by a second where a caller has two calls at the same
    second or exactly one window apart: whether those are repeats would
    depend on a boundary no figure should hang on."""
    used: dict[str, set] = defaultdict(set)
    step = int(window.total_seconds())
    for index, call in enumerate(plan):
        if call.caller == WITHHELD_NUMBER:
            continue
        seen = used[call.caller]
        moment = int(call.start.timestamp())
        while moment in seen or moment - step in seen or moment + step in seen:
            moment += 1
        seen.add(moment)
        if moment != int(call.start.timestamp()):
            start = datetime.fromtimestamp(moment, call.start.tzinfo)
            plan[index] = replace(call, start=start)


class NumberPool:
    """Caller numbers from ranges kept for fiction (ARCEP 06 39 98, NANP
    555-01xx, Ofcom 07700 900xxx), never the demo callers' own: fresh
    numbers with no order, and for each demo caller with orders a block of
    numbers that get copies of its orders (see :func:`caller_orders`), so
    one number never calls twice by chance.  Numbers are handed out in
    turn, and reused only once every one of their block has been used."""

    _AREAS = (201, 202, 206, 212, 213, 303, 305, 312, 404, 503,
              512, 602, 617, 702, 713, 718, 773, 808, 917, 949)
    #: Areas for American callers with orders, apart from those with none.
    _ORDER_AREAS = (214, 215, 216, 301, 310)
    #: Blocks of the French fiction range (06 39 98 NN NN) by kind of caller.
    _FRENCH_BLOCKS = {"one_order": (1000, 3000), "several_orders": (3000, 3500),
                      "cancelled": (3500, 4000), "delayed_carrier": (4000, 4500),
                      "delayed_warehouse": (4500, 5000), "lost": (5000, 5500),
                      "only_old_orders": (5500, 6000), NEW_FR: (6000, 10000)}
    #: Demo callers with no order: any fresh number of their country will do.
    _NO_ORDER = {"no_order": NEW_FR, "english_no_order": NEW_EN}

    def __init__(self):
        demo = set(DEMO_CALLERS.values())
        pools = {kind: [f"+3363998{i:04d}" for i in range(*span)]
                 for kind, span in self._FRENCH_BLOCKS.items()}
        pools[NEW_EN] = [f"+1{a}55501{i:02d}" for a in self._AREAS for i in range(100)]
        pools["english_one_order"] = [f"+1{a}55501{i:02d}" for a in self._ORDER_AREAS
                                      for i in range(100)]
        pools["english_several_orders"] = [f"+447700900{i:03d}" for i in range(1000)]
        self.pools = {kind: [n for n in numbers if n not in demo] for kind, numbers in pools.items()}
        self.next = Counter()

    def take(self, kind: str) -> str:
        if kind == WITHHELD:
            return WITHHELD_NUMBER
        kind = self._NO_ORDER.get(kind, kind)
        pool = self.pools[kind]
        number = pool[self.next[kind] % len(pool)]
        self.next[kind] += 1
        return number

    def with_orders(self) -> dict[str, tuple[str, int]]:
        """Every number that gets orders: its kind of caller (a demo
        caller's key) and its place among them, which numbers its orders."""
        numbers = {}
        for kind, pool in self.pools.items():
            if kind in DEMO_CALLERS:
                for number in pool:
                    numbers[number] = (kind, len(numbers))
        return numbers


#: Orders of the generated callers are numbered from here, apart from the
#: demo orders (100xxx) and the unknown one (999999).
FIRST_GENERATED_ORDER = 200_000


#: The most orders a demo caller has.
_MAX_ORDERS = 3


def caller_orders(kind: str, place: int, *, phone: str, today: date) -> list:
    """Copies of the orders of demo caller ``kind`` for the generated
    caller ``phone`` (the ``place``-th number with orders), dated from
    ``today``: the same statuses and days, so the call goes as the demo
    caller's would, under order numbers of its own."""
    own = [o for o in demo_orders(today) if o.phone == DEMO_CALLERS[kind]]
    return [replace(order, phone=phone, number=str(FIRST_GENERATED_ORDER + place * _MAX_ORDERS + i))
            for i, order in enumerate(own)]


# A call starts at least this long after the line opens or closes, and
# this long before it changes again: longer than any call's way to the agent.
_AFTER_CHANGE = timedelta(minutes=2)


_BEFORE_CHANGE = timedelta(minutes=15)


def _opening_hours(day: date) -> tuple[time, time] | None:
    if (day.month, day.day) in ((12, 24), (12, 31)):
        return time(9), time(16)
    if day in holidays_lib.country_holidays("FR", years=day.year) or day.weekday() == 6:
        return None
    return (time(9), time(12)) if day.weekday() == 5 else (time(9), time(18))


def _open_intervals(start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    zone = start.tzinfo
    result = []
    day = start.date() - timedelta(days=1)
    while day <= end.date():
        hours = _opening_hours(day)
        if hours:
            result.append((datetime.combine(day, hours[0], zone), datetime.combine(day, hours[1], zone)))
        day += timedelta(days=1)
    return result


def _open_slots(start, end):
    """Moments a call may start and still find agents on duty when it asks."""
    return _clip([(a + _AFTER_CHANGE, b - _BEFORE_CHANGE)
                  for a, b in _open_intervals(start, end)], start, end)


def _closed_slots(start, end):
    """Moments a call may start and still find the line closed when it asks."""
    edges = [(start - timedelta(days=1), start - timedelta(days=1))] + _open_intervals(start, end) + \
            [(end + timedelta(days=1), end + timedelta(days=1))]
    gaps = [(edges[i][1] + _AFTER_CHANGE, edges[i + 1][0] - _BEFORE_CHANGE)
            for i in range(len(edges) - 1)]
    return _clip(gaps, start, end)


def _clip(intervals, start, end):
    clipped = [(max(a, start), min(b, end)) for a, b in intervals]
    return [(a, b) for a, b in clipped if b - a >= timedelta(minutes=1)]


def _sample(rng, intervals) -> datetime:
    """A moment drawn evenly from ``intervals`` (whole seconds, in UTC
    arithmetic so a change of clocks neither adds nor loses time)."""
    spans = [int(b.timestamp()) - int(a.timestamp()) for a, b in intervals]
    point = rng.randrange(sum(spans))
    for (a, _b), span in zip(intervals, spans):
        if point < span:
            return datetime.fromtimestamp(int(a.timestamp()) + point, a.tzinfo)
        point -= span
    raise AssertionError("unreachable")


@dataclass
class Expected:
    """The figures a report over the generated calls must show, exactly.

    ``causes`` count transferred calls only; ``reasons`` hold the same
    figures per reason, ``providers`` per provider; ``nodes`` the funnel's exits per node (``reached``
    from the table's node lists); ``repeat_calls`` are self-served calls
    followed within the window by a call from the same (not withheld)
    caller for the same reason."""

    flow: str
    version: str
    seed: int
    start: str
    days: int
    repeat_window_s: int
    calls: int
    outcomes: dict
    causes: dict
    confirmed: int
    repeat_calls: int
    deflected: int
    ivr_seconds: int
    reasons: dict
    nodes: dict
    worst_drop_off: str | None
    behaviours: dict = field(default_factory=dict)
    #: Calls with no reason: abandoned (ended before stating one), transferred without one.
    ended_before_reason: int = 0
    transferred_without_reason: int = 0
    #: Transfers by what happened at the human's end (answered, the caller
    #: hung up in the agents' queue, nobody answered), the share of those
    #: who waited that hung up, and how long they had waited on average.
    transfers_answered: int = 0
    queue_abandoned: int = 0
    transfers_unanswered: int = 0
    queue_abandonment_rate: float | None = None
    avg_queue_seconds_abandoned: float | None = None
    #: The same figures as ``reasons``, per provider that played calls.
    providers: dict = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True, ensure_ascii=False) + "\n"

    def write(self, path) -> Path:
        path = Path(path)
        path.write_text(self.to_json(), encoding="utf-8")
        return path

    @classmethod
    def read(cls, path) -> "Expected":
        return cls(**json.loads(Path(path).read_text(encoding="utf-8")))


def expectation(plan: list[PlannedCall], *, flow: str = FLOW_NAME, version: str = "",
                seed: int = 0, start: datetime | None = None, days: int = 0,
                repeat_window: timedelta = timedelta(hours=24),
                wait_unreported: frozenset[str] = frozenset()) -> Expected:
    """The figures the call plan must produce, from the behaviour table.
    ``wait_unreported`` names the providers that do not say how long a
    caller waited in the agents' queue (they have none): their calls have
    no queue seconds to average."""
    repeats = _repeat_calls(plan, repeat_window)

    def figures(calls) -> dict:
        outcomes = Counter(c.spec.outcome for c in calls)
        causes = Counter(c.spec.cause for c in calls if c.spec.outcome == "transferred")
        repeat = sum(1 for c in calls if c.call_id in repeats)
        results = Counter(c.transfer_result()[0] for c in calls)
        return {"calls": len(calls), **{o: outcomes[o] for o in OUTCOMES},
                "causes": {cause: causes[cause] for cause in TRANSFER_CAUSES},
                "confirmed": sum(1 for c in calls if c.spec.confirmed),
                "repeat_calls": repeat, "deflected": outcomes["self_served"] - repeat,
                "transfers_answered": results["answered"],
                "queue_abandoned": results["abandoned_in_queue"],
                "transfers_unanswered": results["no_answer"]}

    total = figures(plan)
    waits = [seconds for result, seconds in (c.transfer_result() for c in plan
                                             if c.provider not in wait_unreported)
             if result == "abandoned_in_queue"]
    waited = total["transfers_answered"] + total["queue_abandoned"]
    by_reason, by_provider = defaultdict(list), defaultdict(list)
    for call in plan:
        by_reason[call.spec.reason].append(call)
        by_provider[call.provider].append(call)
    nodes: dict = {}
    for call in plan:
        spec = call.spec
        for node in spec.nodes:
            nodes.setdefault(node, {"reached": 0, "hung_up": 0, "transferred": 0, "ended": 0})
            nodes[node]["reached"] += 1
        column = {"abandoned": "hung_up", "transferred": "transferred", "failed": "transferred",
                  "self_served": "ended"}[spec.outcome]
        nodes[spec.exit_node][column] += 1
    return Expected(
        flow=flow, version=version, seed=seed, start=start.isoformat() if start else "",
        days=days, repeat_window_s=int(repeat_window.total_seconds()),
        calls=total["calls"], outcomes={o: total[o] for o in OUTCOMES}, causes=total["causes"],
        confirmed=total["confirmed"], repeat_calls=total["repeat_calls"],
        deflected=total["deflected"], ivr_seconds=sum(c.ivr_seconds() for c in plan),
        reasons={reason: figures(calls) for reason, calls in sorted(by_reason.items())},
        nodes=dict(sorted(nodes.items())), worst_drop_off=worst_drop_off(nodes),
        behaviours=dict(sorted(Counter(c.behaviour for c in plan).items())),
        ended_before_reason=_unstated(plan, "abandoned"),
        transferred_without_reason=_unstated(plan, "transferred"),
        transfers_answered=total["transfers_answered"], queue_abandoned=total["queue_abandoned"],
        transfers_unanswered=total["transfers_unanswered"],
        queue_abandonment_rate=total["queue_abandoned"] / waited if waited else None,
        avg_queue_seconds_abandoned=round(sum(waits) / len(waits), 1) if waits else None,
        providers={name: figures(calls) for name, calls in sorted(by_provider.items())},
    )


def _unstated(plan: list[PlannedCall], outcome: str) -> int:
    return sum(1 for c in plan if c.spec.reason == REASON_NOT_STATED and c.spec.outcome == outcome)


def worst_drop_off(nodes: dict) -> str | None:
    """The node the funnel puts first: most calls lost there (hung up or
    transferred), then the highest share of the calls that reached it."""
    def key(item):
        name, row = item
        dropped = row["hung_up"] + row["transferred"]
        return (-dropped, -(dropped / row["reached"]), name)
    ranked = sorted(nodes.items(), key=key)
    return ranked[0][0] if ranked else None


def _repeat_calls(plan: list[PlannedCall], window: timedelta) -> set[str]:
    """Ids of the self-served calls whose caller called again for the same
    reason after them and within ``window``.  Withheld numbers cannot be
    recognised, so they never repeat."""
    # Elapsed seconds, not wall-clock differences: a day with a change of
    # clocks has 23 or 25 hours.
    starts = defaultdict(list)
    for call in plan:
        if call.caller != WITHHELD_NUMBER:
            starts[(call.caller, call.spec.reason)].append(call.start.timestamp())
    for moments in starts.values():
        moments.sort()
    repeats = set()
    for call in plan:
        if call.spec.outcome != "self_served" or call.caller == WITHHELD_NUMBER:
            continue
        moments = starts[(call.caller, call.spec.reason)]
        began = call.start.timestamp()
        after = bisect.bisect_right(moments, began)
        if after < len(moments) and moments[after] - began <= window.total_seconds():
            repeats.add(call.call_id)
    return repeats
