"""Ground-truth traffic: the generator, its behaviour table, and the report
checked against the figures written down before the calls were played."""

import json
from collections import Counter
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlite_utils
from click.testing import CliRunner

from ivr.lookups.demo_orders import DEMO_CALLERS, UNKNOWN_ORDER, demo_orders
from ivr.lookups.orders import Order, OrderStore
from ivr.phone import country_of
from ivr.server.registry import FlowRegistry
from ivr.sim.cli import main
from ivr.sim.traffic import generate, play, single_call
from ivr.sim.traffic_behaviours import BEHAVIOURS, EPISODES, NEW_EN, NEW_FR, TrafficError
from ivr.sim.traffic_plan import Expected, NumberPool, caller_orders, expectation, later, plan_calls
from ivr.store.sqlite.store import CallStore

ROOT = Path(__file__).parent.parent
FLOW = ROOT / "flows" / "post_sale.yaml"
PARIS = ZoneInfo("Europe/Paris")
START = datetime(2026, 11, 2, tzinfo=PARIS)
#: When the behaviours are played alone: a Tuesday with agents on duty,
#: the same evening (closed), and the small hours.
OPEN = datetime(2026, 11, 3, 10, 0, tzinfo=PARIS)
EVENING = datetime(2026, 11, 3, 20, 0, tzinfo=PARIS)
NIGHT = datetime(2026, 11, 4, 3, 30, tzinfo=PARIS)
GROUND_TRUTH_CALLS = 2000
#: Three weeks with three Sundays, the change of clocks (25 October) and
#: Armistice Day (11 November).
GROUND_TRUTH_START = datetime(2026, 10, 22).date()


@pytest.fixture(scope="module")
def registry():
    flows = FlowRegistry(ROOT / "flows", ROOT / "prompts")
    flows.reload()
    return flows


def memory_store():
    return CallStore(sqlite_utils.Database(memory=True))


# --- the plan --------------------------------------------------------------------------

def test_the_same_seed_plans_the_same_calls_and_expectations():
    first, again = plan_calls(500, 7, START, 14), plan_calls(500, 7, START, 14)
    assert first == again
    assert expectation(first) == expectation(again)
    other = plan_calls(500, 8, START, 14)
    assert [c.call_id for c in other] != [c.call_id for c in first]


def test_the_plan_has_every_behaviour_and_the_calls_asked_for():
    plan = plan_calls(3001, 1, START, 14)
    assert len(plan) == 3001
    assert {c.behaviour for c in plan} == set(BEHAVIOURS)
    assert {c.episode for c in plan} - {None} == set(EPISODES)
    assert plan == sorted(plan, key=lambda c: c.start)


def test_calls_start_in_the_period_at_every_hour_and_kind_of_day():
    plan = plan_calls(2000, 3, START, 14)
    singles = [c for c in plan if c.episode is None]
    assert all(START <= c.start < START + timedelta(days=14) for c in singles)
    assert {c.start.hour for c in plan} == set(range(24))
    days = {c.start.date() for c in plan}
    assert datetime(2026, 11, 8).date() in days      # a Sunday
    assert datetime(2026, 11, 11).date() in days     # Armistice Day


def test_open_and_closed_calls_start_when_the_support_line_says_so(registry):
    calendar = registry.current("post_sale").calendars["support"]
    plan = plan_calls(2000, 5, START, 14)
    for call in plan:
        asks_at = call.start + timedelta(seconds=call.ivr_seconds())
        if call.spec.hours == "open":
            assert calendar.is_open(call.start) and calendar.is_open(asks_at), call
        elif call.spec.hours == "closed":
            assert not calendar.is_open(call.start) and not calendar.is_open(asks_at), call


def test_repeat_episodes_keep_their_gap_to_the_window():
    window = timedelta(hours=24)
    plan = plan_calls(3000, 11, START, 14, window)
    pairs = {}
    for call in plan:
        if call.episode:
            pairs.setdefault(call.caller, []).append(call)
    assert pairs
    for calls in pairs.values():
        first, second = sorted(calls, key=lambda c: c.start.timestamp())[:2]
        gap = timedelta(seconds=second.start.timestamp() - first.start.timestamp())
        if first.episode == "repeat_after_window":
            assert window < gap <= window + timedelta(hours=12, minutes=5)
        else:
            assert timedelta(minutes=5) <= gap < window


