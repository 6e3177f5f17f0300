"""The orders every prompt is rehearsed on, computed from the demo orders.

The flow package cannot import look-ups (they sit above it), so the loader
rehearses on a copy of these orders kept in :mod:`ivr.flow.sample_orders`;
``tools/render_sample_orders.py --write`` regenerates that copy and
``tests/test_sample_orders.py`` fails when it differs from what is here.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from ivr.flow.sample_calls import SAMPLE_DAY, SAMPLE_TIME, sparse_orders
from ivr.lookups.demo_orders import demo_orders
from ivr.lookups.embedded import order_dict

#: Any zone gives the same dates: the sample times are well before any cut-off.
_ZONE = ZoneInfo("Europe/Paris")


def sample_orders(now: datetime) -> list[dict]:
    """Orders as look-ups return them: each demo order (every status), then
    one per status with every optional field empty."""
    dense = [order_dict(order, now) for order in demo_orders(now.date())]
    return dense + sparse_orders(dense)


def rehearsal_orders() -> list[dict]:
    """Each demo order as look-ups return it on the sample day, at the first
    sample time: what :mod:`ivr.flow.sample_orders` must hold."""
    now = datetime.combine(SAMPLE_DAY, SAMPLE_TIME, _ZONE)
    return [order_dict(order, now) for order in demo_orders(SAMPLE_DAY)]


__all__ = ["rehearsal_orders", "sample_orders"]
