"""What the caller hears: Jinja2 prompt templates, one file per prompt per
language, laid out as ``<root>/<lang>/<name>.j2``.

A rendered prompt is the body of a TwiML ``<Say>``: an XML fragment whose
text is escaped and which may carry SSML elements written literally in the
template (``<break time="500ms"/>``).  Hence autoescaping: order data is
data, and an ``&`` or ``<`` in a carrier name must never break the TwiML.

Templates are written by people who are not necessarily developers, so
they run in a sandbox, and an unknown variable is an error
(``StrictUndefined``) rather than a silent gap in what the caller hears.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import jinja2
import yaml
from babel import Locale
from babel.core import UnknownLocaleError
from jinja2 import meta, nodes
from jinja2.exceptions import SecurityError
from jinja2.nodes import EvalContext
from markupsafe import Markup

from ivr.flow.memo import MISSING, PERSONAL, Memo, read_with_key
from ivr.flow.prompt_filters import DAY_WORDS, _filters
from ivr.flow.sandbox import (
    RenderBudget,
    RenderBudgetExceeded,
    Sandbox,
    reads_no_global,
    shared_eval_context,
)
from ivr.flow.suggest import closest
from ivr.i18n import N_, _

__all__ = ["FIXED_SERVER_PROMPTS", "PromptError", "PromptLibrary", "PromptProblem",
           "SERVER_PROMPTS"]

SUFFIX = ".j2"

#: The messages of the template checks that offer a fix, one sentence each.
MESSAGES = {
    "unknown-variable": N_("unknown variable {name!r}"),
    "unknown-variable-suggest": N_("unknown variable {name!r}; did you mean {suggestion!r}?"),
    "unknown-filter-suggest": N_("no filter named {name!r}; did you mean {suggestion!r}?"),
    "no-such-prompt": N_("no such prompt ({path})"),
    "private": N_("'{attr}' is private: templates cannot reach it"),
    "unknown-language": N_("unknown language {lang!r}"),
    "invalid-language": N_("invalid language {lang!r}"),
    "invalid-name": N_("invalid prompt name {name!r}"),
}
#: Jinja2's words for an unknown filter or test, and the name it gives.
_UNKNOWN_FILTER = re.compile(r"^No (?P<what>filter|test) named '(?P<name>[^']+)'")
#: A language's speech data, which also holds its words for days.
SPEECH_FILE = "speech.yaml"

#: Prompts the server says in every flow without the flow naming them,
#: and the variables each may read.  Every language of a flow must have
#: them (lint says which is missing): none falls back to another language.
SERVER_PROMPTS = {
    "hold": frozenset(),  # a look-up is slow: "one moment"
    "failsafe_apology": frozenset(),  # something failed: sorry, here is a person
    "agent_whisper": frozenset({"reason", "order"}),  # the agent hears why the caller calls
}
#: Of those, the ones rendered once, when the flow loads, and kept as
#: text: the fail-safe must not depend on a template when things fail.
FIXED_SERVER_PROMPTS = ("hold", "failsafe_apology")
#: How many rendered prompts an in-memory library keeps (see PromptLibrary._say).
MEMO_SIZE = 512


class PromptError(Exception):
    """A prompt could not be found, parsed or rendered.

    ``line`` is the 1-based line in the template, or ``None`` when the
    problem is not tied to a line (missing template, bad name…).
    """

    def __init__(self, lang: str, name: str, message: str, line: int | None = None,
                 kind: str = "error"):
        self.lang = lang
        self.name = name
        self.message = message
        self.line = line
        #: What went wrong while rendering: "undefined" (a variable or field
        #: that is not there), "budget" (over the render budget or a
        #: sandbox bound), "unsafe" (refused by the sandbox), or "error"
        #: (anything else).
        self.kind = kind
        where = f"{lang}/{name}{SUFFIX}" + (f":{line}" if line else "")
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class PromptProblem:
    """One finding of :meth:`PromptLibrary.check`, in a linter's shape."""

    path: Path
    line: int  # 1-based
    column: int  # 1-based, 1 when unknown
    message: str
    code: str  # "prompt-syntax" | "unknown-variable" | "prompt-unsafe"


