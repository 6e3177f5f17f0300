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
from pathlib import Path as FilePath
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ivr.flow import expressions, speech
from ivr.flow.checks import _Checks
from ivr.flow.fields import (
    _BAD,
    _FLOW_FIELDS,
    _LANGUAGE,
    DEFAULTS_FIELDS,
    ESCAPE_FIELDS,
    LANGUAGE_FIELDS,
    LIMITS_FIELDS,
    _expect,
    _retry,
    key,
    name,
    text,
)
from ivr.flow.hours import CalendarError, parse_calendar
from ivr.flow.kinds import COMMON_FIELDS, KINDS, NODE_KINDS, RETRY_FIELDS
from ivr.flow.model import (
    Escape,
    Flow,
    Node,
)
from ivr.flow.problems import FlowError, Problem
from ivr.flow.prompts import PromptLibrary
from ivr.flow.suggest import closest
from ivr.flow.yamlcheck import YamlChecker, read_text
from ivr.i18n import N_, _

#: Variables every prompt and expression can read (see docs/flow-language.md).
BUILTIN_VARIABLES = frozenset({
    "caller", "called", "call_id", "country", "lang", "now", "today", "hour",
    "weekday", "attempt", "digits", "speech", "reason", "opens_at",
})

#: What the ``confirm_choice`` prompt reads besides the built-ins: the
#: choice's ``label`` in the caller's language (None when it has none) and
#: the first of its words.
CONFIRM_CHOICE_VARIABLES = frozenset({"choice_label", "choice_word"})


#: The loader's messages that offer a fix, one sentence each.
MESSAGES = {
    "unknown-kind": N_("node {node!r} has unknown kind {kind!r}; expected one of {expected}"),
    "unknown-kind-suggest": N_("node {node!r} has unknown kind {kind!r}; did you mean {suggestion!r}? "
                            "(expected one of {expected})"),
    "not-a-flow": N_("a flow file must be a mapping with 'start' and 'nodes'"),
    "unknown-timezone": N_("unknown timezone {timezone!r}; expected a name such as Europe/Paris"),
    "no-start": N_("the flow has no 'start': name the node where every call begins"),
    "no-human": N_("the flow has no 'human': name the transfer node that every exhausted retry, error and "
                   "escape falls back to (transfer, callback, record or hours)"),
    "no-languages": N_("the flow has no 'languages': list them, e.g. [fr-FR, en-US]"),
    "bad-language": N_("expected a language such as fr-FR, found {lang!r}"),
    "no-speech-data": N_("language {lang!r} has no speech data: expected {where} (yes/no, escape and "
                         "filler words)"),
    "no-nodes": N_("the flow has no 'nodes'"),
    "no-kind": N_("node {node!r} has no 'kind'; expected one of {expected}"),
    "no-reasons": N_("the flow has no 'reasons': declare its contact reasons"),
    "catch-all-reason": N_("reason {name!r} is a catch-all bucket; name what the caller wants (e.g. "
                           "carrier_delay)"),
}

#: Names that would make a catch-all bucket of the contact reasons.
CATCH_ALL_REASONS = frozenset({
    "other", "others", "misc", "miscellaneous", "general", "unknown",
    "autre", "autres", "divers", "not_stated",
})


def load_flow(path, prompts_root, rehearse: bool = True) -> Flow:
    """Read, validate and build the flow at ``path`` with the prompts under
    ``prompts_root``.  Raises :class:`FlowError` listing every problem.

    ``rehearse=False`` skips rendering the prompts on sample data (see
    ``ivr.flow.sample_calls``): only for a flow that already passed it (a
    stored version) or a test of what a failing template does at run time.
    """
    path = FilePath(path)
    return flow_from_source(path, _read(path), PromptLibrary(FilePath(prompts_root)), rehearse)


def _read(path: FilePath) -> str:
    return read_text(path, FlowError)


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


# --- node kinds ----------------------------------------------------------------


