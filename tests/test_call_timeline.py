"""One call from end to end: ``ivr-report call`` on calls played through the
server's handler, and ``ivr-report calls``' search filters."""

import json

import pytest
from click.testing import CliRunner
from test_web import CA1, CA2, NO_ORDER, ONE_ORDER, SILENT, Server

from ivr import i18n
from ivr.reports.cli import main

#: What a broken order system answers: the flow's conditions cannot read it.
BROKEN_ORDER = {"status": "found", "data": {"order": "not a mapping"}}


@pytest.fixture(autouse=True)
def english():
    """Each test starts in English, whatever a test before it chose."""
    i18n.use_language("en")


def invoke(*args, env=None):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False, env=env)


def played_log(tmp_path):
    """Three calls played through the handler: CA1 asks for an agent by
    voice after 7 s and hangs up in the queue after 47 s; CA2 (another
    caller) presses 1 and hangs up at "anything else?"; SILENT meets an
    order system that answers nonsense: the fail-safe."""
    server = Server(tmp_path)
    server.turn(0)
    server.clock.advance(7)
    server.turn(1, SpeechResult="je voudrais parler à un conseiller", Confidence="0.9")
    server.clock.advance(5)
    server.turn(2, QueueResult="hangup", QueueTime="47")
    server.turn(0, sid=CA2, caller=NO_ORDER)
    server.clock.advance(4)
    server.turn(1, sid=CA2, caller=NO_ORDER, Digits="1")
    server.post("/status", CallSid=CA2, CallStatus="completed", CallDuration="30")
    working = server.handler.perform
    server.handler.perform = lambda lookup, now: BROKEN_ORDER
    server.turn(0, sid=SILENT, caller=NO_ORDER)
    server.handler.perform = working
    return server.db_path


@pytest.fixture(scope="module")
def log(tmp_path_factory):
    return played_log(tmp_path_factory.mktemp("timeline"))


def fact(out: str, label: str) -> str:
    """The value of the fact ``label`` in the printed timeline."""
    return next(line.split(":", 1)[1].strip() for line in out.splitlines()
                if line.startswith(label + ":"))


def timeline(log, call_id):
    return json.loads(invoke("call", call_id, "--db", log, "--json").output)


# -- the timeline -------------------------------------------------------------------


def test_the_timeline_lists_every_node_reached_in_order_with_its_time(log):
    steps = timeline(log, CA1)["steps"]
    assert [s["node"] for s in steps] == [
        "find_recent", "on_its_way", "proactive_answer", "answer", "status_in_transit", "told",
        "after_answer", "proactive_done", "proactive_more", "main_menu", "agent_hours", "agent"]
    assert [s["offset_s"] for s in steps][-4:] == [0, 7, 7, 7]


def test_the_timeline_says_what_was_heard_with_its_score_and_where_it_led(log):
    menu = next(s for s in timeline(log, CA1)["steps"] if s["node"] == "main_menu")
    assert menu["input"] == "je voudrais parler a un conseiller"
    assert menu["branch"] == "escape" and menu["detail"].startswith("score=")
    assert menu["said"][0]["prompt"] == "main_menu"
    assert menu["said"][0]["text"].startswith("Pour savoir où en est votre commande")


def test_the_timeline_gives_the_outcome_the_reason_described_and_the_transfer(log):
    data = timeline(log, CA1)
    call = data["call"]
    assert (call["outcome"], call["reason"], call["cause"]) == (
        "transferred", "in_transit_on_time", "caller_asked")
    assert data["reason_description"]["en-US"] == "Parcel on its way, on time"
    assert (call["handoff_target"], call["transfer_result"], call["queue_seconds"]) == (
        "post-sale", "abandoned_in_queue", 47)
    assert data["failsafe_cause"] is None


def test_the_timeline_for_people(log):
    out = invoke("call", CA1, "--db", log, "--lang", "en").output
    assert fact(out, "Reason") == "in_transit_on_time (Parcel on its way, on time)"
    assert fact(out, "Transfer") == "queue post-sale"
    assert fact(out, "Transfer result") == "abandoned_in_queue"
    assert fact(out, "Wait in the agents' queue") == "47 s"
    assert fact(out, "Flow").startswith("post_sale ")
    assert "   +0:07  main_menu (menu)\n" in out
    assert "          Heard: je voudrais parler a un conseiller (score=1.00 margin=1.00)\n" in out
    assert "          Said: greeting: “Bonjour et bienvenue au service client.”\n" in out
    assert "          Went to: escape\n" in out


def test_a_pressed_key_is_shown_as_pressed(log):
    out = invoke("call", CA2, "--db", log, "--lang", "en").output
    assert "          Pressed: 1\n" in out


def test_the_fail_safe_cause_is_shown(log):
    data = timeline(log, SILENT)
    assert data["call"]["outcome"] == "failed"
    assert data["failsafe_cause"] == "UndefinedError: 'str object' has no attribute 'status'"
    out = invoke("call", SILENT, "--db", log, "--lang", "en").output
    assert fact(out, "Fail-safe") == "UndefinedError: 'str object' has no attribute 'status'"


