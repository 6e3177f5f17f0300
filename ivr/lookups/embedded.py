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
from typing import Protocol, runtime_checkable

from ivr.engine.actions import Lookup
from ivr.lookups.delivery import DEFAULT_POLICY, DeliveryPolicy, estimate_delivery
from ivr.lookups.orders import CARRIERS, Order, OrderStore, normalise_number, normalise_phone
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
        order = self.store.find_by_number(number)
        if order is None:
            return result(NOT_FOUND, {"number": number})
        return result(FOUND, {"order": order_dict(order, now, self.policy)})

    def _orders_by_phone(self, args: dict, now: datetime) -> dict:
        phone = normalise_phone(str(args.get("phone") or ""))
        if is_withheld(phone):
            return result(NOT_FOUND, {"orders": [], "count": 0, "reason": "no_caller_id"})
        since = now.date() - timedelta(days=self.recent_days)
        orders = [order_dict(o, now, self.policy) for o in self.store.find_by_phone(phone, since)]
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
    return {
        "number": order.number,
        "status": order.status,
        "carrier": order.carrier,
        "carrier_name": CARRIERS.get(order.carrier, order.carrier) if order.carrier else None,
        "tracking_number": order.tracking_number,
        "tracking_url": order.tracking_url,
        "ordered_on": _iso(order.ordered_on),
        "shipped_on": _iso(order.shipped_on),
        "delivered_on": _iso(order.delivered_on),
        "expected_on": _iso(estimate_delivery(order, now, policy)),
        "items": order.items,
        "total": str(order.total),
        "currency": order.currency,
    }


def _iso(d: date | None) -> str | None:
    return d.isoformat() if d else None
