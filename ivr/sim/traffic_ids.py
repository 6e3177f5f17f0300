"""The traffic's call ids in each provider's shape.

The plan draws one id per call from its seed, in Twilio's shape
(``CA`` and 32 hex digits: 128 seeded bits), whichever provider plays
the calls, so the same seed plans the same calls for every provider.
Played through another provider, each call's id is those same 128 bits
written as that provider writes its call ids: the same seed gives the
same ids again, and two providers' runs of one seed line up call for
call.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace

from ivr.providers.registry import providers as registered_providers
from ivr.sim.traffic_behaviours import TrafficError
from ivr.sim.traffic_plan import PlannedCall

#: The provider whose shape the plan's ids have.
PLAN_PROVIDER = "twilio"


def _bits(plan_id: str) -> int:
    """The 128 seeded bits of a plan's id (``CA`` and 32 hex digits)."""
    return int(plan_id[2:], 16)


def _uuid4(plan_id: str) -> str:
    """A random (version 4) UUID, as SignalWire, Plivo and jambonz write
    their call ids: the bits with the version and variant set."""
    return str(uuid.UUID(int=_bits(plan_id), version=4))


def _telnyx(plan_id: str) -> str:
    """``v3:`` and 54 base64url characters (40 bytes), as Telnyx writes a
    ``call_control_id``: the bits, then 24 bytes drawn from them."""
    seeded = _bits(plan_id).to_bytes(16, "big")
    more = hashlib.sha256(seeded).digest()[:24]
    return "v3:" + base64.urlsafe_b64encode(seeded + more).decode("ascii").rstrip("=")


#: How each provider writes a call id, from the plan's id.
SHAPES: dict[str, Callable[[str], str]] = {
    "twilio": lambda plan_id: plan_id,
    "signalwire": _uuid4,
    "telnyx": _telnyx,
    "plivo": _uuid4,
    "vonage": lambda plan_id: "CON-" + _uuid4(plan_id),
    "jambonz": _uuid4,
}


def every_shape(plan_id: str) -> list[str]:
    """The id of the planned call ``plan_id`` as each provider writes it."""
    return [shape(plan_id) for shape in SHAPES.values()]


def check_providers(providers: Sequence[str]) -> None:
    """Refuse, with :class:`TrafficError`, no provider at all, a provider
    the registry does not know, or one whose ids have no shape here."""
    if not providers:
        raise TrafficError("no provider to play the calls")
    known = registered_providers()
    for name in providers:
        if name not in known:
            raise TrafficError(f"unknown provider {name!r}; known: {', '.join(known)}")
        if name not in SHAPES:
            raise TrafficError(f"the traffic generator does not know how {name!r} writes its "
                               f"call ids; known: {', '.join(SHAPES)}")


def played_by(plan: list[PlannedCall], providers: Sequence[str]) -> list[PlannedCall]:
    """``plan`` played by ``providers`` in turn (the first call by the
    first, the next by the second…), each call with its provider's name
    and an id of its provider's shape; nothing else changes (see
    :func:`check_providers` for what is refused)."""
    check_providers(providers)
    return [replace(call, call_id=SHAPES[name](call.call_id), provider=name)
            for call, name in zip(plan, _in_turn(providers, len(plan)))]


def _in_turn(providers: Sequence[str], count: int) -> list[str]:
    return [providers[index % len(providers)] for index in range(count)]
