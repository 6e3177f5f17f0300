"""Delivery estimates in business days, against real French holidays.

2026 landmarks (from ``holidays``, checked by hand against a calendar):
Easter Monday Mon 6 Apr, Labour Day Fri 1 May, Victory Day Fri 8 May,
Ascension Thu 14 May, Whit Monday Mon 25 May, Christmas Fri 25 Dec,
New Year 2027 Fri 1 Jan.  Alsace-Moselle (subdiv "57") adds Good Friday
Fri 3 Apr 2026.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime
from decimal import Decimal

import pytest
from freezegun import freeze_time

from ivr.lookups.delivery import (
    DEFAULT_DELAY_DAYS,
    DEFAULT_TRANSIT_DAYS,
    DeliveryPolicy,
    add_business_days,
    estimate_delivery,
    is_business_day,
    next_business_day,
)
from ivr.lookups.orders import Order

POLICY = DeliveryPolicy()


def order(status="in_transit", carrier="colissimo", ordered_on=None, shipped_on=None, delivered_on=None) -> Order:
    return Order(
        number="100234",
        phone="+33612345678",
        status=status,
        carrier=carrier,
        tracking_number=None,
        tracking_url=None,
        ordered_on=ordered_on or shipped_on or date(2026, 1, 5),
        shipped_on=shipped_on,
        delivered_on=delivered_on,
        items=1,
        total=Decimal("10.00"),
    )


def shipped(on: date, carrier: str, status: str = "in_transit") -> Order:
    return order(status=status, carrier=carrier, shipped_on=on)


# --- Business days --------------------------------------------------------------------


def test_the_holiday_calendar_is_the_real_one():
    # Guards the hand-computed dates below against a change in `holidays`.
    for holiday in ("2026-04-06", "2026-05-01", "2026-05-08", "2026-05-14", "2026-05-25", "2026-12-25", "2027-01-01"):
        assert not is_business_day(date.fromisoformat(holiday)), holiday


def test_weekends_are_not_business_days():
    assert not is_business_day(date(2026, 6, 13))  # Saturday
    assert not is_business_day(date(2026, 6, 14))  # Sunday
    assert is_business_day(date(2026, 6, 15))  # Monday


def test_good_friday_is_a_business_day_in_france_but_not_in_moselle():
    assert is_business_day(date(2026, 4, 3))
    assert not is_business_day(date(2026, 4, 3), subdiv="57")


def test_add_zero_business_days_keeps_a_business_day():
    assert add_business_days(date(2026, 6, 15), 0) == date(2026, 6, 15)


def test_add_zero_business_days_on_a_holiday_moves_to_the_next_business_day():
    # Fri 8 May (Victory Day) -> Mon 11 May.
    assert add_business_days(date(2026, 5, 8), 0) == date(2026, 5, 11)


def test_add_business_days_from_a_saturday_counts_monday_as_the_first():
    assert add_business_days(date(2026, 6, 13), 1) == date(2026, 6, 15)


def test_add_negative_business_days_is_refused():
    with pytest.raises(ValueError):
        add_business_days(date(2026, 6, 15), -1)


def test_next_business_day_is_strictly_after():
    assert next_business_day(date(2026, 6, 15)) == date(2026, 6, 16)
    # Thu 30 Apr -> Fri 1 May is Labour Day -> Mon 4 May.
    assert next_business_day(date(2026, 4, 30)) == date(2026, 5, 4)


# --- Holidays in estimates -------------------------------------------------------------


@freeze_time("2026-05-13 10:00")
def test_ascension_thursday_is_skipped_one_day_transit_from_wednesday_lands_friday():
    parcel = shipped(date(2026, 5, 13), "chronopost")
    assert estimate_delivery(parcel, datetime.now(), POLICY) == date(2026, 5, 15)


@freeze_time("2026-05-13 10:00")
def test_ascension_and_weekend_are_skipped_by_four_day_mondial_relay():
    # Fri 15 (1), Mon 18 (2), Tue 19 (3), Wed 20 (4).
    parcel = shipped(date(2026, 5, 13), "mondial_relay")
    assert estimate_delivery(parcel, datetime.now(), POLICY) == date(2026, 5, 20)


@freeze_time("2026-12-24 09:00")
def test_christmas_friday_and_weekend_push_two_day_transit_to_tuesday():
    # Thu 24 Dec: Fri 25 holiday, weekend, Mon 28 (1), Tue 29 (2).
    parcel = shipped(date(2026, 12, 24), "colissimo")
    assert estimate_delivery(parcel, datetime.now(), POLICY) == date(2026, 12, 29)


@freeze_time("2026-12-31 09:00")
def test_new_year_friday_pushes_next_day_delivery_into_the_next_year_monday():
    parcel = shipped(date(2026, 12, 31), "chronopost")
    assert estimate_delivery(parcel, datetime.now(), POLICY) == date(2027, 1, 4)


@freeze_time("2026-04-03 11:00")
def test_easter_monday_is_skipped_dpd_from_friday_arrives_wednesday():
    # Fri 3 Apr: weekend, Mon 6 Easter Monday, Tue 7 (1), Wed 8 (2).
    parcel = shipped(date(2026, 4, 3), "dpd")
    assert estimate_delivery(parcel, datetime.now(), POLICY) == date(2026, 4, 8)


@freeze_time("2026-04-02 11:00")
def test_good_friday_and_easter_monday_both_skipped_with_moselle_subdivision():
    parcel = shipped(date(2026, 4, 2), "chronopost")
    assert estimate_delivery(parcel, datetime.now(), POLICY) == date(2026, 4, 3)
    moselle = DeliveryPolicy(subdiv="57")
    assert estimate_delivery(parcel, datetime.now(), moselle) == date(2026, 4, 7)


@freeze_time("2026-05-07 10:00")
def test_victory_day_friday_long_weekend_pushes_ups_to_tuesday():
    # Thu 7 May: Fri 8 Victory Day, weekend, Mon 11 (1), Tue 12 (2).
    parcel = shipped(date(2026, 5, 7), "ups")
    assert estimate_delivery(parcel, datetime.now(), POLICY) == date(2026, 5, 12)


@freeze_time("2026-04-30 10:00")
def test_order_before_cutoff_on_eve_of_labour_day_ships_monday_arrives_wednesday():
    # Prepared 1 business day after Thu 30 Apr: Fri 1 May is a holiday, so
    # it ships Mon 4 May; Colissimo Tue 5 (1), Wed 6 (2).
    preparing = order(status="preparing", carrier=None, ordered_on=date(2026, 4, 30))
    assert estimate_delivery(preparing, datetime.now(), POLICY) == date(2026, 5, 6)


@freeze_time("2026-04-30 15:00")
def test_order_after_cutoff_on_eve_of_labour_day_counts_from_monday_arrives_thursday():
    # Counted from Mon 4 May, ships Tue 5, arrives Wed 6 (1), Thu 7 (2).
    preparing = order(status="preparing", carrier=None, ordered_on=date(2026, 4, 30))
    assert estimate_delivery(preparing, datetime.now(), POLICY) == date(2026, 5, 7)


@freeze_time("2026-05-22 09:00")
def test_whit_monday_delays_shipping_of_a_friday_order_to_tuesday():
    # Fri 22 May: ships after 1 day -> Mon 25 holiday -> Tue 26; Wed 27, Thu 28.
    preparing = order(status="preparing", carrier="colissimo", ordered_on=date(2026, 5, 22))
    assert estimate_delivery(preparing, datetime.now(), POLICY) == date(2026, 5, 28)


# --- Each status -------------------------------------------------------------------------

MONDAY = datetime(2026, 6, 15, 10, 0)  # an ordinary week, no holidays


def test_preparing_without_carrier_uses_default_carrier_transit():
    # Ships Tue 16, Colissimo 2 days -> Thu 18.
    preparing = order(status="preparing", carrier=None, ordered_on=date(2026, 6, 15))
    assert estimate_delivery(preparing, MONDAY, POLICY) == date(2026, 6, 18)


def test_preparing_with_a_carrier_uses_that_carriers_transit():
    preparing = order(status="preparing", carrier="chronopost", ordered_on=date(2026, 6, 15))
    assert estimate_delivery(preparing, MONDAY, POLICY) == date(2026, 6, 17)


def test_preparing_order_placed_on_saturday_counts_from_monday():
    saturday = datetime(2026, 6, 13, 11, 0)
    preparing = order(status="preparing", carrier=None, ordered_on=date(2026, 6, 13))
    assert estimate_delivery(preparing, saturday, POLICY) == date(2026, 6, 18)


def test_overdue_preparation_ships_today_at_the_earliest_before_cutoff():
    # Planned to ship Tue 2 Jun; still preparing on Mon 15 at 10:00.
    preparing = order(status="preparing", carrier=None, ordered_on=date(2026, 6, 1))
    assert estimate_delivery(preparing, MONDAY, POLICY) == date(2026, 6, 17)


def test_overdue_preparation_after_cutoff_ships_next_business_day():
    preparing = order(status="preparing", carrier=None, ordered_on=date(2026, 6, 1))
    assert estimate_delivery(preparing, datetime(2026, 6, 15, 15, 0), POLICY) == date(2026, 6, 18)


def test_cutoff_hour_comes_from_the_policy():
    early_cutoff = DeliveryPolicy(cutoff_hour=9)
    preparing = order(status="preparing", carrier=None, ordered_on=date(2026, 6, 15))
    # 10:00 is after a 9:00 cutoff: counted from Tue 16, ships Wed 17, arrives Fri 19.
    assert estimate_delivery(preparing, MONDAY, early_cutoff) == date(2026, 6, 19)


def test_shipped_counts_transit_from_the_ship_date():
    parcel = shipped(date(2026, 6, 12), "colissimo", status="shipped")
    # Fri 12: Mon 15 (1), Tue 16 (2).
    assert estimate_delivery(parcel, MONDAY, POLICY) == date(2026, 6, 16)


def test_in_transit_due_today_answers_today():
    parcel = shipped(date(2026, 6, 11), "colissimo")
    # Thu 11: Fri 12 (1), Mon 15 (2) = today.
    assert estimate_delivery(parcel, MONDAY, POLICY) == date(2026, 6, 15)


def test_in_transit_overdue_never_promises_a_past_date_answers_next_business_day():
    parcel = shipped(date(2026, 6, 1), "colissimo")  # was due Wed 3 Jun
    assert estimate_delivery(parcel, MONDAY, POLICY) == date(2026, 6, 16)


def test_overdue_on_a_friday_answers_the_following_monday():
    friday = datetime(2026, 6, 19, 10, 0)
    parcel = shipped(date(2026, 6, 1), "colissimo")
    assert estimate_delivery(parcel, friday, POLICY) == date(2026, 6, 22)


def test_out_for_delivery_is_today():
    assert estimate_delivery(order(status="out_for_delivery"), MONDAY, POLICY) == date(2026, 6, 15)


def test_delivered_answers_the_delivery_date():
    delivered = order(status="delivered", shipped_on=date(2026, 6, 8), delivered_on=date(2026, 6, 10))
    assert estimate_delivery(delivered, MONDAY, POLICY) == date(2026, 6, 10)


@pytest.mark.parametrize("status", ["lost", "cancelled", "returned"])
def test_no_date_for_lost_cancelled_or_returned(status):
    assert estimate_delivery(order(status=status), MONDAY, POLICY) is None


@freeze_time("2026-05-15 10:00")
def test_delayed_carrier_adds_two_business_days_to_the_transit_estimate():
    # Shipped Wed 13 May: due Mon 18 (Ascension skipped); +2 -> Wed 20.
    parcel = shipped(date(2026, 5, 13), "colissimo", status="delayed_carrier")
    assert estimate_delivery(parcel, datetime.now(), POLICY) == date(2026, 5, 20)


def test_delayed_carrier_long_overdue_answers_next_business_day():
    parcel = shipped(date(2026, 6, 1), "colissimo", status="delayed_carrier")
    assert estimate_delivery(parcel, MONDAY, POLICY) == date(2026, 6, 16)


@freeze_time("2026-05-12 10:00")
def test_delayed_warehouse_restarts_from_today_with_delay_plus_transit():
    # Tue 12 May + 3 + 2 = 5 business days: Wed 13, Fri 15, Mon 18, Tue 19, Wed 20.
    parcel = order(status="delayed_warehouse", carrier="colissimo", ordered_on=date(2026, 5, 5))
    assert estimate_delivery(parcel, datetime.now(), POLICY) == date(2026, 5, 20)


def test_unknown_carrier_uses_default_carrier_transit():
    parcel = shipped(date(2026, 6, 12), "gls")
    assert estimate_delivery(parcel, MONDAY, POLICY) == date(2026, 6, 16)


def test_estimate_does_not_read_the_clock():
    # Frozen far away from MONDAY: the answer only depends on `now`.
    parcel = shipped(date(2026, 6, 12), "colissimo")
    with freeze_time("2030-01-01"):
        assert estimate_delivery(parcel, MONDAY, POLICY) == date(2026, 6, 16)


# --- Policy from configuration ------------------------------------------------------------


def test_policy_defaults():
    assert dict(POLICY.transit_days) == DEFAULT_TRANSIT_DAYS
    assert dict(POLICY.delay_days) == DEFAULT_DELAY_DAYS
    assert (POLICY.country, POLICY.subdiv, POLICY.preparation_days, POLICY.cutoff_hour) == ("FR", None, 1, 14)


def test_policy_from_empty_mapping_is_the_default():
    assert DeliveryPolicy.from_mapping({}) == POLICY


def test_policy_from_mapping_merges_transit_days_and_accepts_new_carriers():
    policy = DeliveryPolicy.from_mapping({"transit_days": {"dpd": 3, "gls": 2}, "subdiv": "57"})
    assert policy.transit("dpd") == 3
    assert policy.transit("gls") == 2
    assert policy.transit("colissimo") == 2
    assert policy.subdiv == "57"


def test_policy_from_mapping_changes_estimates():
    slow_dpd = DeliveryPolicy.from_mapping({"transit_days": {"dpd": 4}})
    parcel = shipped(date(2026, 6, 12), "dpd")
    assert estimate_delivery(parcel, MONDAY, slow_dpd) == date(2026, 6, 18)


@pytest.mark.parametrize(
    "config, message",
    [
        ({"transit_days": {"dpd": -1}}, "transit_days.dpd"),
        ({"transit_days": {"dpd": "2"}}, "transit_days.dpd"),
        ({"transit_days": {"dpd": True}}, "transit_days.dpd"),
        ({"transit_days": {"dpd": 1.5}}, "transit_days.dpd"),
        ({"transit_days": ["dpd"]}, "transit_days must be a mapping"),
        ({"preparation_days": -2}, "preparation_days"),
        ({"delay_days": {"delayed_carrier": -1}}, "delay_days.delayed_carrier"),
        ({"delay_days": {"delayed_sea": 1}}, "unknown delay_days keys"),
        ({"cutoff_hour": 25}, "cutoff_hour"),
        ({"transit_day": {}}, "unknown delivery policy keys"),
        ({"country": "XX"}, "no public holidays"),
        ({"subdiv": "99"}, "no public holidays"),
        ({"default_carrier": "pigeon"}, "default_carrier"),
    ],
)
def test_policy_from_mapping_rejects_bad_values_with_a_clear_message(config, message):
    with pytest.raises(ValueError, match=message):
        DeliveryPolicy.from_mapping(config)


def test_policy_mappings_are_read_only():
    with pytest.raises(TypeError):
        POLICY.transit_days["dpd"] = 9
    assert replace(POLICY, preparation_days=2).transit_days == POLICY.transit_days
