"""The Jinja2 sandbox that prompts and flow expressions run in.

Templates are written by people who are not necessarily developers, and a
template runs on the reactor thread: one that loops for ever or builds a
gigabyte string would hold every call, not just its own.  So besides
Jinja's sandbox (no private attributes, no unsafe calls, no changing the
call's data), every render is bounded:

- static bounds, always on: ``range`` holds at most :data:`MAX_RANGE`
  items; ``*``, ``+``, ``%``, ``~`` and every filter or string method build
  at most :data:`MAX_VALUE_SIZE` characters or items; ``**`` and ``*`` on
  numbers stay under :data:`MAX_INT_BITS` bits; ``lipsum`` is gone;
- a :class:`RenderBudget` while :meth:`Sandbox.render_within` runs: a number of
  operations (attribute reads, item reads, calls, operators, filters, loop
  turns), a time, and a size of output.  Each operation counts, and the
  clock is read every 16, so a runaway render stops itself (threads cannot
  be killed) with :class:`RenderBudgetExceeded`.  The operations are the
  deterministic bound (a runaway loop meets it in a few milliseconds); the
  time bounds what stays slow within the size bounds (a ``wordwrap`` of
  10,000 characters a thousand times).  It is the rendering thread's
  processor time, less the garbage collector's pauses: a render is never
  failed for time that was not its own.
"""

from __future__ import annotations

import functools
import gc
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Callable

import markupsafe
from jinja2 import Template, nodes
from jinja2.compiler import CodeGenerator
from jinja2.runtime import Context, EvalContext
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markupsafe import escape

__all__ = [
    "MAX_INT_BITS", "MAX_OPERATIONS", "MAX_OUTPUT", "MAX_RANGE", "MAX_SECONDS",
    "MAX_VALUE_SIZE", "RenderBudget", "RenderBudgetExceeded", "Sandbox", "reads_no_global",
    "shared_eval_context",
]

#: The most items a ``range()`` may hold.
MAX_RANGE = 1_000
#: The most characters (or items) an operator, a filter or a string method may build.
MAX_VALUE_SIZE = 10_000
#: The largest number an operator may build, in bits (about 1,200 digits).
MAX_INT_BITS = 4_096
#: Per render: operations, seconds and characters of output.
MAX_OPERATIONS = 20_000
MAX_SECONDS = 0.050
MAX_OUTPUT = 8_192
#: The clock is read once every this many operations.
_CLOCK_EVERY = 16

# A width or precision of five digits or more in a format string
# ("%099999d", "{:>100000}"): it alone would build more than MAX_VALUE_SIZE.
_HUGE_FORMAT = re.compile(r"\d{5,}")


class RenderBudgetExceeded(RuntimeError):
    """A render went over its budget or one of the sandbox's bounds.

    Not a ``LookupError`` nor an ``AttributeError``: nothing in a template
    (``default``, ``is defined``) can catch it.
    """


@dataclass(frozen=True)
class RenderBudget:
    """What one render may spend.  ``clock`` is read to enforce ``seconds``:
    by default the processor time of the rendering thread, so that a render
    is not blamed for the time other processes had the processor (tests
    give a clock that advances as they wish)."""

    seconds: float = MAX_SECONDS
    operations: int = MAX_OPERATIONS
    output: int = MAX_OUTPUT
    clock: Callable[[], float] = field(default=time.thread_time, compare=False)


class _Meter:
    """The running count of one render against its budget."""

    __slots__ = ("budget", "deadline", "paused", "pause_began")

    def __init__(self, budget: RenderBudget):
        self.budget = budget
        self.deadline = budget.clock() + budget.seconds
        #: Time the garbage collector took during the render: not the render's.
        self.paused = 0.0
        self.pause_began = None

    def check(self, count: int) -> None:
        """Past ``count`` operations: over the budget, or past the deadline?"""
        if count > self.budget.operations:
            raise RenderBudgetExceeded(
                f"more than {self.budget.operations} operations in one render")
        if self.budget.clock() - self.paused > self.deadline:
            raise RenderBudgetExceeded(
                f"the render took longer than {self.budget.seconds * 1000:g} ms")


#: The meter of the render running now, if any (renders run one at a time,
#: on the reactor's thread).
_running: _Meter | None = None


def _collector_pauses(phase: str, info: dict) -> None:
    """A ``gc.callbacks`` hook: the collector's time during a render is
    taken off it, so a render is never failed for the collector's pause."""
    meter = _running
    if meter is None:
        return
    if phase == "start":
        meter.pause_began = meter.budget.clock()
    elif meter.pause_began is not None:
        meter.paused += meter.budget.clock() - meter.pause_began
        meter.pause_began = None


