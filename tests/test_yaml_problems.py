"""One YAML checker for flows, shop configurations and scenario files: the
same codes for the same mistake, each at the line and column of the value."""

import textwrap
from pathlib import Path

import pytest

from ivr.flow.loader import flow_from_source
from ivr.flow.problems import FlowError, YamlProblems
from ivr.flow.prompts import PromptLibrary
from ivr.lookups.shops.config import ShopConfigError, config_from_text
from ivr.sim.scenarios import ScenarioFileError, run_paths
from ivr.sim.scenarios_check import check_scenario_file

ROOT = Path(__file__).parent.parent
FLOW = (ROOT / "flows" / "post_sale.yaml").as_posix()


def scenario_problems(text: str) -> list[str]:
    with pytest.raises(ScenarioFileError) as caught:
        check_scenario_file("t.yaml", textwrap.dedent(text))
    return [str(p) for p in caught.value.problems]


def flow_codes(text: str) -> list[str]:
    with pytest.raises(FlowError) as caught:
        flow_from_source("f.yaml", text, PromptLibrary(ROOT / "prompts"))
    return [p.code for p in caught.value.problems]


def shop_codes(text: str) -> list[str]:
    with pytest.raises(ShopConfigError) as caught:
        config_from_text("s.yaml", text, {})
    return [p.code for p in caught.value.problems]


def test_every_checker_raises_the_one_problem_type():
    assert issubclass(FlowError, YamlProblems) and issubclass(ShopConfigError, YamlProblems)
    assert issubclass(ScenarioFileError, YamlProblems)


@pytest.mark.parametrize("codes", [flow_codes, shop_codes])
def test_the_same_mistake_has_the_same_code_in_flows_and_shop_configs(codes):
    assert codes("a: [1\n") == ["yaml-syntax"]
    assert "duplicate-key" in codes("a: 1\na: 2\n")
    assert "unknown-field" in codes("colour: red\n")
    assert "wrong-type" in codes("- a list\n")


def test_a_scenario_file_reports_each_wrong_value_at_its_line_and_column():
    assert scenario_problems(f"""\
        flow: {FLOW}
        scenarios:
          - name: one
            at: next tuesday
            steps:
              - press: 1
                say: oui
              - press: 2
                expect: {{heard: bonjour, colour: red}}
              - teleport
            end: {{outcome: self_served, mood: happy}}
        """) == [
        "t.yaml:4:9: error: 'next tuesday' is not a date and time: write it as 2026-12-24 18:30 "
        "(year-month-day, 24-hour clock) or in ISO 8601, e.g. 2026-12-24T18:30 [wrong-value]",
        "t.yaml:7:9: error: a step does one thing; found press, say: make one step of each [wrong-value]",
        "t.yaml:9:34: error: unknown field 'colour'; expected one of heard, node, not_heard, path, "
        "twiml [unknown-field]",
        "t.yaml:10:9: error: expected one of press, say, silence, hangup, dial, record, wait, found "
        "'teleport' [wrong-value]",
        "t.yaml:11:33: error: unknown field 'mood'; expected one of cause, confirmed, handoff, outcome, "
        "reason, transfer [unknown-field]",
    ]


def test_a_scenario_file_of_the_wrong_shape_says_where():
    assert scenario_problems("flow: x.yaml\nscenarios: {a: 1}\n") == [
        "t.yaml:2:12: error: expected a list of scenarios, found a mapping {'a': 1} [wrong-type]"]
    assert scenario_problems("- a\n") == [
        "t.yaml:1:1: error: a scenario file must be a mapping with 'flow' and a list of 'scenarios' "
        "[wrong-type]"]
    assert scenario_problems("scenarios: []\nscenarios: []\n") == [
        "t.yaml:1:1: error: missing field 'flow' [missing-field]",
        "t.yaml:2:1: error: 'scenarios' is given twice in this mapping (first at line 1): keep one "
        "of them [duplicate-key]"]
    assert scenario_problems("flow: x.yaml\nscenarios: [\n") == [
        "t.yaml:2:12: error: the list opened with '[' here is never closed: add ']' after its last "
        "item (and a comma between items) [yaml-syntax]"]


