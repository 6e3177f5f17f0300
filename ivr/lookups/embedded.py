"""Performing the engine's ``Lookup`` requests against an order source.

The engine never touches a database: it emits ``ivr.engine.actions.Lookup`` and a
runner calls ``perform()`` on an ``OrderLookups``, then feeds the returned
dict back as a ``lookup_result`` event.  The dict is plain JSON so it can
be logged, replayed in tests and, later, come from an HTTP back-end::

    {"status": "found" | "many" | "not_found" | "error",
     "data": {...},
     "error": None | "what went wrong"}

``perform`` never raises: a broken store must not drop the call, so the
flow gets ``status: "error"`` and can offer an agent instead.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from typing import NamedTuple, Protocol, runtime_checkable

from ivr.engine.actions import Lookup
from ivr.lookups.delivery import DEFAULT_POLICY, DeliveryPolicy, estimate_delivery
from ivr.lookups.orders import (
    CARRIERS,
    Order,
    OrderStore,
    check_number_and_status,
    normalise_number,
    normalise_phone,
    stored_date,
    stored_row,
    to_money,
)
from ivr.phone import is_withheld

log = logging.getLogger(__name__)

FOUND = "found"
MANY = "many"
NOT_FOUND = "not_found"
ERROR = "error"

@runtime_checkable
class OrderLookups(Protocol):
    """Anything that can answer the engine's order look-ups."""

    def perform(self, lookup: Lookup, now: datetime) -> dict:
        """Answer ``lookup`` as of ``now``; never raise."""
        ...


class EmbeddedOrderLookups:
    """``OrderLookups`` backed by the embedded SQLite ``OrderStore``.

    ``recent_days`` bounds "your recent orders" for callers identified by
    their phone number: older orders are not read out.
    """

    def __init__(self, store: OrderStore, policy: DeliveryPolicy = DEFAULT_POLICY, recent_days: int = 60):
        if recent_days < 0:
            raise ValueError(f"recent_days must be >= 0, got {recent_days}")
        self.store = store
        self.policy = policy
        self.recent_days = recent_days
        self._handlers = {
            "order_by_number": self._order_by_number,
            "orders_by_phone": self._orders_by_phone,
        }

    def perform(self, lookup: Lookup, now: datetime) -> dict:
        """Answer ``lookup`` (see the module docstring for the shape)."""
        handler = self._handlers.get(lookup.what)
        if handler is None:
            return error(f"unknown lookup {lookup.what!r}; expected one of {sorted(self._handlers)}")
        if not isinstance(lookup.args, dict):
            return error(f"{lookup.what} args must be a mapping, got {type(lookup.args).__name__}")
        try:
            return handler(lookup.args, now)
        except Exception as e:  # noqa: BLE001 — see module docstring
            log.exception("lookup %s (%s) failed", lookup.what, lookup.request_id)
            return error(f"{lookup.what} failed: {type(e).__name__}: {e}")

    def _order_by_number(self, args: dict, now: datetime) -> dict:
        if args.get("number") is None:
            return error("order_by_number needs args['number']")
        number = normalise_number(args["number"])
        if not number.isdigit():
            # Speech recognition can hand over words; that is "not found"
            # for the caller, not a fault in the flow.
            return result(NOT_FOUND, {"number": number, "reason": "invalid_number"})
        row = self.store.row_by_number(number)
        if row is None:
            return result(NOT_FOUND, {"number": number})
        return result(FOUND, {"order": row_dict(row, now, self.policy)})

    def _orders_by_phone(self, args: dict, now: datetime) -> dict:
        phone = normalise_phone(str(args.get("phone") or ""))
        if is_withheld(phone):
            return result(NOT_FOUND, {"orders": [], "count": 0, "reason": "no_caller_id"})
        since = now.date() - timedelta(days=self.recent_days)
        orders = [row_dict(row, now, self.policy) for row in self.store.rows_by_phone(phone, since)]
        if not orders:
            return result(NOT_FOUND, {"orders": [], "count": 0})
        if len(orders) == 1:
            return result(FOUND, {"order": orders[0], "orders": orders, "count": 1})
        return result(MANY, {"orders": orders, "count": len(orders)})


def result(status: str, data: dict | None = None) -> dict:
    """A successful look-up answer."""
    return {"status": status, "data": data or {}, "error": None}


def error(message: str) -> dict:
    """A failed look-up answer; the flow decides what the caller hears."""
    return {"status": ERROR, "data": {}, "error": message}


def order_dict(order: Order, now: datetime, policy: DeliveryPolicy = DEFAULT_POLICY) -> dict:
    """``order`` as JSON-friendly values for prompts, with its expected
    delivery date as of ``now``."""
    return row_dict(stored_row(order), now, policy)


def row_dict(row: tuple, now: datetime, policy: DeliveryPolicy = DEFAULT_POLICY) -> dict:
    """:func:`order_dict` of the order stored as ``row``
    (``ivr.lookups.orders.ROW_COLUMNS``), without building the ``Order``.
    Raises ``ValueError`` for a row an ``Order`` would refuse."""
    (number, _phone, status, carrier, tracking_number, tracking_url,
     ordered_on, shipped_on, delivered_on, items, total, currency) = row
    check_number_and_status(number, status)
    parcel = _Parcel(status, carrier, date.fromisoformat(ordered_on),
                     stored_date(shipped_on), stored_date(delivered_on))
    expected_on = estimate_delivery(parcel, now, policy)
    return {
        "number": number,
        "status": status,
        "carrier": carrier,
        "carrier_name": CARRIERS.get(carrier, carrier) if carrier else None,
        "tracking_number": tracking_number,
        "tracking_url": tracking_url,
        "ordered_on": parcel.ordered_on.isoformat(),
        "shipped_on": parcel.shipped_on and parcel.shipped_on.isoformat(),
        "delivered_on": parcel.delivered_on and parcel.delivered_on.isoformat(),
        "expected_on": expected_on and expected_on.isoformat(),
        "items": items,
        "total": str(to_money(total)),
        "currency": currency,
    }


class _Parcel(NamedTuple):
    """The values of a stored row that an estimate reads."""

    status: str
    carrier: str | None
    ordered_on: date
    shipped_on: date | None
    delivered_on: date | None
