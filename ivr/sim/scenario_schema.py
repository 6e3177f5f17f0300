"""The JSON Schema of a scenario file, built from what the scenario checker declares.

Shipped as ``ivr/flow/schema/scenario.schema.json`` beside the flow's
(see :mod:`ivr.flow.json_schema`), for editors; ``ivr-sim test`` stays the
judge.  Its fields, steps, inputs and expectations come from
:mod:`ivr.sim.scenarios_check`, so the two cannot drift:
``python tools/write_schemas.py --write`` regenerates the file and a test
fails when it differs.
"""

from __future__ import annotations

from ivr.sim import scenarios_check as declared

#: How a Python type of an input's value is said in JSON Schema.
_JSON_TYPES = {str: "string", int: "integer", float: "number", bool: "boolean"}
_ONE_OR_MORE = {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}


def _json_type(kinds) -> list[str]:
    kinds = kinds if isinstance(kinds, tuple) else (kinds,)
    return [_JSON_TYPES[kind] for kind in kinds]


def _step() -> dict:
    inputs: dict = {name: {} for name in declared.INPUTS}
    for name, (kinds, wanted) in declared._INPUT_VALUES.items():
        inputs[name] = {"type": _json_type(kinds), "description": f"The input's value: {wanted}."}
    inputs["silence"] = inputs["hangup"] = {"type": ["boolean", "null"]}
    expect = {"type": "object", "additionalProperties": False, "properties": {
        name: {"type": "string"} if name == "node" else _ONE_OR_MORE
        for name in declared.EXPECTATIONS}}
    return {"anyOf": [
        {"enum": list(declared.INPUTS)},
        {"type": "object", "minProperties": 1, "additionalProperties": False,
         "properties": {**inputs, "expect": expect}},
    ]}


def _scenario() -> dict:
    properties: dict = {name: {} for name in declared.SCENARIO_FIELDS}
    properties.update(
        name={"type": "string"},
        caller={"type": ["string", "integer"]},
        at={"type": "string", "description": 'A local time, e.g. "2026-12-24 18:30".'},
        lang={"type": "string"},
        lookups={"type": "object"},
        sms={"enum": list(declared.SMS_RESULTS)},
        steps={"type": "array", "items": {"$ref": "#/$defs/step"}},
        end={"type": "object", "additionalProperties": False,
             "properties": {name: {} for name in declared.END_FIELDS}},
    )
    return {"type": "object", "properties": properties, "additionalProperties": False}


def scenario_schema() -> dict:
    """The JSON Schema (draft 2020-12) of a scenario file."""
    top = {"flow": {"type": "string", "description": "The flow file, relative to this file."},
           "defaults": {"$ref": "#/$defs/scenario"},
           "scenarios": {"type": "array", "items": {"$ref": "#/$defs/scenario"}}}
    assert set(top) == set(declared.FILE_FIELDS)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "ivr-sim scenario file",
        "description": "Scripted calls with expectations (docs/ivr-sim.md). Generated from "
                       "ivr/sim/scenarios_check.py by tools/write_schemas.py.",
        "type": "object",
        "properties": top,
        "required": ["flow", "scenarios"],
        "additionalProperties": False,
        "$defs": {"scenario": _scenario(), "step": _step()},
    }
