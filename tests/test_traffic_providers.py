"""Ground-truth traffic played as each provider plays it: the same seed
plans the same calls, with ids of the provider's shape, and the reports
over each provider's log show the same figures."""

import json
import uuid
from dataclasses import asdict, replace

import pytest
import sqlite_utils
from click.testing import CliRunner
from test_traffic import FLOW, GROUND_TRUTH_START, START, _moments, registry  # noqa: F401 - a fixture used here

from ivr.providers.registry import provider as registered
from ivr.providers.registry import providers
from ivr.sim.cli import main
from ivr.sim.traffic import generate, play, played_by, single_call
from ivr.sim.traffic_behaviours import BEHAVIOURS, TrafficError
from ivr.sim.traffic_ids import SHAPES
from ivr.sim.traffic_plan import Expected, plan_calls
from ivr.sim.traffic_player import CALLED
from ivr.store.sqlite.store import CallStore

PROVIDERS = sorted(providers())
#: What each provider's call ids start with (the rest: its own alphabet).
PREFIXES = {"twilio": "CA", "signalwire": "", "telnyx": "v3:", "plivo": "", "vonage": "CON-",
            "jambonz": ""}
#: Providers with no queue: they dial instead and cannot say how long a caller waited.
NO_QUEUE = {"plivo", "vonage"}
CALLS = 600
SEED = 2026

def _fresh_id(name: str) -> str:
    """A call id the provider's own fake makes."""
    return registered(name).fake(lambda request: b"", "+33639980000", CALLED, "", None).call_id


# --- call ids --------------------------------------------------------------------------

def test_every_registered_provider_has_a_shape_of_call_id():
    assert set(SHAPES) == set(providers())


def test_twilio_plays_the_plan_as_planned():
    plan = plan_calls(300, 7, START, 14)
    assert played_by(plan, ("twilio",)) == plan
    assert {c.provider for c in plan} == {"twilio"}


@pytest.mark.parametrize("name", PROVIDERS)
def test_each_providers_call_ids_have_its_shape_and_stay_with_the_seed(name):
    plan = plan_calls(300, 7, START, 14)
    played = played_by(plan, (name,))
    dialect, fresh = registered(name).dialect(), _fresh_id(name)
    for call in played:
        assert dialect.is_call_id(call.call_id), call.call_id
        assert len(call.call_id) == len(fresh) and call.call_id.startswith(PREFIXES[name])
        assert fresh.startswith(PREFIXES[name])
    if name in ("signalwire", "plivo", "vonage", "jambonz"):
        assert {uuid.UUID(c.call_id.removeprefix("CON-")).version for c in played} == {4}
    assert len({c.call_id for c in played}) == len(played)
    assert played_by(plan_calls(300, 7, START, 14), (name,)) == played
    # Only the id and the provider differ from the plan.
    assert [replace(c, call_id=p.call_id, provider="twilio") for c, p in zip(played, plan)] == plan
    assert {c.provider for c in played} == {name}


def test_several_providers_play_the_calls_in_turn():
    plan = played_by(plan_calls(7, 7, START, 14), ("telnyx", "twilio", "vonage"))
    assert [c.provider for c in plan] == ["telnyx", "twilio", "vonage"] * 2 + ["telnyx"]


@pytest.mark.parametrize("names, message", [
    (("skype",), "unknown provider 'skype'; known: twilio, "),
    ((), "no provider to play the calls"),
])
def test_an_unknown_provider_is_refused_before_the_database_is_created(tmp_path, names, message):
    path = tmp_path / "none.db"
    with pytest.raises(TrafficError, match=message):
        generate(FLOW, path, calls=5, seed=1, providers=names)
    assert not path.exists()


def test_the_same_seed_played_by_another_provider_into_one_database_is_refused(tmp_path):
    path = tmp_path / "log.db"
    generate(FLOW, path, calls=20, seed=1, providers=("vonage",))
    with pytest.raises(TrafficError, match="already holds calls of this seed"):
        generate(FLOW, path, calls=20, seed=1, providers=("twilio",))
    generate(FLOW, path, calls=20, seed=2, providers=("twilio",))
    assert sqlite_utils.Database(path).table("calls").count == 40


# --- one behaviour at a time, as each provider plays it -------------------------------

