"""The checkers of a flow file's fields (which fields each node kind has is
declared in ``ivr.flow.kinds``).

A checker takes the builder, the field's YAML path and its value; it
reports problems through the builder and returns the parsed value, or
``_BAD`` when there is none."""

from __future__ import annotations

import re

from ivr.flow import expressions, speech
from ivr.flow.matching import normalise
from ivr.flow.model import (
    Choice,
    PromptItem,
    Retry,
)
from ivr.flow.yamlcheck import BAD, type_name
from ivr.i18n import N_, _

#: What each look-up needs and which variables its answer sets.
LOOKUPS = {
    "order_by_number": {"args": {"number"}, "defaults": {}, "sets": {"order"}},
    "orders_by_phone": {
        "args": {"phone"}, "defaults": {"phone": "{{ caller }}"},
        "sets": {"order", "orders", "count"},
    },
}


_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")


_KEY = re.compile(r"^[0-9*#]$")


_LANGUAGE = re.compile(r"^[a-z]{2}-[A-Z]{2}$")


#: A value that failed its check; the problem is already recorded.
_BAD = BAD


#: The longest literal ``slot`` of a callback node.
MAX_SLOT_LENGTH = 64

#: The messages of the field checks, one sentence each with named values.
MESSAGES = {
    "too-small": N_("expected a whole number of at least {minimum}, found {found}"),
    "bad-name": N_("expected a name of letters, digits and '_', found {found!r}"),
    "bad-key": N_("expected one key, 0-9, * or #, found {found!r}"),
    "not-allowed": N_("expected one of {expected}, found {found!r}"),
    "bad-pattern": N_("invalid pattern: {error}"),
    "bad-say-item": N_("expected a prompt name, {{play: URL}} or {{pause: seconds}}, found {type} {value!r}"),
    "unknown-field": N_("unknown field {field!r}; expected one of {expected}"),
    "not-a-ratio": N_("expected a number from 0 to 1, found {found!r}"),
    "empty-choice": N_("a choice needs a key, words or both"),
    "key-taken": N_("key {key} is already used by choice {other} of this menu"),
    "word-taken": N_("word {word!r} ({lang}) is already used by choice {other} of this menu"),
    "bad-sms-template": N_("expected the name of the text message's template (e.g. sms_tracking for "
                           "prompts/<language>/sms_tracking.j2), found {type} {value!r}"),
    "wrong-type": N_("expected {wanted}, found {found} {value!r}"),
    "wrong-value": N_("expected {wanted}, found {value!r}"),
    "text-around-expression": N_("expected {wanted}: one whole expression, with no text around it, found {value!r}"),
    "slot-too-long": N_("expected a slot of at most {maximum} characters, found {length}"),
    "unknown-destination": N_("unknown destination {key!r}; expected number, sip or queue"),
    "one-destination": N_("expected exactly one of number, sip or queue"),
    "bad-number": N_("expected an E.164 number such as +33123456789, found {address!r}"),
    "bad-sip": N_("expected a SIP URI such as sip:support@pbx.example.com, found {address!r}"),
    "bad-queue": N_("expected a queue name of 1 to 64 characters, found {address!r}"),
}


_type_name = type_name


def _expect(b, path, value, kind, wanted):
    return b.expect(path, value, kind, wanted)


def text(b, path, value):
    return _expect(b, path, value, str, N_("text"))


def flag(b, path, value):
    return _expect(b, path, value, bool, N_("true or false"))


def count(b, path, value, minimum=0):
    result = _expect(b, path, value, int, N_("a whole number"))
    if result is not _BAD and result < minimum:
        b.problem(path, _(MESSAGES["too-small"]).format(minimum=minimum, found=result), "wrong-value")
        return _BAD
    return result


def positive(b, path, value):
    return count(b, path, value, minimum=1)


def name(b, path, value):
    result = text(b, path, value)
    if result is not _BAD and not _NAME.match(result):
        b.problem(path, _(MESSAGES["bad-name"]).format(found=result), "wrong-value")
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
        b.problem(path, _(MESSAGES["bad-key"]).format(found=result), "wrong-value")
        return _BAD
    return result


def one_of(*allowed):
    """A checker of text that must be one of ``allowed`` (kept on it as
    ``allowed``, for the JSON Schema)."""
    def check(b, path, value):
        result = text(b, path, value)
        if result is not _BAD and result not in allowed:
            b.problem(path, _(MESSAGES["not-allowed"]).format(expected=", ".join(allowed), found=result),
                      "wrong-value")
            return _BAD
        return result
    check.allowed = allowed  # type: ignore[attr-defined]
    return check


