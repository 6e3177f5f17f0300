"""When will it arrive?  Delivery dates counted in business days.

A business day is Monday to Friday and not a public holiday of the
policy's country (and subdivision: Alsace-Moselle has Good Friday and
26 December).  Holidays come from the ``holidays`` package.

Everything here is pure: "now" is a parameter, never read from the clock,
so a call replayed in a test gets the answer it got live.  ``now`` should be
local time where the parcels travel; its date is "today".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import lru_cache
from types import MappingProxyType
from typing import Any, Mapping, Protocol

import holidays

DEFAULT_COUNTRY = "FR"
DEFAULT_CARRIER = "colissimo"
DEFAULT_TRANSIT_DAYS = {"colissimo": 2, "chronopost": 1, "dpd": 2, "ups": 2, "mondial_relay": 4}
DEFAULT_PREPARATION_DAYS = 1
DEFAULT_DELAY_DAYS = {"delayed_carrier": 2, "delayed_warehouse": 3}
DEFAULT_CUTOFF_HOUR = 14

_ONE_DAY = timedelta(days=1)


# --- Business days ------------------------------------------------------------


@lru_cache(maxsize=64)
def _holidays(country: str, subdiv: str | None, year: int) -> frozenset[date]:
    # A frozenset per year, rather than one lazily-expanding holidays
    # object, so concurrent readers never see it change under them.
    return frozenset(holidays.country_holidays(country, subdiv=subdiv, years=year))


def is_business_day(d: date, country: str = DEFAULT_COUNTRY, subdiv: str | None = None) -> bool:
    """Monday to Friday, and not a public holiday in ``country``/``subdiv``."""
    return d.weekday() < 5 and d not in _holidays(country, subdiv, d.year)


def next_business_day(d: date, country: str = DEFAULT_COUNTRY, subdiv: str | None = None) -> date:
    """The first business day strictly after ``d``."""
    d += _ONE_DAY
    while not is_business_day(d, country, subdiv):
        d += _ONE_DAY
    return d


def add_business_days(
    start: date, n: int, country: str = DEFAULT_COUNTRY, subdiv: str | None = None
) -> date:
    """The ``n``-th business day after ``start`` (``start`` itself never counts).

    With ``n == 0``: ``start`` if it is a business day, else the next one.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if n == 0:
        return start if is_business_day(start, country, subdiv) else next_business_day(start, country, subdiv)
    d = start
    for _ in range(n):
        d = next_business_day(d, country, subdiv)
    return d


# --- Policy -------------------------------------------------------------------


@dataclass(frozen=True)
class DeliveryPolicy:
    """How long things take.  Build it from configuration with
    ``from_mapping``; carriers missing from ``transit_days`` use
    ``default_carrier``'s transit time."""

    country: str = DEFAULT_COUNTRY
    subdiv: str | None = None
    transit_days: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_TRANSIT_DAYS))
    preparation_days: int = DEFAULT_PREPARATION_DAYS
    delay_days: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_DELAY_DAYS))
    cutoff_hour: int = DEFAULT_CUTOFF_HOUR
    default_carrier: str = DEFAULT_CARRIER

    def __post_init__(self) -> None:
        for carrier, days in self.transit_days.items():
            _check_days(f"transit_days.{carrier}", days)
        _check_days("preparation_days", self.preparation_days)
        for status, days in self.delay_days.items():
            _check_days(f"delay_days.{status}", days)
        missing = set(DEFAULT_DELAY_DAYS) - set(self.delay_days)
        if missing:
            raise ValueError(f"delay_days is missing {sorted(missing)}")
        if not (_is_int(self.cutoff_hour) and 0 <= self.cutoff_hour <= 24):
            raise ValueError(f"cutoff_hour must be an integer from 0 to 24, got {self.cutoff_hour!r}")
        _check_region(self.country, self.subdiv)
        if self.default_carrier not in self.transit_days:
            raise ValueError(f"default_carrier {self.default_carrier!r} has no entry in transit_days")
        # Read-only views: a policy is shared by every call in the process.
        object.__setattr__(self, "transit_days", MappingProxyType(dict(self.transit_days)))
        object.__setattr__(self, "delay_days", MappingProxyType(dict(self.delay_days)))

    @classmethod
    def from_mapping(cls, config: Mapping[str, Any]) -> DeliveryPolicy:
        """A policy from parsed YAML/JSON.

        Every key is optional.  ``transit_days`` and ``delay_days`` are
        merged over the defaults, so ``{"transit_days": {"dpd": 3}}`` only
        changes DPD; new carrier codes are welcome.  Day counts must be
        non-negative integers.  Raises ``ValueError`` on anything else.
        """
        unknown = set(config) - _POLICY_KEYS
        if unknown:
            raise ValueError(f"unknown delivery policy keys {sorted(unknown)}; expected some of {sorted(_POLICY_KEYS)}")
        values = dict(config)
        values["transit_days"] = {**DEFAULT_TRANSIT_DAYS, **_mapping(config, "transit_days")}
        delay_days = _mapping(config, "delay_days")
        unknown = set(delay_days) - set(DEFAULT_DELAY_DAYS)
        if unknown:
            raise ValueError(f"unknown delay_days keys {sorted(unknown)}; "
                             f"expected some of {sorted(DEFAULT_DELAY_DAYS)}")
        values["delay_days"] = {**DEFAULT_DELAY_DAYS, **delay_days}
        return cls(**values)

    def transit(self, carrier: str | None) -> int:
        """Transit business days for ``carrier``; unknown or missing carriers
        take the default carrier's time."""
        return self.transit_days.get(carrier or self.default_carrier, self.transit_days[self.default_carrier])


