"""What a flow may ask that jambonz cannot do as asked: the gaps lint
prints for jambonz, and their run-time note (logged once)."""

from __future__ import annotations

from ivr.providers.dialect import Gap
from ivr.providers.gap_log import log_once as _log_once


def log_once(code: str, message: str) -> None:
    """Note a gap met at run time, once per process."""
    _log_once("jambonz", code, message)


def flow_gaps(flow) -> list[Gap]:
    """Voicemail: jambonz streams audio (``listen``, to a websocket) or
    records by SIPREC, but keeps no message to fetch by URL."""
    found = []
    for node in flow.nodes.values():
        if node.kind == "record":
            found.append(Gap(node.name, None, "jambonz keeps no voicemail: the caller hears the "
                             "prompt, no message is recorded and the flow goes on to "
                             f"{node.next or 'the end'}", "provider-no-record"))
    return found
