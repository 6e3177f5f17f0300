"""Load a flow file, validate all of it, and build the immutable :class:`Flow`.

Validation never stops at the first problem: every problem in the YAML, in
the graph and in the prompts it uses is collected, then reported sorted by
position, one per line::

    flows/post_sale.yaml:12:13: error: node 'menu' (choices 2) 'to' goes to unknown node 'billing' [unknown-target]

A flow with any problem is never built, so the engine only ever runs flows
that passed.
"""

from __future__ import annotations

import hashlib
import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError
from dataclasses import dataclass
from pathlib import Path as FilePath

from ivr.flow import expressions, sample_calls, yamlpos
from ivr.flow.hours import CalendarError, parse_calendar
from ivr.flow.matching import normalise
from ivr.flow.model import (
    NODE_KINDS,
    TRANSFER_CAUSES,
    Choice,
    Escape,
    Flow,
    Node,
    PromptItem,
    Retry,
)
from ivr.flow.prompts import FIXED_SERVER_PROMPTS, SERVER_PROMPTS, PromptError, PromptLibrary
from ivr.flow import speech

#: Variables every prompt and expression can read (see docs/flow-language.md).
BUILTIN_VARIABLES = frozenset({
    "caller", "called", "call_id", "country", "lang", "now", "today", "hour",
    "weekday", "attempt", "digits", "speech", "reason", "opens_at",
})

#: What the ``confirm_choice`` prompt reads besides the built-ins: the
#: choice's ``label`` in the caller's language (None when it has none) and
#: the first of its words.
CONFIRM_CHOICE_VARIABLES = frozenset({"choice_label", "choice_word"})

#: What each look-up needs and which variables its answer sets.
LOOKUPS = {
    "order_by_number": {"args": {"number"}, "defaults": {}, "sets": {"order"}},
    "orders_by_phone": {
        "args": {"phone"}, "defaults": {"phone": "{{ caller }}"},
        "sets": {"order", "orders", "count"},
    },
}

#: Names that would make a catch-all bucket of the contact reasons.
CATCH_ALL_REASONS = frozenset({
    "other", "others", "misc", "miscellaneous", "general", "unknown",
    "autre", "autres", "divers", "not_stated",
})

#: The longest literal ``slot`` of a callback node.
MAX_SLOT_LENGTH = 64

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
_KEY = re.compile(r"^[0-9*#]$")
_LANGUAGE = re.compile(r"^[a-z]{2}-[A-Z]{2}$")
#: A value that failed its check; the problem is already recorded.
_BAD = object()
#: What a failed render on sample data is, by ``PromptError.kind``; the
#: problem's code is ``prompt-<kind>``.
_RENDER_FAILURES = {
    "undefined": "reads a variable or field that is not there",
    "budget": "runs over its render budget",
    "unsafe": "reaches outside the sandbox",
    "error": "fails",
}

