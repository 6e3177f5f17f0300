"""Scenario steps as another provider than Twilio plays them.

Scenario files are written once, and their ``twiml:`` expectations in
TwiML's words (``twiml: "<Enqueue"``).  Played through another provider's
fake, such an expectation is looked for in the provider's own document,
then in the TwiML of the actions the fake read from it
(:func:`twiml_equivalent`): the same verbs in Twilio's words.

Where the provider has a gap for the flow (its dialect's
:meth:`ivr.providers.dialect.Dialect.gaps`), the steps that need what it
lacks cannot play as written: :class:`ProviderGaps` names them, each with
the gap's code, and nothing else is left out.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ivr.providers.dialect import Gap
from ivr.providers.registry import provider as registered
from ivr.providers.twilio.render import render_twiml

#: For each gap code: the ``twiml:`` texts and the step inputs it keeps
#: from playing as written.
NEEDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "provider-no-queue": (("<Enqueue",), ()),
    "provider-no-record": (("<Record",), ("record",)),
}


def twiml_equivalent(actions: Iterable) -> str:
    """The TwiML of each of ``actions`` (what a fake read from its
    provider's documents), one by one; an action TwiML cannot hold alone
    is left out."""
    parts = []
    for action in actions:
        try:
            parts.append(render_twiml([action], "").decode("utf-8"))
        except ValueError:
            continue
    return "".join(parts)


@dataclass(frozen=True)
class ProviderGaps:
    """The gaps of one provider for one flow that keep steps from playing."""

    provider: str
    gaps: tuple[Gap, ...]

    @classmethod
    def of(cls, provider_name: str, flow) -> ProviderGaps:
        """The gaps of ``provider_name``'s dialect for ``flow`` that
        :data:`NEEDS` names."""
        found = registered(provider_name).dialect().gaps(flow)
        return cls(provider_name, tuple(g for g in found if g.code in NEEDS))

    def blocking_input(self, kind: str, reached: Iterable[str]) -> str | None:
        """Why an input of ``kind`` cannot play, when a gap at a node the
        call ``reached`` needs it; else None."""
        return self._why(reached, lambda gap: kind in NEEDS[gap.code][1])

    def blocking_expectation(self, text: str, path: Iterable[str]) -> str | None:
        """Why the ``twiml:`` text ``text`` cannot be expected of a turn
        through ``path``, when a gap at one of its nodes lacks it; else None."""
        return self._why(path, lambda gap: any(t in text for t in NEEDS[gap.code][0]))

    def _why(self, nodes: Iterable[str], needed) -> str | None:
        nodes = set(nodes)
        for gap in self.gaps:
            if gap.node in nodes and needed(gap):
                return f"{self.provider} cannot play it [{gap.code}]"
        return None
