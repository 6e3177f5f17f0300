"""The fail-safe: whatever breaks during a turn, the caller hears an apology
in the flow's voice and is put through to a human."""

from __future__ import annotations

from ivr.engine import actions as act
from ivr.engine.state import new_state
from ivr.flow.model import Flow, Node


def _failsafe_transfer(flow: Flow) -> Node | None:
    for name in (flow.human, flow.escape.to):
        if name in flow.nodes and flow.nodes[name].kind == "transfer":
            return flow.nodes[name]
    return next((n for n in flow.nodes.values() if n.kind == "transfer"), None)


class _FailSafe:
    """Methods of the engine's run, :class:`ivr.engine.step._Run`."""

    # -- the fail-safe -------------------------------------------------------------
    def fail_safe(self, error: Exception):
        """Apologise and put the caller through to a human; the call is ``failed``."""
        if self.state is None:
            self.state = new_state(self.flow, self.event, self.now)
        state = self.state
        lang = state["lang"]
        self._log(state["node"] or self.flow.start, "error", None, "failsafe",
                  detail=f"{type(error).__name__}: {error}")
        self._cause("error")
        state["exit_node"] = state["node"] or self.flow.start  # where it broke
        state.update(outcome="failed", waiting="dial", transferred_at=self.now_iso)
        # Rendered when the flow loaded: the templates may be what failed.
        apology = self.flow.server_says.get(lang, {}).get("failsafe_apology")
        if apology:
            self.actions.append(act.Say(apology, voice=self.flow.voices.get(lang), language=lang))
        human = _failsafe_transfer(self.flow)
        if human is None:
            self.actions.append(act.Hangup())
            self._end("failed")
            return
        kind, address = human.opts["to"]
        state["handoff"] = {"kind": kind, "target": address, "node": human.name}
        state["node"] = human.name
        if kind == "queue":
            self.actions.append(act.Enqueue(address))
        else:
            self.actions.append(act.Dial(act.DialTarget(kind, address)))
