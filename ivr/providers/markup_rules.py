"""Checking an XML voice document against a provider's documented verbs:
which elements may hold which, the attributes each takes, and the values
an attribute may have.  Used by the fakes of the TwiML-compatible
providers to refuse what the provider could not play; and the SSML a
speaking element holds, as every XML provider's fake reads it."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

#: Why a value does not fit (None: it fits).
ValueCheck = Callable[[str], "str | None"]


@dataclass(frozen=True)
class MarkupRules:
    """A provider's documented markup.  ``attributes``: element → the
    attributes it takes (an element not listed is unknown); ``children``:
    element → the elements it may hold (absent: none, except text);
    ``values``: (element, attribute) → its check; ``required``: element →
    attributes it must have; ``max_bytes``: the largest document."""

    attributes: dict[str, frozenset[str]]
    children: dict[str, frozenset[str]]
    values: dict[tuple[str, str], ValueCheck] = field(default_factory=dict)
    required: dict[str, tuple[str, ...]] = field(default_factory=dict)
    max_bytes: int = 64 * 1024
    #: Elements whose content is free-form (SSML inside Say) and not checked.
    opaque: frozenset[str] = frozenset({"Say"})


def ssml_inside(element: ET.Element) -> str:
    """The text and SSML elements inside a speaking element (TwiML's
    ``<Say>``, Plivo's ``<Speak>``), as the engine's ``Say`` holds them."""
    return escape(element.text or "") + "".join(
        ET.tostring(child, encoding="unicode") for child in element)


def number_in(low: int, high: int) -> ValueCheck:
    """A whole number from ``low`` to ``high``."""
    def check(value: str) -> str | None:
        if not re.fullmatch(r"[0-9]{1,6}", value) or not low <= int(value) <= high:
            return f"must be a whole number from {low} to {high}"
        return None
    return check


def one_of(*choices: str) -> ValueCheck:
    def check(value: str) -> str | None:
        return None if value in choices else f"must be one of {', '.join(choices)}"
    return check


def keys(value: str) -> str | None:
    """A set of phone keys (0-9, * and #), possibly empty."""
    return None if re.fullmatch(r"[0-9*#]*", value) else "must be keys from 0-9, * and #"


def problems(document: bytes, rules: MarkupRules) -> list[str]:
    """Why a provider following ``rules`` could not play ``document``."""
    if len(document) >= rules.max_bytes:
        return [f"document is {len(document)} bytes; at most {rules.max_bytes - 1}"]
    try:
        root = ET.fromstring(document)
    except ET.ParseError as error:
        return [f"not well-formed XML ({error})"]
    if root.tag != "Response":
        return [f"root element is <{root.tag}>, not <Response>"]
    return _element(root, "Response", rules)


def _element(element: ET.Element, path: str, rules: MarkupRules) -> list[str]:
    found = []
    allowed = rules.attributes.get(element.tag)
    if allowed is None:
        return [f"{path}: <{element.tag}> is not a verb or noun of this provider"]
    for name, value in element.attrib.items():
        if name not in allowed:
            found.append(f"{path}: <{element.tag}> has no attribute {name!r}")
            continue
        check = rules.values.get((element.tag, name))
        why = check(value) if check else None
        if why:
            found.append(f"{path}: <{element.tag} {name}> {why}")
    for name in rules.required.get(element.tag, ()):
        if not element.get(name):
            found.append(f"{path}: <{element.tag}> needs {name!r}")
    if element.tag in rules.opaque:
        return found
    children = rules.children.get(element.tag, frozenset())
    for index, child in enumerate(element, start=1):
        child_path = f"{path}/{child.tag}[{index}]"
        if child.tag not in children:
            found.append(f"{child_path}: <{child.tag}> may not appear inside <{element.tag}>")
        else:
            found += _element(child, child_path, rules)
    return found