gc.callbacks.append(_collector_pauses)


_NEVER = float("inf")


def _text_of_escape(text: str) -> str:
    return str(escape(text))


#: The text markupsafe's ``escape()`` wraps in a ``Markup`` (its C function).
_escape_text: Callable[[str], str] = getattr(markupsafe, "_escape_inner", _text_of_escape)


class _MeteredCode(CodeGenerator):
    """Compiles every ``{% for %}`` so that each turn of the loop counts as
    an operation: an empty loop body calls nothing the sandbox would see."""

    def visit_For(self, node, frame):
        node.iter = nodes.Call(nodes.EnvironmentAttribute("metered_iter"), [node.iter], [],
                               None, None, lineno=node.iter.lineno)
        super().visit_For(node, frame)

    def _output_child_pre(self, node, frame, finalize):
        # What ``{{ value }}`` writes, escaped by ``environment.said``:
        # markupsafe's ``escape`` builds a ``Markup`` through two Python
        # calls for each value, which the join of the output turns back
        # into text.  Any other case (no escaping, or a volatile one) is
        # Jinja's.
        if frame.eval_ctx.autoescape and not frame.eval_ctx.volatile:
            self.write("environment.said(")
            if finalize.src is not None:
                self.write(finalize.src)
        else:
            super()._output_child_pre(node, frame, finalize)

    def visit_Concat(self, node, frame):
        # ``a ~ b``: checked once built, so a doubling loop stops at twice the bound.
        self.write("environment.bounded(")
        super().visit_Concat(node, frame)
        self.write(")")


class _MeteredFilters(dict):
    """The filters, each counted and bounded: wrapped when set, so that a
    template takes its filters (on every render) by dict's own look-up."""

    def __init__(self, sandbox: "Sandbox", filters: dict):
        super().__init__()
        self._sandbox = sandbox
        self.update(filters)

    def __setitem__(self, name, filter_):
        if not getattr(filter_, "metered", False):  # never counted twice
            filter_ = self._sandbox.metered_filter(name, filter_)
        super().__setitem__(name, filter_)

    def update(self, *args, **kwargs):
        for name, filter_ in dict(*args, **kwargs).items():
            self[name] = filter_

    def setdefault(self, name, default=None):
        if name not in self:
            self[name] = default
        return super().__getitem__(name)

    def __ior__(self, other):  # type: ignore[override,misc]
        self.update(other)
        return self


class _Context(Context):
    """Jinja's ``Context``, its attributes set as Jinja sets them, for less
    work: every prompt rendered and every condition tested makes one.
    ``globals_keys`` is a view of the template's globals' keys rather than
    a copy (nothing changes them once templates are loaded, and Jinja
    only subtracts other keys from it), and a template without blocks
    (all ours) gets its empty dict of blocks without a comprehension.
    ``eval_ctx``: one shared by the renders of a template that never
    changes it (see :func:`shared_eval_context`), else a new one."""

    def __init__(self, environment, parent, name, blocks, globals=None,  # noqa: A002 - Jinja's own signature
                 eval_ctx=None):
        self.parent = parent
        self.vars = {}
        self.environment = environment
        self.eval_ctx = EvalContext(environment, name) if eval_ctx is None else eval_ctx
        self.exported_vars = set()
        self.name = name
        self.globals_keys = set() if globals is None else globals.keys()
        self.blocks = {k: [v] for k, v in blocks.items()} if blocks else {}


