"""Rehearse a flow on sample data before it may serve a call.

A template can be valid Jinja and still fail on the first live call: a
field that does not exist (``order.numero``), a filter given nothing, a loop
that never ends.  So every load (and ``ivr-sim lint``) walks the flow's
graph from ``start`` (and from ``human``) as calls would, with sample data,
and renders every prompt each node says, in every language of the flow:

- look-ups answer every way they can: found, with each demo order
  (every status; the copy in ``ivr.flow.sample_orders``) and with the
  same orders stripped of every field a shop may leave empty (carrier,
  tracking, dates), several orders, not found, and failed;
- callers are French, American and British numbers, and withheld;
- the time is a weekday morning and evening; ``opens_at`` is none, later
  today and tomorrow morning; ``attempt`` 1 to 3; the last keys and words
  are empty or not; ``reason`` is none or each reason of the flow;
- menus take every choice (with its ``set``), inputs get digits of their
  length, callbacks get the caller's own number and typed digits, hours
  nodes are open and closed, texts are sent and fail;
- branch conditions are evaluated, so a node is only rendered with what
  can reach it (a text of the tracking link only for an order that has
  one); a condition or computed value that fails on the way is an
  :class:`ExpressionFinding`.

The walk keeps a bounded number of different sets of variables per node
(:data:`MAX_STATES_PER_NODE`), so it ends on any flow; a node no sample
call reaches is still rendered with each sample order, for its budget.
Each failing render is a :class:`Finding`: the template, the node that
says it, the sample, and the :class:`ivr.flow.prompts.PromptError` (with the
template line).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from ivr.flow import expressions
from ivr.flow.model import Flow, Node, PromptItem
from ivr.flow.prompts import PromptError, failure_kind
from ivr.flow.sample_orders import SAMPLE_ORDERS
from ivr.phone import country_of

__all__ = ["ExpressionFinding", "Finding", "MAX_STATES_PER_NODE", "SAMPLE_DAY", "SAMPLE_TIME", "rehearse",
           "sparse_orders"]

#: The day the samples are told from (a Tuesday; demo orders are dated from it).
SAMPLE_DAY = date(2026, 3, 10)
#: How many different sets of variables the walk keeps per node and caller
#: (and as many more that differ by more than the order found).
MAX_STATES_PER_NODE = 48

_CALLERS = {"known": ("+33612345678", "+14155550123", "+447700900123"), "withheld": ("anonymous",)}
#: The first is when the sample orders were told (see ivr.flow.sample_orders).
SAMPLE_TIME = time(10, 30)
_TIMES = (SAMPLE_TIME, time(19, 15))
_TYPED_CALLBACK_NUMBER = "0612345678"
_RECORDING_URL = "https://api.twilio.com/2010-04-01/Accounts/AC0/Recordings/RE0"
#: Order fields a shop may leave empty: stripped in the sparse samples.
_OPTIONAL_ORDER_FIELDS = ("carrier", "carrier_name", "tracking_number", "tracking_url",
                          "shipped_on", "delivered_on", "expected_on")
_MISSING = object()
#: What look-ups set: the variables whose variety the walk caps first.
_LOOKUP_VARIABLES = ("order", "orders", "count")


@dataclass(frozen=True)
class Finding:
    """A prompt that failed on sample data."""

    lang: str
    prompt: str
    node: str
    sample: str
    error: PromptError


@dataclass(frozen=True)
class ExpressionFinding:
    """A condition or computed value (``if:``, ``set:``, ``with:``, ``to:``,
    ``slot:``) that failed on sample data: at run time, the fail-safe."""

    node: str
    path: tuple  # where it is in the flow's YAML
    source: str
    sample: str
    kind: str  # as PromptError.kind
    message: str


def sparse_orders(orders: list[dict]) -> list[dict]:
    """One order per status of ``orders``, without its optional fields."""
    by_status = {}
    for order in orders:
        by_status.setdefault(order["status"], {**order, **dict.fromkeys(_OPTIONAL_ORDER_FIELDS)})
    return list(by_status.values())


def rehearse(flow: Flow, entries=()) -> list[Finding | ExpressionFinding]:
    """Every prompt of ``flow`` that fails on sample data (see the module
    docstring), one finding per template, language and error; then every
    expression that does, one per expression and error.

    A version (a hash of the flow and its templates) that passed is kept:
    reloading the same flow does not rehearse it again.  One that failed
    is rehearsed again each time, so its findings are always this run's.

    ``entries`` are more nodes calls may start from besides ``start`` and
    ``human`` (nodes that no node leads to, which the flow enters itself).
    """
    if flow.version in _PASSED:
        return []
    findings = _Rehearsal(flow, entries).run()
    if not findings:
        if len(_PASSED) >= _PASSED_KEPT:
            del _PASSED[next(iter(_PASSED))]
        _PASSED[flow.version] = True
    return findings


#: Versions that passed, oldest first.
_PASSED: dict[str, bool] = {}
_PASSED_KEPT = 256


class _Rehearsal:
    def __init__(self, flow: Flow, entries=()):
        self.flow = flow
        self.entries = (flow.start, flow.human, *entries)
        zone = ZoneInfo(flow.timezone)
        self.times = [datetime.combine(SAMPLE_DAY, t, zone) for t in _TIMES]
        dense = [dict(order) for order in SAMPLE_ORDERS]
        sparse = sparse_orders(dense)
        self.orders = dense + sparse
        self.sparse_ids = {id(order) for order in sparse}  # to describe a sample
        tomorrow = SAMPLE_DAY + timedelta(days=1)
        self.openings = (None, datetime.combine(SAMPLE_DAY, time(14), zone).isoformat(),
                         datetime.combine(tomorrow, time(9), zone).isoformat())
        self.findings: dict[tuple, Finding] = {}
        self.expression_findings: dict[tuple, ExpressionFinding] = {}
        self.rendered: set = set()
        self.read: dict[tuple[str, str], tuple[str, ...]] = {}
        self.builtins: dict[tuple[str, str], list[dict]] = {}
        self.distinct: dict[tuple, list[dict]] = {}
        #: When set, only findings of these kinds count (see _visit_unreached).
        self.only_kinds: tuple | None = None

    # --- the walk -------------------------------------------------------------

    def run(self) -> list[Finding]:
        flow = self.flow
        start_vars = dict(flow.variables)
        kept: dict[tuple, set] = {}
        shapes: dict[tuple, set] = {}
        pending = deque((root, profile, start_vars) for profile in _CALLERS
                        for root in dict.fromkeys(self.entries) if root in flow.nodes)
        while pending:
            name, profile, variables = pending.popleft()
            seen = kept.setdefault((name, profile), set())
            key = _key_of(variables)
            if key in seen:
                continue
            # Past the cap, a node still takes a state that differs by more
            # than the order found (a counter, a choice): that is a new path.
            shape = _key_of({k: v for k, v in variables.items() if k not in _LOOKUP_VARIABLES})
            shapes_seen = shapes.setdefault((name, profile), set())
            if len(seen) >= MAX_STATES_PER_NODE and (
                    shape in shapes_seen or len(shapes_seen) >= MAX_STATES_PER_NODE):
                continue
            seen.add(key)
            shapes_seen.add(shape)
            for target, after in self._visit(flow.nodes[name], profile, variables):
                if target in flow.nodes:
                    pending.append((target, profile, after))
        self._visit_unreached({name for name, _profile in kept}, start_vars)
        return (sorted(self.findings.values(), key=lambda f: (f.prompt, f.lang, f.node))
                + list(self.expression_findings.values()))

    def _visit_unreached(self, reached: set, start_vars: dict):
        """Nodes no sample call reached (behind a condition no sample meets)
        still say something: rendered with each sample order, their prompts
        must at least stay within budget and inside the sandbox (what is
        missing there may well be there on the way in)."""
        self.only_kinds = ("budget", "unsafe")
        for node in self.flow.nodes.values():
            if node.name not in reached:
                for order in self.orders:
                    self._visit(node, "known", {**start_vars, "order": order, "orders": [order],
                                                "count": 1})
        self.only_kinds = None

    def _visit(self, node: Node, profile: str, variables: dict):
        """Render what ``node`` says with ``variables``; the nodes it leads
        to, each with the variables it leaves."""
        kind, opts = node.kind, node.opts
        if kind in ("say", "hangup", "transfer", "record", "lookup"):
            self._say(node, node.say, profile, variables)
        if kind == "say":
            return [(node.next, variables)]
        if kind == "set":
            after = self._assign(node, ("set",), opts["set"], profile, variables)
            return [] if after is None else [(node.next, after)]
        if kind == "branch":
            return self._branch(node, profile, variables)
        if kind == "hours":
            return [(opts["open"], variables),
                    (opts["closed"], {**variables, "opens_at": self.openings[2]})]
        if kind == "lookup":
            for argument, spec in opts.get("with", {}).items():
                self._value(node, ("with", argument), spec, profile, variables)
            return self._lookup(node, variables)
        if kind == "sms":
            self._value(node, ("to",), opts.get("to"), profile, variables)
            self._say(node, (PromptItem("prompt", opts["text"]),), profile, variables, plain=True)
            self._say(node, node.say, profile, variables)
            return [(node.next, variables), (opts.get("failed") or node.next, variables)]
        if kind == "transfer":
            return [(opts["no_answer"], variables)] if opts.get("no_answer") else []
        if kind == "record":
            return [(node.next, {**variables, "recording_url": _RECORDING_URL})] if node.next else []
        if kind == "hangup":
            return []
        return self._gather(node, profile, variables)

    def _gather(self, node: Node, profile: str, variables: dict):
        """Menus, inputs and callbacks: every prompt of every attempt, then
        every way out (choices, the answer, escape, retries exhausted)."""
        opts = node.opts
        for prompts in (node.say, *node.reprompt, *opts["no_input"].say, *opts["no_match"].say):
            # A callback reads the caller's number back only when there is one.
            if node.kind != "callback" or prompts is not node.say or profile == "known":
                self._say(node, prompts, profile, variables)
        ways = [(self.flow.escape.to or self.flow.human, variables),
                (opts["no_input"].to or self.flow.human, variables),
                (opts["no_match"].to or self.flow.human, variables)]
        if node.kind == "menu":
            for i, choice in enumerate(opts["choices"]):
                after = self._assign(node, ("choices", i, "set"), choice.assign, profile, variables)
                if after is not None:
                    ways.append((choice.to, after))
        elif node.kind == "input":
            after = {**variables, opts["save_as"]: _digits_for(node)}
            self._say(node, opts.get("confirm", ()), profile, after)
            ways.append((node.next, after))
        else:  # callback: to the number typed, or to the caller's own
            self._say(node, opts["ask_number"], profile, variables)
            numbers = (_TYPED_CALLBACK_NUMBER,) + (_CALLERS[profile][:1] if profile == "known" else ())
            for number in numbers:
                after = {**variables, opts["save_as"]: number}
                self._value(node, ("slot",), opts.get("slot"), profile, after)
                ways.append((node.next, after))
        return ways

    def _branch(self, node: Node, profile: str, variables: dict):
        """Where the branch goes, in each language (a condition may test ``lang``)."""
        ways = []
        for lang in self.flow.languages:
            context = self._context(profile, lang, variables)
            to = node.opts["else"]
            for i, (condition, target) in enumerate(node.opts["when"]):
                try:
                    holds = expressions.evaluate(condition, context)
                except Exception as error:  # noqa: BLE001 - at run time, the fail-safe
                    self._expression_failed(node, ("when", i, "if"), condition, context, error)
                    to = None
                    break
                if holds:
                    to = target
                    break
            if to is not None and (to, variables) not in ways:
                ways.append((to, variables))
        return ways

    def _lookup(self, node: Node, variables: dict):
        opts = node.opts
        found, many = opts["found"], opts.get("many") or opts["not_found"]
        ways = [(opts["not_found"], variables), (opts["error"], variables)]
        by_phone = opts["find"] == "orders_by_phone"
        for order in self.orders:
            data = {"order": order, "orders": [order], "count": 1} if by_phone else {"order": order}
            ways.append((found, {**variables, **data}))
        if by_phone:
            several = self.orders[1:4]
            ways.append((many, {**variables, "orders": several, "count": len(several)}))
        return ways

    def _assign(self, node: Node, path: tuple, assignments, profile: str,
                variables: dict) -> dict | None:
        """The variables after ``assignments`` (None when one fails)."""
        after = dict(variables)
        for variable, spec in assignments:
            value = self._value(node, path + (variable,), spec, profile, after)
            if value is _MISSING:
                return None
            if variable != "lang":  # every language is rendered anyway
                after[variable] = value
        return after

    def _value(self, node: Node, path: tuple, spec, profile: str, variables: dict):
        """The value of ``spec`` (a literal, or ``"{{ expression }}"``), or
        _MISSING when evaluating it fails (recorded as a finding)."""
        context = self._context(profile, self.flow.languages[0], variables)
        try:
            return expressions.value(spec, context)
        except Exception as error:  # noqa: BLE001 - at run time, the fail-safe
            source = (expressions.value_expression(spec) or str(spec)).strip()
            self._expression_failed(node, path, source, context, error)
            return _MISSING

    def _expression_failed(self, node: Node, path: tuple, source: str, context: dict, error):
        kind, message = failure_kind(error), f"{type(error).__name__}: {error}"
        found = (("nodes", node.name) + path, kind, message)
        if (self.only_kinds is None or kind in self.only_kinds) and found not in self.expression_findings:
            read = tuple(sorted(expressions.variables(source)))
            self.expression_findings[found] = ExpressionFinding(
                node.name, found[0], source, _describe(context, read, self.sparse_ids), kind, message)

    # --- rendering ------------------------------------------------------------

    def _context(self, profile: str, lang: str, variables: dict) -> dict:
        """What the engine gives a template (``engine._context``), for a
        sample call: the first of :meth:`_builtins`."""
        return {**variables, **self._builtins(profile, lang)[0],
                "opens_at": variables.get("opens_at")}

    def _builtins(self, profile: str, lang: str) -> list[dict]:
        """What the engine itself sets, as samples varied one at a time:
        the caller, the time, ``opens_at`` (when given: else the
        variables' own), ``attempt``, the last input and ``reason``."""
        key = (profile, lang)
        if key not in self.builtins:
            base = self._engine_values(_CALLERS[profile][0], lang, self.times[0])
            variants = [base]
            variants += [self._engine_values(c, lang, self.times[0]) for c in _CALLERS[profile][1:]]
            variants += [self._engine_values(_CALLERS[profile][0], lang, t) for t in self.times[1:]]
            variants += [{**base, "opens_at": opening} for opening in self.openings]
            variants += [{**base, "attempt": attempt} for attempt in (2, 3)]
            variants += [{**base, "digits": "1"}, {**base, "speech": "oui"}]
            variants += [{**base, "reason": reason} for reason in self.flow.reasons]
            self.builtins[key] = variants
        return self.builtins[key]

    def _engine_values(self, caller: str, lang: str, now: datetime) -> dict:
        return {
            "caller": caller, "called": "+33100000000", "call_id": "CA" + "0" * 32,
            "country": country_of(caller), "lang": lang, "now": now, "today": now.date(),
            "hour": now.hour, "weekday": now.isoweekday(), "attempt": 1, "digits": "",
            "speech": "", "reason": None,
        }

    def _say(self, node: Node, prompts, profile: str, variables: dict, plain: bool = False):
        for item in prompts:
            if item.kind != "prompt":
                continue
            for lang in self.flow.languages:
                read = self._reads(lang, item.value)
                for values in self._distinct_builtins(profile, lang, read):
                    self._render(node, lang, item.value, read, values, variables, plain)

    def _distinct_builtins(self, profile: str, lang: str, read: tuple[str, ...]) -> list[dict]:
        """Of :meth:`_builtins`, one per different value of what a template reads."""
        key = (profile, lang, read)
        if key not in self.distinct:
            kept = {}
            for values in self._builtins(profile, lang):
                kept.setdefault(tuple(_identity(values.get(v, _MISSING)) for v in read), values)
            self.distinct[key] = list(kept.values())
        return self.distinct[key]

    def _render(self, node: Node, lang: str, name: str, read, values: dict, variables: dict,
                plain: bool):
        # The same template with the same values of what it reads renders
        # the same: the key is made before the context, which costs more.
        key = (lang, name, plain) + tuple(
            _identity(values[v] if v in values else variables.get(v, None if v == "opens_at" else _MISSING))
            for v in read)
        if key in self.rendered:
            return
        self.rendered.add(key)
        context = {**variables, "opens_at": variables.get("opens_at"), **values}
        library = self.flow.prompts
        try:
            (library.render_text if plain else library.render)(lang, name, context)
        except PromptError as error:
            found = (lang, name, error.line, error.kind, error.message)
            if self.only_kinds and error.kind not in self.only_kinds:
                return
            if found not in self.findings:
                self.findings[found] = Finding(lang, name, node.name,
                                               _describe(context, read, self.sparse_ids), error)

    def _reads(self, lang: str, name: str) -> tuple[str, ...]:
        read = self.read.get((lang, name))
        if read is None:
            read = self.read[lang, name] = tuple(sorted(self.flow.prompts.variables(lang, name)))
        return read


def _digits_for(node: Node) -> str:
    """Digits an input node takes: as many as its ``max`` (or ``min``)."""
    length = node.opts.get("max") or node.opts.get("min") or 6
    return ("123456789" * (length // 9 + 1))[:length]


def _key_of(variables: dict) -> tuple:
    return tuple(sorted((k, _identity(v)) for k, v in variables.items()))


def _identity(value):
    """A hashable stand-in: sample orders are shared objects, known by identity."""
    if isinstance(value, (dict, list)):
        return ("id", id(value))
    try:
        hash(value)
    except TypeError:
        return ("repr", repr(value))
    return value


def _describe(context: dict, read: tuple[str, ...], sparse_ids: set) -> str:
    """The sample values a template read, e.g. ``order 100234 (in_transit), hour=19``."""
    parts = []
    for variable in read:
        value = context.get(variable, _MISSING)
        if value is _MISSING:
            parts.append(f"no {variable}")
        elif variable == "order" and isinstance(value, dict):
            sparse = " without optional fields" if id(value) in sparse_ids else ""
            parts.append(f"order {value.get('number')} ({value.get('status')}){sparse}")
        elif isinstance(value, (list, dict)):
            parts.append(f"{variable} of {len(value)}")
        elif variable not in ("now", "today", "lang"):
            parts.append(f"{variable}={value!r}")
    return ", ".join(parts) or "no variables"
