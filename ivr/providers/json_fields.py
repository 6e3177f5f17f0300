"""The fields of a JSON webhook (Vonage, jambonz), checked before anything
reads them: a bounded number of fields, nesting and text, no control
characters, the call id's shape and each named field's own rule.  A problem
is a :class:`ivr.providers.dialect.Refusal` (400) whose reason names the
field and never echoes its value.

A query string parsed as a form (a GET webhook, or the whisper URL's query)
holds lists of values: the last value of each is taken, as for a form.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from ivr.providers.dialect import Refusal
from ivr.providers.form_fields import FORBIDDEN as _FORBIDDEN
from ivr.providers.form_fields import MAX_FIELDS, MAX_NAME
from ivr.providers.form_fields import NAME as _NAME

#: The most items of a list and levels of nesting (fields of an object:
#: MAX_FIELDS, as for a form).
MAX_ITEMS = 50
MAX_DEPTH = 6
#: The longest text a field not named by a rule may hold.
OTHER_TEXT_MAX = 16 * 1024

UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}",
                  re.ASCII)

#: A field's rule: None when the value fits, else why not (without the value).
Rule = Callable[[object], "str | None"]


def text(max_length: int, pattern: re.Pattern | None = None, what: str = "text") -> Rule:
    """A string of at most ``max_length`` characters, matching ``pattern``."""
    def rule(value: object) -> str | None:
        if not isinstance(value, str):
            return "must be a string"
        if len(value) > max_length:
            return f"longer than {max_length} characters"
        if pattern is not None and not pattern.fullmatch(value):
            return f"must be {what}"
        return None
    return rule


def number(at_most: int) -> Rule:
    """A whole number from 0 to ``at_most``, sent as a JSON number or as
    ASCII digits (providers send both)."""
    def rule(value: object) -> str | None:
        if isinstance(value, bool):
            return "must be a whole number"
        if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 12:
            value = int(value)
        if not isinstance(value, int) or not 0 <= value <= at_most:
            return f"must be a whole number from 0 to {at_most}"
        return None
    return rule


def choice(values: frozenset[str], what: str) -> Rule:
    """One of ``values``."""
    def rule(value: object) -> str | None:
        return None if value in values else f"must be {what}"
    return rule


def uuid_rule(prefix: str = "") -> Rule:
    """``prefix`` then a UUID (8-4-4-4-12 hexadecimal digits)."""
    pattern = re.compile(re.escape(prefix) + UUID.pattern, re.ASCII)
    return text(len(prefix) + 36, pattern, f"{prefix}and a UUID" if prefix else "a UUID")


def last_values(fields: Mapping) -> dict:
    """A form's fields (lists of values) as one value each; a JSON object as is."""
    return {name: (value[-1] if isinstance(value, list) and value and all(
        isinstance(v, str) for v in value) else value) for name, value in fields.items()}


def check_json(fields: Mapping, rules: Mapping[str, Rule], required: tuple[str, ...] = ()) -> dict:
    """``fields`` checked against ``rules`` (top-level names); raises
    :class:`Refusal` (400).  Returns the fields, one value each."""
    params = last_values(fields)
    if len(params) > MAX_FIELDS:
        raise Refusal(400, f"more than {MAX_FIELDS} fields")
    for name in required:
        value = params.get(name)
        if value is None or value == "":
            raise Refusal(400, f"missing {name}")
    for name, value in params.items():
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise Refusal(400, "a field name is not a short ASCII word")
        _check_value(name, value, 0)
        rule = rules.get(name)
        why = rule(value) if rule is not None and value is not None else None
        if why:
            raise Refusal(400, f"{name} {why}")
    return params


def _check_value(name: str, value: object, depth: int) -> None:
    """Bounded nesting, sizes and text without control characters."""
    if depth > MAX_DEPTH:
        raise Refusal(400, f"{name} is nested too deep")
    if isinstance(value, str):
        if len(value) > OTHER_TEXT_MAX:
            raise Refusal(400, f"{name} longer than {OTHER_TEXT_MAX} characters")
        if _FORBIDDEN.search(value):
            raise Refusal(400, f"{name} holds a control character")
    elif isinstance(value, dict):
        if len(value) > MAX_FIELDS:
            raise Refusal(400, f"{name} has more than {MAX_FIELDS} fields")
        for key, item in value.items():
            if _FORBIDDEN.search(key) or len(key) > MAX_NAME * 2:
                raise Refusal(400, f"{name} has a field name that is not short text")
            _check_value(name, item, depth + 1)
    elif isinstance(value, list):
        if len(value) > MAX_ITEMS:
            raise Refusal(400, f"{name} has more than {MAX_ITEMS} items")
        for item in value:
            _check_value(name, item, depth + 1)


def e164(number: str) -> str:
    """A number as the engine takes it: ``+`` and digits.  Vonage sends
    international numbers without the ``+`` (``447700900000``)."""
    if number and number.isascii() and number.isdigit():
        return "+" + number
    return number