def test_expected_repeats_follow_caller_reason_and_window():
    plan = [single_call("typed_order_status", OPEN, seed=1)]
    caller = plan[0].caller

    def again(behaviour, after, seed):
        call = single_call(behaviour, OPEN + after, seed=seed)
        return type(call)(call.call_id, behaviour, caller, call.start, call.times)

    assert expectation(plan).repeat_calls == 0
    assert expectation(plan + [again("asks_again_hangs_up", timedelta(hours=23), 2)]).repeat_calls == 1
    assert expectation(plan + [again("asks_again_hangs_up", timedelta(hours=25), 3)]).repeat_calls == 0
    assert expectation(plan + [again("return_asked_hangs_up", timedelta(hours=1), 4)]).repeat_calls == 0
    withheld = [single_call("withheld_typed_order", OPEN, seed=5),
                single_call("withheld_typed_order", OPEN + timedelta(hours=1), seed=6)]
    assert expectation(withheld).repeat_calls == 0


def test_the_repeat_window_counts_elapsed_hours_across_a_change_of_clocks():
    # Clocks go back at 03:00 on 25 October 2026: 24 h 30 min pass between
    # these two calls although the wall clock moved 23 h 30 min.
    first = single_call("typed_order_status", datetime(2026, 10, 24, 7, 0, tzinfo=PARIS), seed=1)
    second = single_call("asks_again_hangs_up", datetime(2026, 10, 25, 6, 30, tzinfo=PARIS), seed=2)
    second = type(second)(second.call_id, second.behaviour, first.caller, second.start, second.times)
    assert expectation([first, second]).repeat_calls == 0
    assert later(first.start, 24 * 3600).isoformat() == "2026-10-25T06:00:00+01:00"


def test_generated_callers_have_no_order_and_hear_their_language():
    pool = NumberPool()
    assert {country_of(n) for n in pool.pools[NEW_FR]} == {"FR"}
    assert {country_of(n) for n in pool.pools[NEW_EN]} == {"US"}
    assert {country_of(n) for n in pool.pools["english_one_order"]} == {"US"}
    for kind, numbers in pool.pools.items():  # the country of the demo caller they copy
        if kind in DEMO_CALLERS:
            assert {country_of(n) for n in numbers} == {country_of(DEMO_CALLERS[kind])}, kind
    every = [n for numbers in pool.pools.values() for n in numbers]
    assert len(every) == len(set(every))  # one kind of caller per number
    assert not set(DEMO_CALLERS.values()) & set(every)


def test_callers_with_orders_get_copies_of_their_demo_callers_orders():
    numbers = NumberPool().with_orders()
    phone = NumberPool().take("several_orders")
    copies = caller_orders(*numbers[phone], phone=phone, today=START.date())
    demo = [o for o in demo_orders(START.date()) if o.phone == DEMO_CALLERS["several_orders"]]
    assert [(o.status, o.ordered_on, o.carrier) for o in copies] == \
        [(o.status, o.ordered_on, o.carrier) for o in demo]
    assert {o.phone for o in copies} == {phone}
    assert not {o.number for o in copies} & {o.number for o in demo_orders(START.date())}
    generated = [o.number for p, place in numbers.items()
                 for o in caller_orders(*place, phone=p, today=START.date())]
    assert len(generated) == len(set(generated)) and max(generated) < UNKNOWN_ORDER


def test_repeat_calls_come_only_from_the_repeat_episodes():
    plan = plan_calls(3000, 7, START, 14)
    callers = Counter(c.caller for c in plan if c.caller != "anonymous")
    twice = {caller for caller, n in callers.items() if n > 1}
    assert twice == {c.caller for c in plan if c.episode}
    assert all(n == 2 for caller, n in callers.items() if caller in twice)
    same_reason = sum(1 for c in plan if c.episode == "repeat_same_reason") // 2
    assert expectation(plan).repeat_calls == same_reason > 0


def test_each_behaviour_leaves_the_flow_where_it_reaches_nodes():
    for behaviour in BEHAVIOURS.values():
        assert behaviour.exit_node in behaviour.nodes, behaviour.name
        assert (behaviour.cause is None) == (behaviour.outcome != "transferred"), behaviour.name


# --- one behaviour at a time ------------------------------------------------------------

def _moments(behaviour):
    return {"open": [OPEN], "closed": [EVENING, NIGHT], "any": [OPEN, NIGHT]}[behaviour.hours]