def pattern(b, path, value):
    result = text(b, path, value)
    if result is _BAD:
        return result
    try:
        re.compile(result)
    except re.error as error:
        b.problem(path, _(MESSAGES["bad-pattern"]).format(error=error), "wrong-value")
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
            b.problem(at, _(MESSAGES["bad-say-item"]).format(type=_type_name(item), value=item), "wrong-type")
    return tuple(result)


def prompt_list(b, path, value):
    """One prompt sequence per attempt."""
    if _expect(b, path, value, list, N_("a list with one prompt per attempt")) is _BAD:
        return _BAD
    return tuple(prompts(b, path + (i,), item) for i, item in enumerate(value))


def retry(b, path, value):
    return b.fields(path, value, RETRY_POLICY_FIELDS)


def words(b, path, value):
    """Phrases per language: ``{fr-FR: [suivi, colis], en-US: [tracking]}``."""
    if _expect(b, path, value, dict, N_("a mapping of language to a list of words")) is _BAD:
        return _BAD
    result = {}
    for lang, phrases in value.items():
        b.languages_used.append((path + (lang,), lang))
        if _expect(b, path + (lang,), phrases, list, N_("a list of words")) is _BAD:
            continue
        # Kept as written: they are also the speech recogniser's hints.
        result[lang] = tuple(
            p for i, p in enumerate(phrases) if text(b, path + (lang, i), p) is not _BAD)
    return result


def labels(b, path, value):
    """A text per language: ``{fr-FR: faire un retour, en-US: make a return}``."""
    if _expect(b, path, value, dict, N_("a mapping of language to text")) is _BAD:
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
            b.problem(path + (field_name,), _(MESSAGES["unknown-field"]).format(
                field=field_name, expected=", ".join(speech.Settings.FIELDS)), "unknown-field", at_key=True)
        elif (isinstance(number, bool) or not isinstance(number, (int, float))
              or not 0 <= number <= 1):
            b.problem(path + (field_name,), _(MESSAGES["not-a-ratio"]).format(found=number), "wrong-value")
        else:
            result[field_name] = float(number)
    return result


def assignments(b, path, value):
    if _expect(b, path, value, dict, N_("a mapping of variable to value")) is _BAD:
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
    if _expect(b, path, value, list, N_("a list of choices")) is _BAD:
        return _BAD
    result, seen_keys, seen_words = [], {}, {}
    for i, item in enumerate(value):
        at = path + (i,)
        spec = b.fields(at, item, CHOICE_FIELDS, required=CHOICE_REQUIRED)
        if spec is _BAD:
            continue
        if "key" not in spec and "words" not in spec:
            b.problem(at, _(MESSAGES["empty-choice"]), "missing-field")
        choice_key = spec.get("key")
        if choice_key in seen_keys:
            b.problem(at + ("key",), _(MESSAGES["key-taken"]).format(key=choice_key, other=seen_keys[choice_key] + 1),
                      "duplicate-key")
        elif choice_key is not None:
            seen_keys[choice_key] = i
        for lang, phrases in spec.get("words", {}).items():
            for phrase in map(normalise, phrases):
                if (lang, phrase) in seen_words:
                    b.problem(at + ("words", lang), _(MESSAGES["word-taken"]).format(
                        word=phrase, lang=lang, other=seen_words[lang, phrase] + 1), "duplicate-key")
                seen_words.setdefault((lang, phrase), i)
        result.append(Choice(
            key=choice_key, words=spec.get("words", {}), to=spec["to"],
            assign=spec.get("set", ()), reason=spec.get("reason"),
            confirms=spec.get("confirms", False),
            examples=spec.get("examples", {}), label=spec.get("label", {}),
        ))
    return tuple(result)


def conditions(b, path, value):
    if _expect(b, path, value, list, N_("a list of {if: condition, to: node}")) is _BAD:
        return _BAD
    result = []
    for i, item in enumerate(value):
        spec = b.fields(path + (i,), item, CONDITION_FIELDS, required=tuple(CONDITION_FIELDS))
        if spec is not _BAD:
            b.expressions.append((path + (i, "if"), spec["if"]))
            result.append((spec["if"], spec["to"]))
    return tuple(result)


def lookup_args(b, path, value):
    if _expect(b, path, value, dict, N_("a mapping of argument to value")) is _BAD:
        return _BAD
    for argument, spec in value.items():
        b.add_value_expression(path + (argument,), spec)
    return dict(value)


def sms_text(b, path, value):
    """The template of a text message: one prompt name, rendered as plain text."""
    if not isinstance(value, str):
        b.problem(path, _(MESSAGES["bad-sms-template"]).format(type=_type_name(value), value=value), "wrong-type")
        return _BAD
    b.prompt_refs.append((path, value))
    return value