class PromptLibrary:
    """The prompt templates under ``root``, one sub-folder per language."""

    def __init__(self, root: Path, sources: dict[tuple[str, str], str] | None = None,
                 budget: RenderBudget = RenderBudget()):
        self.root = Path(root)
        #: When set, the templates are these texts, keyed by (lang, name),
        #: and the files under ``root`` are never read again.
        self.sources = sources
        #: What each render may spend (see ``ivr.flow.sandbox``).
        self.budget = budget
        self._envs: dict[tuple[str, bool], Sandbox] = {}
        #: Compiled templates of an in-memory library, which never changes,
        #: each with the names it reads and whether what it says may be kept.
        self._templates: dict[tuple[str, str, bool], _Compiled] = {}
        #: What those said, by the values of the names they read.
        self._said = Memo(MEMO_SIZE)
        #: Each language's words for ``relative_date``, once read.
        self._days: dict[str, dict[str, str]] = {}

    def snapshot(self, prompts) -> "PromptLibrary":
        """A library holding just ``prompts`` ((lang, name) pairs) in memory.

        A flow version keeps one, so a call in progress goes on with the
        prompts it started with even when the files change.
        """
        return PromptLibrary(
            self.root,
            {(lang, name): self.source(lang, name).decode("utf-8") for lang, name in prompts},
            self.budget,
        )

    # --- Where the templates are ------------------------------------------

    def languages(self) -> list[str]:
        """The languages that have a folder under the root, sorted."""
        if not self.root.is_dir():
            return []
        return sorted(
            p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))
        )

    def path(self, lang: str, name: str) -> Path:
        """Where the template for prompt ``name`` in ``lang`` lives (it may not exist)."""
        _check_name(lang, name)
        return self.root / lang / f"{name}{SUFFIX}"

    def names(self, lang: str) -> list[str]:
        """The names of the prompts ``lang`` has, sorted (for suggestions)."""
        if self.sources is not None:
            return sorted(name for (language, name) in self.sources if language == lang)
        folder = self.root / lang
        if not folder.is_dir():
            return []
        return sorted(p.name[: -len(SUFFIX)] for p in folder.glob(f"*{SUFFIX}") if p.is_file())

    def exists(self, lang: str, name: str) -> bool:
        """Whether prompt ``name`` has a template in ``lang``."""
        try:
            path = self.path(lang, name)
        except PromptError:
            return False
        if self.sources is not None:
            return (lang, name) in self.sources
        return path.is_file()

    def source(self, lang: str, name: str) -> bytes:
        """The template's raw bytes, e.g. to hash into a flow's version."""
        path = self.path(lang, name)
        if self.sources is not None and (lang, name) in self.sources:
            return self.sources[lang, name].encode("utf-8")
        try:
            return path.read_bytes()
        except OSError as exc:
            raise PromptError(lang, name, _(MESSAGES["no-such-prompt"]).format(path=path)) from exc

    # --- Rendering ----------------------------------------------------------

    def render(self, lang: str, name: str, context: Mapping) -> str:
        """Render prompt ``name`` in ``lang``: an escaped XML fragment for ``<Say>``.

        Runs of whitespace (the template's layout) become single spaces.
        Raises :class:`PromptError` for a missing template, a syntax error,
        an unknown variable or field, a failing filter, or a render over
        :attr:`budget` (which stops the render, however it loops).
        """
        return self._say(lang, name, context, False, lambda text: " ".join(text.split()))

    def render_text(self, lang: str, name: str, context: Mapping) -> str:
        """Render prompt ``name`` in ``lang`` as plain text, for a text message.

        Nothing is XML-escaped (a text message is not TwiML: "&" must stay
        "&"), and filters give plain text too.  Line breaks are kept; runs
        of spaces become one and blank lines go.  A value that is none is
        an error rather than the word "None" in the caller's message.
        Raises :class:`PromptError` as :meth:`render` does.
        """
        return self._say(lang, name, context, True, _lines_of_words)

    def _say(self, lang: str, name: str, context: Mapping, plain: bool, fold) -> str:
        """What the template says, its layout folded by ``fold``.

        A template of an in-memory library (which never changes) is given
        only the names it reads, and what it says is kept by their values
        when they make a key (``ivr.flow.memo``): the sandbox is pure, so
        the same values say the same thing.  The menus every caller hears
        render once, a prompt that reads the date once a day; one that
        reads an order, the time or the caller's number renders each
        time, within its budget.
        """
        compiled = self._templates.get((lang, name, plain))
        if compiled is None:
            compiled = self._template(lang, name, plain)
        if compiled.reads is None:
            return fold(self._render(lang, name, compiled.template, context))
        read, key = read_with_key(compiled.reads, context, compiled.keeps)
        if key is not None:
            key = (lang, name, plain, key)
            said = self._said.get(key)
            if said is not MISSING:
                return said
        said = fold(self._render(lang, name, compiled.template, read, compiled.alone,
                                 compiled.eval_ctx))
        if key is not None:
            self._said.put(key, said)
        return said

    def _render(self, lang: str, name: str, template: jinja2.Template, context: Mapping,
                own: bool = False, eval_ctx: EvalContext | None = None) -> str:
        try:
            return template.environment.render_within(template, context, self.budget, own=own,
                                                      eval_ctx=eval_ctx)
        except Exception as exc:  # a prompt that fails must never reach the caller half-said
            raise PromptError(
                lang, name, f"{type(exc).__name__}: {exc}", _template_line(exc, template.filename),
                failure_kind(exc),
            ) from exc

    def _template(self, lang: str, name: str, plain: bool) -> "_Compiled":
        """The compiled template; kept when the library is in memory (a
        file-based one lets Jinja see edits to the files)."""
        env = self._env(lang, name, plain)
        try:
            template = env.get_template(f"{name}{SUFFIX}")
        except jinja2.TemplateNotFound as exc:
            raise PromptError(lang, name, _(MESSAGES["no-such-prompt"]).format(path=self.path(lang, name))) from exc
        except jinja2.TemplateSyntaxError as exc:
            raise PromptError(lang, name, exc.message or str(exc), exc.lineno) from exc
        if self.sources is None:
            return _Compiled(template, None, False, False)
        ast = env.parse(self.sources[lang, name])
        reads = _names_read(ast)
        keeps = reads is not None and PERSONAL.isdisjoint(reads) and _draws_nothing_at_random(ast)
        compiled = _Compiled(template, reads, keeps, reads is not None and reads_no_global(template, reads),
                             None if reads is None else shared_eval_context(env, template.name, ast))
        self._templates[lang, name, plain] = compiled
        return compiled

    # --- Static checks (for the flow linter) --------------------------------

    def is_notice(self, lang: str, name: str, notice: str = "recording") -> bool:
        """Whether the template is marked as giving ``notice`` (a comment
        ``{# notice: recording #}``): it tells the caller, say, that their
        message is recorded.  False for a missing template."""
        try:
            source = self.source(lang, name).decode("utf-8", "replace")
        except PromptError:
            return False
        return re.search(rf"\{{#-?\s*notice:\s*{re.escape(notice)}\b", source) is not None

    def variables(self, lang: str, name: str) -> set[str]:
        """The variables the template reads from its context."""
        env = self._env(lang, name)
        source, filename = self._read(env, lang, name)
        try:
            # find_undeclared_variables runs the compiler: it also fails on
            # an unknown filter, which is a syntax error for our purpose.
            return set(meta.find_undeclared_variables(env.parse(source, name, filename)))
        except jinja2.TemplateSyntaxError as exc:
            raise PromptError(lang, name, exc.message or str(exc), exc.lineno) from exc

    def check(self, lang: str, name: str, known_variables: set[str]) -> list[PromptProblem]:
        """Find problems without rendering: syntax errors (including unknown
        filters) and variables that are not in ``known_variables``.

        A missing template raises :class:`PromptError`.
        """
        env = self._env(lang, name)
        path = self.path(lang, name)
        source, filename = self._read(env, lang, name)
        try:
            ast = env.parse(source, name, filename)
            # This compiles (never renders) the template, so an unknown
            # filter or test surfaces here too, as a syntax error.
            undeclared = meta.find_undeclared_variables(ast)
        except jinja2.TemplateSyntaxError as exc:
            return [PromptProblem(path, exc.lineno or 1, 1, _syntax_message(exc, env), "prompt-syntax")]

        problems = [
            PromptProblem(path, line, 1, _(MESSAGES["private"]).format(attr=attr), "prompt-unsafe")
            for line, attr in _private_names(ast)
        ]
        for var in sorted(undeclared - set(known_variables)):
            line = min(
                (n.lineno for n in ast.find_all(nodes.Name) if n.name == var and n.ctx == "load"),
                default=1,
            )
            column = _column_of(source, var, line)
            suggestion = closest(var, known_variables)
            message = _(MESSAGES["unknown-variable-suggest" if suggestion else "unknown-variable"])
            problems.append(PromptProblem(path, line, column,
                                          message.format(name=var, suggestion=suggestion),
                                          "unknown-variable"))
        problems.sort(key=lambda p: (p.line, p.column, p.message))
        return problems

    # --- Internals ---------------------------------------------------------

    def day_words(self, lang: str) -> dict[str, str]:
        """How ``lang`` says a day near today (``days:`` of its
        ``speech.yaml``, or the stored copy of it): the words of the
        ``relative_date`` filter.  Raises ``ValueError`` when they are not
        there, so a language never borrows another's words."""
        words = self._days.get(lang)
        if words is None:
            words = _days_of(self._speech_source(lang), self.root / lang / SPEECH_FILE)
            self._days[lang] = words
        return words

    def _speech_source(self, lang: str) -> str | None:
        if self.sources is not None and (lang, SPEECH_FILE) in self.sources:
            return self.sources[lang, SPEECH_FILE]
        try:
            return (self.root / lang / SPEECH_FILE).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return None

    def _read(self, env: Sandbox, lang: str, name: str) -> tuple[str, str]:
        try:
            source, filename, _uptodate = env.loader.get_source(env, f"{name}{SUFFIX}")
        except jinja2.TemplateNotFound as exc:
            raise PromptError(lang, name, _(MESSAGES["no-such-prompt"]).format(path=self.path(lang, name))) from exc
        return source, filename

    def _env(self, lang: str, name: str, plain: bool = False) -> Sandbox:
        """The sandbox for ``lang``: XML-escaping for speech, or ``plain``
        text for text messages (same loader, filters and strictness)."""
        _check_name(lang, name)
        env = self._envs.get((lang, plain))
        if env is None:
            try:
                locale = Locale.parse(lang.replace("-", "_"))
            except (UnknownLocaleError, ValueError) as exc:
                raise PromptError(lang, name, _(MESSAGES["unknown-language"]).format(lang=lang)) from exc
            if self.sources is None:
                loader = jinja2.FileSystemLoader(self.root / lang)
            else:
                loader = jinja2.DictLoader({
                    f"{n}{SUFFIX}": text for (l, n), text in self.sources.items() if l == lang})
            env = Sandbox(
                loader=loader,
                autoescape=not plain,
                undefined=jinja2.StrictUndefined,
                trim_blocks=True,
                lstrip_blocks=True,
                finalize=_no_none if plain else None,
            )
            filters = _filters(locale, lambda: self.day_words(lang))
            if plain:
                filters = {n: _unescaped(f) for n, f in filters.items()}
            env.filters.update(filters)
            self._envs[lang, plain] = env
        return env


