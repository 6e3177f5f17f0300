"""``ivr-sim``: the demo flow's scenarios, lint, interactive calls, help."""

import re
from pathlib import Path

import pytest
import sqlite_utils
from click.testing import CliRunner

from ivr.providers.twilio.render import validate_twiml
from ivr.sim.cli import main
from ivr.sim.scenarios import run_paths

ROOT = Path(__file__).parent.parent
BROKEN = Path(__file__).parent / "fixtures" / "broken"


def invoke(*args, input=None):
    return CliRunner().invoke(main, [str(a) for a in args], input=input, catch_exceptions=False)


def test_demo_scenarios_pass_with_full_node_coverage():
    result = invoke("test", ROOT / "flows" / "tests")
    assert result.exit_code == 0, result.output
    assert "coverage post_sale.yaml: 100% of nodes" in result.output
    assert re.search(r"^\d+ passed, 0 failed$", result.output, re.M)


def test_every_turn_of_the_demo_scenarios_is_valid_twiml(monkeypatch):
    documents = []
    from ivr.providers.twilio.dialect import TwilioDialect

    real = TwilioDialect.render

    def keep(self, actions, url):
        documents.append(real(self, actions, url))
        return documents[-1]

    monkeypatch.setattr(TwilioDialect, "render", keep)
    run_paths([ROOT / "flows" / "tests"])
    assert len(documents) > 100
    assert [problem for doc in documents for problem in validate_twiml(doc)] == []


def test_a_failing_scenario_shows_expected_and_actual_and_exits_1(tmp_path):
    scenario = tmp_path / "wrong.yaml"
    scenario.write_text(
        f"flow: {ROOT / 'flows' / 'post_sale.yaml'}\n"
        "scenarios:\n"
        "  - name: expects the wrong answer\n"
        "    at: '2026-11-24 10:00'\n"
        "    caller: '+33639980014'\n"
        "    steps:\n"
        "      - press: 1\n"
        "        expect: {heard: livré hier, node: main_menu}\n"
        "    end: {outcome: transferred}\n")
    result = invoke("test", scenario, "--prompts", ROOT / "prompts")
    assert result.exit_code == 1
    assert "turn 1 (press 1): expected to hear 'livré hier'" in result.output
    assert "    heard: Vous appelez au sujet de votre commande numéro 1 0 0 6 5 4" in result.output
    assert "expected the call at node 'main_menu', found 'confirm_order'" in result.output
    assert "end of call: expected outcome 'transferred', found 'abandoned'" in result.output
    assert "0 passed, 1 failed" in result.output


def test_lint_prints_every_problem_with_file_line_column_and_exits_1():
    result = invoke("lint", BROKEN / "broken.yaml", "--prompts", BROKEN / "prompts")
    assert result.exit_code == 1
    path = BROKEN / "broken.yaml"
    assert result.output.splitlines() == [
        f"{path}:2:20: error: language 'en-US' has no speech data: expected "
        f"{BROKEN / 'prompts' / 'en-US' / 'speech.yaml'} (yes/no, escape and filler words) [missing-speech-data]",
        f"{path}:7:3: error: reason 'other' is a catch-all bucket; name what the caller wants "
        "(e.g. carrier_delay) [catch-all-reason]",
        f"{path}:7:3: error: reason 'other' is declared but no node marks it [unused-reason]",
        f"{path}:10:5: error: prompt 'confirm_choice' has no en-US version: expected "
        f"{BROKEN / 'prompts' / 'en-US' / 'confirm_choice.j2'} [missing-prompt]",
        f"{path}:11:10: error: prompt 'hello' has no en-US version: expected "
        f"{BROKEN / 'prompts' / 'en-US' / 'hello.j2'} [missing-prompt]",
        f"{path}:15:13: error: node 'menu' (choices 1) 'to' goes to unknown node 'billing' [unknown-target]",
        f"{path}:16:14: error: key 1 is already used by choice 1 of this menu [duplicate-key]",
        f"{path}:18:3: error: look-up 'find' has no 'error' branch: say where callers go when "
        "the back-end fails (usually the human) [missing-error-branch]",
        f"{path}:18:3: error: node 'find' is unreachable: no node leads to it [unreachable-node]",
        f"{path}:27:14: error: expected a whole number, found text 'soon' [wrong-type]",
        "10 problems",
    ]