def sms_to(b, path, value):
    """Who gets a text: an E.164 number or an expression ("{{ callback_number }}")."""
    wanted = _('an E.164 number in quotes such as "+33612345678", or an expression such as '
               '"{{ callback_number }}"')
    if not isinstance(value, str):
        b.problem(path, _(MESSAGES["wrong-type"]).format(wanted=wanted, found=_type_name(value), value=value),
                  "wrong-type")
        return _BAD
    if expressions.value_expression(value) is not None:
        b.add_value_expression(path, value)
    elif not _E164.match(value):
        b.problem(path, _(MESSAGES["wrong-value"]).format(wanted=wanted, value=value), "wrong-value")
        return _BAD
    return value


def callback_slot(b, path, value):
    """When the caller would like to be called back: a literal such as
    ``morning``, or an expression (``"{{ slot }}"``)."""
    wanted = _('a slot such as morning, or an expression such as "{{ slot }}"')
    if not isinstance(value, str):
        b.problem(path, _(MESSAGES["wrong-type"]).format(wanted=wanted, found=_type_name(value), value=value),
                  "wrong-type")
        return _BAD
    if expressions.value_expression(value) is not None:
        b.add_value_expression(path, value)
        return value
    if not value.strip():
        problem = _(MESSAGES["wrong-value"]).format(wanted=wanted, value=value)
    elif "{{" in value or "}}" in value:
        # Text around an expression would be stored as written, braces included.
        problem = _(MESSAGES["text-around-expression"]).format(wanted=wanted, value=value)
    elif len(value) > MAX_SLOT_LENGTH:
        problem = _(MESSAGES["slot-too-long"]).format(maximum=MAX_SLOT_LENGTH, length=len(value))
    else:
        return value
    b.problem(path, problem, "wrong-value")
    return _BAD


def destination(b, path, value):
    """Where a transfer rings: exactly one of number, sip or queue."""
    if _expect(b, path, value, dict, N_("{number: +33…}, {sip: sip:…} or {queue: name}")) is _BAD:
        return _BAD
    kinds = [k for k in value if k in ("number", "sip", "queue")]
    for k in value:
        if k not in ("number", "sip", "queue"):
            b.problem(path + (k,), _(MESSAGES["unknown-destination"]).format(key=k), "unknown-field", at_key=True)
    if len(kinds) != 1:
        b.problem(path, _(MESSAGES["one-destination"]), "wrong-value")
        return _BAD
    kind = kinds[0]
    address = text(b, path + (kind,), value[kind])
    if address is _BAD:
        return _BAD
    problems = {
        "number": None if _E164.match(address) else "bad-number",
        "sip": None if address.startswith("sip:") and len(address) < 200 else "bad-sip",
        "queue": None if 0 < len(address) <= 64 else "bad-queue",
    }
    if problems[kind]:
        b.problem(path + (kind,), _(MESSAGES[problems[kind]]).format(address=address), "wrong-value")
        return _BAD
    return (kind, address)


# --- the fields of the mappings inside a flow -----------------------------------------
# Declared once here: the loader checks them, and ivr.flow.json_schema
# describes them for editors.

#: A retry policy (``no_input:``, ``no_match:``).
RETRY_POLICY_FIELDS = {"max": count, "say": prompt_list, "to": target}

#: A menu's choice, and the fields it cannot do without.
CHOICE_FIELDS = {
    "key": key, "words": words, "to": target, "set": assignments,
    "reason": reason, "confirms": flag, "examples": words, "label": labels,
}
CHOICE_REQUIRED = ("to",)

#: A branch's condition (both required).
CONDITION_FIELDS = {"if": text, "to": target}

#: ``language:`` (``by_country`` is checked by the loader itself).
LANGUAGE_FIELDS = {"default": text, "by_country": None, "other_countries": text}

#: ``escape:`` (``keys`` is checked by the loader itself).
ESCAPE_FIELDS = {"keys": None, "words": words, "to": target, "label": labels}

#: ``defaults:`` and ``limits:``.
DEFAULTS_FIELDS = {"timeout": positive, "no_input": retry, "no_match": retry}
LIMITS_FIELDS = {"max_steps": positive, "max_visits": positive}

_FLOW_FIELDS = {
    "flow": name, "description": text, "languages": None, "language": None,
    "voices": None, "timezone": text, "start": target, "human": target,
    "escape": None, "defaults": None, "limits": None, "reasons": None,
    "hours": None, "vars": None, "nodes": None, "ask_reason": target,
    "speech": speech_settings,
}


def _retry(spec, default: Retry = Retry(max=2)) -> Retry:
    """A retry policy: what ``spec`` sets, the rest from ``default``."""
    return Retry(max=spec.get("max", default.max), say=spec.get("say", default.say),
                 to=spec.get("to", default.to))
