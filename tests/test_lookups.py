"""The embedded look-up performer, against the demo data set."""

from __future__ import annotations

import json
from datetime import date, datetime

import pytest
import sqlite_utils

from ivr.engine.actions import Lookup
from ivr.lookups.delivery import DeliveryPolicy
from ivr.lookups.demo_orders import (
    DEMO_CALLERS,
    DEMO_ORDERS,
    UNKNOWN_ORDER,
    create_demo_db,
    demo_orders,
)
from ivr.lookups.embedded import EmbeddedOrderLookups, OrderLookups, order_dict
from ivr.lookups.orders import OrderStore

# Wednesday 17 June 2026, an ordinary week: the demo's in-transit order
# (Colissimo, shipped Tue 16) is expected Thu 18.
NOW = datetime(2026, 6, 17, 10, 0)
TODAY = NOW.date()


@pytest.fixture
def store() -> OrderStore:
    return create_demo_db(sqlite_utils.Database(memory=True), TODAY)


@pytest.fixture
def lookups(store) -> EmbeddedOrderLookups:
    return EmbeddedOrderLookups(store)


def by_number(lookups, number) -> dict:
    return lookups.perform(Lookup("r1", "order_by_number", {"number": number}), NOW)


def by_phone(lookups, phone, **args) -> dict:
    return lookups.perform(Lookup("r2", "orders_by_phone", {"phone": phone, **args}), NOW)


def test_embedded_lookups_follow_the_protocol(lookups):
    assert isinstance(lookups, OrderLookups)


# --- order_by_number ---------------------------------------------------------------


def test_order_by_number_found_gives_the_order_with_its_expected_date(lookups):
    answer = by_number(lookups, "100234")
    assert answer["status"] == "found"
    assert answer["error"] is None
    assert answer["data"]["order"] == {
        "number": "100234",
        "status": "in_transit",
        "carrier": "colissimo",
        "carrier_name": "Colissimo",
        "tracking_number": "6A1002340000FR",
        "tracking_url": "https://www.laposte.fr/outils/suivre-vos-envois?code=6A1002340000FR",
        "ordered_on": "2026-06-14",
        "shipped_on": "2026-06-16",
        "delivered_on": None,
        "expected_on": "2026-06-18",
        "items": 2,
        "total": "42.50",
        "currency": "EUR",
    }


def test_order_by_number_accepts_spaces_from_the_caller(lookups):
    assert by_number(lookups, " 100 234 ")["data"]["order"]["number"] == "100234"


def test_order_by_number_unknown_is_not_found(lookups):
    answer = by_number(lookups, UNKNOWN_ORDER)
    assert answer == {"status": "not_found", "data": {"number": UNKNOWN_ORDER}, "error": None}


def test_order_by_number_that_is_not_digits_is_not_found(lookups):
    answer = by_number(lookups, "one two three")
    assert answer["status"] == "not_found"
    assert answer["data"]["reason"] == "invalid_number"


def test_order_by_number_without_a_number_is_an_error(lookups):
    answer = lookups.perform(Lookup("r1", "order_by_number", {}), NOW)
    assert answer["status"] == "error"
    assert "number" in answer["error"]


@pytest.mark.parametrize("status", sorted(DEMO_ORDERS))
def test_every_demo_order_can_be_looked_up_by_number(lookups, status):
    answer = by_number(lookups, DEMO_ORDERS[status])
    assert answer["status"] == "found"
    assert answer["data"]["order"]["status"] == status


def test_every_stored_order_is_told_as_its_order_dict(store, lookups):
    for order in demo_orders(TODAY):
        assert by_number(lookups, order.number)["data"]["order"] == order_dict(order, NOW)


@pytest.mark.parametrize("column, value", [
    ("status", "teleported"), ("shipped_on", "yesterday"), ("total", "a lot"),
])
def test_a_stored_row_an_order_would_refuse_is_an_error_answer(store, lookups, column, value):
    store.db.execute(f"UPDATE orders SET {column} = ? WHERE number = '100234'", [value])
    assert by_number(lookups, "100234")["status"] == "error"
    assert by_phone(lookups, DEMO_CALLERS["one_order"])["status"] == "error"


def test_a_stored_number_that_is_not_digits_is_an_error_answer(store, lookups):
    store.db.execute("UPDATE orders SET number = '10023A' WHERE number = '100234'")
    answer = by_phone(lookups, DEMO_CALLERS["one_order"])
    assert answer["status"] == "error" and "digits" in answer["error"]


# --- orders_by_phone ---------------------------------------------------------------


def test_caller_with_one_recent_order_is_found(lookups):
    answer = by_phone(lookups, DEMO_CALLERS["one_order"])
    assert answer["status"] == "found"
    assert answer["data"]["order"]["number"] == "100234"
    assert answer["data"]["orders"] == [answer["data"]["order"]]
    assert answer["data"]["count"] == 1


def test_caller_phone_is_matched_whatever_the_spacing(lookups):
    answer = by_phone(lookups, "+33 6 12 34 56 78")
    assert answer["data"]["order"]["number"] == "100234"


