"""The call-flow engine: ``step(flow, state, event) -> (state, actions, node_events)``.

Pure: no I/O, no clock reads (every event carries ``now``), no randomness.
Look-ups and text messages are requested as :class:`ivr.engine.actions.Lookup` and
:class:`ivr.engine.actions.SendSms` effects and answered by a later
``lookup_result`` or ``sms_result`` event, so the web server and ``ivr-sim``
run exactly the same code.  The state is plain JSON-serialisable data.

Events (dicts, ``type`` plus ``now``, a timezone-aware datetime):

=============  ==========================================================
``start``      ``call_id``, ``caller``, ``called``, optional ``lang``
``digits``     ``digits``: keys pressed
``speech``     ``text``: what the recogniser heard, optional ``confidence`` (0..1)
``silence``    the caller said nothing before the timeout
``lookup_result``  ``request_id``, ``status`` (found, many, not_found, error), ``data``, ``error``
``sms_result``     ``request_id``, ``status`` (sent, failed), ``error``, optional ``sid``
``dial_result``    ``status``: completed, answered, busy, no-answer, failed, canceled;
                   from a queue also ``queue_result`` (the provider's) and ``queue_seconds``
``recorded``   ``url``, ``duration``
``hangup``     the caller hung up (or the provider says the call ended)
``error``      the runner failed to serve the turn (``message``)
=============  ==========================================================
"""

from __future__ import annotations

from datetime import datetime

from ivr.engine import actions as act
from ivr.engine.failsafe import _FailSafe
from ivr.engine.gathering import GATHERING, _Gathering
from ivr.engine.moments import iso_text
from ivr.engine.names import CallNames
from ivr.engine.state import final_reason_answered, new_state
from ivr.engine.transfers import _Transfers
from ivr.flow import expressions
from ivr.flow.model import Flow, Node
from ivr.flow.prompts import PromptError
from ivr.phone import mask_numbers, textable

#: The longest text message a provider takes (Twilio: 1600 characters).
MAX_SMS_LENGTH = 1600


def step(flow: Flow, state: dict | None, event: dict):
    """Advance one call by one event.

    Returns ``(state, actions, node_events)``: the new state (the input is
    not modified), what the caller's side must do, and the nodes reached.
    Never raises for a problem inside the flow: an exception while running
    the flow routes the caller to a human and marks the call ``failed``.
    """
    run = _Run(flow, _copy(state), event)
    try:
        run.handle()
    except Exception as error:  # noqa: BLE001 - a caller is never dropped
        run = _Run(flow, _copy(state), event)
        run.fail_safe(error)
    return run.state, run.actions, run.events


def _copy(state: dict | None) -> dict | None:
    """A copy the engine may change: it replaces values and never changes
    one in place, except these two dicts (a deep copy costs a third of a
    turn)."""
    if state is None:
        return None
    return {**state, "vars": dict(state["vars"]), "visits": dict(state["visits"])}