_POLICY_KEYS = {
    "country",
    "subdiv",
    "transit_days",
    "preparation_days",
    "delay_days",
    "cutoff_hour",
    "default_carrier",
}


def _is_int(value: object) -> bool:
    # YAML's "yes" is a bool, and bool is an int: refuse it explicitly.
    return isinstance(value, int) and not isinstance(value, bool)


def _check_days(name: str, value: object) -> None:
    if not _is_int(value) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer number of business days, got {value!r}")


def _check_region(country: str, subdiv: str | None) -> None:
    # Fail when the configuration is loaded, not on the first call.
    try:
        holidays.country_holidays(country, subdiv=subdiv)
    except NotImplementedError as e:
        raise ValueError(f"no public holidays known for country={country!r} subdiv={subdiv!r}: {e}") from None


def _mapping(config: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = config.get(key) or {}
    if not isinstance(value, Mapping):
        raise ValueError(f"{key} must be a mapping of name to days, got {value!r}")
    return value


DEFAULT_POLICY = DeliveryPolicy()


# --- Estimation -----------------------------------------------------------------


class Parcel(Protocol):
    """What an estimate reads of an order: an ``ivr.lookups.orders.Order``,
    or the same values read straight from a stored row."""

    @property
    def status(self) -> str: ...
    @property
    def carrier(self) -> str | None: ...
    @property
    def ordered_on(self) -> date: ...
    @property
    def shipped_on(self) -> date | None: ...
    @property
    def delivered_on(self) -> date | None: ...


def estimate_delivery(order: Parcel, now: datetime, policy: DeliveryPolicy = DEFAULT_POLICY) -> date | None:
    """The date to tell the caller, or ``None`` when there is none to give
    (lost, cancelled, returned).  Never a date before ``now``'s date for a
    parcel still on its way."""
    estimator = _ESTIMATORS[order.status]
    return estimator(order, now, policy)


def _preparing(order: Parcel, now: datetime, policy: DeliveryPolicy) -> date:
    ships_on = _ship_date(order.ordered_on, now, policy)
    return _add(ships_on, policy.transit(order.carrier), policy)


def _ship_date(ordered_on: date, now: datetime, policy: DeliveryPolicy) -> date:
    today = now.date()
    # Only today's orders can be placed against the clock; an older order is
    # assumed to have made that day's cutoff, as long as it was a business day.
    made_cutoff = is_business_day(ordered_on, policy.country, policy.subdiv) and (
        ordered_on < today or now.hour < policy.cutoff_hour
    )
    counted_from = ordered_on if made_cutoff else _next(ordered_on, policy)
    planned = _add(counted_from, policy.preparation_days, policy)
    # A late preparation ships at the earliest today (before cutoff) — never
    # on a day that has already gone by.
    return max(planned, _earliest_ship_date(now, policy))


def _earliest_ship_date(now: datetime, policy: DeliveryPolicy) -> date:
    today = now.date()
    if is_business_day(today, policy.country, policy.subdiv) and now.hour < policy.cutoff_hour:
        return today
    return _next(today, policy)


def _in_transit(order: Parcel, now: datetime, policy: DeliveryPolicy) -> date:
    return _not_past(_transit_eta(order, now, policy), now, policy)


def _transit_eta(order: Parcel, now: datetime, policy: DeliveryPolicy) -> date:
    # A shipped order without a ship date is a data glitch: count from today
    # rather than guess an earlier day.
    shipped_on = order.shipped_on or now.date()
    return _add(shipped_on, policy.transit(order.carrier), policy)


def _not_past(d: date, now: datetime, policy: DeliveryPolicy) -> date:
    today = now.date()
    return d if d >= today else _next(today, policy)


def _out_for_delivery(order: Parcel, now: datetime, policy: DeliveryPolicy) -> date:
    return now.date()


def _delayed_carrier(order: Parcel, now: datetime, policy: DeliveryPolicy) -> date:
    late = _add(_transit_eta(order, now, policy), policy.delay_days["delayed_carrier"], policy)
    return max(late, _next(now.date(), policy))


def _delayed_warehouse(order: Parcel, now: datetime, policy: DeliveryPolicy) -> date:
    days = policy.delay_days["delayed_warehouse"] + policy.transit(order.carrier)
    return _add(now.date(), days, policy)


def _delivered(order: Parcel, now: datetime, policy: DeliveryPolicy) -> date | None:
    return order.delivered_on


def _no_date(order: Parcel, now: datetime, policy: DeliveryPolicy) -> None:
    return None


def _add(d: date, n: int, policy: DeliveryPolicy) -> date:
    return add_business_days(d, n, policy.country, policy.subdiv)


def _next(d: date, policy: DeliveryPolicy) -> date:
    return next_business_day(d, policy.country, policy.subdiv)


_ESTIMATORS = {
    "preparing": _preparing,
    "shipped": _in_transit,
    "in_transit": _in_transit,
    "out_for_delivery": _out_for_delivery,
    "delivered": _delivered,
    "delayed_carrier": _delayed_carrier,
    "delayed_warehouse": _delayed_warehouse,
    "lost": _no_date,
    "cancelled": _no_date,
    "returned": _no_date,
}