@pytest.mark.parametrize("name", sorted(BEHAVIOURS))
def test_each_behaviour_played_alone_ends_as_the_table_says(registry, name):
    spec = BEHAVIOURS[name]
    for at in _moments(spec):
        store = memory_store()
        call = single_call(name, at)
        play([call], registry, store, START.date())
        row = store.call(call.call_id)
        got = {"reason": row["reason"], "outcome": row["outcome"], "cause": row["cause"],
               "exit_node": row["exit_node"], "confirmed": bool(row["confirmed"]),
               "handoff": row["handoff_kind"]}
        assert got == {"reason": spec.reason, "outcome": spec.outcome, "cause": spec.cause,
                       "exit_node": spec.exit_node, "confirmed": spec.confirmed,
                       "handoff": spec.handoff}, f"{name} at {at:%H:%M}"
        assert {e["node"] for e in store.node_events(call.call_id)} == set(spec.nodes)
        assert row["ivr_seconds"] == call.ivr_seconds()
        assert row["provider_status"] == "completed"
        result, waited = call.transfer_result()
        assert row["transfer_result"] == result
        if result == "abandoned_in_queue":
            assert row["queue_seconds"] == waited > 0


def test_a_hold_after_a_step_without_a_look_up_is_a_misfit(registry, monkeypatch):
    bad = replace(BEHAVIOURS["hangs_up_on_hold"], name="hold_at_menu", steps=("0", "hangup on hold"))
    monkeypatch.setitem(BEHAVIOURS, bad.name, bad)
    with pytest.raises(TrafficError, match=r"'hold_at_menu' .* step 1 \(0\): the step has no look-up"):
        play([single_call(bad.name, OPEN)], registry, memory_store(), START.date())


# --- generating into a database -------------------------------------------------------------

def test_generating_twice_with_one_seed_logs_the_same_calls(tmp_path):
    def logged(path):
        traffic = generate(FLOW, path, calls=150, seed=3)
        db = sqlite_utils.Database(path)
        rows = list(db.query("SELECT call_id, started_at, ended_at, reason, outcome, cause, "
                             "exit_node, confirmed, handoff_kind, steps, ivr_seconds "
                             "FROM calls ORDER BY call_id"))
        return traffic.expected, rows

    first, again = logged(tmp_path / "a.db"), logged(tmp_path / "b.db")
    assert first == again
    assert len(first[1]) == 150


def test_a_new_database_gets_the_demo_orders_dated_from_the_period(tmp_path):
    path = tmp_path / "new.db"
    generate(FLOW, path, calls=5, seed=1, start=START.date(), days=3)
    order = OrderStore(sqlite_utils.Database(path)).find_by_number("100310")  # placed "today"
    assert order.ordered_on == START.date()


def test_the_same_seed_twice_into_one_database_is_refused(tmp_path):
    path = tmp_path / "log.db"
    generate(FLOW, path, calls=20, seed=1)
    with pytest.raises(TrafficError, match="already holds calls of this seed"):
        generate(FLOW, path, calls=20, seed=1)
    generate(FLOW, path, calls=20, seed=2)
    assert sqlite_utils.Database(path).table("calls").count == 40


def test_a_database_with_other_orders_is_refused(tmp_path):
    path = tmp_path / "shop.db"
    store = OrderStore.open(path)
    store.ensure_schema()
    store.add(Order("555555", "+33611111111", "shipped", "ups", "1Z", None, START.date(), None, None,
                    1, Decimal("10.00")))
    with pytest.raises(TrafficError, match=r"not demo orders \(555555\)"):
        generate(FLOW, path, calls=5, seed=1)


@pytest.mark.parametrize("figures, message", [
    ({"calls": 0}, "at least 1"),
    ({"days": 29}, "days must be between 1 and 28"),
    ({"repeat_window": timedelta(days=3)}, "repeat window"),
])
def test_bad_figures_are_refused_before_the_database_is_created(tmp_path, figures, message):
    path = tmp_path / "none.db"
    with pytest.raises(TrafficError, match=message):
        generate(FLOW, path, **{"calls": 10, "seed": 1, **figures})
    assert not path.exists()


def test_another_flow_is_refused(tmp_path):
    (tmp_path / "flows").mkdir()
    other = tmp_path / "flows" / "other.yaml"
    other.write_text(FLOW.read_text(encoding="utf-8").replace("flow: post_sale", "flow: other"),
                     encoding="utf-8")
    with pytest.raises(TrafficError, match="written for the post_sale flow, not 'other'"):
        generate(other, tmp_path / "x.db", calls=5, seed=1, prompts=ROOT / "prompts")


