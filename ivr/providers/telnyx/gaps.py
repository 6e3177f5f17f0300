"""What a flow asks that TeXML cannot do as asked (lint prints these for
the ``telnyx`` provider; at run time :mod:`ivr.providers.telnyx.render`
uses the nearest equivalent and logs it)."""

from __future__ import annotations

from ivr.flow.kinds import KINDS
from ivr.providers.dialect import Gap
from ivr.providers.telnyx.render import DIAL_TIMEOUT_RANGE, TIMEOUT_RANGE


def gaps(flow) -> list[Gap]:
    """A gap for each listening node whose timeout is outside TeXML
    Gather's 1 to 120 seconds, and each transfer whose ring timeout is
    outside Dial's 5 to 120 (both brought to the nearest bound)."""
    found = []
    for name, node in flow.nodes.items():
        kind = KINDS.get(node.kind)
        if kind is not None and kind.gathers:
            gap = _out_of_range(name, node, node.opts.get("timeout", flow.timeout), TIMEOUT_RANGE,
                                "waits for input")
        elif node.kind == "transfer" and node.opts.get("timeout") is not None:
            gap = _out_of_range(name, node, node.opts["timeout"], DIAL_TIMEOUT_RANGE,
                                "lets a transfer ring")
        else:
            gap = None
        if gap is not None:
            found.append(gap)
    return found


def _out_of_range(name: str, node, timeout: int, bounds: tuple[int, int], what: str) -> Gap | None:
    low, high = bounds
    if low <= timeout <= high:
        return None
    nearest = min(max(timeout, low), high)
    field = "timeout" if "timeout" in node.opts else None
    return Gap(name, field, f"Telnyx {what} {low} to {high} seconds; {nearest} seconds are used "
                            f"instead of {timeout}", "provider-timeout-range")
