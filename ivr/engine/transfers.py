"""Reaching a human: transfers, recordings, the dial result, and the reason
asked once before a caller is put through."""

from __future__ import annotations

from ivr.engine import actions as act
from ivr.flow.kinds import KINDS
from ivr.flow.model import REASON_NOT_STATED, Flow, Node


def _leads_to_human(flow: Flow, name: str, seen: frozenset) -> bool:
    node = flow.nodes[name]
    if name == flow.human or KINDS[node.kind].reaches_human:
        return True
    if node.kind != "menu" or name in seen:
        return False
    return all(_leads_to_human(flow, c.to, seen | {name}) for c in node.opts["choices"])


class _Transfers:
    """Methods of the engine's run, :class:`ivr.engine.step._Run`."""

    def _enter_transfer(self, node):
        self._say(node.say)
        kind, address = node.opts["to"]
        state = self.state
        self._cause(node.opts.get("cause") or state["cause"] or "policy", node.name, on_the_way=True)
        state["transferred_at"] = self.now_iso
        state["handoff"] = {"kind": kind, "target": address, "node": node.name}
        params = [("X-IVR-Reason", state["reason"] or REASON_NOT_STATED),
                  ("X-IVR-Call", state["call_id"])]
        order = state["vars"].get("order")
        if isinstance(order, dict) and order.get("number"):
            params.append(("X-IVR-Order", str(order["number"])))
        if kind == "queue":
            self.actions.append(act.Enqueue(address, params=tuple(params)))
        else:
            self.actions.append(act.Dial(
                act.DialTarget(kind, address), timeout=node.opts.get("timeout"),
                caller_id=node.opts.get("caller_id"), params=tuple(params)))
        state["outcome"] = "transferred"
        state["waiting"] = "dial"
        self._leave(node, "transfer", detail=f"{kind}:{address} cause={state['cause']}")

    def _enter_record(self, node):
        self._say(node.say)
        self.state["handoff"] = {"kind": "voicemail", "target": None, "node": node.name}
        self.state["waiting"] = "record"
        self.actions.append(act.Record(
            max_length=node.opts.get("max_length", 120),
            finish_on_key=node.opts.get("finish_on", "#")))

    def _on_recorded(self):
        node = self._current_node()
        self.state["vars"]["recording_url"] = self.event.get("url")
        self._leave(node, node.next or "hangup", input_=str(self.event.get("duration", "")))
        if node.next:
            self._run(node.next)
        else:
            self.actions.append(act.Hangup())
            self._end()

    def _on_dial_result(self):
        node = self._current_node()
        status = self.event.get("status", "failed")
        self._transfer_result(status)
        if status in ("completed", "answered"):
            self.actions.append(act.Hangup())
            return self._end()  # transferred, or failed if the fail-safe sent it
        self._cause("dial_failed", node.name, on_the_way=True)
        self._log(node.name, node.kind, status, node.opts.get("no_answer") or "hangup")
        if node.opts.get("no_answer"):
            # Still a call routed to a person, whatever it does next (a
            # callback, a message, or hanging up): remembered as unanswered.
            self.state.update(handoff=None, outcome=None, transferred_at=None, unanswered=node.name)
            return self._run(node.opts["no_answer"])
        self.actions.append(act.Hangup())
        self._end()

    def _transfer_result(self, status: str):
        """Keep what happened at the human's end: ``answered``,
        ``abandoned_in_queue`` (the caller hung up while waiting: still a
        transfer) or ``no_answer`` (busy, no answer, queue full or in
        error), with the seconds waited in the queue when the provider
        says."""
        if self.event.get("queue_result") == "hangup":
            result = "abandoned_in_queue"
        else:
            result = "answered" if status in ("completed", "answered") else "no_answer"
        self.state["transfer_result"] = result
        self.state["queue_seconds"] = self.event.get("queue_seconds")

    def _leads_to_human(self, name: str) -> bool:
        """Whether going to ``name`` is going to a person: the human, a
        transfer, callback or record node, or a menu whose every choice
        leads to one.  Such a menu (when to call back, which team) is a
        question on the way to a person, not a way back to self-service.
        Worked out once per flow version."""
        known = self.flow.to_human.get(name)
        if known is None:
            known = self.flow.to_human[name] = _leads_to_human(self.flow, name, frozenset())
        return known

    # -- asking the reason before a person ----------------------------------------
    def _toward_human(self, name: str) -> str:
        """Where a call on its way to a person (``name``) goes: first, and
        once per call, the flow's ``ask_reason`` question when the call has
        no reason yet, so the agent and the reports know why it called."""
        state = self.state
        ask = self.flow.ask_reason
        if not ask or state["reason"] is not None or state.get("reason_asked") or name == ask:
            return name
        state["reason_asked"] = name  # where the call goes on to if the caller skips
        return ask

    def _asking_reason(self, node: Node) -> bool:
        return (node.name == self.flow.ask_reason and bool(self.state.get("reason_asked"))
                and self.state["waiting"] == "gather")

    def _skip_reason(self, node: Node, shown):
        """Silence, a word no choice knows, or the escape again: the call
        goes on to the person it was on its way to, its cause and exit node
        unchanged, and its reason left unstated."""
        destination = self.state["reason_asked"]
        self._leave(node, destination, input_=self._masked(node, shown), detail="reason skipped")
        self._run(destination)