def test_a_period_without_business_hours_is_refused():
    sunday = datetime(2026, 11, 8, tzinfo=PARIS)
    with pytest.raises(TrafficError, match="no business hours"):
        plan_calls(10, 1, sunday, 1)


def test_the_expectation_reads_back_from_json(tmp_path):
    expected = expectation(plan_calls(300, 2, START, 14), version="v1", seed=2, start=START, days=14)
    assert Expected.read(expected.write(tmp_path / "e.json")) == expected


# --- THE ground truth: the report over 2,000 calls --------------------------------------------

@pytest.fixture(scope="module")
def ground_truth(tmp_path_factory):
    path = tmp_path_factory.mktemp("traffic") / "ground_truth.db"
    traffic = generate(FLOW, path, calls=GROUND_TRUTH_CALLS, seed=2026, start=GROUND_TRUTH_START,
                       days=21)
    analytics = pytest.importorskip("ivr.reports.analytics")
    return analytics, analytics.open_report_db(path), traffic.expected


def test_ground_truth_summary_equals_the_expectation(ground_truth):
    analytics, db, expected = ground_truth
    [row] = analytics.summary(db)
    assert row["calls"] == expected.calls == GROUND_TRUTH_CALLS
    assert {o: row[o] for o in expected.outcomes} == expected.outcomes
    assert row["confirmed"] == expected.confirmed
    assert row["deflection_rate"] == pytest.approx(expected.outcomes["self_served"] / expected.calls)
    assert row["ivr_minutes"] == pytest.approx(expected.ivr_seconds / 60, abs=0.01)
    assert row["avg_ivr_seconds"] == pytest.approx(expected.ivr_seconds / expected.calls, abs=0.1)
    cost = expected.deflected * Decimal("3.00") - Decimal(expected.ivr_seconds) / 60 * Decimal("0.02")
    assert abs(row["cost_saved"] - cost) <= Decimal("0.01")


def test_ground_truth_calls_without_a_reason(ground_truth):
    analytics, db, expected = ground_truth
    [row] = analytics.summary(db)
    assert (row["ended_before_reason"], row["transferred_without_reason"]) == (
        expected.ended_before_reason, expected.transferred_without_reason)
    # The reason question leaves few transfers without one.
    assert 0 < expected.transferred_without_reason <= 0.05 * expected.outcomes["transferred"]


def test_ground_truth_transferred_calls_split_by_cause(ground_truth):
    analytics, db, expected = ground_truth
    [row] = analytics.summary(db)
    assert row["causes"] == expected.causes
    assert sum(expected.causes.values()) == expected.outcomes["transferred"]


def test_ground_truth_transfers_at_the_agents_end(ground_truth):
    analytics, db, expected = ground_truth
    [row] = analytics.summary(db)
    figures = ("transfers_answered", "queue_abandoned", "transfers_unanswered",
               "avg_queue_seconds_abandoned")
    assert {key: row[key] for key in figures} == {key: getattr(expected, key) for key in figures}
    assert row["queue_abandonment_rate"] == pytest.approx(expected.queue_abandonment_rate)
    assert expected.queue_abandoned > 0 and expected.avg_queue_seconds_abandoned > 0
    assert 0 < expected.queue_abandonment_rate < 1


def test_ground_truth_hang_ups_on_hold_are_at_the_look_up(ground_truth):
    _analytics, _db, expected = ground_truth
    on_hold = expected.behaviours["hangs_up_on_hold"]
    assert on_hold > 0 and expected.behaviours["hangs_up_on_hold_answered"] > 0
    assert expected.behaviours["waits_on_hold_typed_order"] > 0
    assert expected.nodes["find_by_phone"]["hung_up"] == on_hold
    assert expected.nodes["find_by_number"]["hung_up"] == expected.behaviours["hangs_up_on_hold_answered"]


def test_ground_truth_repeat_calls_and_deflected(ground_truth):
    analytics, db, expected = ground_truth
    [row] = analytics.summary(db)
    assert 0 < expected.repeat_calls < expected.outcomes["self_served"]
    assert (row["repeat_calls"], row["deflected"]) == (expected.repeat_calls, expected.deflected)
    assert row["repeat_adjusted_deflection_rate"] == pytest.approx(expected.deflected / expected.calls)


