"""From a shop's order JSON to our :class:`ivr.lookups.orders.Order`.

Every shop names things its own way (Shopify's ``fulfillments`` list,
WooCommerce's ``meta_data``, PrestaShop's numeric ``current_state``), so
the shop back-end is configured with a *mapping*: for each of our order
fields, where to find it in the shop's JSON and how to read it.  This
module holds that mapping once parsed, and applies it.  Parsing the YAML
and reporting its mistakes is :mod:`ivr.lookups.shops.config`'s job.

A **path** is a dotted list of steps (see :func:`parse_path`)::

    fulfillments.-1.tracking_number          last fulfillment's number
    line_items.*.quantity                    every line's quantity (a list)
    meta_data[key=_wc_shipment_tracking_items].value.0.tracking_number

Applying a mapping never raises anything but :class:`MappingError`, whose
message is the cause the caller's node event carries ("missing field
ordered_on (created_at)", "unknown status 'on-hold' (status)").
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any

from ivr.i18n import _
from ivr.lookups.orders import Order, to_money

#: Our order fields a mapping may fill.
FIELDS = ("number", "phone", "status", "carrier", "tracking_number", "tracking_url",
          "ordered_on", "shipped_on", "delivered_on", "items", "total", "currency")
#: Fields an order cannot be read out without.
REQUIRED = ("number", "status", "ordered_on", "total")
DATE_FIELDS = ("ordered_on", "shipped_on", "delivered_on")
#: What a field holds when the shop's JSON does not say.
DEFAULTS = {"items": 1, "currency": "EUR"}
#: How an unmapped value is treated: kept as it is, dropped (as if absent)
#: or an error (the look-up takes the flow's error branch).
UNMAPPED = ("keep", "drop", "error")

# A step is a key, an index, "*" (every element) or a key with a selector.
_SELECTOR = re.compile(r"^(?P<key>[^\[\]]*)\[(?P<field>[^=\[\]]+)=(?P<value>[^\[\]]*)\]$")
_INDEX = re.compile(r"^-?[0-9]+$")
# Dates some back offices write for "never" (PrestaShop's delivery_date).
_ZERO_DATE = re.compile(r"^0000-00-00")

#: Marks a path that does not lead anywhere in this JSON.
MISSING = object()


class MappingError(Exception):
    """The shop's answer cannot be read as an order; the message says why."""


class PathError(ValueError):
    """A path is not well formed."""


@dataclass(frozen=True)
class Select:
    """The first element of a list whose ``field`` is ``value``."""

    field: str
    value: str


@dataclass(frozen=True)
class Path:
    text: str
    steps: tuple

    def __str__(self) -> str:
        return self.text


def parse_path(text: str) -> Path:
    """Parse a dotted path: keys, list indexes (``0``, ``-1`` for the
    last), ``*`` for every element of a list (at most once), and
    ``name[field=value]`` for the first element of the list ``name`` whose
    ``field`` equals ``value``.  Raises :class:`PathError`."""
    if not isinstance(text, str) or not text.strip():
        raise PathError(_("a path must be non-empty text such as 'fulfillments.0.tracking_number'"))
    steps: list = []
    for part in text.split("."):
        if part == "":
            raise PathError(_("empty step in path {path!r} (two dots in a row, or a dot at an end)").format(
                path=text))
        selector = _SELECTOR.match(part)
        if selector:
            if selector["key"]:
                steps.append(selector["key"])
            steps.append(Select(selector["field"], selector["value"]))
        elif "[" in part or "]" in part:
            raise PathError(_("bad selector {part!r} in path {path!r}; expected name[field=value]").format(
                part=part, path=text))
        elif _INDEX.match(part):
            steps.append(int(part))
        else:
            steps.append(part)
    if steps.count("*") > 1:
        raise PathError(_("path {path!r} has more than one '*'").format(path=text))
    return Path(text, tuple(steps))