#: Kinds that lead a caller to a person (an hours node picks between them).
_HUMAN_KINDS = ("transfer", "callback", "record", "hours")


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with a flow, at a 1-based line and column.  An
    ``error`` stops the flow from loading; a ``warning`` does not."""

    path: str
    line: int
    column: int
    message: str
    code: str
    severity: str = "error"

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}: {self.severity}: {self.message} [{self.code}]"


class FlowError(Exception):
    """A flow failed validation; ``problems`` holds every problem, sorted
    (warnings too, when there were errors)."""

    def __init__(self, problems: list[Problem]):
        self.problems = sorted(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


def load_flow(path, prompts_root, rehearse: bool = True) -> Flow:
    """Read, validate and build the flow at ``path`` with the prompts under
    ``prompts_root``.  Raises :class:`FlowError` listing every problem.

    ``rehearse=False`` skips rendering the prompts on sample data (see
    ``ivr.sample_calls``): only for a flow that already passed it (a
    stored version) or a test of what a failing template does at run time.
    """
    path = FilePath(path)
    return flow_from_source(path, _read(path), PromptLibrary(FilePath(prompts_root)), rehearse)


def _read(path: FilePath) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise FlowError([Problem(str(path), 1, 1, f"cannot read the file: {error}", "unreadable")])


def flow_from_source(path, source: str, prompts: PromptLibrary, rehearse: bool = True) -> Flow:
    """Build a flow from its YAML text and prompt library, e.g. a version
    stored in the call log.  Raises :class:`FlowError`.  ``rehearse`` as
    for :func:`load_flow`."""
    return _Builder(str(path), source, prompts, rehearse).build()


def check_flow(path, prompts_root) -> list[Problem]:
    """Every problem of the flow at ``path``, errors and warnings, sorted;
    empty when it is valid and has nothing to warn about."""
    path = FilePath(path)
    try:
        builder = _Builder(str(path), _read(path), PromptLibrary(FilePath(prompts_root)))
        builder.build()
    except FlowError as error:
        return error.problems
    return sorted(builder.warnings)


# --- field checkers ---------------------------------------------------------------
#
# Each checker takes the builder, the YAML path of a value and the value, and
# returns the parsed value or _BAD after recording a problem.


def _type_name(value) -> str:
    return {
        bool: "a boolean", int: "a number", float: "a number", str: "text",
        list: "a list", dict: "a mapping", type(None): "nothing",
    }.get(type(value), type(value).__name__)


def _expect(b, path, value, kind, wanted):
    if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return value
    b.problem(path, f"expected {wanted}, found {_type_name(value)} {value!r}", "wrong-type")
    return _BAD


def text(b, path, value):
    return _expect(b, path, value, str, "text")


def flag(b, path, value):
    return _expect(b, path, value, bool, "true or false")


def count(b, path, value, minimum=0):
    result = _expect(b, path, value, int, "a whole number")
    if result is not _BAD and result < minimum:
        b.problem(path, f"expected a whole number of at least {minimum}, found {result}", "wrong-value")
        return _BAD
    return result


def positive(b, path, value):
    return count(b, path, value, minimum=1)


def name(b, path, value):
    result = text(b, path, value)
    if result is not _BAD and not _NAME.match(result):
        b.problem(path, f"expected a name of letters, digits and '_', found {result!r}", "wrong-value")
        return _BAD
    return result


def target(b, path, value):
    result = text(b, path, value)
    if result is not _BAD:
        b.targets.append((path, result))
    return result


def reason(b, path, value):
    result = text(b, path, value)
    if result is not _BAD:
        b.reasons_used.append((path, result))
    return result


def key(b, path, value):
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # YAML reads an unquoted 1 as a number
    result = text(b, path, value)
    if result is not _BAD and not _KEY.match(result):
        b.problem(path, f"expected one key, 0-9, * or #, found {result!r}", "wrong-value")
        return _BAD
    return result


def one_of(*allowed):
    def check(b, path, value):
        result = text(b, path, value)
        if result is not _BAD and result not in allowed:
            b.problem(path, f"expected one of {', '.join(allowed)}, found {result!r}", "wrong-value")
            return _BAD
        return result
    return check


def pattern(b, path, value):
    result = text(b, path, value)
    if result is _BAD:
        return result
    try:
        re.compile(result)
    except re.error as error:
        b.problem(path, f"invalid pattern: {error}", "wrong-value")
        return _BAD
    return result


def prompts(b, path, value):
    """A prompt sequence: a template name, or a list of names, ``{play: url}``
    and ``{pause: seconds}``."""
    items = value if isinstance(value, list) else [value]
    result = []
    for i, item in enumerate(items):
        at = path + (i,) if isinstance(value, list) else path
        if isinstance(item, str):
            b.prompt_refs.append((at, item))
            result.append(PromptItem("prompt", item))
        elif isinstance(item, dict) and len(item) == 1 and "play" in item:
            url = text(b, at + ("play",), item["play"])
            result.append(PromptItem("play", url))
        elif isinstance(item, dict) and len(item) == 1 and "pause" in item:
            result.append(PromptItem("pause", positive(b, at + ("pause",), item["pause"])))
        else:
            b.problem(at, "expected a prompt name, {play: URL} or {pause: seconds}, "
                          f"found {_type_name(item)} {item!r}", "wrong-type")
    return tuple(result)


def prompt_list(b, path, value):
    """One prompt sequence per attempt."""
    if _expect(b, path, value, list, "a list with one prompt per attempt") is _BAD:
        return _BAD
    return tuple(prompts(b, path + (i,), item) for i, item in enumerate(value))


def retry(b, path, value):
    spec = b.fields(path, value, {"max": count, "say": prompt_list, "to": target})
    if spec is _BAD:
        return _BAD
    return spec


def words(b, path, value):
    """Phrases per language: ``{fr-FR: [suivi, colis], en-US: [tracking]}``."""
    if _expect(b, path, value, dict, "a mapping of language to a list of words") is _BAD:
        return _BAD
    result = {}
    for lang, phrases in value.items():
        b.languages_used.append((path + (lang,), lang))
        if _expect(b, path + (lang,), phrases, list, "a list of words") is _BAD:
            continue
        # Kept as written: they are also the speech recogniser's hints.
        result[lang] = tuple(
            p for i, p in enumerate(phrases) if text(b, path + (lang, i), p) is not _BAD)
    return result


def labels(b, path, value):
    """A text per language: ``{fr-FR: faire un retour, en-US: make a return}``."""
    if _expect(b, path, value, dict, "a mapping of language to text") is _BAD:
        return _BAD
    result = {}
    for lang, label in value.items():
        b.languages_used.append((path + (lang,), lang))
        if text(b, path + (lang,), label) is not _BAD:
            result[lang] = label
    return result


def speech_settings(b, path, value):
    """Thresholds of the speech matcher: ``{accept: 0.6, confirm: 0.3, margin: 0.3, confidence: 0.5}``."""
    if _expect(b, path, value, dict, "a mapping of " + ", ".join(speech.Settings.FIELDS)) is _BAD:
        return _BAD
    result = {}
    for field_name, number in value.items():
        if field_name not in speech.Settings.FIELDS:
            b.problem(path + (field_name,), f"unknown field {field_name!r}; expected one of "
                      f"{', '.join(speech.Settings.FIELDS)}", "unknown-field", at_key=True)
        elif (isinstance(number, bool) or not isinstance(number, (int, float))
              or not 0 <= number <= 1):
            b.problem(path + (field_name,), f"expected a number from 0 to 1, found {number!r}",
                      "wrong-value")
        else:
            result[field_name] = float(number)
    return result


def assignments(b, path, value):
    if _expect(b, path, value, dict, "a mapping of variable to value") is _BAD:
        return _BAD
    result = []
    for variable, spec in value.items():
        if name(b, path + (variable,), variable) is _BAD:
            continue
        b.defined.add(variable)
        b.add_value_expression(path + (variable,), spec)
        if variable == "lang" and expressions.value_expression(spec) is None:
            b.languages_used.append((path + (variable,), spec))
        result.append((variable, spec))
    return tuple(result)


def choices(b, path, value):
    if _expect(b, path, value, list, "a list of choices") is _BAD:
        return _BAD
    result, seen_keys, seen_words = [], {}, {}
    for i, item in enumerate(value):
        at = path + (i,)
        spec = b.fields(at, item, {
            "key": key, "words": words, "to": target, "set": assignments,
            "reason": reason, "confirms": flag, "examples": words, "label": labels,
        }, required=("to",))
        if spec is _BAD:
            continue
        if "key" not in spec and "words" not in spec:
            b.problem(at, "a choice needs a key, words or both", "missing-field")
        choice_key = spec.get("key")
        if choice_key in seen_keys:
            b.problem(at + ("key",), f"key {choice_key} is already used by choice "
                      f"{seen_keys[choice_key] + 1} of this menu", "duplicate-key")
        elif choice_key is not None:
            seen_keys[choice_key] = i
        for lang, phrases in spec.get("words", {}).items():
            for phrase in map(normalise, phrases):
                if (lang, phrase) in seen_words:
                    b.problem(at + ("words", lang), f"word {phrase!r} ({lang}) is already used by "
                              f"choice {seen_words[lang, phrase] + 1} of this menu", "duplicate-key")
                seen_words.setdefault((lang, phrase), i)
        result.append(Choice(
            key=choice_key, words=spec.get("words", {}), to=spec["to"],
            assign=spec.get("set", ()), reason=spec.get("reason"),
            confirms=spec.get("confirms", False),
            examples=spec.get("examples", {}), label=spec.get("label", {}),
        ))
    return tuple(result)


def conditions(b, path, value):
    if _expect(b, path, value, list, "a list of {if: condition, to: node}") is _BAD:
        return _BAD
    result = []
    for i, item in enumerate(value):
        spec = b.fields(path + (i,), item, {"if": text, "to": target}, required=("if", "to"))
        if spec is not _BAD:
            b.expressions.append((path + (i, "if"), spec["if"]))
            result.append((spec["if"], spec["to"]))
    return tuple(result)


def lookup_args(b, path, value):
    if _expect(b, path, value, dict, "a mapping of argument to value") is _BAD:
        return _BAD
    for argument, spec in value.items():
        b.add_value_expression(path + (argument,), spec)
    return dict(value)


def sms_text(b, path, value):
    """The template of a text message: one prompt name, rendered as plain text."""
    if not isinstance(value, str):
        b.problem(path, "expected the name of the text message's template (e.g. sms_tracking for "
                  f"prompts/<language>/sms_tracking.j2), found {_type_name(value)} {value!r}",
                  "wrong-type")
        return _BAD
    b.prompt_refs.append((path, value))
    return value


def sms_to(b, path, value):
    """Who gets a text: an E.164 number or an expression ("{{ callback_number }}")."""
    wanted = 'an E.164 number in quotes such as "+33612345678", or an expression such as ' \
             '"{{ callback_number }}"'
    if not isinstance(value, str):
        b.problem(path, f"expected {wanted}, found {_type_name(value)} {value!r}", "wrong-type")
        return _BAD
    if expressions.value_expression(value) is not None:
        b.add_value_expression(path, value)
    elif not _E164.match(value):
        b.problem(path, f"expected {wanted}, found {value!r}", "wrong-value")
        return _BAD
    return value


def callback_slot(b, path, value):
    """When the caller would like to be called back: a literal such as
    ``morning``, or an expression (``"{{ slot }}"``)."""
    wanted = 'a slot such as morning, or an expression such as "{{ slot }}"'
    if not isinstance(value, str):
        b.problem(path, f"expected {wanted}, found {_type_name(value)} {value!r}", "wrong-type")
        return _BAD
    if expressions.value_expression(value) is not None:
        b.add_value_expression(path, value)
        return value
    if not value.strip():
        problem = f"expected {wanted}, found {value!r}"
    elif "{{" in value or "}}" in value:
        # Text around an expression would be stored as written, braces included.
        problem = f'expected {wanted}: one whole expression, with no text around it, found {value!r}'
    elif len(value) > MAX_SLOT_LENGTH:
        problem = f"expected a slot of at most {MAX_SLOT_LENGTH} characters, found {len(value)}"
    else:
        return value
    b.problem(path, problem, "wrong-value")
    return _BAD


def destination(b, path, value):
    """Where a transfer rings: exactly one of number, sip or queue."""
    if _expect(b, path, value, dict, "{number: +33…}, {sip: sip:…} or {queue: name}") is _BAD:
        return _BAD
    kinds = [k for k in value if k in ("number", "sip", "queue")]
    for k in value:
        if k not in ("number", "sip", "queue"):
            b.problem(path + (k,), f"unknown destination {k!r}; expected number, sip or queue",
                      "unknown-field", at_key=True)
    if len(kinds) != 1:
        b.problem(path, "expected exactly one of number, sip or queue", "wrong-value")
        return _BAD
    kind = kinds[0]
    address = text(b, path + (kind,), value[kind])
    if address is _BAD:
        return _BAD
    problems = {
        "number": None if _E164.match(address) else "expected an E.164 number such as +33123456789",
        "sip": None if address.startswith("sip:") and len(address) < 200 else "expected a SIP URI such as sip:support@pbx.example.com",
        "queue": None if 0 < len(address) <= 64 else "expected a queue name of 1 to 64 characters",
    }
    if problems[kind]:
        b.problem(path + (kind,), f"{problems[kind]}, found {address!r}", "wrong-value")
        return _BAD
    return (kind, address)


# --- node kinds ----------------------------------------------------------------

_COMMON = {"kind": text, "description": text, "reason": reason, "resolves": flag}
_SAY = {"say": prompts}
_GATHER = {"say": prompts, "reprompt": prompt_list, "timeout": positive,
           "no_input": retry, "no_match": retry}

#: Per kind: its own fields, and the fields it cannot do without.
NODE_FIELDS = {
    "say": ({**_SAY, "next": target}, ("say", "next")),
    "menu": ({"choices": choices, "input": one_of("dtmf", "speech", "dtmf speech"),
              "speech": speech_settings, **_GATHER},
             ("say", "choices")),
    "input": ({"min": positive, "max": positive, "finish_on": one_of("#", "*", ""),
               "pattern": pattern, "save_as": name, "confirm": prompts,
               "sensitive": flag, "next": target, **_GATHER},
              ("say", "save_as", "next")),
    "set": ({"set": assignments, "next": target}, ("set", "next")),
    "branch": ({"when": conditions, "else": target}, ("when", "else")),
    "lookup": ({**_SAY, "find": one_of(*LOOKUPS), "with": lookup_args, "found": target,
                "many": target, "not_found": target, "error": target},
               ("find", "found", "not_found")),
    "sms": ({**_SAY, "text": sms_text, "to": sms_to, "next": target, "failed": target},
            ("text", "next")),
    "hours": ({"calendar": text, "open": target, "closed": target},
              ("calendar", "open", "closed")),
    "transfer": ({**_SAY, "to": destination, "timeout": positive, "caller_id": text,
                  "cause": one_of(*TRANSFER_CAUSES), "no_answer": target},
                 ("to",)),
    "record": ({**_SAY, "max_length": positive, "finish_on": text, "next": target}, ("say",)),
    "callback": ({"ask_number": prompts, "save_as": name, "slot": callback_slot, "next": target,
                  **_GATHER},
                 ("say", "ask_number", "next")),
    "hangup": (_SAY, ()),
}

_FLOW_FIELDS = {
    "flow": name, "description": text, "languages": None, "language": None,
    "voices": None, "timezone": text, "start": target, "human": target,
    "escape": None, "defaults": None, "limits": None, "reasons": None,
    "hours": None, "vars": None, "nodes": None, "ask_reason": target,
    "speech": speech_settings,
}


class _Builder:
    def __init__(self, path: str, source: str, library: PromptLibrary, rehearse: bool = True):
        self.path, self.source, self.library = path, source, library
        self.rehearse = rehearse
        self.problems: list[Problem] = []
        self.warnings: list[Problem] = []  # reported by lint; they do not stop a load
        self.targets: list = []        # (yaml path, node name)
        self.reasons_used: list = []   # (yaml path, reason)
        self.prompt_refs: list = []    # (yaml path, template name)
        self.expressions: list = []    # (yaml path, expression)
        self.languages_used: list = [] # (yaml path, language)
        self.defined: set = set()      # variables the flow sets
        self.doc = None

    # -- reporting ---------------------------------------------------------------
    def problem(self, path, message, code, at_key=False):
        pos = self.doc.key_pos(path) if at_key else self.doc.pos(path)
        self.problems.append(Problem(self.path, pos.line, pos.column, message, code))

    def fields(self, path, value, checkers, required=()):
        """Check a mapping against ``checkers``; unknown fields and missing
        required ones are problems.  Returns the parsed fields."""
        if _expect(self, path, value, dict, "a mapping") is _BAD:
            return _BAD
        result = {}
        for field_name, field_value in value.items():
            if field_name not in checkers:
                self.problem(path + (field_name,), f"unknown field {field_name!r}; expected one of "
                             f"{', '.join(sorted(checkers))}", "unknown-field", at_key=True)
                continue
            checker = checkers[field_name]
            # A None checker: the caller checks this field itself.
            parsed = field_value if checker is None else checker(self, path + (field_name,), field_value)
            if parsed is not _BAD:
                result[field_name] = parsed
        for field_name in required:
            if field_name not in value:
                self.problem(path, f"missing field {field_name!r}", "missing-field", at_key=True)
        return result

    def add_value_expression(self, path, spec):
        expression = expressions.value_expression(spec)
        if expression is not None:
            self.expressions.append((path, expression))

    # -- building ------------------------------------------------------------------
    def build(self) -> Flow:
        try:
            self.doc = yamlpos.load(self.source)
        except yamlpos.YamlSyntaxError as error:
            raise FlowError([Problem(self.path, error.pos.line, error.pos.column,
                                     f"YAML syntax: {error.message}", "yaml-syntax")])
        for dup_path, pos in self.doc.duplicates:
            self.problems.append(Problem(self.path, pos.line, pos.column,
                                         f"{dup_path[-1]!r} is defined twice here", "duplicate-key"))
        data = self.doc.data
        if not isinstance(data, dict):
            self.problem((), "a flow file must be a mapping with 'start' and 'nodes'", "wrong-type")
            raise FlowError(self.problems)
        flow = self.fields((), data, _FLOW_FIELDS)
        if "timezone" in flow:
            try:
                ZoneInfo(flow["timezone"])
            except (ZoneInfoNotFoundError, ValueError):
                self.problem(("timezone",), f"unknown timezone {flow['timezone']!r}; expected a "
                             "name such as Europe/Paris", "wrong-value")
                del flow["timezone"]
        languages = self._languages(data)
        lexicons = self._lexicons(languages)
        nodes = self._nodes(data)
        settings = self._settings(data, languages, lexicons)
        _inherit_retries(nodes, settings)
        reasons, reason_labels = self._reasons(data, languages)
        calendars = self._calendars(data)
        variables = self._variables(data)
        if "start" not in data:
            self.problem((), "the flow has no 'start': name the node where every call begins",
                         "missing-start")
        if "human" not in data:
            self.problem((), "the flow has no 'human': name the transfer node that every "
                         "exhausted retry, error and escape falls back to (transfer, callback, record or "
                         "hours)", "missing-field")
        self._check_graph(data, nodes, flow, settings)
        self._check_reasons(reasons)
        self._check_ask_reason(data, nodes)
        self._check_lookups_and_hours(nodes, calendars)
        known = BUILTIN_VARIABLES | self.defined | set(variables)
        self._check_expressions(known)
        if any(_listens(node) for node in nodes.values()):
            first = next(n for n in nodes.values() if _listens(n))
            self.prompt_refs.append((("nodes", first.name), "confirm_choice"))
        prompt_set = self._check_prompts(languages, known | CONFIRM_CHOICE_VARIABLES)
        server_says = self._server_says(prompt_set, languages)
        self._check_recording_notice(data, nodes, settings, languages)
        listeners = self._speech(nodes, settings, lexicons, flow.get("speech", {}))
        prompt_set.sources.update(
            ((lang, speech.LEXICON_FILE), lexicon.source) for lang, lexicon in lexicons.items())
        if self.problems:
            raise FlowError(self.problems + self.warnings)
        flow = Flow(
            name=flow.get("flow") or FilePath(self.path).stem,
            path=self.path,
            version=self._version(prompt_set),
            languages=tuple(languages),
            reasons=reasons, reason_labels=reason_labels, calendars=calendars,
            variables=variables, ask_reason=data.get("ask_reason"),
            nodes=nodes, prompts=prompt_set, source=self.source, server_says=server_says,
            start=data["start"], human=data["human"],
            timezone=flow.get("timezone", "Europe/Paris"),
            **settings, **listeners,
        )
        if self.rehearse:
            self._check_sample_renders(flow)
        if self.problems:
            raise FlowError(self.problems + self.warnings)
        return flow

    def _languages(self, data):
        raw = data.get("languages")
        if raw is None:
            self.problem((), "the flow has no 'languages': list them, e.g. [fr-FR, en-US]",
                         "missing-field")
            return []
        if _expect(self, ("languages",), raw, list, "a list of languages such as [fr-FR, en-US]") is _BAD:
            return []
        result = []
        for i, lang in enumerate(raw):
            if text(self, ("languages", i), lang) is _BAD:
                continue
            if not _LANGUAGE.match(lang):
                self.problem(("languages", i), f"expected a language such as fr-FR, found {lang!r}",
                             "wrong-value")
                continue
            result.append(lang)
        return result

    def _lexicons(self, languages):
        """Each language's speech data: ``<prompts>/<lang>/speech.yaml``
        (or its stored copy).  A language without one is a problem: it is
        never heard with another language's words."""
        result = {}
        for i, lang in enumerate(languages):
            stored = (self.library.sources or {}).get((lang, speech.LEXICON_FILE))
            where = self.library.root / lang / speech.LEXICON_FILE
            try:
                if stored is not None:
                    result[lang] = speech.lexicon_from_source(stored, lang, where)
                elif not where.is_file():
                    self.problem(("languages", i), f"language {lang!r} has no speech data: expected "
                                 f"{where} (yes/no, escape and filler words)", "missing-speech-data")
                else:
                    result[lang] = speech.load_lexicon(where, lang)
            except speech.LexiconError as error:
                self.problem(("languages", i), str(error), "speech-data")
        return result

    def _speech(self, nodes, settings, lexicons, flow_overrides):
        """Build every matcher of this version once, and check the examples."""
        defaults = speech.Settings().merged(flow_overrides)
        escape = settings["escape"]
        listeners = {"speech": defaults, "yes_no": {}, "escape_only": {}}
        for lang, lexicon in lexicons.items():
            way_out = speech.Candidate(speech.ESCAPE, escape.keys, escape.words.get(lang, ()))
            listeners["yes_no"][lang] = speech.yes_no_matcher(lexicon, way_out)
            listeners["escape_only"][lang] = speech.escape_matcher(lexicon, way_out)
        for node in nodes.values():
            if node.kind != "menu":
                continue
            node.opts["speech"] = defaults.merged(node.opts.get("speech", {}))
            node.opts["matchers"] = {}
            for lang, lexicon in lexicons.items():
                way_out = speech.Candidate(speech.ESCAPE, escape.keys, escape.words.get(lang, ()))
                matcher = speech.menu_matcher(lexicon, node.opts.get("choices", ()), way_out)
                node.opts["matchers"][lang] = matcher
                self._check_examples(node, lang, matcher)
        return listeners

    def _check_examples(self, node, lang, matcher):
        """Each example must be taken, without a confirmation, by its own choice."""
        for i, choice in enumerate(node.opts.get("choices", ())):
            for j, example in enumerate(choice.examples.get(lang, ())):
                decision = matcher.decide(example, node.opts["speech"])
                if decision.verdict == "take" and decision.candidate == i:
                    continue
                path = ("nodes", node.name, "choices", i, "examples", lang, j)
                mine = f"example {example!r} ({lang}) of choice {_choice_name(choice, i)} of menu {node.name!r}"
                if decision.verdict == "take":
                    won = _candidate_name(node, decision.candidate)
                    self.problem(path, f"{mine} is taken by {won} ({decision.detail}): give the choices "
                                 "words that tell them apart", "example-mismatch")
                else:
                    what = "would be confirmed" if decision.verdict == "confirm" else "would not match"
                    self.problem(path, f"{mine} {what} ({decision.detail}; taken from score "
                                 f"{node.opts['speech'].accept:.2f} and margin {node.opts['speech'].margin:.2f}): "
                                 "add words that say it", "example-ambiguous")

    def _settings(self, data, languages, lexicons):
        """Language choice, voices, escape, retry defaults and loop limits."""
        default_lang = languages[0] if languages else "fr-FR"
        lang_spec = self.fields(("language",), data.get("language", {}), {
            "default": text, "by_country": None, "other_countries": text})
        country_languages = {}
        if lang_spec is not _BAD:
            default_lang = lang_spec.get("default", default_lang)
            for lang in ("default", "other_countries"):
                if lang in lang_spec:
                    self.languages_used.append((("language", lang), lang_spec[lang]))
            by_country = data.get("language", {}).get("by_country", {})
            if _expect(self, ("language", "by_country"), by_country, dict,
                       "a mapping of language to a list of country codes") is not _BAD:
                for lang, countries in by_country.items():
                    self.languages_used.append((("language", "by_country", lang), lang))
                    if _expect(self, ("language", "by_country", lang), countries, list,
                               "a list of country codes such as [FR, BE]") is _BAD:
                        continue
                    for country in countries:
                        country_languages[str(country).upper()] = lang
        voices = data.get("voices", {})
        if _expect(self, ("voices",), voices, dict, "a mapping of language to voice") is _BAD:
            voices = {}
        for lang in voices:
            self.languages_used.append((("voices", lang), lang))
        escape = self.fields(("escape",), data.get("escape", {}), {
            "keys": None, "words": words, "to": target, "label": labels})
        escape = {} if escape is _BAD else escape
        raw_keys = escape.get("keys", ["0"])
        if _expect(self, ("escape", "keys"), raw_keys, list, 'a list of keys such as ["0"]') is _BAD:
            raw_keys = []
        escape_keys = tuple(
            str(k) for i, k in enumerate(raw_keys)
            if key(self, ("escape", "keys", i), k) is not _BAD)
        escape_words = escape.get("words") or {
            lang: lexicon.escape for lang, lexicon in lexicons.items()}
        defaults = self.fields(("defaults",), data.get("defaults", {}), {
            "timeout": positive, "no_input": retry, "no_match": retry})
        defaults = {} if defaults is _BAD else defaults
        limits = self.fields(("limits",), data.get("limits", {}), {
            "max_steps": positive, "max_visits": positive})
        limits = {} if limits is _BAD else limits
        return {
            "default_language": default_lang,
            "country_languages": country_languages,
            "other_countries_language": None if lang_spec is _BAD else lang_spec.get("other_countries"),
            "voices": dict(voices),
            "escape": Escape(escape_keys, escape_words, escape.get("to") or data.get("human", ""),
                             label=escape.get("label", {})),
            "no_input": _retry(defaults.get("no_input", {})),
            "no_match": _retry(defaults.get("no_match", {})),
            "timeout": defaults.get("timeout", 5),
            "max_steps": limits.get("max_steps", 100),
            "max_visits": limits.get("max_visits", 10),
        }

    def _nodes(self, data):
        raw = data.get("nodes")
        if raw is None:
            self.problem((), "the flow has no 'nodes'", "missing-field")
            return {}
        if _expect(self, ("nodes",), raw, dict, "a mapping of node name to node") is _BAD:
            return {}
        nodes = {}
        for node_name, spec in raw.items():
            path = ("nodes", node_name)
            if name(self, path, node_name) is _BAD:
                continue
            if not isinstance(spec, dict):
                _expect(self, path, spec, dict, "a node: a mapping with a 'kind'")
                continue
            kind = spec.get("kind")
            if kind is None:
                self.problem(path, f"node {node_name!r} has no 'kind'; expected one of "
                             f"{', '.join(NODE_KINDS)}", "missing-field", at_key=True)
                continue
            if kind not in NODE_FIELDS:
                self.problem(path + ("kind",), f"node {node_name!r} has unknown kind {kind!r}; "
                             f"expected one of {', '.join(NODE_KINDS)}", "unknown-kind")
                continue
            own, required = NODE_FIELDS[kind]
            parsed = self.fields(path, spec, {**_COMMON, **own}, required=required)
            if parsed is _BAD:
                continue
            if kind == "input" and parsed.get("save_as"):
                self.defined.add(parsed["save_as"])
            if kind == "record":
                self.defined.add("recording_url")
            if kind == "callback":
                self.defined.add(parsed.setdefault("save_as", "callback_number"))
            if kind == "lookup" and parsed.get("find") in LOOKUPS:
                self.defined |= LOOKUPS[parsed["find"]]["sets"]
            nodes[node_name] = _make_node(node_name, kind, self.doc.key_pos(path).line, parsed)
        return nodes

    def _reasons(self, data, languages):
        """The reasons and their descriptions: ``{reason: description}``
        (one text) and ``{reason: {language: description}}``."""
        raw = data.get("reasons")
        if raw is None:
            self.problem((), "the flow has no 'reasons': declare its contact reasons", "missing-field")
            return {}, {}
        if _expect(self, ("reasons",), raw, dict, "a mapping of reason to description") is _BAD:
            return {}, {}
        default = languages[0] if languages else None
        if isinstance(data.get("language"), dict) and isinstance(data["language"].get("default"), str):
            default = data["language"]["default"]
        reasons, labels = {}, {}
        for reason_name, description in raw.items():
            if name(self, ("reasons", reason_name), reason_name) is _BAD:
                continue
            if isinstance(description, dict):
                per_language = self._reason_labels(("reasons", reason_name), description)
                labels[reason_name] = per_language
                reasons[reason_name] = per_language.get(default) or next(iter(per_language.values()), "")
            else:
                text(self, ("reasons", reason_name), description)
                reasons[reason_name] = description
            if reason_name.lower() in CATCH_ALL_REASONS:
                self.problem(("reasons", reason_name), f"reason {reason_name!r} is a catch-all bucket; "
                             "name what the caller wants (e.g. carrier_delay)", "catch-all-reason",
                             at_key=True)
        return reasons, labels

    def _reason_labels(self, path, description: dict) -> dict:
        labels = {}
        for lang, label in description.items():
            self.languages_used.append((path + (lang,), lang))
            if text(self, path + (lang,), label) is not _BAD:
                labels[lang] = label
        return labels

    def _calendars(self, data):
        raw = data.get("hours", {})
        if _expect(self, ("hours",), raw, dict, "a mapping of calendar name to opening hours") is _BAD:
            return {}
        calendars = {}
        for cal_name, spec in raw.items():
            try:
                calendars[cal_name] = parse_calendar(spec)
            except CalendarError as error:
                self.problem(("hours", cal_name) + tuple(error.path), error.message, "bad-hours")
        return calendars

    def _variables(self, data):
        raw = data.get("vars", {})
        if _expect(self, ("vars",), raw, dict, "a mapping of variable to initial value") is _BAD:
            return {}
        for var in raw:
            name(self, ("vars", var), var)
        return dict(raw)

    # -- whole-flow checks ---------------------------------------------------------
    def _check_graph(self, data, nodes, flow, settings):
        raw_nodes = data.get("nodes") if isinstance(data.get("nodes"), dict) else {}
        for path, node_name in self.targets:
            if node_name not in raw_nodes:
                where = _describe(path)
                self.problem(path, f"{where} goes to unknown node {node_name!r}", "unknown-target")
        human = data.get("human")
        if isinstance(human, str) and human in nodes and nodes[human].kind not in _HUMAN_KINDS:
            self.problem(("human",), f"'human' must name a transfer, callback, record or hours node; "
                         f"{human!r} is of kind {nodes[human].kind}", "wrong-value")
        for k in settings["escape"].keys:
            for node in nodes.values():
                for i, choice in enumerate(node.opts.get("choices", ())):
                    if choice.key == k:
                        self.problem(("nodes", node.name, "choices", i, "key"), f"key {k} of menu {node.name!r} "
                                     "is the flow's escape key to a human", "duplicate-key")
        if "start" not in data or not isinstance(data.get("start"), str) or not nodes:
            return
        roots = [data["start"], data.get("human"), settings["escape"].to,
                 settings["no_input"].to, settings["no_match"].to, data.get("ask_reason")]
        reachable = set()
        pending = [r for r in roots if isinstance(r, str) and r in nodes]
        while pending:
            current = pending.pop()
            if current in reachable:
                continue
            reachable.add(current)
            pending.extend(t for t in _edges(nodes[current]) if t in nodes)
        led_to = {t for node in nodes.values() for t in _edges(node)} | set(roots)
        broken_edges = any(name not in raw_nodes for _path, name in self.targets)
        for node_name in nodes:
            if node_name in reachable:
                continue
            if node_name not in led_to:
                self.problem(("nodes", node_name), f"node {node_name!r} is unreachable: no node "
                             "leads to it", "unreachable-node", at_key=True)
            elif not broken_edges:  # else it is cut off by the unknown target already reported
                self.problem(("nodes", node_name), f"node {node_name!r} is unreachable from "
                             f"start {data['start']!r}", "unreachable-node", at_key=True)

    def _check_reasons(self, reasons):
        used = set()
        for path, reason_name in self.reasons_used:
            used.add(reason_name)
            if reason_name not in reasons:
                self.problem(path, f"reason {reason_name!r} is not declared under 'reasons'",
                             "unknown-reason")
        for reason_name in reasons:
            if reason_name not in used:
                self.problem(("reasons", reason_name), f"reason {reason_name!r} is declared but no "
                             "node marks it", "unused-reason", at_key=True)

    def _check_ask_reason(self, data, nodes):
        """``ask_reason`` names a menu whose every choice marks a reason and
        leads to a person: the caller asked for one, and gets one."""
        asked = data.get("ask_reason")
        if not isinstance(asked, str) or asked not in nodes:
            return  # missing targets are reported as unknown-target
        node = nodes[asked]
        if node.kind != "menu":
            self.problem(("ask_reason",), f"'ask_reason' must name a menu whose choices mark reasons; "
                         f"{asked!r} is of kind {node.kind}", "wrong-value")
            return
        human = data.get("human")
        for i, choice in enumerate(node.opts.get("choices", ())):
            path = ("nodes", asked, "choices", i)
            if not choice.reason:
                self.problem(path, f"choice {i + 1} of the ask_reason menu {asked!r} marks no reason; "
                             "add 'reason: …' (the caller's answer is the call's reason)",
                             "missing-field")
            target_node = nodes.get(choice.to)
            if target_node is not None and choice.to != human and target_node.kind not in _HUMAN_KINDS:
                self.problem(path + ("to",), f"choice {i + 1} of the ask_reason menu {asked!r} goes to "
                             f"{choice.to!r}, a {target_node.kind}; expected the human or a transfer, "
                             "callback, record or hours node (the caller asked for a person)",
                             "wrong-value")

    def _check_lookups_and_hours(self, nodes, calendars):
        for node in nodes.values():
            path = ("nodes", node.name)
            if node.kind == "lookup":
                if node.opts.get("error") is None:
                    self.problem(path, f"look-up {node.name!r} has no 'error' branch: say where callers "
                                 "go when the back-end fails (usually the human)",
                                 "missing-error-branch", at_key=True)
                spec = LOOKUPS.get(node.opts.get("find"))
                if spec:
                    given = set(node.opts.get("with", {})) | set(spec["defaults"])
                    for missing in sorted(spec["args"] - given):
                        self.problem(path, f"look-up {node.name!r} needs 'with: {{{missing}: …}}'",
                                     "missing-field", at_key=True)
                    for extra in sorted(set(node.opts.get("with", {})) - spec["args"]):
                        self.problem(path + ("with", extra), f"look-up {node.opts['find']} takes no "
                                     f"argument {extra!r}", "unknown-field", at_key=True)
            if node.kind == "hours" and node.opts.get("calendar") not in calendars:
                self.problem(path + ("calendar",), f"calendar {node.opts.get('calendar')!r} is not "
                             "defined under 'hours'", "unknown-calendar")

    def _check_expressions(self, known):
        for path, source in self.expressions:
            try:
                used = expressions.variables(source)
            except expressions.ExpressionError as error:
                self.problem(path, f"invalid expression {source!r}: {error}", "expression-syntax")
                continue
            for variable in sorted(used - known):
                self.problem(path, f"expression uses unknown variable {variable!r}", "unknown-variable")

    def _check_prompts(self, languages, known):
        for path, lang in self.languages_used:
            if languages and lang not in languages:
                self.problem(path, f"language {lang!r} is not one of the flow's languages "
                             f"({', '.join(languages)})", "unknown-language")
        names = {}
        for path, prompt_name in self.prompt_refs:
            names.setdefault(prompt_name, path)
        checked = set()
        for prompt_name, path in names.items():
            for lang in languages:
                try:
                    expected = self.library.path(lang, prompt_name)
                except PromptError as error:
                    self.problem(path, f"invalid prompt name {prompt_name!r}: {error.message}",
                                 "wrong-value")
                    break
                if not self.library.exists(lang, prompt_name):
                    self.problem(path, f"prompt {prompt_name!r} has no {lang} version: expected "
                                 f"{expected}", "missing-prompt")
                    continue
                if (lang, prompt_name) in checked:
                    continue
                checked.add((lang, prompt_name))
                try:
                    found = self.library.check(lang, prompt_name, known)
                except PromptError as error:
                    self.problem(path, str(error), "prompt-syntax")
                    continue
                for p in found:
                    self.problems.append(Problem(str(p.path), p.line, p.column, p.message, p.code))
        self._check_server_prompts(languages)
        available = [(lang, n) for n in list(names) + list(SERVER_PROMPTS) for lang in languages
                     if self.library.exists(lang, n)]
        return self.library.snapshot(available)

    def _check_server_prompts(self, languages):
        """The prompts the server says (on hold, the fail-safe, the agent's
        whisper) exist in each of the flow's languages, reading only what
        the server gives them."""
        for index, lang in enumerate(languages):
            for name, variables in SERVER_PROMPTS.items():
                if not self.library.exists(lang, name):
                    self.problem(("languages", index), f"prompt {name!r} has no {lang} version: "
                                 f"expected {self.library.path(lang, name)} (the server says it "
                                 f"during calls in {lang})", "missing-prompt")
                    continue
                try:
                    found = self.library.check(lang, name, variables)
                except PromptError as error:
                    self.problem(("languages", index), str(error), "prompt-syntax")
                    continue
                for p in found:
                    self.problems.append(Problem(str(p.path), p.line, p.column, p.message, p.code))

    def _server_says(self, prompt_set, languages) -> dict:
        """The server's fixed prompts, rendered now: a template that breaks
        later cannot silence the fail-safe."""
        says = {}
        for index, lang in enumerate(languages):
            for name in FIXED_SERVER_PROMPTS:
                if not prompt_set.exists(lang, name):
                    continue  # already a problem
                try:
                    says.setdefault(lang, {})[name] = prompt_set.render(lang, name, {})
                except PromptError as error:
                    self.problem(("languages", index), str(error), "prompt-render")
        return says

    def _check_sample_renders(self, flow):
        """Render every prompt on sample data (``ivr.sample_calls``): a
        template that fails, reads what is not there or runs over its
        budget would fail a live call; so would an expression."""
        # A node nothing leads to is one the engine enters by itself.
        led_to = {target for node in flow.nodes.values() for target in _edges(node)}
        for finding in sample_calls.rehearse(flow, [n for n in flow.nodes if n not in led_to]):
            if isinstance(finding, sample_calls.ExpressionFinding):
                self.problem(finding.path, f"expression {finding.source!r} "
                             f"{_RENDER_FAILURES[finding.kind]} when node {finding.node!r} runs it "
                             f"(sample: {finding.sample}): {finding.message}",
                             f"expression-{finding.kind}")
                continue
            error = finding.error
            node = flow.nodes[finding.node]
            message = (f"{_RENDER_FAILURES[error.kind]} when node {finding.node!r} "
                       f"({self.path}:{node.line}) says it ({finding.lang}, sample: "
                       f"{finding.sample}): {error.message}")
            self.problems.append(Problem(str(self.library.path(finding.lang, finding.prompt)),
                                         error.line or 1, 1, message, f"prompt-{error.kind}"))

    def _check_recording_notice(self, data, nodes, settings, languages):
        """A ``record`` node must tell callers they are recorded: its own
        prompt says so, or a prompt of every node that leads to it does; a
        prompt that does is marked ``{# notice: recording #}`` in every
        language.  A warning: the flow still loads."""
        implicit = {data.get("human"), settings["escape"].to,
                    settings["no_input"].to, settings["no_match"].to}

        def gives_notice(node):
            return any(item.kind == "prompt" and all(
                self.library.is_notice(lang, item.value) for lang in languages)
                for item in node.say)

        for node in nodes.values():
            if node.kind != "record" or gives_notice(node):
                continue
            before = [n for n in nodes.values() if node.name in set(_edges(n))]
            if node.name in implicit or not before or not all(map(gives_notice, before)):
                self.warnings.append(self._problem_at(
                    ("nodes", node.name), f"record node {node.name!r} is not preceded by a notice "
                    "that the message is recorded: say it in its prompt (or in one of every node "
                    "that leads to it) and mark that template {# notice: recording #}",
                    "recording-notice", "warning"))

    def _problem_at(self, path, message, code, severity):
        pos = self.doc.key_pos(path)
        return Problem(self.path, pos.line, pos.column, message, code, severity)

    def _version(self, prompt_set) -> str:
        digest = hashlib.sha256(self.source.encode("utf-8"))
        for (lang, prompt_name), source in sorted(prompt_set.sources.items()):
            digest.update(f"\0{lang}/{prompt_name}\0".encode())
            digest.update(source.encode("utf-8"))
        return digest.hexdigest()[:12]


