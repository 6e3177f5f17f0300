"""The call-flow engine: ``step(flow, state, event) -> (state, actions, node_events)``.

Pure: no I/O, no clock reads (every event carries ``now``), no randomness.
Look-ups and text messages are requested as :class:`ivr.actions.Lookup` and
:class:`ivr.actions.SendSms` effects and answered by a later
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

import copy
import re
from datetime import datetime
from zoneinfo import ZoneInfo

from ivr.engine import actions as act
from ivr.flow import expressions
from ivr.flow import speech as hearing
from ivr.flow.matching import normalise
from ivr.flow.model import REASON_NOT_STATED, Flow, Node, PromptItem, Retry
from ivr.phone import country_of, is_withheld, mask_numbers, textable
from ivr.flow.prompts import PromptError

#: The longest text message a provider takes (Twilio: 1600 characters).
MAX_SMS_LENGTH = 1600

#: What a call waits for while it listens to the caller.
GATHERING = ("gather", "confirm", "callback_confirm", "callback_number", "confirm_choice")
#: Asked when the matcher is not sure which choice a caller meant.
CONFIRM_CHOICE = (PromptItem("prompt", "confirm_choice"),)
#: Waits answered with yes or no.
_YES_NO_WAITS = ("confirm", "callback_confirm", "confirm_choice")
_HUMAN_KINDS = ("transfer", "callback", "record")


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


def call_summary(state: dict) -> dict:
    """The call's one-row record: reason, outcome and cause, as the log keeps them."""
    return {
        "call_id": state["call_id"], "flow": state["flow"], "version": state["version"],
        "started_at": state["started_at"], "ended_at": state.get("ended_at"),
        "caller": state["caller"], "country": state["country"], "lang": state["lang"],
        "reason": state["reason"] or REASON_NOT_STATED,
        "outcome": state["outcome"],
        # A cause says why a human was needed; other outcomes have none.
        "cause": state["cause"] if state["outcome"] in ("transferred", "failed") else None,
        "confirmed": state["confirmed"], "handoff": state["handoff"],
        "steps": state["steps"], "exit_node": exit_node(state),
        "sms_sent": state.get("sms_sent", 0),
        "ivr_seconds": ivr_seconds(state),
        "transfer_result": state.get("transfer_result"),
        "queue_seconds": state.get("queue_seconds"),
    }


def callback_request(state: dict) -> dict | None:
    """The callback the caller asked for, once the number is kept: the
    number (their own E.164 number, or the digits typed), ``reason``,
    ``order_number`` (None when no order is known), ``slot`` (None when the
    node has none), ``lang``, ``node`` and ``requested_at`` (the flow's
    local time).  None when the call asked for none."""
    return state.get("callback")


def final_reason_answered(state: dict) -> bool:
    """Whether a ``resolves`` node answered the reason the call is counted
    under (the last one marked).  A state saved before answers were kept
    per reason only knows that something was answered."""
    if "answered" not in state:
        return bool(state.get("resolved"))
    return state["reason"] in state["answered"]


def exit_node(state: dict) -> str | None:
    """Where an ended call left the flow: the node it hung up at or ended
    on, or, when a human took it, the node where it first turned to one
    (a menu's escape, an exhausted retry, an order not found)."""
    if state["outcome"] in ("transferred", "failed"):
        return (state.get("exit_node") or (state["handoff"] or {}).get("node")
                or state["node"])
    return state["node"] if state["ended"] else None


def ivr_seconds(state: dict) -> float | None:
    """Seconds an ended call spent with the IVR: until it was put through
    to a live human, else until it ended."""
    left = state.get("transferred_at") or (state["ended"] and state.get("ended_at"))
    if not left:
        return None
    seconds = (datetime.fromisoformat(left) - datetime.fromisoformat(state["started_at"])).total_seconds()
    return max(0.0, seconds)


