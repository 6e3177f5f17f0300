"""What every provider's renderer checks of the engine's actions."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from ivr.engine.actions import TERMINAL, Action


def reachable(actions: Iterable[Action]) -> Iterator[Action]:
    """``actions`` in order; raises ``ValueError`` for one after a terminal
    action (a gather, a transfer, a recording, a redirect, a hang-up), which
    the caller would never reach."""
    ended_by = None
    for action in actions:
        if ended_by is not None:
            raise ValueError(f"{type(action).__name__} follows {type(ended_by).__name__} "
                             "and would never be reached")
        yield action
        if isinstance(action, TERMINAL):
            ended_by = action
