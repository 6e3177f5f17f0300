"""The JSON Schema of a flow file, built from the one declaration of its fields.

Editors (VS Code's YAML extension, anything using yaml-language-server)
read ``ivr/flow/schema/flow.schema.json`` to complete field names and
underline mistakes as the operator types; ``ivr-sim lint`` stays the
judge (it also checks what a schema cannot: targets, prompts, reasons).

Nothing here is written by hand per node kind: the kinds and their fields
come from :mod:`ivr.flow.kinds`, the fields of the mappings inside a flow
from :mod:`ivr.flow.fields`, and each field checker has one schema in
:func:`field_schemas`.  ``python tools/write_schemas.py --write``
regenerates the file; a test fails when it differs from what this builds.
"""

from __future__ import annotations

from typing import Any

from ivr.flow import fields, speech
from ivr.flow.hours import CALENDAR_FIELDS
from ivr.flow.kinds import COMMON_FIELDS, KINDS

#: Where the schemas are shipped, relative to this package.
SCHEMA_FOLDER = "schema"

_NAME = {"type": "string", "pattern": r"^[A-Za-z_][A-Za-z0-9_]*$"}
_LANGUAGE = {"type": "string", "pattern": r"^[a-z]{2}-[A-Z]{2}$"}
_TEXT = {"type": "string"}


def _ref(name: str) -> dict:
    return {"$ref": f"#/$defs/{name}"}


def field_schemas() -> dict:
    """The schema of each field checker of :mod:`ivr.flow.fields` (one_of
    checkers are handled by :func:`schema_of`)."""
    return {
        fields.text: _TEXT,
        fields.flag: {"type": "boolean"},
        fields.count: {"type": "integer", "minimum": 0},
        fields.positive: {"type": "integer", "minimum": 1},
        fields.name: _NAME,
        fields.target: _ref("node_name"),
        fields.reason: _NAME,
        fields.key: _ref("key"),
        fields.pattern: {"type": "string", "format": "regex"},
        fields.prompts: _ref("prompts"),
        fields.prompt_list: {"type": "array", "items": _ref("prompts"),
                             "description": "One prompt sequence per attempt."},
        fields.retry: _ref("retry"),
        fields.words: _ref("words"),
        fields.labels: _ref("labels"),
        fields.speech_settings: _ref("speech"),
        fields.assignments: {"type": "object", "propertyNames": _NAME},
        fields.choices: {"type": "array", "items": _ref("choice")},
        fields.conditions: {"type": "array", "items": _ref("condition")},
        fields.lookup_args: {"type": "object"},
        fields.sms_text: {"type": "string", "description": "The name of the text's template."},
        fields.sms_to: {"type": "string", "pattern": r"^(\+[1-9][0-9]{6,14}|\{\{.*\}\})$",
                        "description": 'An E.164 number in quotes, or "{{ expression }}".'},
        fields.callback_slot: {"type": "string", "minLength": 1},
        fields.destination: _ref("destination"),
    }


def schema_of(checker) -> Any:
    """The schema of a value checked by ``checker``; None checkers (checked
    by the loader itself) are described by the caller."""
    allowed = getattr(checker, "allowed", None)
    if allowed is not None:
        return {"enum": list(allowed)}
    try:
        return field_schemas()[checker]
    except KeyError:
        raise KeyError(f"no JSON Schema for the field checker {checker.__name__}: add one to "
                       "ivr.flow.json_schema.field_schemas") from None


def mapping(declared: dict, required=(), overrides: dict | None = None) -> dict:
    """The schema of a mapping whose fields are ``declared`` (field ->
    checker), closed to any other field."""
    properties = {}
    for field_name, checker in declared.items():
        if overrides and field_name in overrides:
            properties[field_name] = overrides[field_name]
        else:
            properties[field_name] = schema_of(checker)
    result: dict = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        result["required"] = list(required)
    return result