class _Builder(YamlChecker, _Checks):
    error = FlowError

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
        self.nodes_broken = False      # a node failed to build or is out of place
        self.doc = None

    def add_value_expression(self, path, spec):
        expression = expressions.value_expression(spec)
        if expression is not None:
            self.expressions.append((path, expression))

    # -- building ------------------------------------------------------------------
    def build(self) -> Flow:
        data = self.parse()
        if not isinstance(data, dict):
            self.problem((), _(MESSAGES["not-a-flow"]), "wrong-type")
            raise FlowError(self.problems)
        flow = self.fields((), data, _FLOW_FIELDS)
        if "timezone" in flow:
            try:
                ZoneInfo(flow["timezone"])
            except (ZoneInfoNotFoundError, ValueError):
                self.problem(("timezone",), _(MESSAGES["unknown-timezone"]).format(timezone=flow["timezone"]),
                             "wrong-value")
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
            self.problem((), _(MESSAGES["no-start"]), "missing-start")
        if "human" not in data:
            self.problem((), _(MESSAGES["no-human"]), "missing-field")
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
            self.problem((), _(MESSAGES["no-languages"]), "missing-field")
            return []
        if _expect(self, ("languages",), raw, list, N_("a list of languages such as [fr-FR, en-US]")) is _BAD:
            return []
        result = []
        for i, lang in enumerate(raw):
            if text(self, ("languages", i), lang) is _BAD:
                continue
            if not _LANGUAGE.match(lang):
                self.problem(("languages", i), _(MESSAGES["bad-language"]).format(lang=lang), "wrong-value")
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
                    self.problem(("languages", i), _(MESSAGES["no-speech-data"]).format(lang=lang, where=where),
                                 "missing-speech-data")
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


    def _settings(self, data, languages, lexicons):
        """Language choice, voices, escape, retry defaults and loop limits."""
        default_lang = languages[0] if languages else "fr-FR"
        lang_spec = self.fields(("language",), data.get("language", {}), LANGUAGE_FIELDS)
        country_languages = {}
        if lang_spec is not _BAD:
            default_lang = lang_spec.get("default", default_lang)
            for lang in ("default", "other_countries"):
                if lang in lang_spec:
                    self.languages_used.append((("language", lang), lang_spec[lang]))
            by_country = data.get("language", {}).get("by_country", {})
            if _expect(self, ("language", "by_country"), by_country, dict,
                       N_("a mapping of language to a list of country codes")) is not _BAD:
                for lang, countries in by_country.items():
                    self.languages_used.append((("language", "by_country", lang), lang))
                    if _expect(self, ("language", "by_country", lang), countries, list,
                               N_("a list of country codes such as [FR, BE]")) is _BAD:
                        continue
                    for country in countries:
                        country_languages[str(country).upper()] = lang
        voices = data.get("voices", {})
        if _expect(self, ("voices",), voices, dict, N_("a mapping of language to voice")) is _BAD:
            voices = {}
        for lang in voices:
            self.languages_used.append((("voices", lang), lang))
        escape = self.fields(("escape",), data.get("escape", {}), ESCAPE_FIELDS)
        escape = {} if escape is _BAD else escape
        raw_keys = escape.get("keys", ["0"])
        if _expect(self, ("escape", "keys"), raw_keys, list, N_('a list of keys such as ["0"]')) is _BAD:
            raw_keys = []
        escape_keys = tuple(
            str(k) for i, k in enumerate(raw_keys)
            if key(self, ("escape", "keys", i), k) is not _BAD)
        escape_words = escape.get("words") or {
            lang: lexicon.escape for lang, lexicon in lexicons.items()}
        defaults = self.fields(("defaults",), data.get("defaults", {}), DEFAULTS_FIELDS)
        defaults = {} if defaults is _BAD else defaults
        limits = self.fields(("limits",), data.get("limits", {}), LIMITS_FIELDS)
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
            self.problem((), _(MESSAGES["no-nodes"]), "missing-field")
            return {}
        if _expect(self, ("nodes",), raw, dict, N_("a mapping of node name to node")) is _BAD:
            return {}
        nodes = {}
        for node_name, spec in raw.items():
            path = ("nodes", node_name)
            if name(self, path, node_name) is _BAD:
                continue
            if not isinstance(spec, dict):
                _expect(self, path, spec, dict, N_("a node: a mapping with a 'kind'"))
                continue
            kind = spec.get("kind")
            if kind is None:
                self.problem(path, _(MESSAGES["no-kind"]).format(node=node_name, expected=", ".join(NODE_KINDS)),
                             "missing-field", at_key=True)
                continue
            if kind not in KINDS:
                suggestion = closest(kind, KINDS)
                message = _(MESSAGES["unknown-kind-suggest" if suggestion else "unknown-kind"])
                self.problem(path + ("kind",), message.format(
                    node=node_name, kind=kind, suggestion=suggestion, expected=", ".join(NODE_KINDS)),
                    "unknown-kind")
                continue
            declared = KINDS[kind]
            parsed = self.fields(path, spec, {**COMMON_FIELDS, **declared.fields},
                                 required=declared.required)
            if parsed is _BAD:
                continue
            for field_name, value in declared.defaults.items():
                parsed.setdefault(field_name, value)
            self.defined |= declared.sets(parsed)
            nodes[node_name] = _make_node(node_name, kind, self.doc.key_pos(path).line, parsed)
        return nodes

    def _reasons(self, data, languages):
        """The reasons and their descriptions: ``{reason: description}``
        (one text) and ``{reason: {language: description}}``."""
        raw = data.get("reasons")
        if raw is None:
            self.problem((), _(MESSAGES["no-reasons"]), "missing-field")
            return {}, {}
        if _expect(self, ("reasons",), raw, dict, N_("a mapping of reason to description")) is _BAD:
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
                self.problem(("reasons", reason_name), _(MESSAGES["catch-all-reason"]).format(name=reason_name),
                             "catch-all-reason", at_key=True)
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
        if _expect(self, ("hours",), raw, dict, N_("a mapping of calendar name to opening hours")) is _BAD:
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
        if _expect(self, ("vars",), raw, dict, N_("a mapping of variable to initial value")) is _BAD:
            return {}
        for var in raw:
            name(self, ("vars", var), var)
        return dict(raw)


    def _problem_at(self, path, message, code, severity):
        pos = self.doc.key_pos(path)
        return Problem(self.path, pos.line, pos.column, message, code, severity)

    def _version(self, prompt_set) -> str:
        digest = hashlib.sha256(self.source.encode("utf-8"))
        for (lang, prompt_name), source in sorted(prompt_set.sources.items()):
            digest.update(f"\0{lang}/{prompt_name}\0".encode())
            digest.update(source.encode("utf-8"))
        return digest.hexdigest()[:12]


def _inherit_retries(nodes, settings):
    """Give every gathering node its full no-input and no-match policies:
    a node that only changes ``max`` keeps the flow's apologies."""
    for node in nodes.values():
        if KINDS[node.kind].gathers:
            for field_name in RETRY_FIELDS:
                node.opts[field_name] = _retry(node.opts.get(field_name, {}), settings[field_name])


def _listens(node: Node) -> bool:
    """Whether a node hears speech, so may confirm what it heard."""
    return node.kind == "menu" and "speech" in node.opts.get("input", "dtmf speech")


def _make_node(node_name, kind, line, parsed) -> Node:
    common = {"say", "reprompt", "next", "reason", "resolves", "kind", "description"}
    opts = {k: v for k, v in parsed.items() if k not in common}
    return Node(
        name=node_name, kind=kind, line=line,
        say=parsed.get("say", ()), reprompt=parsed.get("reprompt", ()),
        next=parsed.get("next"), reason=parsed.get("reason"),
        resolves=parsed.get("resolves", False), opts=opts,
    )


