"""A deterministic demo data set for the embedded order store.

Every date is relative to ``today``, so the demo tells the same story
whatever day it runs: the parcel "shipped yesterday" always shipped
yesterday.  Phone numbers come from ranges reserved for fiction where one
exists (ARCEP 06 39 98, NANP 555-01xx, Ofcom 07700 900xxx).

Callers (``DEMO_CALLERS``)::

    key                       phone            orders (newest first)
    one_order                 +33612345678     100234
    several_orders            +33698765432     100310, 100311, 100312
    no_order                  +33700000000     none
    only_old_orders           +33639980015     100101 (150 days ago: outside
                                               the 60-day "recent" window)
    delayed_carrier           +33639980011     100651
    delayed_warehouse         +33639980012     100652
    lost                      +33639980013     100653
    cancelled                 +33639980014     100654
    english_one_order         +14155550123     100420
    english_several_orders    +447700900123    100530, 100531
    english_no_order          +14155550199     none

Orders (``DEMO_ORDERS``, keyed by the status they show)::

    number  status             carrier        ordered   shipped   delivered
    100234  in_transit         colissimo      -3        -1        -
    100310  preparing          -              0         -         -
    100311  shipped            chronopost     -2        0         -
    100312  delivered          dpd            -12       -10       -7
    100420  out_for_delivery   ups            -4        -2        -
    100530  delayed_carrier    mondial_relay  -9        -6        -
    100531  returned           colissimo      -30       -28       -25
    100651  delayed_carrier    dpd            -8        -5        -
    100652  delayed_warehouse  colissimo      -5        -         -
    100653  lost               ups            -20       -17       -
    100654  cancelled          -              -6        -         -
    100101  delivered          colissimo      -150      -149      -146

(days relative to ``today``).  Order ``999999`` (``UNKNOWN_ORDER``) does
not exist.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import sqlite_utils

from ivr.lookups.orders import Order, OrderStore

DEMO_CALLERS = {
    "one_order": "+33612345678",
    "several_orders": "+33698765432",
    "no_order": "+33700000000",
    "only_old_orders": "+33639980015",
    "delayed_carrier": "+33639980011",
    "delayed_warehouse": "+33639980012",
    "lost": "+33639980013",
    "cancelled": "+33639980014",
    "english_one_order": "+14155550123",
    "english_several_orders": "+447700900123",
    "english_no_order": "+14155550199",
}

#: Callers with no order at all, recent or not.
NO_ORDER_CALLERS = (DEMO_CALLERS["no_order"], DEMO_CALLERS["english_no_order"])

#: One order per status, for flows and tests that need "an order that is …".
DEMO_ORDERS = {
    "preparing": "100310",
    "shipped": "100311",
    "in_transit": "100234",
    "out_for_delivery": "100420",
    "delivered": "100312",
    "delayed_carrier": "100651",
    "delayed_warehouse": "100652",
    "lost": "100653",
    "cancelled": "100654",
    "returned": "100531",
}

#: An order number that is well-formed but not in the demo data.
UNKNOWN_ORDER = "999999"

# number, caller key, status, carrier, ordered/shipped/delivered (days from
# today, None when it has not happened), items, total
_DEMO_ROWS = (
    ("100234", "one_order", "in_transit", "colissimo", -3, -1, None, 2, "42.50"),
    ("100310", "several_orders", "preparing", None, 0, None, None, 1, "19.90"),
    ("100311", "several_orders", "shipped", "chronopost", -2, 0, None, 3, "87.00"),
    ("100312", "several_orders", "delivered", "dpd", -12, -10, -7, 1, "129.99"),
    ("100420", "english_one_order", "out_for_delivery", "ups", -4, -2, None, 1, "64.00"),
    ("100530", "english_several_orders", "delayed_carrier", "mondial_relay", -9, -6, None, 2, "35.80"),
    ("100531", "english_several_orders", "returned", "colissimo", -30, -28, -25, 1, "24.99"),
    ("100651", "delayed_carrier", "delayed_carrier", "dpd", -8, -5, None, 4, "156.40"),
    ("100652", "delayed_warehouse", "delayed_warehouse", "colissimo", -5, None, None, 1, "49.00"),
    ("100653", "lost", "lost", "ups", -20, -17, None, 2, "210.00"),
    ("100654", "cancelled", "cancelled", None, -6, None, None, 1, "15.00"),
    ("100101", "only_old_orders", "delivered", "colissimo", -150, -149, -146, 1, "9.99"),
)

_TRACKING_URLS = {
    "colissimo": "https://www.laposte.fr/outils/suivre-vos-envois?code={}",
    "chronopost": "https://www.chronopost.fr/tracking-no-cms/suivi-page?listeNumerosLT={}",
    "dpd": "https://tracking.dpd.de/status/fr_FR/parcel/{}",
    "ups": "https://www.ups.com/track?tracknum={}",
    "mondial_relay": "https://www.mondialrelay.fr/suivi-de-colis/?NumeroExpedition={}",
}


def demo_orders(today: date) -> list[Order]:
    """The demo orders, dated relative to ``today``."""
    return [_demo_order(row, today) for row in _DEMO_ROWS]


def _demo_order(row: tuple, today: date) -> Order:
    number, caller, status, carrier, ordered, shipped, delivered, items, total = row
    tracking = _tracking_number(number, carrier) if shipped is not None else None
    return Order(
        number=number,
        phone=DEMO_CALLERS[caller],
        status=status,
        carrier=carrier,
        tracking_number=tracking,
        tracking_url=_TRACKING_URLS[carrier].format(tracking) if tracking else None,
        ordered_on=_day(today, ordered),
        shipped_on=_day(today, shipped),
        delivered_on=_day(today, delivered),
        items=items,
        total=Decimal(total),
        currency="EUR",
    )


def _day(today: date, offset: int | None) -> date | None:
    return None if offset is None else today + timedelta(days=offset)


def _tracking_number(number: str, carrier: str) -> str:
    # Shaped roughly like each carrier's own numbers so a demo sounds real;
    # derived from the order number so it stays deterministic.
    if carrier == "ups":
        return f"1Z999AA1{number}01"
    if carrier == "colissimo":
        return f"6A{number}0000FR"
    return f"{carrier[:2].upper()}{number}{number[::-1]}"


def create_demo_db(path_or_db: str | Path | sqlite_utils.Database, today: date) -> OrderStore:
    """Create the schema and load the demo orders into a file or database.

    Idempotent: orders are upserted by number, so a second run leaves the
    same rows (re-dated to the new ``today``).
    """
    if isinstance(path_or_db, sqlite_utils.Database):
        store = OrderStore(path_or_db)
    else:
        store = OrderStore.open(path_or_db)
    store.ensure_schema()
    store.add_many(demo_orders(today))
    return store
