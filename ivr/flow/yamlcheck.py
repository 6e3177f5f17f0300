"""Check a YAML file the product reads: one reader, one problem type, one vocabulary.

Flows, shop configurations and scenario files are all checked by a
subclass of :class:`YamlChecker`: it reads the text with
:mod:`ivr.flow.yamlpos` (so every value keeps its line and column), reports
each problem as a :class:`~ivr.flow.problems.Problem` at the value (or the
key) at fault, and never stops at the first one.  The checker raises its
``error`` (a :class:`~ivr.flow.problems.YamlProblems`) listing them all,
sorted by position, one per line::

    shop.yaml:2:1: error: token: unknown field 'token'; expected one of auth, base_url, ... [unknown-field]

The codes every checker shares (see docs/problems.md for the whole list):

=================  ==========================================================
``yaml-syntax``    the text is not YAML
``duplicate-key``  a mapping has the same key twice
``unreadable``     the file cannot be read
``wrong-type``     a value of the wrong type (text for a number, ...)
``wrong-value``    a value of the right type that is not allowed
``unknown-field``  a mapping key that this place does not know
``missing-field``  a required mapping key is absent
=================  ==========================================================
"""

from __future__ import annotations

from typing import Any, ClassVar

from ivr.flow import yamlpos
from ivr.flow.problems import Problem, YamlProblems
from ivr.flow.suggest import closest
from ivr.i18n import N_, _

#: A value that failed its check; the problem is already recorded.
BAD: Any = object()

#: The messages of every checker, one sentence each with named values.
MESSAGES = {
    "unreadable": N_("cannot read the file: {error}"),
    "duplicate-key": N_("{key!r} is given twice in this mapping (first at line {first}): keep one "
                     "of them"),
    "wrong-type": N_("expected {wanted}, found {found} {value!r}"),
    "boolean-as-text": N_("expected {wanted}, found {spelled} without quotes, which YAML reads as "
                       "the boolean {value}: write it in quotes, \"{spelled}\""),
    "nothing-as-text": N_("expected {wanted}, found nothing: write the value after the colon, or "
                       "remove the field"),
    "unknown-field": N_("unknown field {field!r}; expected one of {expected}"),
    "unknown-field-suggest": N_("unknown field {field!r}: did you mean {suggestion!r}? (expected one "
                             "of {expected})"),
    "missing-field": N_("missing field {field!r}"),
}


def type_name(value) -> str:
    """How a problem names the type of ``value``: "text", "a number"..."""
    name = {
        bool: N_("a boolean"), int: N_("a number"), float: N_("a number"), str: N_("text"),
        list: N_("a list"), dict: N_("a mapping"), type(None): N_("nothing"),
    }.get(type(value))
    return _(name) if name else type(value).__name__


def is_a(value, kind) -> bool:
    """Whether ``value`` is of ``kind`` (a type or a tuple of types); a
    boolean is never a number, though Python's ``bool`` is an ``int``."""
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds:
        return False
    return isinstance(value, kinds)


def read_text(path, error: type[YamlProblems]) -> str:
    """The text of the file at ``path`` (a ``pathlib.Path``); a file that
    cannot be read raises ``error`` with one ``unreadable`` problem."""
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise error([Problem(str(path), 1, 1, _(MESSAGES["unreadable"]).format(error=exc),
                             "unreadable")]) from None


