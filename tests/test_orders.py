"""The embedded order store and the demo data set."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
import sqlite_utils

import ivr.lookups.demo_orders as demo_module
from ivr.lookups.demo_orders import (
    DEMO_CALLERS,
    DEMO_ORDERS,
    NO_ORDER_CALLERS,
    UNKNOWN_ORDER,
    create_demo_db,
    demo_orders,
)
from ivr.lookups.orders import CARRIERS, ORDER_STATUSES, Order, OrderStore, normalise_phone

TODAY = date(2026, 6, 17)
RECENT = TODAY - timedelta(days=60)


def make_order(**overrides) -> Order:
    values = dict(
        number="100234",
        phone="+33612345678",
        status="in_transit",
        carrier="colissimo",
        tracking_number="6A1002340000FR",
        tracking_url="https://example.test/6A1002340000FR",
        ordered_on=date(2026, 6, 14),
        shipped_on=date(2026, 6, 16),
        delivered_on=None,
        items=2,
        total=Decimal("42.50"),
        currency="EUR",
    )
    values.update(overrides)
    return Order(**values)


@pytest.fixture
def store() -> OrderStore:
    store = OrderStore(sqlite_utils.Database(memory=True))
    store.ensure_schema()
    return store


# --- Order ----------------------------------------------------------------------


def test_order_statuses_are_exactly_the_documented_codes():
    assert ORDER_STATUSES == (
        "preparing",
        "shipped",
        "in_transit",
        "out_for_delivery",
        "delivered",
        "delayed_carrier",
        "delayed_warehouse",
        "lost",
        "cancelled",
        "returned",
    )


def test_order_rejects_an_unknown_status():
    with pytest.raises(ValueError, match="unknown order status"):
        make_order(status="teleported")


def test_order_rejects_a_number_that_is_not_digits():
    with pytest.raises(ValueError, match="digits"):
        make_order(number="A-100")


def test_order_total_given_as_string_becomes_decimal_to_the_cent():
    assert make_order(total="42.5").total == Decimal("42.50")


def test_order_total_refuses_floats():
    with pytest.raises(TypeError):
        make_order(total=42.5)


def test_normalise_phone_removes_spaces_and_separators():
    assert normalise_phone("+33 6 12.34-56 (78)") == "+33612345678"


# --- OrderStore -------------------------------------------------------------------


def test_ensure_schema_creates_orders_table_keyed_by_number_with_phone_index(store):
    table = store.db.table("orders")
    assert table.exists()
    assert table.pks == ["number"]
    assert any(index.columns[0] == "phone" for index in table.indexes)


def test_ensure_schema_twice_is_harmless(store):
    store.add(make_order())
    store.ensure_schema()
    assert store.find_by_number("100234") == make_order()


def test_add_then_find_by_number_round_trips_every_field(store):
    order = make_order()
    store.add(order)
    assert store.find_by_number("100234") == order


def test_find_by_number_ignores_spaces(store):
    store.add(make_order())
    assert store.find_by_number(" 100 234 ").number == "100234"


def test_find_by_number_unknown_is_none(store):
    assert store.find_by_number("999999") is None


def test_add_upserts_by_number(store):
    store.add(make_order())
    delivered = make_order(status="delivered", delivered_on=date(2026, 6, 18))
    store.add(delivered)
    assert store.find_by_number("100234") == delivered
    assert store.db.table("orders").count == 1


def test_total_is_stored_exactly_not_as_a_float(store):
    store.add(make_order(total=Decimal("0.10")))
    row = next(store.db.query("SELECT total FROM orders"))
    assert row["total"] == "0.10"


def test_find_by_phone_returns_orders_since_date_newest_first(store):
    store.add_many(
        [
            make_order(number="1", ordered_on=date(2026, 6, 1)),
            make_order(number="2", ordered_on=date(2026, 6, 10)),
            make_order(number="3", ordered_on=date(2026, 5, 31)),
            make_order(number="4", phone="+33698765432", ordered_on=date(2026, 6, 12)),
        ]
    )
    found = store.find_by_phone("+33612345678", since=date(2026, 6, 1))
    assert [o.number for o in found] == ["2", "1"]


def test_find_by_phone_compares_numbers_without_spaces(store):
    store.add(make_order(phone="+33 6 12 34 56 78"))
    assert [o.number for o in store.find_by_phone("+336 1234 5678", since=RECENT)] == ["100234"]


def test_open_file_uses_wal_and_keeps_orders(tmp_path):
    path = tmp_path / "orders.db"
    store = OrderStore.open(path)
    store.ensure_schema()
    store.add(make_order())
    assert store.db.journal_mode == "wal"
    store.db.close()
    assert OrderStore.open(path).find_by_number("100234") == make_order()


# --- Demo data --------------------------------------------------------------------


def test_demo_covers_every_status_and_every_carrier():
    orders = demo_orders(TODAY)
    assert {o.status for o in orders} == set(ORDER_STATUSES)
    assert {o.carrier for o in orders} - {None} == set(CARRIERS)


def test_demo_order_numbers_are_unique_six_digit_strings():
    numbers = [o.number for o in demo_orders(TODAY)]
    assert len(numbers) == len(set(numbers))
    assert all(len(n) == 6 and n.isdigit() for n in numbers)
    assert UNKNOWN_ORDER not in numbers


def test_demo_orders_named_by_status_have_that_status():
    by_number = {o.number: o for o in demo_orders(TODAY)}
    assert set(DEMO_ORDERS) == set(ORDER_STATUSES)
    for status, number in DEMO_ORDERS.items():
        assert by_number[number].status == status


def test_demo_is_deterministic_and_relative_to_today():
    assert demo_orders(TODAY) == demo_orders(TODAY)
    later = demo_orders(TODAY + timedelta(days=10))
    assert [o.ordered_on for o in later] == [o.ordered_on + timedelta(days=10) for o in demo_orders(TODAY)]


def test_demo_carrier_is_none_only_before_shipping_or_when_cancelled():
    for order in demo_orders(TODAY):
        if order.carrier is None:
            assert order.status in ("preparing", "cancelled")
        if order.status in ("preparing", "cancelled"):
            assert order.tracking_number is None


def test_demo_dates_are_in_order_and_not_in_the_future():
    for order in demo_orders(TODAY):
        dates = [d for d in (order.ordered_on, order.shipped_on, order.delivered_on) if d]
        assert dates == sorted(dates) and dates[-1] <= TODAY


def recent_orders_of(caller: str, store: OrderStore) -> list[str]:
    return [o.number for o in store.find_by_phone(DEMO_CALLERS[caller], since=RECENT)]


def test_demo_callers_with_one_several_and_no_recent_orders():
    store = create_demo_db(sqlite_utils.Database(memory=True), TODAY)
    assert recent_orders_of("one_order", store) == ["100234"]
    assert recent_orders_of("english_one_order", store) == ["100420"]
    assert recent_orders_of("several_orders", store) == ["100310", "100311", "100312"]
    assert recent_orders_of("english_several_orders", store) == ["100530", "100531"]
    assert recent_orders_of("only_old_orders", store) == []
    for phone in NO_ORDER_CALLERS:
        assert store.find_by_phone(phone, since=date.min) == []


def test_demo_has_french_and_english_speaking_callers():
    prefixes = {phone[:3] for phone in DEMO_CALLERS.values()}
    assert {"+33", "+14", "+44"} <= prefixes


def test_demo_docstring_table_lists_every_order():
    lines = demo_module.__doc__.splitlines()
    for order in demo_orders(TODAY):
        row = next(line.split() for line in lines if line.strip().startswith(order.number))
        assert row[1:3] == [order.status, order.carrier or "-"]


def test_create_demo_db_twice_leaves_the_same_data():
    db = sqlite_utils.Database(memory=True)
    create_demo_db(db, TODAY)
    first = list(db.query("SELECT * FROM orders ORDER BY number"))
    create_demo_db(db, TODAY)
    assert list(db.query("SELECT * FROM orders ORDER BY number")) == first
    assert len(first) == len(demo_orders(TODAY))


def test_create_demo_db_on_a_file_path(tmp_path):
    path = tmp_path / "demo.db"
    create_demo_db(path, TODAY).db.close()
    create_demo_db(str(path), TODAY).db.close()
    store = OrderStore.open(path)
    assert store.db.table("orders").count == len(demo_orders(TODAY))
    assert store.find_by_number(DEMO_ORDERS["lost"]).status == "lost"


def test_demo_order_survives_the_store_unchanged():
    store = create_demo_db(sqlite_utils.Database(memory=True), TODAY)
    for order in demo_orders(TODAY):
        assert store.find_by_number(order.number) == order