def _ended(store, call) -> dict:
    row = store.call(call.call_id)
    return {"reason": row["reason"], "outcome": row["outcome"], "cause": row["cause"],
            "exit_node": row["exit_node"], "confirmed": bool(row["confirmed"]),
            "handoff": row["handoff_kind"], "ivr_seconds": row["ivr_seconds"],
            "provider_status": row["provider_status"], "transfer_result": row["transfer_result"],
            "provider": row["provider"],
            "nodes": {e["node"] for e in store.node_events(call.call_id)}}


@pytest.mark.parametrize("name", [p for p in PROVIDERS if p != "twilio"])
def test_each_behaviour_played_by_each_provider_ends_as_the_table_says(registry, name):  # noqa: F811
    misfits = {}
    for behaviour, spec in sorted(BEHAVIOURS.items()):
        for at in _moments(spec):
            store = CallStore(sqlite_utils.Database(memory=True))
            call = single_call(behaviour, at, provider=name)
            play([call], registry, store, START.date())
            got = _ended(store, call)
            wanted = {"reason": spec.reason, "outcome": spec.outcome, "cause": spec.cause,
                      "exit_node": spec.exit_node, "confirmed": spec.confirmed,
                      "handoff": spec.handoff, "ivr_seconds": call.ivr_seconds(),
                      "provider_status": "completed", "transfer_result": call.transfer_result()[0],
                      "provider": name, "nodes": set(spec.nodes)}
            if got != wanted:
                misfits[f"{behaviour} at {at:%H:%M}"] = {
                    key: (got[key], wanted[key]) for key in got if got[key] != wanted[key]}
            if call.transfer_result()[0] == "abandoned_in_queue":
                waited = None if name in NO_QUEUE else call.transfer_result()[1]
                assert store.call(call.call_id)["queue_seconds"] == waited, behaviour
    assert misfits == {}


# --- the same seed through every provider ----------------------------------------------

@pytest.fixture(scope="module")
def played(tmp_path_factory):
    """Each provider's log of the same seed, and the figures it must show."""
    analytics = pytest.importorskip("ivr.reports.analytics")
    folder = tmp_path_factory.mktemp("providers")
    logs = {}
    for name in [*PROVIDERS, "all"]:
        path = folder / f"{name}.db"
        names = tuple(PROVIDERS) if name == "all" else (name,)
        traffic = generate(FLOW, path, calls=CALLS, seed=SEED, start=GROUND_TRUTH_START, days=21,
                           providers=names)
        logs[name] = (analytics.open_report_db(path), traffic.expected)
    return analytics, logs


def _figures(expected: Expected) -> dict:
    figures = asdict(expected)
    figures.pop("providers")
    return figures


def test_the_traffic_covers_what_the_providers_play_differently(played):
    _analytics, logs = played
    _db, expected = logs["twilio"]
    assert expected.queue_abandoned > 0 and expected.behaviours.get("closed_voicemail", 0) > 0
    assert expected.behaviours["hangs_up_on_hold"] > 0 and expected.behaviours["waits_on_hold_typed_order"] > 0


@pytest.mark.parametrize("name", [*PROVIDERS, "all"])
def test_the_expected_figures_are_the_same_whatever_the_provider(played, name):
    _analytics, logs = played
    twilio, figures = _figures(logs["twilio"][1]), _figures(logs[name][1])
    if name in NO_QUEUE:
        # They cannot say how long a caller waited, so there is nothing to average.
        assert figures.pop("avg_queue_seconds_abandoned") is None
        twilio.pop("avg_queue_seconds_abandoned")
    elif name == "all":
        # Averaged over the calls of the providers that say how long.
        assert figures.pop("avg_queue_seconds_abandoned") > 0
        twilio.pop("avg_queue_seconds_abandoned")
    assert figures == twilio


@pytest.mark.parametrize("name", [*PROVIDERS, "all"])
def test_each_providers_report_shows_the_expected_figures(played, name):
    analytics, logs = played
    db, expected = logs[name]
    [row] = analytics.summary(db)
    figures = ("calls", "confirmed", "repeat_calls", "deflected", "ended_before_reason",
               "transferred_without_reason", "transfers_answered", "queue_abandoned",
               "transfers_unanswered", "avg_queue_seconds_abandoned")
    assert {key: row[key] for key in figures} == {key: getattr(expected, key) for key in figures}
    assert {o: row[o] for o in expected.outcomes} == expected.outcomes
    assert row["causes"] == expected.causes
    rows = {row["reason"]: row for row in analytics.summary(db, by="reason")}
    assert {reason: {key: rows[reason][key] for key in figures}
            for reason, figures in expected.reasons.items()} == expected.reasons
    funnel = {row["node"]: {key: row[key] for key in ("reached", "hung_up", "transferred", "ended")}
              for row in analytics.funnel(db, "post_sale")}
    assert funnel == expected.nodes


