"""The JSON Schemas shipped for editors: built from the declarations the
loaders read, the demo flow and its scenarios validate, broken ones do not."""

import datetime as dt
import json
from importlib import resources
from pathlib import Path

import jsonschema
import pytest
import yaml
from click.testing import CliRunner
from golden_support import load_tool

from ivr.flow import fields
from ivr.flow.json_schema import schema_of
from ivr.flow.kinds import COMMON_FIELDS, KINDS
from ivr.sim.cli import main as sim

ROOT = Path(__file__).parent.parent
DEMO = ROOT / "flows" / "post_sale.yaml"
SCENARIOS = sorted((ROOT / "flows" / "tests").glob("*.yaml"))


def shipped(kind: str) -> dict:
    """The schema as installed with the package."""
    text = resources.files("ivr.flow").joinpath(f"schema/{kind}.schema.json").read_text("utf-8")
    return json.loads(text)


def as_json(value):
    """YAML data as an editor's language server sees it: dates are text."""
    if isinstance(value, dict):
        return {str(as_json(k)): as_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_json(v) for v in value]
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return value


def errors(kind: str, text: str) -> list[str]:
    validator = jsonschema.Draft202012Validator(shipped(kind))
    found = validator.iter_errors(as_json(yaml.safe_load(text)))
    return sorted(f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in found)


def test_the_shipped_schemas_are_what_the_declarations_build():
    tool = load_tool("write_schemas")
    for path, text in tool.rendered().items():
        assert path.read_text(encoding="utf-8") == text, (
            f"{path.name} is out of date: run `python tools/write_schemas.py --write`")


@pytest.mark.parametrize("kind", ["flow", "scenario"])
def test_each_schema_is_a_valid_json_schema(kind):
    jsonschema.Draft202012Validator.check_schema(shipped(kind))


def test_every_node_kind_and_field_is_in_the_flow_schema():
    node = shipped("flow")["$defs"]["node"]
    assert node["properties"]["kind"]["enum"] == list(KINDS)
    for rule, kind in zip(node["allOf"], KINDS.values()):
        assert rule["if"]["properties"]["kind"]["const"] == kind.name
        assert set(rule["then"]["properties"]) == set(COMMON_FIELDS) | set(kind.fields)
        assert rule["then"].get("required", []) == list(kind.required)


def test_a_field_checker_without_a_schema_cannot_be_built():
    def new_checker(b, path, value):
        return value
    with pytest.raises(KeyError, match="no JSON Schema for the field checker new_checker"):
        schema_of(new_checker)
    assert schema_of(fields.one_of("a", "b")) == {"enum": ["a", "b"]}


def test_the_demo_flow_validates():
    assert errors("flow", DEMO.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.name)
def test_every_demo_scenario_file_validates(path):
    assert errors("scenario", path.read_text(encoding="utf-8")) == []


def test_a_broken_flow_does_not_validate():
    text = DEMO.read_text(encoding="utf-8").replace(
        "    kind: say\n    say: welcome\n", "    kind: say\n    promt: welcome\n", 1).replace(
        "    kind: lookup\n", "    kind: lokup\n", 1)
    found = errors("flow", text)
    assert "nodes.welcome: Additional properties are not allowed ('promt' was unexpected)" in found
    assert "nodes.welcome: 'say' is a required property" in found
    assert any(e.startswith("nodes.find_recent.kind: 'lokup' is not one of") for e in found)


def test_a_broken_scenario_file_does_not_validate():
    text = "flow: x.yaml\nscenarios:\n  - sms: lost\n    steps: [silense, {prss: 1}]\n"
    found = errors("scenario", text)
    assert "scenarios.0.sms: 'lost' is not one of ['sent', 'failed']" in found
    assert any(e.startswith("scenarios.0.steps.0: 'silense' is not valid") for e in found)
    assert any(e.startswith("scenarios.0.steps.1: {'prss': 1} is not valid") for e in found)


@pytest.mark.parametrize("kind", ["flow", "scenario"])
def test_ivr_sim_schema_prints_the_shipped_schema(kind):
    result = CliRunner().invoke(sim, ["schema", kind])
    assert result.exit_code == 0
    assert json.loads(result.output) == shipped(kind)
