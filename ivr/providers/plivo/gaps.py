"""What a flow asks that Plivo XML cannot do as asked, found before a call
(lint prints each at its node) and replaced at run time by the nearest
equivalent in :mod:`ivr.providers.plivo.render`, which logs it once."""

from __future__ import annotations

from ivr.flow.kinds import KINDS
from ivr.providers.dialect import Gap
from ivr.providers.plivo.render import EXECUTION_TIMEOUT, QUEUE_SIP_DOMAIN


def plivo_gaps(flow) -> list[Gap]:
    """Every :class:`Gap` of ``flow`` (an :class:`ivr.flow.model.Flow`) on
    Plivo, in the flow's node order."""
    found: list[Gap] = []
    for node in flow.nodes.values():
        found.extend(_queue_gap(node))
        found.extend(_timeout_gap(node, flow.timeout))
    return found


def _queue_gap(node) -> list[Gap]:
    """Plivo XML has no queue (https://www.plivo.com/docs/voice/xml/overview
    lists no such element; Conference puts every waiting caller in one
    room): a queue transfer is dialled instead."""
    to = node.opts.get("to")
    if node.kind != "transfer" or not (isinstance(to, (tuple, list)) and len(to) == 2
                                       and to[0] == "queue"):
        return []
    return [Gap(node.name, "to", f"Plivo XML has no queue: the call rings the SIP user "
                f"sip:{to[1]}@{QUEUE_SIP_DOMAIN} instead, and the wait in the queue is not "
                "reported", "provider-no-queue")]


def _timeout_gap(node, default: int) -> list[Gap]:
    """GetInput's ``executionTimeout`` is 5 to 60 s
    (https://plivo.com/docs/voice/xml/getinput): a listening node's
    timeout outside that range is brought into it."""
    kind = KINDS.get(node.kind)
    if kind is None or not kind.gathers:
        return []
    timeout = node.opts.get("timeout", default)
    low, high = EXECUTION_TIMEOUT
    if not isinstance(timeout, int) or low <= timeout <= high:
        return []
    nearest = max(low, min(high, timeout))
    return [Gap(node.name, "timeout" if "timeout" in node.opts else None,
                f"Plivo waits {low} to {high} s for input: a timeout of {timeout} s becomes "
                f"{nearest} s", "provider-timeout-range")]