def _days_of(source: str | None, path: Path) -> dict[str, str]:
    """The ``days:`` words of a ``speech.yaml`` text (read from ``path``)."""
    try:
        data = yaml.safe_load(source) if source is not None else None
    except yaml.YAMLError:
        data = None
    days = data.get("days") if isinstance(data, dict) else None
    if not isinstance(days, dict) or not all(isinstance(days.get(k), str) for k in DAY_WORDS):
        raise ValueError(f"{path} has no 'days' with {', '.join(DAY_WORDS)} (text each): "
                         "relative_date says a day in the language's own words")
    return {k: days[k] for k in DAY_WORDS}


def _private_names(ast: nodes.Template):
    """(line, name) of each private attribute a template names, however it
    names it: ``x.__class__``, ``x['__class__']``, ``x|attr('__class__')``.
    The sandbox refuses them when they run; naming one is refused at lint,
    even where no sample reaches."""
    for node in ast.find_all((nodes.Getattr, nodes.Getitem, nodes.Filter)):
        if isinstance(node, nodes.Getattr):
            names = [node.attr]
        elif isinstance(node, nodes.Getitem):
            names = [node.arg.value] if isinstance(node.arg, nodes.Const) else []
        else:
            names = [a.value for a in node.args if node.name == "attr" and isinstance(a, nodes.Const)]
        for name in names:
            if isinstance(name, str) and name.startswith("_"):
                yield node.lineno, name


