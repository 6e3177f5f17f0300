"""``ivr-sim`` says why a call hit the fail-safe and why a text was not sent."""

from pathlib import Path

import pytest
from click.testing import CliRunner

import ivr.sim.cli as sim_cli
from ivr import i18n
from ivr.sim.cli import main

ROOT = Path(__file__).parent.parent
FLOW = ROOT / "flows" / "post_sale.yaml"
CAUSE = "UndefinedError: 'str object' has no attribute 'status'"


@pytest.fixture(autouse=True)
def english():
    i18n.use_language("en")


def invoke(*args, input=None):
    return CliRunner().invoke(main, [str(a) for a in args], input=input, catch_exceptions=False)


def broken_lookups(when, mocks=None):
    """An order system that answers nonsense: the flow cannot read it."""
    return lambda lookup, now: {"status": "found", "data": {"order": "not a mapping"}}


def test_an_interactive_call_says_why_the_fail_safe_fired(monkeypatch):
    monkeypatch.setattr(sim_cli, "demo_lookups", broken_lookups)
    result = invoke("call", FLOW, "--at", "2026-11-24 10:00", input="hangup\n")
    assert f"  The fail-safe put the caller through to a person because of: {CAUSE}\n" in result.output


def scenario_file(tmp_path, body: str) -> Path:
    path = tmp_path / "scenario.yaml"
    path.write_text(f"flow: {FLOW}\nscenarios:\n{body}")
    return path


def test_a_failing_scenario_says_why_the_fail_safe_fired(tmp_path):
    path = scenario_file(tmp_path, (
        "  - name: the order system answers nonsense\n"
        "    at: '2026-11-24 10:00'\n"
        "    lookups: {orders_by_phone: {status: found, data: {order: not a mapping}}}\n"
        "    end: {outcome: self_served}\n"))
    result = invoke("test", path)
    assert result.exit_code == 1
    assert ("end of call: expected outcome 'self_served', found 'failed'\n"
            f"    The fail-safe put the caller through to a person because of: {CAUSE}\n"
            ) in result.output


def test_a_failing_scenario_says_why_a_text_was_not_sent(tmp_path):
    path = scenario_file(tmp_path, (
        "  - name: expects the text sent\n"
        "    at: '2026-11-24 10:00'\n"
        "    caller: '+33612345678'\n"
        "    sms: failed\n"
        "    steps:\n"
        "      - press: 1\n"
        "      - press: 3\n"
        "        expect: {heard: '[SMS to caller'}\n"))
    result = invoke("test", path)
    assert result.exit_code == 1
    assert ("    The text message of node text_tracking_link was not sent: forced by the scenario\n"
            in result.output)


def test_a_passing_scenario_says_nothing_more(tmp_path):
    path = scenario_file(tmp_path, (
        "  - name: the text fails as expected\n"
        "    at: '2026-11-24 10:00'\n"
        "    caller: '+33612345678'\n"
        "    sms: failed\n"
        "    steps: [{press: 1}, {press: 3}]\n"))
    result = invoke("test", path)
    assert result.exit_code == 0, result.output
    assert "was not sent" not in result.output