def test_ivr_sim_test_stops_on_a_bad_scenario_file_before_any_call(tmp_path):
    scenario = tmp_path / "bad.yaml"
    scenario.write_text(f"flow: {FLOW}\nscenarios:\n  - steps: [{{wait: soon}}]\n")
    with pytest.raises(ScenarioFileError) as caught:
        run_paths([scenario], ROOT / "prompts")
    assert str(caught.value) == (
        f"{scenario}:3:20: error: expected a number of seconds, found text 'soon' [wrong-type]")
    missing = tmp_path / "missing.yaml"
    with pytest.raises(ScenarioFileError, match=r"missing.yaml:1:1: error: cannot read the file: .* \[unreadable\]"):
        run_paths([missing], ROOT / "prompts")


def test_the_demo_scenario_files_pass_the_check():
    for path in sorted((ROOT / "flows" / "tests").glob("*.yaml")):
        assert check_scenario_file(str(path), path.read_text(encoding="utf-8"))["scenarios"]


def test_ivr_sim_test_prints_each_problem_of_a_bad_scenario_file_and_exits_1(tmp_path):
    from click.testing import CliRunner

    from ivr.sim.cli import main

    scenario = tmp_path / "bad.yaml"
    scenario.write_text(f"flow: {FLOW}\nscenarios:\n  - steps: [{{press: 1, say: oui}}]\n"
                        "    end: {mood: 1}\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["test", str(scenario), "--prompts", str(ROOT / "prompts")])
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        f"Error: {scenario}:3:24: error: a step does one thing; found press, say: make one step "
        "of each [wrong-value]",
        f"{scenario}:4:11: error: unknown field 'mood'; expected one of cause, confirmed, handoff, "
        "outcome, reason, transfer [unknown-field]",
    ]


# --- plain sentences and did you mean, as in flows -----------------------------------


def run_problems(tmp_path, text: str) -> list[str]:
    path = tmp_path / "s.yaml"
    path.write_text(textwrap.dedent(text))
    with pytest.raises(ScenarioFileError) as caught:
        run_paths([path], ROOT / "prompts")
    return [str(p).replace(str(path), "s.yaml") for p in caught.value.problems]


def test_a_tab_in_a_scenario_file_is_at_its_line_and_column():
    assert scenario_problems("flow: x.yaml\nscenarios:\n  - steps:\n\t- hangup\n") == [
        "t.yaml:4:1: error: a tab is used for indentation; YAML needs spaces: replace the tab with "
        "two spaces [yaml-syntax]"]


def test_a_colon_in_a_scenario_name_says_to_quote_it():
    assert scenario_problems("flow: x.yaml\nscenarios:\n  - name: status: delivered\n    steps: [hangup]\n") == [
        "t.yaml:3:17: error: the text of 'name' contains ': ', which YAML reads as a new field: put "
        "the whole text in quotes, e.g. name: \"status: delivered\" [yaml-syntax]"]


def test_a_misspelt_step_offers_the_step():
    assert scenario_problems("flow: x.yaml\nscenarios:\n  - steps:\n      - silense\n      - prss: 1\n") == [
        "t.yaml:4:9: error: unknown step 'silense': did you mean 'silence'? (expected one of press, "
        "say, silence, hangup, dial, record, wait) [wrong-value]",
        "t.yaml:5:9: error: unknown field 'prss': did you mean 'press'? (expected one of dial, "
        "expect, hangup, press, record, say, silence, wait) [unknown-field]"]


def test_a_misspelt_expectation_offers_the_expectation():
    assert scenario_problems("flow: x.yaml\nscenarios:\n  - steps:\n      - press: 1\n"
                       "        expect: {heard: bonjour, nod: main_menu}\n") == [
        "t.yaml:5:34: error: unknown field 'nod': did you mean 'node'? (expected one of heard, "
        "node, not_heard, path, twiml) [unknown-field]"]


def test_a_day_first_time_is_read_and_an_ambiguous_one_is_refused():
    assert scenario_problems("flow: x.yaml\nscenarios:\n  - at: 24/12/2026 18:30\n    steps: [hangup]\n"
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