def resolve(data: Any, path: Path) -> Any:
    """The value at ``path`` in ``data``, or :data:`MISSING`.  After a ``*``
    the result is the list of values found in each element."""
    return _resolve(data, path.steps)


def _resolve(value: Any, steps: tuple) -> Any:
    for i, step in enumerate(steps):
        if step == "*":
            if not isinstance(value, list):
                return MISSING
            found = (_resolve(item, steps[i + 1:]) for item in value)
            return [v for v in found if v is not MISSING]
        if isinstance(step, Select):
            if not isinstance(value, list):
                return MISSING
            value = next((item for item in value if isinstance(item, dict)
                          and _text(item.get(step.field)) == step.value), MISSING)
        elif isinstance(step, int):
            if not isinstance(value, list) or not -len(value) <= step < len(value):
                return MISSING
            value = value[step]
        else:
            # PHP back ends (PrestaShop) serialise an empty object as [].
            if not isinstance(value, dict) or step not in value:
                return MISSING
            value = value[step]
        if value is MISSING:
            return MISSING
    return value


def present(value: Any) -> bool:
    """Whether a value says something: not missing, null, empty text or an empty list."""
    return value is not MISSING and value is not None and value != "" and value != []


def _text(value: Any) -> str:
    # JSON numbers and YAML keys meet as text: PrestaShop sends "4", YAML reads 4.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def map_key(value: Any) -> str:
    """How a value is looked up in a ``map``: as text, case-insensitively."""
    return _text(value).casefold()


@dataclass(frozen=True)
class FieldSpec:
    """Where one of our fields comes from.

    ``paths`` are tried in turn, the first present value wins.  ``map``
    translates values (keys compared as text, case-insensitively);
    ``unmapped`` says what a value missing from the map does.  ``sum``
    adds up a list (``line_items.*.quantity``).  ``date`` is ``iso``,
    ``timestamp`` (Unix seconds) or a ``strptime`` format.  ``default`` is
    used when no path has a value.
    """

    name: str
    paths: tuple = ()
    map: dict | None = None
    unmapped: str = "keep"
    sum: bool = False
    date: str = "iso"
    default: Any = None

    def value(self, order: dict) -> Any:
        """The raw value found for this field (after ``map``), or None."""
        for path in self.paths:
            value = resolve(order, path)
            if self.sum and isinstance(value, list):
                value = _sum(value, path, self.name) if value else MISSING
            if not present(value):
                continue
            if self.map is not None:
                mapped = self.map.get(map_key(value), MISSING)
                if mapped is MISSING:
                    if self.unmapped == "error":
                        raise MappingError(f"unknown {self.name} {_text(value)!r} ({path})")
                    if self.unmapped == "drop":
                        continue
                    mapped = value
                value = mapped
            return value
        return self.default

    def describe(self) -> str:
        return ", ".join(str(p) for p in self.paths) or "no path"


def _sum(values: list, path: Path, name: str) -> int:
    total = 0
    for value in values:
        try:
            total += int(Decimal(_text(value)))
        except (ArithmeticError, ValueError):
            raise MappingError(f"{name}: {_text(value)!r} at {path} is not a number") from None
    return total


@dataclass(frozen=True)
class StatusRule:
    """One way of reading the order's status; rules are tried in order.

    With ``if_present`` the rule gives that status whenever the path has
    a value (Shopify's ``cancelled_at``).  Otherwise the value goes
    through ``map``: a null value only matches a ``null`` key, a value
    mapped to null falls through to the next rule, and an unmapped value
    is an error unless ``unmapped`` is ``next``.
    """

    path: Path
    map: dict = field(default_factory=dict)
    if_present: str | None = None
    unmapped: str = "error"

    def status(self, order: dict) -> str | None:
        """Our status, or None to try the next rule."""
        value = resolve(order, self.path)
        if value is MISSING:
            return None
        if self.if_present is not None:
            return self.if_present if present(value) else None
        if value is None:
            return self.map.get(None)
        key = map_key(value)
        if key in self.map:
            return self.map[key]
        if self.unmapped == "next":
            return None
        known = ", ".join(sorted(repr(k) for k in self.map if k is not None))
        raise MappingError(f"unknown status {_text(value)!r} ({self.path}); expected one of {known}")