class Sandbox(ImmutableSandboxedEnvironment):
    """A sandboxed environment whose templates see its globals as a plain
    dict, cannot change the data they are given (``order.update(...)``
    is refused), and are bounded (see the module docstring).

    Jinja gives each template a ChainMap over the globals, and copying a
    ChainMap into every render's context took a third of the time of
    rendering a short prompt; our globals are set before any template is
    loaded and never change."""

    code_generator_class = _MeteredCode
    context_class = _Context
    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._meter: _Meter | None = None
        # Operations so far, and the count at which the meter looks next:
        # every operation is one addition and one comparison.
        self._count = 0
        self._next_check = _NEVER
        self.globals["range"] = _bounded_range
        self.globals.pop("lipsum", None)  # lipsum(100000) builds megabytes
        self.filters = _MeteredFilters(self, self.filters)

    def make_globals(self, d):
        return {**self.globals, **(d or {})}

    # --- the budget ---------------------------------------------------------

    def render_within(self, template: Template, names: Mapping, budget: RenderBudget, *,
                      own: bool = False, eval_ctx: EvalContext | None = None) -> str:
        """``template.render(names)`` within ``budget``; raises
        :class:`RenderBudgetExceeded` when it goes over.  One render at a
        time per sandbox: the reactor's thread renders them all.  ``own``
        and ``eval_ctx`` as for :meth:`context_of`."""
        global _running
        outer = self._meter, self._count, self._next_check, _running
        self._meter = _running = _Meter(budget)
        self._count, self._next_check = 0, min(_CLOCK_EVERY, budget.operations)
        try:
            return self.concat(template.root_render_func(
                self.context_of(template, names, own=own, eval_ctx=eval_ctx)))
        except Exception:
            self.handle_exception()  # the template's lines in the traceback, as render() does
        finally:
            self._meter, self._count, self._next_check, _running = outer

    def context_of(self, template: Template, names: Mapping, *, own: bool = False,
                   eval_ctx: EvalContext | None = None) -> Context:
        """A new context to render ``template`` with ``names``, as Jinja's
        ``render()`` builds it (the template's globals under ``names``),
        from one dict: ``render()`` copies what it is given, then copies
        it again with the globals, and a compiled expression does the
        same after Python copied its keyword arguments.

        ``own``: ``names`` is a dict made for this context alone, and the
        template reads none of its globals and takes no other template
        (see :func:`reads_no_global`): the context holds ``names`` as
        they are, without the globals, which it would never read.

        ``eval_ctx``: the template's shared evaluation context (see
        :func:`shared_eval_context`), None for a new one."""
        parent = names if own else {**template.globals, **names}
        return _Context(self, parent, template.name, template.blocks, template.globals, eval_ctx)

    @staticmethod
    def said(value) -> str:
        """What ``{{ value }}`` writes where the output is escaped: the
        text of markupsafe's ``escape(value)``."""
        if type(value) is str:
            return _escape_text(value)
        return escape(value)

    def _tick(self) -> None:
        self._count += 1
        if self._count > self._next_check:
            self._meter.check(self._count)
            self._next_check = min(self._count + _CLOCK_EVERY, self._meter.budget.operations)

    def metered_iter(self, iterable):
        """What a ``{% for %}`` loops over: each turn counts."""
        if self._meter is None:
            return iterable
        return self._counted(iterable)

    def _counted(self, iterable):
        for item in iterable:
            self._tick()
            yield item

    def bounded(self, value):
        """``value``, when it is not longer than :data:`MAX_VALUE_SIZE`."""
        if isinstance(value, (str, list, tuple, dict)) and len(value) > MAX_VALUE_SIZE:
            raise RenderBudgetExceeded(
                f"a value of {len(value)} characters or items; at most {MAX_VALUE_SIZE}")
        return value

    def concat(self, parts) -> str:
        """Join a render's output (or a macro's): at most the budget's output."""
        limit = self._meter.budget.output if self._meter is not None else MAX_OUTPUT
        size, kept = 0, []
        keep = kept.append
        for part in parts:
            size += len(part)
            keep(part)
            if size > limit:
                raise RenderBudgetExceeded(f"more than {limit} characters of output")
        return "".join(kept)

    # --- the sandbox's hooks ------------------------------------------------

    def getattr(self, obj, attribute):
        """``order.number`` on flow data (a dict) is its key, looked up
        first.  Jinja tries the attribute first, which on a dict fails
        (an exception built each time) unless the key is named like a dict
        method: ``order.items`` was the method, never the order's items.
        A key that is not there is undefined (an error when used), as any
        unknown attribute."""
        self._tick()
        if type(obj) is dict:
            try:
                return obj[attribute]
            except KeyError:
                pass
        return super().getattr(obj, attribute)

    def getitem(self, obj, argument):
        self._tick()
        return super().getitem(obj, argument)

    def call(__self, __context, __obj, *args, **kwargs):  # noqa: N805 - Jinja's own signature
        __self._tick()
        if isinstance(getattr(__obj, "__self__", None), (str, list, tuple)):
            _check_sizes(getattr(__obj, "__name__", ""), __obj.__self__, args, kwargs)
        return __self.bounded(super().call(__context, __obj, *args, **kwargs))

    def call_binop(self, context, operator, left, right):
        self._tick()
        _check_binop(operator, left, right)
        return self.bounded(super().call_binop(context, operator, left, right))

    def wrap_str_format(self, value):
        wrapper = super().wrap_str_format(value)
        if wrapper is None:
            return None
        _check_format(value.__self__)
        return wrapper

    def metered_filter(self, name: str, filter_):
        """``filter_`` counted as an operation, its arguments and result bounded."""
        # Filters that take the context or environment get it first.
        value_at = 1 if getattr(filter_, "jinja_pass_arg", None) else 0
        bounded = self.bounded

        @functools.wraps(filter_)
        def bounded_filter(*args, **kwargs):
            self._tick()
            if len(args) > value_at + 1 or kwargs:
                _check_sizes(name, args[value_at], args[value_at + 1:], kwargs)
            return bounded(filter_(*args, **kwargs))
        bounded_filter.metered = True  # type: ignore[attr-defined]
        return bounded_filter


