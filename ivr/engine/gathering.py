"""Gathering input: menus, digits, yes/no confirmations and callback numbers,
with the retries when a caller says nothing or nothing that matches."""

from __future__ import annotations

import re
from zoneinfo import ZoneInfo

from ivr.engine import actions as act
from ivr.flow import expressions
from ivr.flow import speech as hearing
from ivr.flow.kinds import waiting_states
from ivr.flow.matching import normalise
from ivr.flow.model import REASON_NOT_STATED, Node, PromptItem, Retry
from ivr.phone import is_withheld

#: What a call waits for while it listens to the caller: the waits of the
#: node kinds that gather input (``ivr.flow.kinds``).
GATHERING = waiting_states(gathering=True)


#: Asked when the matcher is not sure which choice a caller meant.
CONFIRM_CHOICE = (PromptItem("prompt", "confirm_choice"),)


#: Waits answered with yes or no.
_YES_NO_WAITS = ("confirm", "callback_confirm", "confirm_choice")


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


class _Gathering:
    """Methods of the engine's run, :class:`ivr.engine.step._Run`."""

    def _enter_menu(self, node):
        self._gather(node)

    def _enter_input(self, node):
        self._gather(node)

    def _enter_callback(self, node):
        if is_withheld(self.state["caller"]) or not self.state["caller"].startswith("+"):
            return self._ask_callback_number(node)  # no number to read back
        self._gather(node, waiting="callback_confirm", prompts=node.say, yes_no=True)

    # -- gathering input ---------------------------------------------------------
    def _gather(self, node, waiting="gather", prompts=None, yes_no=False, apology=()):
        state = self.state
        state["waiting"] = waiting
        attempt = 1 + state["no_input"] + state["no_match"]
        self._say(apology)
        self._say(prompts if prompts is not None else node.prompt_for_attempt(attempt))
        lang = state["lang"]
        listening = self.flow.listening.get((node.name, waiting, yes_no, lang))
        if listening is None:
            listening = self.flow.listening[node.name, waiting, yes_no, lang] = self._listening(
                node, waiting, yes_no, lang)
        self.actions.append(act.Gather(prompts=tuple(self._pop_prompts()), language=lang,
                                       **listening))

    def _listening(self, node, waiting, yes_no, lang) -> dict:
        """The Gather's settings but its prompts and language: what the node
        listens for, the same each time (kept per flow version)."""
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
        speech = "speech" in gather["input"]
        return dict(gather, timeout=node.opts.get("timeout", self.flow.timeout),
                    speech_timeout="auto" if speech else None,
                    hints=tuple(dict.fromkeys(hints)) if speech else ())

    def _on_input(self):
        state = self.state
        node = self.flow.nodes[state["node"]]
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
        waiting = state["waiting"]
        handler = _INPUT_HANDLERS[waiting if waiting != "gather" or node.kind != "menu" else "menu"]
        handler(self, node, digits, speech if heard is None else heard)

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


#: What takes the caller's input in each wait (a menu's choices or an
#: input node's digits when the call waits at a ``gather``).
_INPUT_HANDLERS = {
    "menu": _Gathering._menu_input, "gather": _Gathering._digits_input,
    "confirm": _Gathering._confirm_input,
    "callback_confirm": _Gathering._callback_confirm_input,
    "callback_number": _Gathering._callback_number_input,
    "confirm_choice": _Gathering._confirm_choice_input,
}