class _Run(_FailSafe, _Transfers, _Gathering):
    def __init__(self, flow: Flow, state: dict | None, event: dict):
        self.flow, self.state, self.event = flow, state, event
        self.actions: list = []
        self.events: list = []
        self.now: datetime = event["now"]
        self.now_iso = iso_text(self.now)  # every node event and change is stamped with it
        self._names: CallNames | None = None

    # -- dispatch ----------------------------------------------------------------
    def handle(self):
        kind = self.event["type"]
        if kind == "start":
            return self._start()
        if self.state is None:
            if kind == "error":  # the runner failed on the first turn: keep its cause
                self._on_error()
            raise ValueError(f"event {kind!r} for a call that has not started")
        self.state["now"] = self.now_iso
        if self.state["ended"]:
            if kind not in ("hangup", "dial_result"):
                self.actions.append(act.Hangup())
            return
        handler = _ANY_TIME.get(kind) or WAITS.get(self.state["waiting"], {}).get(kind)
        if handler:
            return handler(self)
        if kind not in EVENT_TYPES:
            raise ValueError(f"unknown event type {kind!r}")
        self._refuse(kind)

    def _refuse(self, kind: str):
        """An event the state the call waits in does not accept."""
        if kind in INPUT_EVENTS:
            node = self.flow.nodes[self.state["node"]]
            raise ValueError(f"input arrived while node {node.name!r} waits for {self.state['waiting']!r}")
        raise ValueError(f"{kind} arrived while the call waits for {self.state['waiting']!r}")

    def _start(self):
        self.state = new_state(self.flow, self.event, self.now)
        self._run(self.flow.start)

    # -- moving through the graph -------------------------------------------------
    def _run(self, name: str | None):
        """Enter ``name`` and follow the flow until a node waits or the call ends."""
        flow = self.flow
        nodes, state = flow.nodes, self.state
        visits = state["visits"]
        while name is not None and not state["ended"]:
            steps = state["steps"] = state["steps"] + 1
            seen = visits[name] = visits.get(name, 0) + 1
            if steps > flow.max_steps or seen > flow.max_visits:
                name = self._guard(name)
            state["node"], state["waiting"], state["no_input"], state["no_match"] = name, None, 0, 0
            node = nodes[name]
            if node.reason or node.resolves:
                self._mark(node.reason, node.resolves)
            name = ENTER[node.kind](self, node)

    def _guard(self, name: str) -> str:
        """The loop guard, once ``name`` is past the step or visit limit
        (counted): go to the human."""
        state = self.state
        if state.get("guarded") is None:
            state["guarded"] = name
            self._log(name, self.flow.nodes[name].kind, None, "loop_guard",
                      detail=f"steps={state['steps']} visits={state['visits'][name]}")
            self._cause("loop_guard", name)
            state["visits"][self.flow.human] = 0
            return self.flow.human
        if state["steps"] > 2 * self.flow.max_steps:
            # Even the way to a human loops: only the fail-safe is left.
            raise RuntimeError(f"the flow still loops at {name!r} after the loop guard")
        return name

    def _leave(self, node: Node, branch: str | None, input_: str | None = None, detail=None):
        self._log(node.name, node.kind, input_, branch, detail)
        return branch

    def _log(self, name, kind, input_, branch, detail=None):
        state = self.state
        seq = state["seq"] = state["seq"] + 1
        self.events.append({
            "call_id": state["call_id"], "seq": seq,
            "flow": self.flow.name, "version": self.flow.version,
            "node": name, "kind": kind, "input": input_, "branch": branch,
            "detail": detail, "at": self.now_iso,
        })

    def _mark(self, reason: str | None, resolves: bool = False):
        state = self.state
        if reason:
            state["reason"] = reason  # the last mark wins
        if resolves:
            state["resolved"] = True
            # Kept per reason: a call is self-served only if its final
            # reason, not an earlier question, was answered.
            answered = state.get("answered") or []
            if state["reason"] not in answered:
                state["answered"] = [*answered, state["reason"]]

    def _cause(self, cause: str | None, node: str | None = None, on_the_way: bool = False):
        """Say why the call now goes to a human (None: it no longer does),
        and remember at which node (``exit_node``).  What happens
        ``on_the_way`` to the human (closed hours, a policy transfer, an
        unanswered dial) changes the cause but keeps the node where the
        call turned to a human: a caller who asked for an agent at a menu
        and found the line closed is lost at that menu."""
        state = self.state
        if cause is None:
            state["exit_node"] = None
        elif not on_the_way or state.get("exit_node") is None:
            state["exit_node"] = node
        state["cause"] = cause

    def _end(self, outcome: str | None = None):
        state = self.state
        state["ended"] = True
        state["waiting"] = None
        state["ended_at"] = self.now_iso
        if outcome:
            state["outcome"] = outcome
        elif state["outcome"] is None:
            state["outcome"] = "transferred" if state["handoff"] or state.get("unanswered") else (
                "self_served" if final_reason_answered(state) else "abandoned")

    # -- node kinds that do not wait -------------------------------------------------
    def _enter_say(self, node):
        self._say(node.say)
        return self._leave(node, node.next)

    def _enter_set(self, node):
        self._assign(node.opts["set"])
        return self._leave(node, node.next)

    def _enter_branch(self, node):
        context = self._context()
        for condition, to in node.opts["when"]:
            if expressions.evaluate(condition, context):
                return self._leave(node, to, detail=condition)
        return self._leave(node, node.opts["else"])

    def _enter_hours(self, node):
        calendar = self.flow.calendars[node.opts["calendar"]]
        if calendar.is_open(self.now):
            return self._leave(node, node.opts["open"])
        self._cause("closed", node.name, on_the_way=True)
        opening = calendar.next_opening(self.now)
        # Prompts say when agents are back without copying the calendar.
        self.state["vars"]["opens_at"] = iso_text(opening) if opening else None
        return self._leave(node, node.opts["closed"])

    def _enter_hangup(self, node):
        self._say(node.say)
        self._leave(node, "hangup")
        self.actions.append(act.Hangup())
        self._end()

    # -- node kinds that wait for the runner or the caller ---------------------------
    def _enter_lookup(self, node):
        self._say(node.say)
        spec_args = dict(node.opts.get("with", {}))
        if node.opts["find"] == "orders_by_phone":
            spec_args.setdefault("phone", "{{ caller }}")
        context = self._context()
        args = {k: expressions.value(v, context) for k, v in spec_args.items()}
        request_id = f"{self.state['call_id']}:{self.state['seq'] + 1}"
        self.state.update(waiting="lookup", request=request_id)
        self.actions.append(act.Lookup(request_id, node.opts["find"], args))

    def _on_lookup_result(self):
        node = self._current_node()
        if self.event.get("request_id") != self.state["request"]:
            return  # an answer to a request this call no longer waits for
        status = self.event.get("status")
        data = self.event.get("data") or {}
        if status in ("found", "many"):
            self.state["vars"].update(data)
        branch = {
            "found": node.opts["found"],
            "many": node.opts.get("many") or node.opts["not_found"],
            "not_found": node.opts["not_found"],
        }.get(status, node.opts["error"])
        self._cause({"not_found": "not_found", "found": None, "many": None}.get(status, "error"), node.name)
        detail = self.event.get("error") if branch == node.opts["error"] else None
        self._leave(node, branch, input_=status, detail=detail)
        self._run(branch)

    def _enter_sms(self, node):
        """Ask the runner to text the caller (or ``to``).  A number no text
        can reach, or a text that cannot be written, fails at once without
        asking the runner: the caller already has their answer, so this is
        the ``failed`` branch, not the fail-safe."""
        context = self._context()
        number = expressions.value(node.opts.get("to", "{{ caller }}"), context)
        region = self.state["country"] or self.state["lang"][-2:]
        to, why = textable(None if number is None else str(number), region)
        if to is None:
            return self._sms_done(node, "failed", why)
        try:
            body = self.flow.prompts.render_text(self.state["lang"], node.opts["text"], context)
        except PromptError as error:
            return self._sms_done(node, "failed", f"cannot write the text: {error}")
        if not body or len(body) > MAX_SMS_LENGTH:
            return self._sms_done(node, "failed", f"the text has {len(body)} characters; "
                                  f"expected 1 to {MAX_SMS_LENGTH}")
        request_id = f"{self.state['call_id']}:{self.state['seq'] + 1}"
        self.state.update(waiting="sms", request=request_id)
        self.actions.append(act.SendSms(request_id, to, body))

    def _on_sms_result(self):
        node = self._current_node()
        if self.event.get("request_id") != self.state["request"]:
            return  # an answer to a request this call no longer waits for
        self.state["waiting"] = None
        if self.event.get("status") == "sent":
            return self._run(self._sms_done(node, "sent", self.event.get("sid")))
        self._run(self._sms_done(node, "failed", self.event.get("error") or "no cause given"))

    def _sms_done(self, node, status: str, detail) -> str:
        """Log the text's fate (never its number) and say where the call goes."""
        if status == "sent":
            self.state["sms_sent"] = self.state.get("sms_sent", 0) + 1
            self._say(node.say)
            self._log(node.name, node.kind, "sent", "sent", detail)
            return node.next
        # A provider's error may quote the number it refused.
        self._log(node.name, node.kind, "failed", "failed", mask_numbers(str(detail)))
        return node.opts.get("failed") or node.next


    def _on_hangup(self):
        name = self.state["node"]
        # A caller on hold for a look-up or a text hung up at that node.
        if name and self.state["waiting"] in _HOLDS_AT_NODE:
            self._log(name, self.flow.nodes[name].kind, None, "hangup", self.event.get("detail"))
        self._end()

    def _on_error(self):
        raise RuntimeError(self.event.get("message") or "the runner reported an error")


    # -- helpers -----------------------------------------------------------------
    def _current_node(self) -> Node:
        """The node the call waits at."""
        return self.flow.nodes[self.state["node"]]

    def _masked(self, node: Node, shown):
        if shown and node.opts.get("sensitive"):
            return "*" * len(shown)
        return shown

    def _assign(self, assignments):
        # Its own names: what one assignment sets, the next one reads.
        context = CallNames(self.state, self.now, self.flow.timezone)
        for variable, spec in assignments:
            result = expressions.value(spec, context)
            if variable == "lang":
                if result not in self.flow.languages:
                    raise ValueError(f"language {result!r} is not one of the flow's languages")
                self.state["lang"] = result
            else:
                self.state["vars"][variable] = result
            context[variable] = result

    def _context(self) -> CallNames:
        """What prompts and expressions read, as the call's state says now."""
        names = self._names
        if names is None or names.state is not self.state:
            names = self._names = CallNames(self.state, self.now, self.flow.timezone)
        return names

    def _say(self, prompts):
        if not prompts:
            return
        lang = self.state["lang"]
        context = None
        say = self.actions.append
        for item in prompts:
            if item.kind == "prompt":
                context = context or self._context()
                ssml = self.flow.prompts.render(lang, item.value, context)
                say(act.Say(ssml, self.flow.voices.get(lang), lang))
            elif item.kind == "play":
                say(act.Play(item.value))
            else:
                say(act.Pause(item.value))

    def _pop_prompts(self):
        """Take the prompts said since the last thing that waits, so they can
        play inside the next Gather and callers may barge in."""
        taken = []
        while self.actions and isinstance(self.actions[-1], (act.Say, act.Play, act.Pause)):
            taken.insert(0, self.actions.pop())
        return taken


