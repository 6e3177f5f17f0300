"""Scenario files are checked like flows: plain sentences at the scenario
file's own line and column, and "did you mean" for steps and nodes."""

import textwrap
from pathlib import Path

import pytest

from ivr.sim.scenarios import ScenarioFileError, run_paths
from ivr.sim.scenarios_check import check_scenario_file

ROOT = Path(__file__).parent.parent
FLOW = (ROOT / "flows" / "post_sale.yaml").as_posix()


def problems_of(text: str) -> list[str]:
    with pytest.raises(ScenarioFileError) as caught:
        check_scenario_file("t.yaml", textwrap.dedent(text))
    return [str(p) for p in caught.value.problems]


def run_problems(tmp_path, text: str) -> list[str]:
    path = tmp_path / "s.yaml"
    path.write_text(textwrap.dedent(text))
    with pytest.raises(ScenarioFileError) as caught:
        run_paths([path], ROOT / "prompts")
    return [str(p).replace(str(path), "s.yaml") for p in caught.value.problems]


def test_a_tab_in_a_scenario_file_is_at_its_line_and_column():
    assert problems_of("flow: x.yaml\nscenarios:\n  - steps:\n\t- hangup\n") == [
        "t.yaml:4:1: error: a tab is used for indentation; YAML needs spaces: replace the tab with "
        "two spaces [yaml-syntax]"]


def test_a_colon_in_a_scenario_name_says_to_quote_it():
    assert problems_of("flow: x.yaml\nscenarios:\n  - name: status: delivered\n    steps: [hangup]\n") == [
        "t.yaml:3:17: error: the text of 'name' contains ': ', which YAML reads as a new field: put "
        "the whole text in quotes, e.g. name: \"status: delivered\" [yaml-syntax]"]


def test_a_misspelt_step_offers_the_step():
    assert problems_of("flow: x.yaml\nscenarios:\n  - steps:\n      - silense\n      - prss: 1\n") == [
        "t.yaml:4:9: error: unknown step 'silense': did you mean 'silence'? (expected one of press, "
        "say, silence, hangup, dial, record, wait) [wrong-value]",
        "t.yaml:5:9: error: unknown field 'prss': did you mean 'press'? (expected one of dial, "
        "expect, hangup, press, record, say, silence, wait) [unknown-field]"]


def test_a_misspelt_expectation_offers_the_expectation():
    assert problems_of("flow: x.yaml\nscenarios:\n  - steps:\n      - press: 1\n"
                       "        expect: {heard: bonjour, nod: main_menu}\n") == [
        "t.yaml:5:34: error: unknown field 'nod': did you mean 'node'? (expected one of heard, "
        "node, not_heard, path, twiml) [unknown-field]"]


def test_a_day_first_time_is_read_and_an_ambiguous_one_is_refused():
    assert problems_of("flow: x.yaml\nscenarios:\n  - at: 24/12/2026 18:30\n    steps: [hangup]\n"
                       "  - at: \"07/12/2026 10:00\"\n    steps: [hangup]\n") == [
        "t.yaml:5:9: error: '07/12/2026 10:00' could be read day first (2026-12-07 10:00) or month "
        "first (2026-07-12 10:00): write it year first, as the one you mean [wrong-value]"]


def test_an_expected_node_the_flow_lacks_is_reported_at_it_with_the_node_meant(tmp_path):
    assert run_problems(tmp_path, f"""\
        flow: {FLOW}
        scenarios:
          - steps:
              - expect: {{node: main_menuu, path: [find_recent, welcom]}}
        """) == [
        "s.yaml:4:24: error: the flow has no node 'main_menuu'; did you mean 'main_menu'? [unknown-node]",
        "s.yaml:4:56: error: the flow has no node 'welcom'; did you mean 'welcome'? [unknown-node]"]