def test_lint_of_the_demo_flow_is_clean():
    result = invoke("lint", ROOT / "flows")
    assert result.exit_code == 0
    assert result.output.strip() == "0 problems"


def test_interactive_call_tracks_an_order_in_french():
    result = invoke("call", ROOT / "flows" / "post_sale.yaml", "--at", "2026-11-24 10:00",
                    input="1\n2\n")
    assert result.exit_code == 0
    assert "path: find_recent > on_its_way > proactive_answer > answer > status_in_transit" in result.output
    assert "votre colis est en route avec Colissimo" in result.output
    assert "path: main_menu > status_question > answer > status_reminder" in result.output
    assert "Call ended: outcome self_served, reason in_transit_on_time" in result.output


def test_interactive_call_in_english_shows_the_twiml():
    result = invoke("call", ROOT / "flows" / "post_sale.yaml", "--caller", "+14155550199",
                    "--at", "2026-11-24 10:00", "--twiml", input="say where is my order\n100420\n1\nhangup\n")
    assert "You entered 1 0 0 4 2 0" in result.output
    assert 'twiml: <?xml version="1.0" encoding="UTF-8"?><Response><Gather' in result.output
    assert "out for delivery" in result.output


def test_interactive_call_explains_unknown_input():
    result = invoke("call", ROOT / "flows" / "post_sale.yaml", "--at", "2026-11-24 10:00",
                    "--caller", "+33700000000", input="bonjour\nhangup\n")
    assert "Type keys (1, 123#), 'say <words>'" in result.output
    assert "outcome abandoned" in result.output


def test_calling_a_broken_flow_lists_its_problems():
    result = CliRunner().invoke(main, ["call", str(BROKEN / "broken.yaml"),
                                       "--prompts", str(BROKEN / "prompts")])
    assert result.exit_code == 1
    assert "the flow is not valid:" in result.output
    assert "[unknown-target]" in result.output


def test_demo_orders_command_creates_the_store(tmp_path):
    db_path = tmp_path / "orders.db"
    result = invoke("demo-orders", "--db", db_path, "--today", "2026-11-24")
    assert result.exit_code == 0
    assert "+33612345678" in result.output
    statuses = {row["status"] for row in sqlite_utils.Database(db_path)["orders"].rows}
    assert {"in_transit", "lost", "returned", "delayed_carrier"} <= statuses


def test_call_can_use_an_order_database_file(tmp_path):
    db_path = tmp_path / "orders.db"
    invoke("demo-orders", "--db", db_path, "--today", "2026-11-24")
    result = invoke("call", ROOT / "flows" / "post_sale.yaml", "--orders", db_path,
                    "--at", "2026-11-24 10:00", input="1\n1\nhangup\n")
    assert "en route avec Colissimo" in result.output


@pytest.mark.parametrize("command", ["call", "test", "lint", "demo-orders", "schema"])
def test_every_command_has_help_with_an_example(command):
    result = invoke(command, "--help")
    assert result.exit_code == 0
    assert "Example:" in result.output
    assert f"ivr-sim {command}" in result.output


def test_interactive_call_refuses_a_dial_result_at_a_menu():
    result = invoke("call", ROOT / "flows" / "post_sale.yaml", "--at", "2026-11-24 10:00",
                    "--caller", "+33700000000", input="dial busy\nhangup\n")
    assert "(cannot send a transfer result: the call waits for keys or speech)" in result.output
    assert "outcome abandoned" in result.output