def test_english_caller_with_one_order_is_found(lookups):
    answer = by_phone(lookups, DEMO_CALLERS["english_one_order"])
    assert answer["status"] == "found"
    assert answer["data"]["order"]["carrier_name"] == "UPS"
    assert answer["data"]["order"]["expected_on"] == TODAY.isoformat()  # out for delivery


def test_caller_with_several_orders_gets_them_newest_first(lookups):
    answer = by_phone(lookups, DEMO_CALLERS["several_orders"])
    assert answer["status"] == "many"
    assert answer["data"]["count"] == 3
    assert [o["number"] for o in answer["data"]["orders"]] == ["100310", "100311", "100312"]


@pytest.mark.parametrize("caller", ["no_order", "english_no_order", "only_old_orders"])
def test_caller_without_recent_orders_is_not_found(lookups, caller):
    answer = by_phone(lookups, DEMO_CALLERS[caller])
    assert answer == {"status": "not_found", "data": {"orders": [], "count": 0}, "error": None}


def test_recent_days_widens_the_window(store):
    lookups = EmbeddedOrderLookups(store, recent_days=200)
    answer = by_phone(lookups, DEMO_CALLERS["only_old_orders"])
    assert answer["status"] == "found"
    assert answer["data"]["order"]["delivered_on"] == "2026-01-22"


@pytest.mark.parametrize("phone", ["", None, "anonymous", "Restricted", "+266696687", "+7378742833"])
def test_withheld_caller_id_is_not_found(lookups, phone):
    answer = by_phone(lookups, phone)
    assert answer["status"] == "not_found"
    assert answer["data"]["reason"] == "no_caller_id"


def test_missing_phone_argument_is_not_found(lookups):
    assert lookups.perform(Lookup("r2", "orders_by_phone"), NOW)["status"] == "not_found"


# --- Errors never escape -------------------------------------------------------------


def test_unknown_lookup_is_an_error(lookups):
    answer = lookups.perform(Lookup("r3", "weather", {}), NOW)
    assert answer["status"] == "error"
    assert "weather" in answer["error"]


def test_args_that_are_not_a_mapping_are_an_error(lookups):
    answer = lookups.perform(Lookup("r3", "order_by_number", ["100234"]), NOW)
    assert answer["status"] == "error"


def test_a_store_without_its_table_is_an_error_not_an_exception():
    lookups = EmbeddedOrderLookups(OrderStore(sqlite_utils.Database(memory=True)))
    answer = by_number(lookups, "100234")
    assert answer["status"] == "error"
    assert "no such table" in answer["error"]


class BrokenStore:
    def row_by_number(self, number):
        raise RuntimeError("disk on fire")

    def rows_by_phone(self, phone, since):
        raise RuntimeError("disk on fire")


def test_a_store_exception_is_reported_as_an_error():
    lookups = EmbeddedOrderLookups(BrokenStore())
    assert by_number(lookups, "100234") == {
        "status": "error",
        "data": {},
        "error": "order_by_number failed: RuntimeError: disk on fire",
    }
    assert by_phone(lookups, "+33612345678")["status"] == "error"


def test_every_answer_is_json_serialisable(lookups):
    answers = [
        by_number(lookups, "100234"),
        by_number(lookups, UNKNOWN_ORDER),
        by_phone(lookups, DEMO_CALLERS["several_orders"]),
        lookups.perform(Lookup("r", "nope"), NOW),
    ]
    for answer in answers:
        assert json.loads(json.dumps(answer)) == answer


# --- order_dict ------------------------------------------------------------------------


def test_order_dict_names_every_carrier():
    names = {
        order_dict(o, NOW, DeliveryPolicy())["carrier"]: order_dict(o, NOW, DeliveryPolicy())["carrier_name"]
        for o in demo_orders(TODAY)
    }
    assert names == {
        None: None,
        "colissimo": "Colissimo",
        "chronopost": "Chronopost",
        "dpd": "DPD",
        "ups": "UPS",
        "mondial_relay": "Mondial Relay",
    }


def test_order_dict_has_no_expected_date_when_there_is_none_to_give():
    by_status = {o.status: o for o in demo_orders(TODAY)}
    for status in ("lost", "cancelled", "returned"):
        assert order_dict(by_status[status], NOW)["expected_on"] is None


def test_order_dict_expected_dates_use_the_policy():
    preparing = next(o for o in demo_orders(TODAY) if o.status == "preparing")
    # Ordered Wed 17 at 10:00: ships Thu 18, Colissimo (default) Fri 19 + Mon 22.
    assert order_dict(preparing, NOW)["expected_on"] == "2026-06-22"
    fast = DeliveryPolicy.from_mapping({"transit_days": {"colissimo": 1}})
    assert order_dict(preparing, NOW, fast)["expected_on"] == "2026-06-19"


def test_order_dict_delivered_order_expected_on_is_its_delivery_date():
    delivered = next(o for o in demo_orders(TODAY) if o.number == DEMO_ORDERS["delivered"])
    answer = order_dict(delivered, NOW)
    assert answer["expected_on"] == answer["delivered_on"] == date(2026, 6, 10).isoformat()