def test_the_callers_number_is_never_printed(log):
    for call_id in (CA1, CA2, SILENT):
        for args in ((), ("--json",)):
            out = invoke("call", call_id, "--db", log, *args).output
            assert ONE_ORDER not in out and ONE_ORDER[3:] not in out and NO_ORDER[3:] not in out
            assert "caller_hash" not in out


def test_an_unknown_call_is_one_line_with_a_hint(log):
    result = invoke("call", "CAnope", "--db", log)
    assert result.exit_code == 1
    assert result.output == ("Error: No call 'CAnope' in this log; list calls with: "
                             "ivr-report calls --since 2026-11-24\n")


def test_french_headings_with_lang_fr(log):
    out = invoke("call", CA1, "--db", log, env={"LANG": "fr_FR.UTF-8", "LANGUAGE": "",
                                                 "LC_ALL": "", "LC_MESSAGES": ""}).output
    assert out.startswith("Appel:")
    assert fact(out, "Motif") == "in_transit_on_time (Colis en route, dans les délais)"
    assert fact(out, "Issue") == "Transféré"
    assert "Déroulé:" in out and "Entendu: je voudrais parler" in out
    assert "24 nov. 2026" in out


def test_the_groups_lang_fr_holds_for_the_call(log):
    out = invoke("--lang", "fr", "call", CA1, "--db", log).output
    assert out.startswith("Appel:")


# -- the search -----------------------------------------------------------------------


def found(log, *args):
    return [row["call_id"] for row in json.loads(
        invoke("calls", "--db", log, "--format", "json", *args).output)]


@pytest.mark.parametrize("args, expected", [
    (("--outcome", "transferred"), [CA1]),
    (("--outcome", "failed"), [SILENT]),
    (("--failed",), [SILENT]),
    (("--reason", "in_transit_on_time"), [CA1]),
    (("--transfer-cause", "caller_asked"), [CA1]),
    (("--transfer-cause", "error"), [SILENT]),
    (("--exit-node", "main_menu"), [CA1]),
    (("--exit-node", "find_recent"), [SILENT]),
    (("--failed", "--exit-node", "main_menu"), []),
])
def test_each_filter_keeps_only_its_calls(log, args, expected):
    assert found(log, *args) == expected


def test_a_callers_calls_are_found_by_the_hash_of_their_number(log):
    assert found(log, "--caller", ONE_ORDER) == [CA1]
    assert sorted(found(log, "--caller", "+33 7 00 00 00 00")) == sorted([CA2, SILENT])
    out = invoke("calls", "--db", log, "--caller", ONE_ORDER).output
    assert CA1 in out and ONE_ORDER not in out and ONE_ORDER[3:] not in out


@pytest.mark.parametrize("option, value, suggestion", [
    ("--outcome", "transfered", "transferred"),
    ("--reason", "in_transit_on_tme", "in_transit_on_time"),
    ("--transfer-cause", "caller_askd", "caller_asked"),
    ("--exit-node", "main_manu", "main_menu"),
])
def test_a_misspelt_value_gets_a_did_you_mean(log, option, value, suggestion):
    result = invoke("calls", "--db", log, option, value)
    assert result.exit_code == 1
    assert result.output == (f"Error: {option}: no such value {value!r}; "
                             f"did you mean {suggestion!r}?\n")


def test_a_value_nothing_resembles_lists_the_known_ones(log):
    result = invoke("calls", "--db", log, "--outcome", "zzz")
    assert result.output == ("Error: --outcome: no such value 'zzz'; expected one of: "
                             "abandoned, failed, self_served, transferred.\n")


def test_the_call_command_has_help_with_an_example():
    result = invoke("call", "--help")
    assert result.exit_code == 0
    assert "Example:\n      ivr-report call CA" in result.output


@pytest.mark.parametrize("turn", [0, 1])
def test_a_turn_that_fails_outside_the_flow_logs_the_error_as_the_fail_safes_cause(tmp_path, turn):
    server = Server(tmp_path)
    render = server.handler.dialect.render
    failures = [RuntimeError("render broke for +33612345678")]

    def fails_once(actions, url):
        if failures:
            raise failures.pop()
        return render(actions, url)

    if turn:
        server.turn(0)
    server.handler.dialect.render = fails_once
    server.turn(turn, Digits="1")
    data = timeline(server.db_path, CA1)
    assert data["call"]["outcome"] == "failed"
    assert data["failsafe_cause"].startswith("RuntimeError: turn failed: RuntimeError: render broke for ")
    assert ONE_ORDER not in data["failsafe_cause"]


def test_the_provider_is_shown_when_the_log_records_it(tmp_path):
    server = Server(tmp_path)
    server.turn(0)
    assert fact(invoke("call", CA1, "--db", server.db_path).output, "Provider") == "twilio"
    # A log of an older version, before calls recorded their provider (and
    # before the report figures index, which holds it).
    server.store.db.execute("DROP INDEX idx_calls_report_figures")
    server.store.db.execute("ALTER TABLE calls DROP COLUMN provider")
    server.store.db.conn.commit()
    assert "Provider" not in invoke("call", CA1, "--db", server.db_path).output