def _retry(spec, default: Retry = Retry(max=2)) -> Retry:
    """A retry policy: what ``spec`` sets, the rest from ``default``."""
    return Retry(max=spec.get("max", default.max), say=spec.get("say", default.say),
                 to=spec.get("to", default.to))


def _inherit_retries(nodes, settings):
    """Give every gathering node its full no-input and no-match policies:
    a node that only changes ``max`` keeps the flow's apologies."""
    for node in nodes.values():
        if node.kind in ("menu", "input", "callback"):
            for field_name in ("no_input", "no_match"):
                node.opts[field_name] = _retry(node.opts.get(field_name, {}), settings[field_name])


def _listens(node: Node) -> bool:
    """Whether a node hears speech, so may confirm what it heard."""
    return node.kind == "menu" and "speech" in node.opts.get("input", "dtmf speech")


def _choice_name(choice, index: int) -> str:
    return f"{index + 1} (key {choice.key})" if choice.key else str(index + 1)


def _candidate_name(node: Node, candidate) -> str:
    if candidate == speech.ESCAPE:
        return "the escape to a human"
    return "choice " + _choice_name(node.opts["choices"][candidate], candidate)


def _make_node(node_name, kind, line, parsed) -> Node:
    common = {"say", "reprompt", "next", "reason", "resolves", "kind", "description"}
    opts = {k: v for k, v in parsed.items() if k not in common}
    return Node(
        name=node_name, kind=kind, line=line,
        say=parsed.get("say", ()), reprompt=parsed.get("reprompt", ()),
        next=parsed.get("next"), reason=parsed.get("reason"),
        resolves=parsed.get("resolves", False), opts=opts,
    )


def _edges(node: Node):
    """Every node name ``node`` can lead to."""
    if node.next:
        yield node.next
    for field_name in ("found", "many", "not_found", "error", "open", "closed", "else", "no_answer",
                       "failed"):
        if node.opts.get(field_name):
            yield node.opts[field_name]
    for choice in node.opts.get("choices", ()):
        yield choice.to
    for _condition, to in node.opts.get("when", ()):
        yield to
    for retry_field in ("no_input", "no_match"):
        retry_spec = node.opts.get(retry_field)
        if retry_spec and retry_spec.to:
            yield retry_spec.to


def _describe(path) -> str:
    """``nodes.menu.choices.1.to`` → "node 'menu' (choices 2)"."""
    if len(path) >= 2 and path[0] == "nodes":
        rest = [str(p + 1) if isinstance(p, int) else p for p in path[2:-1]]
        detail = f" ({' '.join(rest)})" if rest else ""
        field_name = path[-1]
        return f"node {path[1]!r}{detail} '{field_name}'"
    return f"'{'.'.join(str(p) for p in path)}'"