@dataclass(frozen=True)
class Mapping:
    """The whole mapping: a spec per field and the status rules."""

    fields: dict
    status: tuple

    def number(self, order: dict) -> str | None:
        """The order number alone, to pick the right order out of a list
        before reading the rest."""
        if not isinstance(order, dict):
            raise MappingError(f"expected an order object, found {_kind(order)}")
        value = self.fields["number"].value(order)
        return None if value is None else _text(value).strip()

    def phones(self, order: dict) -> list[str]:
        """Every phone number the order carries (all the ``phone`` paths)."""
        spec = self.fields.get("phone")
        if spec is None:
            return []
        values = (resolve(order, path) for path in spec.paths)
        return [_text(v) for v in values if present(v) and not isinstance(v, (list, dict))]

    def order(self, data: dict, now: datetime) -> Order:
        """Read ``data`` as an :class:`Order`; dates with a UTC offset are
        taken in ``now``'s timezone.  Raises :class:`MappingError`."""
        number = self.number(data)
        values: dict = {}
        for name in FIELDS:
            if name == "status":
                continue
            spec = self.fields.get(name)
            value = spec.value(data) if spec else DEFAULTS.get(name)
            if value is None and name in DEFAULTS:
                value = DEFAULTS[name]
            if value is None and name in REQUIRED:
                where = spec.describe() if spec else "not mapped"
                raise MappingError(f"missing field {name} ({where})")
            values[name] = _convert(name, value, spec, now)
        values["status"] = self._status(data)
        values["number"] = number
        try:
            return Order(**values)
        except (TypeError, ValueError) as error:
            raise MappingError(f"order {number}: {error}") from None

    def _status(self, data: dict) -> str:
        for rule in self.status:
            status = rule.status(data)
            if status is not None:
                return status
        paths = ", ".join(str(r.path) for r in self.status)
        raise MappingError(f"missing field status ({paths})")


def _convert(name: str, value: Any, spec: FieldSpec | None, now: datetime) -> Any:
    if name in DATE_FIELDS:
        return None if value is None else parse_date(value, spec.date if spec else "iso", now, name)
    if value is None:
        return None
    if isinstance(value, (list, dict)):
        raise MappingError(f"{name}: expected a single value, found {_kind(value)}")
    if name == "items":
        try:
            return int(Decimal(_text(value)))
        except (ArithmeticError, ValueError):
            raise MappingError(f"items: {_text(value)!r} is not a number") from None
    if name == "total":
        try:
            return to_money(_text(value))
        except ValueError:
            raise MappingError(f"total: {_text(value)!r} is not an amount") from None
    return _text(value)


def parse_date(value: Any, fmt: str, now: datetime, name: str = "date") -> date | None:
    """A date from the shop's text.  ``iso`` takes a date or a date-time
    (an offset, or ``Z``, converts it to ``now``'s timezone first),
    ``timestamp`` Unix seconds, anything else is a ``strptime`` format.
    All-zero dates (``0000-00-00 00:00:00``) mean "none"."""
    text = _text(value).strip()
    if _ZERO_DATE.match(text):
        return None
    try:
        if fmt == "timestamp":
            moment = datetime.fromtimestamp(float(text), timezone.utc)
        elif fmt == "iso":
            moment = datetime.fromisoformat(text.replace("Z", "+00:00")) if "T" in text or " " in text \
                else datetime.combine(date.fromisoformat(text), datetime.min.time())
        else:
            moment = datetime.strptime(text, fmt)
    except (ValueError, OverflowError, OSError):
        raise MappingError(f"{name}: {text!r} is not a date ({fmt})") from None
    if moment.tzinfo is not None and now.tzinfo is not None:
        moment = moment.astimezone(now.tzinfo)
    return moment.date()


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "text", type(None): "null"}.get(type(value), "a number")