def failure_kind(exc: Exception) -> str:
    """:attr:`PromptError.kind` for what a render (or an expression) raised."""
    if isinstance(exc, RenderBudgetExceeded):
        return "budget"
    if isinstance(exc, SecurityError):
        return "unsafe"
    if isinstance(exc, jinja2.UndefinedError):
        return "undefined"
    return "error"


def _lines_of_words(text: str) -> str:
    """A text message's layout: each line's words, blank lines left out."""
    lines = (" ".join(line.split()) for line in text.splitlines())
    return "\n".join(line for line in lines if line)


class _Compiled(NamedTuple):
    """A template of an in-memory library, ready to render."""

    template: jinja2.Template
    #: Every name it reads (None: any, as a template that includes another
    #: reads that one's names): the only ones it is given.
    reads: tuple[str, ...] | None
    #: Whether what it says may be kept by the values of ``reads``.
    keeps: bool
    #: Whether it reads none of the sandbox's globals: its context is then
    #: made of the names it reads alone (``Sandbox.context_of``).
    alone: bool
    #: The evaluation context its renders share, None when it may change
    #: one (``ivr.flow.sandbox.shared_eval_context``).
    eval_ctx: EvalContext | None = None


def _names_read(ast: nodes.Template) -> tuple[str, ...] | None:
    """Every name a template uses, sorted: its variables, and the globals
    and names it sets too (a flow variable may shadow a global, and one
    given that it does not read changes nothing).  None when it takes
    other templates, which read names of their own."""
    if next(ast.find_all((nodes.Include, nodes.Import, nodes.FromImport, nodes.Extends)), None):
        return None
    return tuple(sorted({n.name for n in ast.find_all((nodes.Name, nodes.NSRef))}))