def shared_eval_context(environment: "Sandbox", name: str | None, ast: nodes.Template) -> EvalContext | None:
    """One evaluation context for every render of the template parsed as
    ``ast``, when nothing in it changes one (``{% autoescape %}`` does, and
    leaves it changed if its body fails); None when something may.  Making
    a new one is a third of the cost of a render's context."""
    if ast.find(nodes.EvalContextModifier) is not None:
        return None
    return EvalContext(environment, name)


def reads_no_global(template: Template, names) -> bool:
    """Whether none of ``names`` (every name a template or an expression
    uses) is one of ``template``'s globals (``range``, ``dict``, ...)."""
    return template.globals.keys().isdisjoint(names)


def _bounded_range(*args) -> range:
    """``range`` that holds at most :data:`MAX_RANGE` items."""
    items = range(*args)
    if len(items) > MAX_RANGE:
        raise RenderBudgetExceeded(f"range of {len(items)} items; at most {MAX_RANGE}")
    return items


def _check_sizes(name: str, value, args, kwargs) -> None:
    """Refuse a filter or method call whose arguments alone would build a
    value over the bound: a width (``center(100000000)``), a format, or a
    replacement that multiplies the text."""
    for arg in (*args, *kwargs.values()):
        if isinstance(arg, (int, float)) and not isinstance(arg, bool) and abs(arg) > MAX_VALUE_SIZE:
            raise RenderBudgetExceeded(f"{name}() given {arg:g}; at most {MAX_VALUE_SIZE}")
    if name == "format" and isinstance(value, str):
        _check_format(value)
    if name == "join":
        # The separator between every item: |join(sep) on a filter, sep.join(items) on a string.
        items, separator = (args[0], value) if isinstance(value, str) and args else (
            value, args[0] if args else kwargs.get("d", ""))
        if hasattr(items, "__len__") and len(items) * len(str(separator)) > MAX_VALUE_SIZE:
            raise RenderBudgetExceeded(f"join() would build more than {MAX_VALUE_SIZE} characters")
    if name == "replace" and isinstance(value, str) and len(args) >= 2:
        old, new = str(args[0]), str(args[1])
        grows = value.count(old) * (len(new) - len(old)) if old else len(value) * len(new)
        if len(value) + grows > MAX_VALUE_SIZE:
            raise RenderBudgetExceeded(f"replace() would build {len(value) + grows} characters; "
                                       f"at most {MAX_VALUE_SIZE}")


def _check_format(text: str) -> None:
    if _HUGE_FORMAT.search(text):
        raise RenderBudgetExceeded("a format with a width or precision of 10,000 or more")


def _check_binop(operator: str, left, right) -> None:
    """Refuse ``'x' * 100000000``, ``2 ** 100000000`` and their kin before
    Python builds them."""
    if operator == "*":
        for seq, n in ((left, right), (right, left)):
            if isinstance(seq, (str, list, tuple)) and isinstance(n, int):
                if len(seq) * n > MAX_VALUE_SIZE:
                    raise RenderBudgetExceeded(
                        f"a repetition of {len(seq) * n} characters or items; at most {MAX_VALUE_SIZE}")
        if _is_int(left) and _is_int(right) and left.bit_length() + right.bit_length() > MAX_INT_BITS:
            raise RenderBudgetExceeded(f"a product of more than {MAX_INT_BITS} bits")
    elif operator == "**":
        if _is_int(left) and _is_int(right) and abs(left) > 1 and right > 0:
            if left.bit_length() * right > MAX_INT_BITS:
                raise RenderBudgetExceeded(f"a power of more than {MAX_INT_BITS} bits")
    elif operator == "+":
        if isinstance(left, (str, list, tuple)) and isinstance(right, (str, list, tuple)):
            if len(left) + len(right) > MAX_VALUE_SIZE:
                raise RenderBudgetExceeded(
                    f"a concatenation of {len(left) + len(right)} characters or items; "
                    f"at most {MAX_VALUE_SIZE}")
    elif operator == "%" and isinstance(left, str):
        _check_format(left)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
