"""The embedded order store: a small SQLite table behind ``sqlite-utils``.

This is what the demo and small shops run on.  A shop with its own back
office plugs in another ``ivr.lookups.embedded.OrderLookups`` instead; nothing in
the engine knows about this module.

Dates are stored as ISO strings and money as a two-decimal string, so that
what comes back out is exactly what went in (``sqlite-utils`` would turn a
``Decimal`` into a float).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Iterable

import sqlite_utils

#: Every status an order may have, in rough life-cycle order.
#: ``lost`` is a carrier exception: the parcel is lost or damaged.
ORDER_STATUSES = (
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

#: Carrier codes and the names the caller hears.
CARRIERS = {
    "colissimo": "Colissimo",
    "chronopost": "Chronopost",
    "dpd": "DPD",
    "ups": "UPS",
    "mondial_relay": "Mondial Relay",
}

TABLE = "orders"

_CENTS = Decimal("0.01")
# People and CRMs write numbers with spaces, dots, dashes or brackets;
# E.164 has none of them.
_PHONE_SEPARATORS = re.compile(r"[\s.\-()]")
_WHITESPACE = re.compile(r"\s")


@dataclass(frozen=True)
class Order:
    """One customer order, as the IVR needs to talk about it.

    ``carrier`` is ``None`` while the order has no carrier yet (preparing,
    cancelled before shipping).  ``total`` may be given as a ``Decimal`` or
    a string; it is kept as a ``Decimal`` rounded to the cent.
    """

    number: str
    phone: str
    status: str
    carrier: str | None
    tracking_number: str | None
    tracking_url: str | None
    ordered_on: date
    shipped_on: date | None
    delivered_on: date | None
    items: int
    total: Decimal
    currency: str = "EUR"

    def __post_init__(self) -> None:
        check_number_and_status(self.number, self.status)
        # Frozen: normalising in place needs object.__setattr__.
        object.__setattr__(self, "total", to_money(self.total))


def check_number_and_status(number: object, status: object) -> None:
    """Raise ``ValueError`` unless ``number`` is a string of digits and
    ``status`` one of :data:`ORDER_STATUSES` (what an :class:`Order`
    refuses, for a stored row read without building one)."""
    if not (isinstance(number, str) and number.isdigit()):
        raise ValueError(f"order number must be a string of digits, got {number!r}")
    if status not in ORDER_STATUSES:
        raise ValueError(f"unknown order status {status!r}; expected one of {ORDER_STATUSES}")


def to_money(value: Decimal | str | int) -> Decimal:
    """``value`` as a ``Decimal`` rounded to the cent; floats are refused
    because they already lost the exact amount."""
    if isinstance(value, float):
        raise TypeError("money must be a Decimal, a string or an int, not a float")
    try:
        return Decimal(value).quantize(_CENTS)
    except InvalidOperation:
        raise ValueError(f"not an amount of money: {value!r}") from None


def normalise_phone(phone: str) -> str:
    """``phone`` without spaces or separators, so ``+33 6 12 34 56 78`` and
    ``+33612345678`` are the same caller."""
    return _PHONE_SEPARATORS.sub("", phone or "")


def normalise_number(number: str) -> str:
    """An order number as typed or spoken, without its spaces."""
    return _WHITESPACE.sub("", str(number or ""))


class OrderStore:
    """Orders in the ``orders`` table of a ``sqlite_utils.Database``.

    Reads go through ``db.query()``; writes through table methods, which
    commit on their own (sqlite-utils 4).
    """

    def __init__(self, db: sqlite_utils.Database):
        self.db = db

    @classmethod
    def open(cls, path: str | Path) -> OrderStore:
        """Open (or create) a database file, in WAL mode so the web process
        can read while an import writes.  Call ``ensure_schema()`` before
        first use of a new file."""
        db = sqlite_utils.Database(path)
        db.enable_wal()
        return cls(db)

    @property
    def table(self) -> sqlite_utils.db.Table:
        return self.db.table(TABLE)

    def ensure_schema(self) -> None:
        """Create the ``orders`` table and its indexes if they are missing."""
        self.table.create(
            {
                "number": str,
                "phone": str,
                "status": str,
                "carrier": str,
                "tracking_number": str,
                "tracking_url": str,
                "ordered_on": str,
                "shipped_on": str,
                "delivered_on": str,
                "items": int,
                "total": str,
                "currency": str,
            },
            pk="number",
            not_null=["phone", "status", "ordered_on", "items", "total", "currency"],
            if_not_exists=True,
        )
        # Phone first, then date: serves "this caller's orders since…".
        self.table.create_index(["phone", "ordered_on"], index_name="idx_orders_phone", if_not_exists=True)

    def add(self, order: Order) -> None:
        """Insert ``order``, or replace the order with the same number."""
        self.add_many([order])

    def add_many(self, orders: Iterable[Order]) -> None:
        """Insert or replace several orders in one transaction."""
        self.table.upsert_all((_to_row(o) for o in orders), pk="number")

    def find_by_number(self, number: str) -> Order | None:
        """The order with this number, or ``None``."""
        row = self.row_by_number(number)
        return None if row is None else _from_row(row)

    def find_by_phone(self, phone: str, since: date) -> list[Order]:
        """Orders placed from ``phone`` on or after ``since``, newest first."""
        return [_from_row(row) for row in self.rows_by_phone(phone, since)]

    def row_by_number(self, number: str) -> tuple | None:
        """:meth:`find_by_number` as the stored row (:data:`ROW_COLUMNS`),
        unchecked: what a look-up reads, without building an ``Order``."""
        rows = self._select(f"{_SELECT} WHERE number = ?", [normalise_number(number)])
        return rows[0] if rows else None

    def rows_by_phone(self, phone: str, since: date) -> list[tuple]:
        """:meth:`find_by_phone` as the stored rows (:data:`ROW_COLUMNS`), unchecked."""
        return self._select(
            f"{_SELECT} WHERE phone = ? AND ordered_on >= ? ORDER BY ordered_on DESC, number DESC",
            [normalise_phone(phone), since.isoformat()],
        )

    def _select(self, sql: str, params: list) -> list[tuple]:
        # Straight on the connection: sqlite-utils' query() wraps each
        # SELECT in a savepoint, two more statements for every look-up.
        return self.db.conn.execute(sql, params).fetchall()


_DATE_FIELDS = ("ordered_on", "shipped_on", "delivered_on")
#: The columns of a stored row as the store reads them: ``Order``'s fields, in order.
ROW_COLUMNS = tuple(f.name for f in fields(Order))
_SELECT = f"SELECT {', '.join(ROW_COLUMNS)} FROM {TABLE}"


def _to_row(order: Order) -> dict:
    row = {name: getattr(order, name) for name in ROW_COLUMNS}
    row["phone"] = normalise_phone(order.phone)
    for name in _DATE_FIELDS:
        row[name] = row[name].isoformat() if row[name] else None
    row["total"] = str(order.total)
    return row


def stored_row(order: Order) -> tuple:
    """``order`` as the store writes it, in :data:`ROW_COLUMNS` order."""
    return tuple(_to_row(order).values())


def stored_date(value: str | None) -> date | None:
    """A date column as a ``date`` (``None`` when empty)."""
    return date.fromisoformat(value) if value else None


def _from_row(row: tuple) -> Order:
    (number, phone, status, carrier, tracking_number, tracking_url,
     ordered_on, shipped_on, delivered_on, items, total, currency) = row
    return Order(number, phone, status, carrier, tracking_number, tracking_url,
                 date.fromisoformat(ordered_on), stored_date(shipped_on), stored_date(delivered_on),
                 items, total, currency)
