"""Run-time notes of a provider's gaps: where a dialect uses the nearest
equivalent of what a flow asks, it says so in the log once per process
(every call would say the same)."""

from __future__ import annotations

from twisted.logger import Logger

_log = Logger(namespace="ivr.providers")
_said: set[tuple[str, str]] = set()


def log_once(provider: str, code: str, message: str) -> bool:
    """Log ``message`` for ``provider``'s gap ``code`` unless already logged;
    whether it was logged now."""
    if (provider, code) in _said:
        return False
    _said.add((provider, code))
    _log.info("{provider}: {message} [{code}]", provider=provider, message=message, code=code)
    return True


def gathering_nodes(flow):
    """The flow's nodes that listen for keys or speech (menus and inputs)."""
    return [node for node in flow.nodes.values() if node.kind in ("menu", "input")]