def _draws_nothing_at_random(ast: nodes.Template) -> bool:
    """Whether a template says the same for the same values: it uses no
    ``random`` filter (the sandbox has no other source of chance, nor a
    clock)."""
    return all(f.name != "random" for f in ast.find_all(nodes.Filter))


def _no_none(value):
    """Plain-text templates: a value that is none fails, as filters do."""
    if value is None:
        raise ValueError("no value (None)")
    return value


def _unescaped(filter_):
    """``filter_`` giving plain text: filters escape for XML, which a text
    message must not be."""
    def plain(*args, **kwargs):
        result = filter_(*args, **kwargs)
        return result.unescape() if isinstance(result, Markup) else result
    return plain


def _syntax_message(exc: jinja2.TemplateSyntaxError, env) -> str:
    """Jinja2's message, with the filter meant when it names an unknown one."""
    message = exc.message or str(exc)
    unknown = _UNKNOWN_FILTER.match(message)
    if unknown and unknown.group("what") == "filter":
        suggestion = closest(unknown.group("name"), env.filters)
        if suggestion:
            return _(MESSAGES["unknown-filter-suggest"]).format(name=unknown.group("name"),
                                                             suggestion=suggestion)
    return message


def _check_name(lang: str, name: str) -> None:
    # Names come from flow files: keep them inside the library's root.
    if not lang or "/" in lang or "\\" in lang or lang in (".", ".."):
        raise PromptError(lang, name, _(MESSAGES["invalid-language"]).format(lang=lang))
    parts = name.split("/")
    if "\\" in name or any(p in ("", ".", "..") for p in parts):
        raise PromptError(lang, name, _(MESSAGES["invalid-name"]).format(name=name))


def _template_line(exc: BaseException, filename: str | None) -> int | None:
    """The template line where a render error happened.

    Jinja rewrites tracebacks so that template code shows up as frames whose
    file is the template; the innermost such frame is the failing line.
    """
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if filename and tb.tb_frame.f_code.co_filename == filename:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _column_of(source: str, var: str, line: int) -> int:
    """1-based column of ``var`` on ``line``, looking only inside ``{{ }}`` /
    ``{% %}`` so that the same word in the spoken text is not taken for it."""
    lines = source.splitlines()
    if not 1 <= line <= len(lines):
        return 1
    text = lines[line - 1]
    word = re.compile(rf"(?<![\w.]){re.escape(var)}(?!\w)")
    for span in re.finditer(r"\{\{.*?(?:\}\}|$)|\{%.*?(?:%\}|$)", text):
        m = word.search(text, span.start(), span.end())
        if m:
            return m.start() + 1
    return 1


# --- Filters -----------------------------------------------------------------
#
# Every filter takes its value as plain text (unescaping Markup it may be
# given), and returns Markup that it escaped itself: the output is safe to
# put in TwiML whatever the data held, and is never escaped twice.