@pytest.mark.parametrize("name", [*PROVIDERS, "all"])
def test_each_call_is_logged_with_its_provider_and_an_id_of_its_shape(played, name):
    _analytics, logs = played
    db, expected = logs[name]
    rows = list(db.query("SELECT call_id, provider FROM calls"))
    names = PROVIDERS if name == "all" else [name]
    assert {row["provider"] for row in rows} == set(names)
    for row in rows:
        assert registered(row["provider"]).dialect().is_call_id(row["call_id"]), row
    assert {p: figures["calls"] for p, figures in expected.providers.items()} == \
        {p: sum(1 for row in rows if row["provider"] == p) for p in names}


def test_a_mix_reports_each_providers_expected_figures(played):
    analytics, logs = played
    db, expected = logs["all"]
    rows = {row["provider"]: row for row in analytics.summary(db, by="provider")}
    assert {name: {key: rows[name][key] for key in figures}
            for name, figures in expected.providers.items()} == expected.providers
    # Six providers in turn: 100 calls each.
    assert {name: figures["calls"] for name, figures in expected.providers.items()} == \
        {name: CALLS // len(PROVIDERS) for name in PROVIDERS}


# --- the command ----------------------------------------------------------------------------

def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_traffic_help_names_the_providers_with_an_example():
    result = invoke("traffic", "--help")
    assert result.exit_code == 0
    assert "--provider [" + "|".join([*PROVIDERS, "all"]) + "]" in result.output
    assert "--seed 7 --provider telnyx" in result.output
    assert "ivr-report summary --db /tmp/mix.db --by provider" in result.output


def test_traffic_command_plays_the_same_calls_as_another_provider(tmp_path):
    runs = {}
    for name in ("twilio", "telnyx"):
        (tmp_path / name).mkdir()
        path = tmp_path / name / "t.db"
        result = invoke("traffic", FLOW, "--db", path, "--calls", 60, "--seed", 4, "--days", 7,
                        "--provider", name)
        assert result.exit_code == 0, result.output
        assert f"  played by {name}\n" in result.output
        runs[name] = result.output.split("\n", 1)[1], json.loads(
            path.with_suffix(".expected.json").read_text(encoding="utf-8"))
        assert {r["provider"] for r in sqlite_utils.Database(path).query(
            "SELECT provider FROM calls")} == {name}
    (twilio_out, twilio), (telnyx_out, telnyx) = runs["twilio"], runs["telnyx"]
    assert twilio.pop("providers") == {"twilio": telnyx["providers"]["telnyx"]}
    telnyx.pop("providers")
    assert twilio == telnyx
    # The same figures printed, but for who played them.
    assert twilio_out.replace("played by twilio", "played by telnyx").replace(
        str(tmp_path / "twilio"), str(tmp_path / "telnyx")) == telnyx_out


def test_traffic_command_without_a_provider_plays_twilio_and_with_all_every_provider(tmp_path):
    result = invoke("traffic", FLOW, "--db", tmp_path / "t.db", "--calls", 12, "--seed", 4,
                    "--days", 7)
    assert result.exit_code == 0, result.output
    assert "  played by twilio\n" in result.output
    result = invoke("traffic", FLOW, "--db", tmp_path / "all.db", "--calls", 12, "--seed", 4,
                    "--days", 7, "--provider", "all")
    assert result.exit_code == 0, result.output
    assert f"  played by {', '.join(sorted(PROVIDERS))}\n" in result.output


def test_traffic_command_refuses_an_unknown_provider(tmp_path):
    result = CliRunner().invoke(main, ["traffic", str(FLOW), "--db", str(tmp_path / "t.db"),
                                       "--calls", "5", "--seed", "1", "--provider", "skype"])
    assert result.exit_code == 2
    assert "Invalid value for '--provider': 'skype' is not one of" in result.output
    assert not (tmp_path / "t.db").exists()
