"""Render the TwiML of every turn of every scenario under ``flows/tests``.

Each scenario is played in this process as ``ivr-sim test`` plays it (the
demo orders, the scenario's clock, caller, language, forced look-ups and
texts), and every turn's TwiML is written out byte for byte under a
header naming the file, the scenario and the turn.  The result is kept in
``tests/golden/twiml.txt`` and ``tests/test_twiml_golden.py`` fails when
any of it changes, so a change to what the provider is told shows in
review (and a refactoring that should change nothing proves it).

    python tools/render_twiml.py            # print every turn
    python tools/render_twiml.py --write    # rewrite tests/golden/twiml.txt
    python tools/render_twiml.py --check    # exit 1 when the golden file differs
"""

from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ivr.flow.loader import load_flow  # noqa: E402 - after the path is set
from ivr.server.sms import RecordingSms  # noqa: E402
from ivr.sim.call import InputNotExpected, SimCall  # noqa: E402
from ivr.sim.scenarios import INPUTS, _play, demo_lookups, local_time, scenario_files  # noqa: E402

GOLDEN = ROOT / "tests" / "golden" / "twiml.txt"
SCENARIOS = ROOT / "flows" / "tests"


def render_all() -> str:
    """Every turn of every scenario under ``flows/tests``, as one text."""
    flows: dict = {}
    blocks = []
    for path in scenario_files([SCENARIOS]):
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
        flow_path = (path.parent / spec["flow"]).resolve()
        if flow_path not in flows:
            flows[flow_path] = load_flow(flow_path, ROOT / "prompts")
        defaults = spec.get("defaults") or {}
        for index, scenario in enumerate(spec["scenarios"], start=1):
            scenario = {**defaults, **scenario}
            title = f"{path.relative_to(ROOT)} #{index}: {scenario.get('name', '(unnamed)')}"
            blocks.extend(_render_scenario(flows[flow_path], scenario, title))
    return "\n".join(blocks)


def _render_scenario(flow, scenario: dict, title: str) -> list[str]:
    """The header and TwiML of each turn of one scenario."""
    at = local_time(scenario.get("at", "2026-11-24 10:00"), flow.timezone)
    wanted = scenario.get("sms", "sent")
    sms = RecordingSms(fail="forced by the scenario" if wanted == "failed" else None)
    call = SimCall(flow, demo_lookups(at, scenario.get("lookups")),
                   caller=str(scenario.get("caller", "+33612345678")), at=at,
                   lang=scenario.get("lang"), send_sms=sms.send)
    call.start()
    for step in scenario.get("steps") or []:
        if isinstance(step, str):
            step = {step: True}
        inputs = [k for k in step if k in INPUTS]
        if not inputs:
            continue
        if inputs[0] != "wait" and call.ended:
            break
        try:
            _play(call, inputs[0], step[inputs[0]])
        except InputNotExpected:
            break
    if scenario.get("end") and not call.ended:
        call.hangup()
    return [f"== {title}\n-- turn {turn.number} ({turn.input})\n{turn.twiml.decode('utf-8')}"
            for turn in call.turns]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--write", action="store_true", help="rewrite tests/golden/twiml.txt")
    group.add_argument("--check", action="store_true", help="exit 1 when the golden file differs")
    args = parser.parse_args(argv)
    rendered = render_all() + "\n"
    if args.write:
        GOLDEN.write_text(rendered, encoding="utf-8")
        return 0
    if args.check:
        golden = GOLDEN.read_text(encoding="utf-8") if GOLDEN.exists() else ""
        sys.stdout.writelines(difflib.unified_diff(
            golden.splitlines(True), rendered.splitlines(True), str(GOLDEN), "rendered now"))
        return int(rendered != golden)
    sys.stdout.write(rendered)
    return 0


if __name__ == "__main__":
    sys.exit(main())
