"""What a flow asks that TeXML cannot do as asked (lint prints these for
the ``telnyx`` provider; at run time :mod:`ivr.providers.telnyx.render`
uses the nearest equivalent and logs it)."""

from __future__ import annotations

from ivr.flow.kinds import KINDS
from ivr.providers.dialect import Gap
from ivr.providers.telnyx.render import TIMEOUT_RANGE


def gaps(flow) -> list[Gap]:
    """A gap for each listening node whose timeout is outside TeXML
    Gather's 1 to 120 seconds (brought to the nearest bound)."""
    low, high = TIMEOUT_RANGE
    found = []
    for name, node in flow.nodes.items():
        kind = KINDS.get(node.kind)
        if kind is None or not kind.gathers:
            continue
        timeout = node.opts.get("timeout", flow.timeout)
        if not low <= timeout <= high:
            nearest = min(max(timeout, low), high)
            field = "timeout" if "timeout" in node.opts else None
            found.append(Gap(name, field, f"Telnyx waits {low} to {high} seconds for input; "
                             f"{nearest} seconds are used instead of {timeout}", "provider-timeout-range"))
    return found