def test_ground_truth_summary_by_reason(ground_truth):
    analytics, db, expected = ground_truth
    rows = {row["reason"]: row for row in analytics.summary(db, by="reason")}
    assert set(rows) == set(expected.reasons)
    for reason, figures in expected.reasons.items():
        assert {key: rows[reason][key] for key in figures} == figures, reason


def test_ground_truth_funnel_exits_per_node(ground_truth):
    analytics, db, expected = ground_truth
    rows = analytics.funnel(db, "post_sale")
    got = {row["node"]: {key: row[key] for key in ("reached", "hung_up", "transferred", "ended")}
           for row in rows}
    differing = sorted(n for n in set(got) | set(expected.nodes) if got.get(n) != expected.nodes.get(n))
    assert {n: got.get(n) for n in differing} == {n: expected.nodes.get(n) for n in differing}


def test_ground_truth_worst_drop_off_node(ground_truth):
    analytics, db, expected = ground_truth
    assert analytics.funnel(db, "post_sale")[0]["node"] == expected.worst_drop_off


# --- the command ------------------------------------------------------------------------------

def invoke(command, *args):
    return CliRunner().invoke(command, [str(a) for a in args], catch_exceptions=False)


def test_traffic_help_has_an_example():
    result = invoke(main, "traffic", "--help")
    assert result.exit_code == 0
    assert "Example:" in result.output
    assert "ivr-sim traffic flows/post_sale.yaml --db" in result.output


def test_traffic_command_plays_calls_and_writes_the_expectation(tmp_path):
    path = tmp_path / "t.db"
    result = invoke(main, "traffic", FLOW, "--db", path, "--calls", 120, "--seed", 4, "--days", 7)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Played 120 calls to post_sale (version ")
    written = Expected.read(tmp_path / "t.expected.json")
    assert written == expectation(plan_calls(120, 4, START, 7), version=written.version, seed=4,
                                  start=START, days=7)
    assert f"outcomes: self_served {written.outcomes['self_served']}," in result.output
    assert sqlite_utils.Database(path).table("calls").count == 120


def test_traffic_command_turns_errors_into_messages(tmp_path):
    result = CliRunner().invoke(main, ["traffic", str(FLOW), "--db", str(tmp_path / "t.db"),
                                       "--calls", "5", "--seed", "1", "--start", "2026-11-31"])
    assert result.exit_code == 1
    assert result.output == ("Error: Invalid value for --start: '2026-11-31' is not a date: write "
                             "it as 2026-12-24 (year-month-day, ISO 8601)\n")
    result = CliRunner().invoke(main, ["traffic", str(tmp_path / "missing.yaml"), "--db",
                                       str(tmp_path / "t.db"), "--calls", "5", "--seed", "1"])
    assert result.exit_code == 2 and "does not exist" in result.output


def test_ivr_report_summary_matches_the_expectation_json(tmp_path):
    from ivr.reports.cli import main as report

    path, out = tmp_path / "t.db", tmp_path / "expected.json"
    played = invoke(main, "traffic", FLOW, "--db", path, "--calls", 400, "--seed", 9,
                    "--expect-out", out)
    assert played.exit_code == 0, played.output
    expected = json.loads(out.read_text(encoding="utf-8"))
    result = invoke(report, "summary", "--db", path, "--format", "json")
    assert result.exit_code == 0, result.output
    [row] = json.loads(result.output)
    assert row["calls"] == expected["calls"] == 400
    assert {o: row[o] for o in expected["outcomes"]} == expected["outcomes"]
    assert row["causes"] == expected["causes"]
    assert (row["repeat_calls"], row["deflected"], row["confirmed"]) == \
        (expected["repeat_calls"], expected["deflected"], expected["confirmed"])
    assert (row["ended_before_reason"], row["transferred_without_reason"]) == \
        (expected["ended_before_reason"], expected["transferred_without_reason"])
    queue = ("transfers_answered", "queue_abandoned", "transfers_unanswered",
             "queue_abandonment_rate", "avg_queue_seconds_abandoned")
    assert {key: row[key] for key in queue} == pytest.approx({key: expected[key] for key in queue})
    by_reason = invoke(report, "summary", "--db", path, "--by", "reason", "--format", "json")
    rows = {row["reason"]: row for row in json.loads(by_reason.output)}
    assert {reason: {key: rows[reason][key] for key in figures}
            for reason, figures in expected["reasons"].items()} == expected["reasons"]
