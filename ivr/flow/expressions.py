"""Conditions and computed values in flows, evaluated in a Jinja2 sandbox.

Flow authors write conditions as Jinja2 expressions (``order.status ==
'delivered' and hour < 18``) and computed values as ``"{{ expression }}"``.
Using Jinja2's own expression language keeps one syntax for prompts and
logic, and its sandbox keeps flow files from reaching Python internals.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache

from jinja2 import StrictUndefined, Template, TemplateSyntaxError, meta, nodes
from jinja2.nodes import EvalContext

from ivr.flow.memo import MISSING, PERSONAL, Memo, keyable, read_with_key
from ivr.flow.sandbox import Sandbox, reads_no_global

_env = Sandbox(undefined=StrictUndefined)

_WHOLE_EXPRESSION = re.compile(r"^\s*\{\{(?P<expr>.*)\}\}\s*$", re.S)

#: Values of expressions, by the values of the variables they read (see ``ivr.flow.memo``).
_values = Memo(4096)


class ExpressionError(Exception):
    """An expression is not valid Jinja2 syntax."""


@lru_cache(maxsize=4096)
def _compiled(source: str) -> Template:
    """The expression as Jinja compiles it: a template that sets ``result``."""
    try:
        return _env.compile_expression(source, undefined_to_none=False)._template
    except TemplateSyntaxError as error:
        raise ExpressionError(error.message) from None


@lru_cache(maxsize=4096)
def _reads(source: str) -> tuple[tuple[str, ...], bool, bool]:
    """The variables ``source`` reads, the only ones it is given; whether
    its value may be kept by theirs (it reads nothing of the caller's and
    draws nothing at random); and whether it uses none of the sandbox's
    globals (its context is then the names it reads alone).  The
    variables leave out the globals it calls (``range``), which every
    name it uses does not."""
    names = tuple(sorted(variables(source)))
    ast = _env.parse("{{ " + source + " }}")
    keeps = PERSONAL.isdisjoint(names) and all(f.name != "random" for f in ast.find_all(nodes.Filter))
    used = {name.name for name in ast.find_all(nodes.Name)}
    return names, keeps, reads_no_global(_compiled(source), used)


#: Each expression's compiled template and what ``_reads`` says of it, in
#: one look-up (two ``lru_cache`` calls cost as much as a kept value's key).
_plans: dict[str, tuple] = {}
_PLANS_KEPT = 4096


def _plan(source: str) -> tuple:
    """``(template, names, keeps, alone, eval_ctx)`` of ``source``, kept
    (an expression never changes its evaluation context: one serves every
    evaluation); raises :class:`ExpressionError`."""
    expression = _compiled(source)
    plan = (expression, *_reads(source), EvalContext(_env, expression.name))
    if len(_plans) >= _PLANS_KEPT:
        _plans.clear()
    _plans[source] = plan
    return plan


def evaluate(source: str, context: Mapping):
    """Evaluate the expression ``source`` against ``context``.

    An unknown variable raises ``jinja2.UndefinedError`` rather than being
    silently false: a flow that tests a variable it never set is a bug.
    A value that is plain (a flag, a word, a date) is kept by the values
    of the variables read, when they are plain too: the sandbox is pure.
    """
    plan = _plans.get(source)
    if plan is None:
        plan = _plan(source)
    expression, names, keeps, alone, eval_ctx = plan
    # Only the two or three variables the expression reads, rather than the
    # call's twenty, each read once for the key and the context.
    read, key = read_with_key(names, context, keeps)
    if key is not None:
        key = (source, key)
        result = _values.get(key)
        if result is not MISSING:
            return result
    # In a context built once (a compiled expression's call copies its
    # arguments three times).
    run = _env.context_of(expression, read, own=alone, eval_ctx=eval_ctx)
    for _ in expression.root_render_func(run):  # it says nothing: it sets ``result``
        pass
    result = run.vars["result"]
    if key is not None and keyable(result):
        _values.put(key, result)
    return result


def value(spec, context: Mapping):
    """The value of a ``set:`` or look-up argument: ``"{{ expr }}"`` is
    evaluated (keeping its type), anything else is taken literally."""
    expression = value_expression(spec)
    return spec if expression is None else evaluate(expression, context)


def variables(source: str) -> set[str]:
    """The variables an expression reads.  Raises :class:`ExpressionError`."""
    try:
        ast = _env.parse("{{ " + source + " }}")
    except TemplateSyntaxError as error:
        raise ExpressionError(error.message) from None
    return meta.find_undeclared_variables(ast)


def value_expression(spec) -> str | None:
    """The expression inside a ``"{{ expr }}"`` value, or None for a literal."""
    if isinstance(spec, str):
        match = _WHOLE_EXPRESSION.match(spec)
        if match:
            return match.group("expr")
    return None