# --- the machine, declared -----------------------------------------------------------

#: How the engine enters a node of each kind (``ivr.flow.kinds``): the node
#: to go on to, or None when the node waits or the call ended.
ENTER = {
    "say": _Run._enter_say, "menu": _Run._enter_menu, "input": _Run._enter_input,
    "set": _Run._enter_set, "branch": _Run._enter_branch, "lookup": _Run._enter_lookup,
    "sms": _Run._enter_sms, "hours": _Run._enter_hours, "transfer": _Run._enter_transfer,
    "record": _Run._enter_record, "callback": _Run._enter_callback, "hangup": _Run._enter_hangup,
}

#: What the caller does while the engine listens.
INPUT_EVENTS = ("digits", "speech", "silence")

_INPUT = {kind: _Run._on_input for kind in INPUT_EVENTS}

#: Each state a call waits in (``ivr.flow.kinds`` declares which kind
#: waits in which) and the events it accepts, with their handlers.  Any
#: other event is refused (:meth:`_Run._refuse`).
WAITS = {
    "gather": _INPUT, "confirm": _INPUT, "confirm_choice": _INPUT,
    "callback_confirm": _INPUT, "callback_number": _INPUT,
    "lookup": {"lookup_result": _Run._on_lookup_result},
    "sms": {"sms_result": _Run._on_sms_result},
    "dial": {"dial_result": _Run._on_dial_result},
    "record": {"recorded": _Run._on_recorded},
}

#: Events accepted whatever the call waits for.
_ANY_TIME = {"hangup": _Run._on_hangup, "error": _Run._on_error}

#: Every event type but ``start``, which begins a call.
EVENT_TYPES = frozenset(_ANY_TIME).union(*WAITS.values())

#: Waits at which a hang-up is the caller's at that node: listening, or
#: on hold for a look-up or a text.
_HOLDS_AT_NODE = GATHERING + ("lookup", "sms")
