"""``ivr-sim`` and the providers: ``lint --provider`` prints each dialect's
gaps at the node, ``call --markup`` shows the chosen provider's document."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from click.testing import CliRunner

import ivr.sim.provider_lint as provider_lint
from ivr.providers.dialect import Gap
from ivr.providers.memory import RecordingDialect
from ivr.providers.registry import providers
from ivr.sim.cli import main

ROOT = Path(__file__).parent.parent
FLOW = ROOT / "flows" / "post_sale.yaml"


def invoke(*args, input=None):
    return CliRunner().invoke(main, [str(a) for a in args], input=input, catch_exceptions=False)


class QueuelessDialect(RecordingDialect):
    """A provider that cannot interrupt its first prompt: a gap at the flow's start."""

    name = "queueless"

    def gaps(self, flow):
        return [Gap(flow.start, None, "the first prompt cannot be interrupted",
                    "provider-no-barge-in")]


def key_position(text: str, key: str, after: str) -> tuple[int, int]:
    """(line, column), 1-based, of the first ``key:`` at the start of a
    line's indentation after the line ``after``."""
    lines = text.splitlines()
    start = lines.index(after)
    for number, line in enumerate(lines[start:], start=start + 1):
        if line.strip().startswith(f"{key}:"):
            return number, len(line) - len(line.lstrip()) + 1
    raise AssertionError(key)


def test_lint_for_every_provider_finds_no_gap_in_twilio():
    result = invoke("lint", "--provider", "twilio", FLOW)
    assert result.exit_code == 0, result.output
    assert "warning" not in result.output
    # Every provider's gaps are warnings: the flow still lints clean.
    everyone = invoke("lint", "--provider", "all", FLOW)
    assert everyone.exit_code == 0, everyone.output
    assert "warning: twilio:" not in everyone.output


def test_lint_prints_a_providers_gaps_at_the_nodes_position(monkeypatch):
    stub = replace(providers()["twilio"], name="queueless", dialect=QueuelessDialect)
    monkeypatch.setattr(provider_lint, "providers", lambda: {**providers(), "queueless": stub})
    result = invoke("lint", "--provider", "all", FLOW)
    assert result.exit_code == 0  # warnings only
    line, column = key_position(FLOW.read_text(encoding="utf-8"), "find_recent", "nodes:")
    assert (f"{FLOW}:{line}:{column}: warning: queueless: the first prompt cannot be "
            f"interrupted [provider-no-barge-in]") in result.output


def test_lint_refuses_an_unknown_provider_naming_the_known_ones():
    result = CliRunner().invoke(main, ["lint", "--provider", "nosuch", str(FLOW)])
    assert result.exit_code == 2
    assert "unknown provider 'nosuch'; known: twilio" in result.output


def test_call_markup_twilio_is_what_twiml_shows():
    args = ["call", FLOW, "--caller", "+33612345678", "--at", "2026-11-24 10:00"]
    keys = "1\nhangup\n"
    with_markup = invoke(*args, "--markup", "twilio", input=keys)
    with_twiml = invoke(*args, "--twiml", input=keys)
    assert with_markup.exit_code == 0, with_markup.output
    assert 'twiml: <?xml version="1.0" encoding="UTF-8"?><Response>' in with_markup.output
    assert with_markup.output == with_twiml.output
    assert "twiml:" not in invoke(*args, input=keys).output