class YamlChecker:
    """What every checker of a YAML file shares.  A subclass sets ``path``
    (the file's name, as reported), ``source`` (its text), ``problems``
    (a list) and ``doc`` (None until :meth:`parse`), and names its
    ``error``."""

    error: ClassVar[type[YamlProblems]] = YamlProblems
    path: str
    source: str
    problems: list[Problem]
    doc: Any

    # -- reading ---------------------------------------------------------------------
    def parse(self):
        """Read :attr:`source` into :attr:`doc` and return its data; text
        that is not YAML raises :attr:`error` at once (nothing else can be
        checked); a duplicated key is a problem."""
        try:
            self.doc = yamlpos.load(self.source)
        except yamlpos.YamlSyntaxError as exc:
            syntax = [Problem(self.path, pos.line, pos.column, message, "yaml-syntax")
                      for message, pos in exc.problems]
            if exc.document is None:  # nothing past the mistake can be read
                raise self.error(syntax) from None
            # Read on past mistakes of indentation, as they were most likely
            # meant, so one run shows every problem of the file.
            self.problems.extend(syntax)
            self.doc = exc.document
        for dup_path, pos, first in self.doc.duplicates:
            message = _(MESSAGES["duplicate-key"]).format(key=dup_path[-1], first=first.line)
            self.problems.append(Problem(self.path, pos.line, pos.column, message, "duplicate-key"))
        return self.doc.data

    def raise_problems(self) -> None:
        """Raise :attr:`error` listing every problem found so far, if any."""
        if self.problems:
            raise self.error(self.problems)

    # -- reporting -------------------------------------------------------------------
    def problem(self, path, message, code, at_key=False):
        """Report ``message`` at the value at ``path`` (or at its key)."""
        pos = self.doc.key_pos(path) if at_key else self.doc.pos(path)
        self.problems.append(Problem(self.path, pos.line, pos.column, message, code))

    # -- shared checks ---------------------------------------------------------------
    def expect(self, path, value, kind, wanted):
        """``value`` if it is of ``kind``; else a ``wrong-type`` problem
        ("expected ``wanted``, found text 'soon'") and :data:`BAD`."""
        if is_a(value, kind):
            return value
        textual = str in (kind if isinstance(kind, tuple) else (kind,))
        self.problem(path, self.wrong_type(path, value, wanted, textual), "wrong-type")
        return BAD

    def wrong_type(self, path, value, wanted, textual: bool = True) -> str:
        """The sentence for ``value`` at ``path`` not being ``wanted``: where
        text was ``textual``, a ``yes`` read by YAML as a boolean says so;
        an empty value says it is empty."""
        spelled = self.doc.spelled.get(tuple(path)) if self.doc is not None else None
        if isinstance(value, bool) and spelled and textual:
            return _(MESSAGES["boolean-as-text"]).format(wanted=_(wanted), spelled=spelled, value=value)
        if value is None and not spelled:
            return _(MESSAGES["nothing-as-text"]).format(wanted=_(wanted))
        return _(MESSAGES["wrong-type"]).format(wanted=_(wanted), found=type_name(value), value=value)

    def known_fields(self, path, value: dict, allowed, required=(), hint=None) -> None:
        """Report the keys of the mapping ``value`` that are not in
        ``allowed`` (``unknown-field``, at the key; ``hint(key)`` may add
        advice) and those of ``required`` it lacks (``missing-field``)."""
        path = tuple(path)
        expected = ", ".join(sorted(map(str, allowed)))
        meant = set()
        for field_name in value:
            if field_name not in allowed:
                advice = hint(field_name) if hint else ""
                suggestion = closest(field_name, [a for a in allowed if a not in value])
                if suggestion:
                    meant.add(suggestion)
                    message = _(MESSAGES["unknown-field-suggest"]).format(
                        field=field_name, suggestion=suggestion, expected=expected)
                else:
                    message = _(MESSAGES["unknown-field"]).format(field=field_name, expected=expected)
                self.problem(path + (field_name,), message + advice, "unknown-field", at_key=True)
        for field_name in required:
            # A misspelt field is reported once, as misspelt, not also as missing.
            if field_name not in value and field_name not in meant:
                self.problem(path, _(MESSAGES["missing-field"]).format(field=field_name),
                             "missing-field", at_key=True)

    def fields(self, path, value, checkers, required=()):
        """Check the mapping ``value`` against ``checkers`` (field name ->
        ``checker(self, path, value)`` returning the parsed value or
        :data:`BAD`, or None when the caller checks that field itself).
        Returns the parsed fields, or :data:`BAD` if ``value`` is no mapping."""
        if self.expect(path, value, dict, N_("a mapping")) is BAD:
            return BAD
        self.known_fields(path, value, checkers, required)
        result = {}
        for field_name, field_value in value.items():
            if field_name not in checkers:
                continue
            checker = checkers[field_name]
            parsed = field_value if checker is None else checker(self, path + (field_name,), field_value)
            if parsed is not BAD:
                result[field_name] = parsed
        return result
