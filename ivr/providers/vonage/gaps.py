"""What a flow may ask that NCCO cannot do as asked: the gaps lint prints
for Vonage, and their run-time note (logged once)."""

from __future__ import annotations

from ivr.providers.dialect import Gap
from ivr.providers.gap_log import gathering_nodes
from ivr.providers.gap_log import log_once as _log_once

#: Vonage waits at most this long for keys (``dtmf.timeOut``).
MAX_DTMF_TIMEOUT = 10


def log_once(code: str, message: str) -> None:
    """Note a gap met at run time, once per process."""
    _log_once("vonage", code, message)


def flow_gaps(flow) -> list[Gap]:
    """Queues, key timeouts over 10 s and finish keys other than ``#``."""
    found = []
    for node in flow.nodes.values():
        if node.kind == "transfer" and node.opts.get("to", ("", ""))[0] == "queue":
            found.append(Gap(node.name, "to", "Vonage has no queue: the caller waits in a "
                             "conversation named after it, and the reason and order do not "
                             "travel with it", "provider-no-queue"))
    for node in gathering_nodes(flow):
        timeout = node.opts.get("timeout", flow.timeout)
        if "dtmf" in node.opts.get("input", "dtmf") and timeout > MAX_DTMF_TIMEOUT:
            found.append(Gap(node.name, "timeout", f"Vonage waits at most {MAX_DTMF_TIMEOUT} s "
                             "for keys: the timeout is cut to that", "provider-timeout"))
        if node.opts.get("finish_on") == "*":
            found.append(Gap(node.name, "finish_on", "Vonage ends key input only on #: the "
                             "caller must wait for the timeout instead", "provider-finish-key"))
    return found