class _Run:
    def __init__(self, flow: Flow, state: dict | None, event: dict):
        self.flow, self.state, self.event = flow, state, event
        self.actions: list = []
        self.events: list = []
        self.now: datetime = event["now"]
        self.now_iso = self.now.isoformat()  # every node event and change is stamped with it

    # -- dispatch ----------------------------------------------------------------
    def handle(self):
        kind = self.event["type"]
        if kind == "start":
            return self._start()
        if self.state is None:
            raise ValueError(f"event {kind!r} for a call that has not started")
        self.state["now"] = self.now_iso
        if self.state["ended"]:
            if kind not in ("hangup", "dial_result"):
                self.actions.append(act.Hangup())
            return
        handler = {
            "hangup": self._on_hangup, "error": self._on_error,
            "lookup_result": self._on_lookup_result, "dial_result": self._on_dial_result,
            "sms_result": self._on_sms_result,
            "recorded": self._on_recorded,
        }.get(kind)
        if handler:
            return handler()
        if kind in ("digits", "speech", "silence"):
            return self._on_input()
        raise ValueError(f"unknown event type {kind!r}")

    def _start(self):
        self.state = new_state(self.flow, self.event, self.now)
        self._run(self.flow.start)

    # -- moving through the graph -------------------------------------------------
    def _run(self, name: str | None):
        """Enter ``name`` and follow the flow until a node waits or the call ends."""
        while name is not None and not self.state["ended"]:
            name = self._guard(name)
            self.state.update(node=name, waiting=None, no_input=0, no_match=0)
            node = self.flow.nodes[name]
            self._mark(node.reason, node.resolves)
            name = getattr(self, "_enter_" + node.kind)(node)

    def _guard(self, name: str) -> str:
        """The loop guard: past the step or visit limit, go to the human."""
        state = self.state
        state["steps"] += 1
        state["visits"][name] = state["visits"].get(name, 0) + 1
        over = (state["steps"] > self.flow.max_steps
                or state["visits"][name] > self.flow.max_visits)
        if over and state.get("guarded") and state["steps"] > 2 * self.flow.max_steps:
            # Even the way to a human loops: only the fail-safe is left.
            raise RuntimeError(f"the flow still loops at {name!r} after the loop guard")
        if over and state.get("guarded") is None:
            state["guarded"] = name
            self._log(name, self.flow.nodes[name].kind, None, "loop_guard",
                      detail=f"steps={state['steps']} visits={state['visits'][name]}")
            self._cause("loop_guard", name)
            state["visits"][self.flow.human] = 0
            return self.flow.human
        return name

    def _leave(self, node: Node, branch: str | None, input_: str | None = None, detail=None):
        self._log(node.name, node.kind, input_, branch, detail)
        return branch

    def _log(self, name, kind, input_, branch, detail=None):
        self.state["seq"] += 1
        self.events.append({
            "call_id": self.state["call_id"], "seq": self.state["seq"],
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
        self.state["vars"]["opens_at"] = opening.isoformat() if opening else None
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
        node = self._waiting_node("lookup")
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
        node = self._waiting_node("sms")
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

    def _enter_menu(self, node):
        self._gather(node)

    def _enter_input(self, node):
        self._gather(node)

    def _enter_callback(self, node):
        if is_withheld(self.state["caller"]) or not self.state["caller"].startswith("+"):
            return self._ask_callback_number(node)  # no number to read back
        self._gather(node, waiting="callback_confirm", prompts=node.say, yes_no=True)

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
        node = self._waiting_node("record")
        self.state["vars"]["recording_url"] = self.event.get("url")
        self._leave(node, node.next or "hangup", input_=str(self.event.get("duration", "")))
        if node.next:
            self._run(node.next)
        else:
            self.actions.append(act.Hangup())
            self._end()

    def _on_dial_result(self):
        node = self._waiting_node("dial")
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

    def _on_hangup(self):
        name = self.state["node"]
        # A caller on hold for a look-up or a text hung up at that node.
        if name and self.state["waiting"] in GATHERING + ("lookup", "sms"):
            self._log(name, self.flow.nodes[name].kind, None, "hangup", self.event.get("detail"))
        self._end()

    def _on_error(self):
        raise RuntimeError(self.event.get("message") or "the runner reported an error")

    # -- gathering input ---------------------------------------------------------
    def _gather(self, node, waiting="gather", prompts=None, yes_no=False, apology=()):
        state = self.state
        state["waiting"] = waiting
        attempt = 1 + state["no_input"] + state["no_match"]
        self._say(apology)
        self._say(prompts if prompts is not None else node.prompt_for_attempt(attempt))
        lang = state["lang"]
        hints = list(self.flow.escape.words.get(lang, ()))
        if waiting == "gather" and node.kind == "menu":
            for choice in node.opts["choices"]:
                hints.extend(choice.words.get(lang, ()))
            keys = [c.key for c in node.opts["choices"] if c.key]
            gather = dict(input=node.opts.get("input", "dtmf speech"),
                          num_digits=1 if keys else None, finish_on_key="")
        elif yes_no:
            lexicon = self.flow.yes_no[lang].lexicon
            hints.extend(lexicon.yes + lexicon.no)
            gather = dict(input="dtmf speech", num_digits=1, finish_on_key="")
        else:
            low, high = node.opts.get("min", 1), node.opts.get("max", 20)
            if waiting == "callback_number":
                low, high = 9, 15
            # Digits by key; by voice too when the flow lets callers ask for
            # a human here (the escape words) or say the number.
            gather = dict(input="dtmf speech" if hints else "dtmf",
                          num_digits=high if low == high else None,
                          finish_on_key=node.opts.get("finish_on", "#"))
        self.actions.append(act.Gather(
            prompts=tuple(self._pop_prompts()), timeout=node.opts.get("timeout", self.flow.timeout),
            speech_timeout="auto" if "speech" in gather["input"] else None,
            hints=tuple(dict.fromkeys(hints)) if "speech" in gather["input"] else (),
            language=lang, **gather))

    def _on_input(self):
        state = self.state
        node = self.flow.nodes[state["node"]]
        if state["waiting"] not in GATHERING:
            raise ValueError(f"input arrived while node {node.name!r} waits for {state['waiting']!r}")
        kind = self.event["type"]
        digits = (self.event.get("digits") or "") if kind == "digits" else ""
        said = (self.event.get("text") or "") if kind == "speech" else ""
        speech = normalise(said)
        state["digits"], state["speech"] = digits, speech
        shown = digits or speech or None
        if not digits and not speech:
            return self._retry(node, "no_input", None)
        heard = self._hear(node, said) if speech else None
        if digits in self.flow.escape.keys or (
                heard and heard.verdict == "take" and heard.candidate == hearing.ESCAPE):
            if self._asking_reason(node):
                return self._skip_reason(node, shown)  # asks for a person again: no reason given
            self._leave(node, "escape", input_=self._masked(node, shown),
                        detail=heard.detail if heard else None)
            self._cause("caller_asked", node.name)
            return self._run(self._toward_human(self.flow.escape.to))
        handler = {
            "gather": self._menu_input if node.kind == "menu" else self._digits_input,
            "confirm": self._confirm_input,
            "callback_confirm": self._callback_confirm_input,
            "callback_number": self._callback_number_input,
            "confirm_choice": self._confirm_choice_input,
        }[state["waiting"]]
        handler(node, digits, speech if heard is None else heard)

    def _hear(self, node, said: str) -> hearing.Decision:
        """What an utterance means where the call waits: a menu's choices,
        yes or no, or (at an input of digits) only a request for a human."""
        lang, waiting = self.state["lang"], self.state["waiting"]
        confidence = self.event.get("confidence")
        if waiting == "gather" and node.kind == "menu":
            return node.opts["matchers"][lang].decide(said, node.opts["speech"], confidence)
        matcher = self.flow.yes_no[lang] if waiting in _YES_NO_WAITS else self.flow.escape_only[lang]
        return matcher.decide(said, self.flow.speech, confidence)

    def _menu_input(self, node, digits, heard):
        if digits:
            choice = next((c for c in node.opts["choices"] if c.key == digits), None)
            if choice is None:
                return self._retry(node, "no_match", digits)
            return self._take_choice(node, choice, digits)
        if heard.verdict == "no_match":
            return self._retry(node, "no_match", self._masked(node, self.state["speech"]),
                               detail=heard.detail)
        if heard.verdict == "confirm":
            return self._confirm_choice(node, heard)
        self._take_choice(node, node.opts["choices"][heard.candidate],
                          self._masked(node, self.state["speech"]),
                          f"choice={_candidate_key(node, heard.candidate)} {heard.detail}")

    def _confirm_choice(self, node, heard):
        """Not sure enough: name the choice and ask the caller to confirm it."""
        lang = self.state["lang"]
        if heard.candidate == hearing.ESCAPE:
            label, words = self.flow.escape.label, self.flow.escape.words
        else:
            choice = node.opts["choices"][heard.candidate]
            label, words = choice.label, choice.words
        self.state["pending"] = {
            "choice": heard.candidate, "label": label.get(lang),
            "word": next(iter(words.get(lang, ())), None),
        }
        self._leave(node, "confirm_choice", input_=self._masked(node, self.state["speech"]),
                    detail=f"choice={_candidate_key(node, heard.candidate)} {heard.detail}")
        self._gather(node, waiting="confirm_choice", prompts=CONFIRM_CHOICE, yes_no=True)

    def _confirm_choice_input(self, node, digits, heard):
        answer = _yes_no(digits, heard)
        if answer is None:
            return self._retry(node, "no_match", digits or self._masked(node, self.state["speech"]),
                               waiting="confirm_choice")
        pending = self.state["pending"]
        self.state["pending"] = None
        if not answer:
            # Re-ask the menu without an apology, as one more attempt.
            return self._retry(node, "no_match", "no", waiting="gather", apologise=False)
        if pending["choice"] == hearing.ESCAPE:
            if self._asking_reason(node):
                return self._skip_reason(node, "yes")
            self._leave(node, "escape", input_="yes")
            self._cause("caller_asked", node.name)
            return self._run(self._toward_human(self.flow.escape.to))
        self._take_choice(node, node.opts["choices"][pending["choice"]], "yes")

    def _take_choice(self, node, choice, shown, detail=None):
        self._assign(choice.assign)
        self._mark(choice.reason)
        if choice.confirms:
            self.state["confirmed"] = True
        # Choosing a person is asking for one, unless something (closed
        # hours, an order not found) already explains why the call is here.
        asks_human = self._leads_to_human(choice.to)
        self._cause((self.state["cause"] or "caller_asked") if asks_human else None, node.name,
                    on_the_way=bool(self.state["cause"]))
        self._leave(node, choice.to, input_=shown, detail=detail)
        self._run(self._toward_human(choice.to) if asks_human else choice.to)

    def _digits_input(self, node, digits, heard):
        entered = digits or self.flow.escape_only[self.state["lang"]].lexicon.digits_in(
            self.state["speech"])
        speech = self.state["speech"]
        low, high = node.opts.get("min", 1), node.opts.get("max", 20)
        valid = low <= len(entered) <= high and (
            "pattern" not in node.opts or re.fullmatch(node.opts["pattern"], entered))
        if not valid:
            return self._retry(node, "no_match", digits or speech)
        self.state["vars"][node.opts["save_as"]] = entered
        self._cause(None)
        if "confirm" in node.opts:
            self._leave(node, "confirm", input_=self._masked(node, entered))
            return self._gather(node, waiting="confirm", prompts=node.opts["confirm"], yes_no=True)
        self._leave(node, node.next, input_=self._masked(node, entered))
        self._run(node.next)

    def _confirm_input(self, node, digits, heard):
        answer = _yes_no(digits, heard)
        if answer is None:
            return self._retry(node, "no_match", digits or self.state["speech"], waiting="confirm")
        if answer:
            self._leave(node, node.next, input_="yes")
            return self._run(node.next)
        self.state["vars"].pop(node.opts["save_as"], None)
        # Re-ask without an apology: a wrong entry is not a misunderstanding,
        # but it counts as an attempt so a caller cannot loop for ever.
        self._retry(node, "no_match", "no", waiting="gather", apologise=False)

    def _callback_confirm_input(self, node, digits, heard):
        answer = _yes_no(digits, heard)
        if answer is None:
            return self._retry(node, "no_match", digits or self.state["speech"],
                               waiting="callback_confirm")
        if answer:
            return self._callback_done(node, self.state["caller"], "yes")
        self._leave(node, "other_number", input_="no")
        self._ask_callback_number(node)

    def _ask_callback_number(self, node):
        self._gather(node, waiting="callback_number", prompts=node.opts["ask_number"])

    def _callback_number_input(self, node, digits, heard):
        entered = digits or self.flow.escape_only[self.state["lang"]].lexicon.digits_in(
            self.state["speech"])
        if not 9 <= len(entered) <= 15:
            return self._retry(node, "no_match", entered, waiting="callback_number")
        self._callback_done(node, entered, entered)

    def _callback_done(self, node, number, shown):
        state = self.state
        state["vars"][node.opts["save_as"]] = number
        slot = self._slot(node)
        state["handoff"] = {"kind": "callback", "target": number, "node": node.name}
        order = state["vars"].get("order")
        state["callback"] = {
            "number": number, "reason": state["reason"] or REASON_NOT_STATED,
            "order_number": str(order["number"]) if isinstance(order, dict) and order.get("number") else None,
            "slot": slot, "lang": state["lang"], "node": node.name,
            "requested_at": self.now.astimezone(ZoneInfo(self.flow.timezone)).isoformat(),
        }
        # Called back rather than put through: a cause of its own, whatever
        # (closed hours, a menu) led here; the exit node stays where the
        # caller turned to a human.
        self._cause("callback", node.name, on_the_way=True)
        self._leave(node, node.next, input_="*" * len(shown) if shown not in ("yes",) else shown,
                    detail=None if slot is None else f"slot={slot}")
        self._run(node.next)

    def _slot(self, node) -> str | None:
        """The preferred time to call back: the node's ``slot``, computed
        now (a menu before the node usually set it); None when not given."""
        if "slot" not in node.opts:
            return None
        value = expressions.value(node.opts["slot"], self._context())
        return None if value is None or value == "" else str(value)

    def _leads_to_human(self, name: str, seen: frozenset = frozenset()) -> bool:
        """Whether going to ``name`` is going to a person: the human, a
        transfer, callback or record node, or a menu whose every choice
        leads to one.  Such a menu (when to call back, which team) is a
        question on the way to a person, not a way back to self-service."""
        node = self.flow.nodes[name]
        if name == self.flow.human or node.kind in _HUMAN_KINDS:
            return True
        if node.kind != "menu" or name in seen:
            return False
        return all(self._leads_to_human(c.to, seen | {name}) for c in node.opts["choices"])

    def _retry(self, node, counter: str, shown, waiting=None, apologise=True, detail=None):
        """Count a no-input or no-match; re-prompt, or leave when exhausted."""
        state = self.state
        if self._asking_reason(node):
            return self._skip_reason(node, shown)  # asked once: silence or no match skips it
        spec: Retry = node.opts[counter]
        state[counter] += 1
        waiting = waiting or state["waiting"]
        if state[counter] > spec.max:
            destination = spec.to or self.flow.human
            if not state.get("unanswered"):  # else the unanswered transfer stays the cause
                self._cause(counter, node.name)
            self._leave(node, destination, input_=self._masked(node, shown),
                        detail=f"{counter} exhausted")
            if self._leads_to_human(destination):
                destination = self._toward_human(destination)
            return self._run(destination)
        self._leave(node, counter, input_=self._masked(node, shown), detail=detail)
        state["steps"] += 1
        if state["steps"] > self.flow.max_steps:
            self._cause("loop_guard", node.name)
            self._log(node.name, node.kind, None, "loop_guard", detail=f"steps={state['steps']}")
            return self._run(self.flow.human)
        apology = spec.say[min(state[counter], len(spec.say)) - 1] if spec.say and apologise else ()
        prompts = {
            "gather": None, "confirm": node.opts.get("confirm"),
            "callback_confirm": node.say, "callback_number": node.opts.get("ask_number"),
            "confirm_choice": CONFIRM_CHOICE,
        }[waiting]
        self._gather(node, waiting=waiting, prompts=prompts, apology=apology,
                     yes_no=waiting in _YES_NO_WAITS)

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

    # -- helpers -----------------------------------------------------------------
    def _waiting_node(self, waiting: str) -> Node:
        if self.state["waiting"] != waiting:
            raise ValueError(f"{self.event['type']} arrived while the call waits for "
                             f"{self.state['waiting']!r}")
        return self.flow.nodes[self.state["node"]]

    def _masked(self, node: Node, shown):
        if shown and node.opts.get("sensitive"):
            return "*" * len(shown)
        return shown

    def _assign(self, assignments):
        context = self._context()
        for variable, spec in assignments:
            result = expressions.value(spec, context)
            if variable == "lang":
                if result not in self.flow.languages:
                    raise ValueError(f"language {result!r} is not one of the flow's languages")
                self.state["lang"] = result
            else:
                self.state["vars"][variable] = result
            context[variable] = result

    def _context(self) -> dict:
        state = self.state
        local = self.now.astimezone(ZoneInfo(self.flow.timezone))
        return {
            **state["vars"],
            "caller": state["caller"], "called": state["called"], "call_id": state["call_id"],
            "country": state["country"], "lang": state["lang"], "now": local,
            "today": local.date(), "hour": local.hour, "weekday": local.isoweekday(),
            "attempt": 1 + state["no_input"] + state["no_match"],
            "digits": state["digits"], "speech": state["speech"], "reason": state["reason"],
            "opens_at": state["vars"].get("opens_at"),
            "choice_label": (state.get("pending") or {}).get("label"),
            "choice_word": (state.get("pending") or {}).get("word"),
        }

    def _say(self, prompts):
        lang = self.state["lang"]
        context = None
        for item in prompts:
            if item.kind == "prompt":
                context = context or self._context()
                ssml = self.flow.prompts.render(lang, item.value, context)
                self.actions.append(act.Say(ssml, voice=self.flow.voices.get(lang), language=lang))
            elif item.kind == "play":
                self.actions.append(act.Play(item.value))
            else:
                self.actions.append(act.Pause(item.value))

    def _pop_prompts(self):
        """Take the prompts said since the last thing that waits, so they can
        play inside the next Gather and callers may barge in."""
        taken = []
        while self.actions and isinstance(self.actions[-1], (act.Say, act.Play, act.Pause)):
            taken.insert(0, self.actions.pop())
        return taken

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


def _failsafe_transfer(flow: Flow) -> Node | None:
    for name in (flow.human, flow.escape.to):
        if name in flow.nodes and flow.nodes[name].kind == "transfer":
            return flow.nodes[name]
    return next((n for n in flow.nodes.values() if n.kind == "transfer"), None)


def new_state(flow: Flow, event: dict, now: datetime) -> dict:
    """The state of a call that starts with ``event``: the caller's
    language comes from the event, else their number's country, else the
    flow's default."""
    caller = event.get("caller") or ""
    country = country_of(caller)
    lang = event.get("lang")
    if lang not in flow.languages:
        lang = flow.country_languages.get(country) if country else None
    if lang is None:
        lang = flow.other_countries_language if country and flow.other_countries_language else flow.default_language
    return {
        "call_id": event.get("call_id", "unknown"), "flow": flow.name, "version": flow.version,
        "caller": caller, "called": event.get("called", ""), "country": country,
        "lang": lang, "started_at": now.isoformat(), "now": now.isoformat(),
        "ended_at": None, "node": None, "waiting": None, "request": None,
        "vars": copy.deepcopy(dict(flow.variables)), "digits": "", "speech": "",
        "no_input": 0, "no_match": 0, "visits": {}, "steps": 0, "seq": 0,
        "reason": None, "resolved": False, "answered": [], "reason_asked": None,
        "confirmed": False,
        "cause": None, "exit_node": None, "handoff": None, "transferred_at": None,
        "outcome": None, "ended": False, "callback": None, "pending": None,
    }


def _candidate_key(node: Node, candidate) -> str:
    """How events name a candidate: the choice's key, else its 1-based
    position, or ``escape``."""
    if candidate == hearing.ESCAPE:
        return hearing.ESCAPE
    choice = node.opts["choices"][candidate]
    return choice.key or f"#{candidate + 1}"


def _yes_no(digits: str, heard) -> bool | None:
    """Key 1 or a clear yes: True; key 2 or a clear no: False; else None."""
    if digits:
        return {"1": True, "2": False}.get(digits)
    if heard is None or heard.verdict != "take":
        return None
    return {hearing.YES: True, hearing.NO: False}.get(heard.candidate)