def _node_kind(kind) -> dict:
    """``if kind is this one, then`` its fields (and only those)."""
    declared = {**COMMON_FIELDS, **kind.fields}
    then = mapping(declared, kind.required, {"kind": {"const": kind.name}})
    return {"if": {"properties": {"kind": {"const": kind.name}}, "required": ["kind"]}, "then": then}


def _definitions() -> dict:
    prompt_item = {"anyOf": [
        {"type": "string", "description": "A prompt's name: prompts/<language>/<name>.j2."},
        {"type": "object", "properties": {"play": _TEXT}, "required": ["play"],
         "additionalProperties": False},
        {"type": "object", "properties": {"pause": {"type": "integer", "minimum": 1}},
         "required": ["pause"], "additionalProperties": False},
    ]}
    return {
        "node_name": {**_NAME, "description": "The name of a node under 'nodes'."},
        "key": {"anyOf": [{"type": "string", "pattern": r"^[0-9*#]$"},
                          {"type": "integer", "minimum": 0, "maximum": 9}]},
        "prompt_item": prompt_item,
        "prompts": {"anyOf": [_ref("prompt_item"), {"type": "array", "items": _ref("prompt_item")}]},
        "words": {"type": "object", "propertyNames": _LANGUAGE,
                  "additionalProperties": {"type": "array", "items": _TEXT}},
        "labels": {"type": "object", "propertyNames": _LANGUAGE, "additionalProperties": _TEXT},
        "retry": mapping(fields.RETRY_POLICY_FIELDS),
        "speech": {"type": "object", "additionalProperties": False, "properties": {
            name: {"type": "number", "minimum": 0, "maximum": 1} for name in speech.Settings.FIELDS}},
        "choice": mapping(fields.CHOICE_FIELDS, fields.CHOICE_REQUIRED),
        "condition": mapping(fields.CONDITION_FIELDS, tuple(fields.CONDITION_FIELDS)),
        "destination": {"oneOf": [
            {"type": "object", "properties": {kind: _TEXT}, "required": [kind],
             "additionalProperties": False} for kind in ("number", "sip", "queue")]},
        "node": {
            "type": "object",
            "properties": {"kind": {"enum": list(KINDS)}},
            "required": ["kind"],
            "allOf": [_node_kind(kind) for kind in KINDS.values()],
        },
        "calendar": {"type": "object", "properties": {name: {} for name in CALENDAR_FIELDS},
                     "required": ["weekly"], "additionalProperties": False},
    }


def _top_level() -> dict:
    """What the loader checks itself at the top of a flow file."""
    return {
        "languages": {"type": "array", "items": _LANGUAGE, "minItems": 1},
        "language": mapping(fields.LANGUAGE_FIELDS, overrides={"by_country": {
            "type": "object", "propertyNames": _LANGUAGE,
            "additionalProperties": {"type": "array", "items": _TEXT}}}),
        "voices": {"type": "object", "propertyNames": _LANGUAGE, "additionalProperties": _TEXT},
        "escape": mapping(fields.ESCAPE_FIELDS, overrides={"keys": {"type": "array",
                                                                     "items": _ref("key")}}),
        "defaults": mapping(fields.DEFAULTS_FIELDS),
        "limits": mapping(fields.LIMITS_FIELDS),
        "reasons": {"type": "object", "propertyNames": _NAME,
                    "additionalProperties": {"anyOf": [_TEXT, _ref("labels")]}},
        "hours": {"type": "object", "additionalProperties": _ref("calendar")},
        "vars": {"type": "object", "propertyNames": _NAME},
        "nodes": {"type": "object", "propertyNames": _NAME, "additionalProperties": _ref("node")},
    }


def flow_schema() -> dict:
    """The JSON Schema (draft 2020-12) of a flow file."""
    top = mapping(fields._FLOW_FIELDS, ("languages", "start", "human", "reasons", "nodes"),
                  _top_level())
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "IVR call flow",
        "description": "A call flow of ivr-engine (docs/flow-language.md). Generated from "
                       "ivr/flow/kinds.py and ivr/flow/fields.py by tools/write_schemas.py.",
        **top,
        "$defs": _definitions(),
    }
