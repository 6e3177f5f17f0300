"""Form fields checked against a table of rules, before anything reads
them: the one check of Twilio's fields
(:mod:`ivr.providers.twilio.webhook_fields`), of the TwiML-compatible
providers' (:mod:`ivr.providers.twiml_compat`) and of Plivo's
(:mod:`ivr.providers.plivo.fields`), each with its own table.

Identifiers of the right shape, numbers of ASCII digits within range and
text of a bounded size without control characters.  A field the table
does not name is still accepted (providers add fields over time), within
:data:`OTHER_FIELD_MAX` characters.  A problem is a :class:`FieldError`
whose message is one line naming the field, never echoing its value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from ivr.providers.dialect import Refusal

__all__ = ["FORBIDDEN", "FieldError", "FieldRule", "MAX_FIELDS", "MAX_NAME", "NAME",
           "OTHER_FIELD_MAX", "check_form", "checked"]

#: The most fields a webhook may carry; Twilio's voice webhooks have about 30.
MAX_FIELDS = 100
#: The longest field name.
MAX_NAME = 64
#: The longest value of a field the table does not name; large enough for
#: the JSON of Twilio's add-on results (``AddOns``).
OTHER_FIELD_MAX = 16 * 1024
#: How often one name may repeat in a form.
MAX_REPEATS = 10

#: Characters XML 1.0 cannot carry, and that no provider field holds: C0
#: controls other than tab, line feed and carriage return, DEL, and the two
#: non-characters U+FFFE and U+FFFF.
FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff]")
#: A field name: a short ASCII word.
NAME = re.compile(r"[A-Za-z0-9_.\-]{1,%d}" % MAX_NAME, re.ASCII)


class FieldError(ValueError):
    """A webhook field that does not fit its rule; the message is one line."""


@dataclass(frozen=True)
class FieldRule:
    """What one field may hold.  ``what`` says it in words for the refusal;
    ``pattern`` must match the whole value; ``choices`` lists the only
    values allowed; ``at_most`` bounds a number of ASCII digits."""

    max_length: int
    what: str
    pattern: re.Pattern | None = None
    choices: frozenset | None = None
    at_most: int | None = None
    #: (the longest value, a test of the whole value or None): a value no
    #: longer, printable (so without a FORBIDDEN character) and passing the
    #: test fits; any other gets the full check.
    quick: tuple = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "quick", (self.max_length, self._quick_test()))

    def _quick_test(self):
        """What a value must also pass to fit without the full check: None
        for text, the choices' membership, else one compiled pattern."""
        if self.pattern is None and self.at_most is None:
            return None if self.choices is None else self.choices.__contains__
        parts = []
        if self.at_most is not None:  # fewer digits than the largest number: never too big
            digits = len(str(self.at_most)) - 1
            parts.append(f"(?=[0-9]{{1,{digits}}}\\Z)" if digits > 0 else "(?!)")
        if self.choices is not None:
            parts.append(f"(?=(?:{'|'.join(re.escape(c) for c in sorted(self.choices))})\\Z)")
        if self.pattern is None:
            return re.compile("".join(parts) + "(?s:.*)").fullmatch
        parts.append(f"(?:{self.pattern.pattern})")
        return re.compile("".join(parts), self.pattern.flags).fullmatch

    def problem(self, value: str) -> str | None:
        """Why ``value`` does not fit, or None."""
        if self.at_most is not None and self.pattern.fullmatch(value):
            # Digits checked before int(): a 20-digit number is refused unread.
            too_big = len(value.lstrip("0")) > len(str(self.at_most)) or int(value) > self.at_most
            return f"must be at most {self.at_most}" if too_big else None
        if len(value) > self.max_length:
            return f"longer than {self.max_length} characters"
        if self.choices is not None and value not in self.choices:
            return f"must be {self.what}"
        if self.pattern is not None and not self.pattern.fullmatch(value):
            return f"must be {self.what}"
        return None


def check_form(form: dict[str, list[str]], rules: Mapping[str, FieldRule],
               required: tuple[str, ...] = ()) -> dict[str, str]:
    """``form`` (each name's values) checked against ``rules``; the last
    value of each name.  Raises :class:`FieldError` for too many fields, a
    bad name, a missing ``required`` field, a control character or a value
    that breaks its rule."""
    if len(form) > MAX_FIELDS:
        raise FieldError(f"more than {MAX_FIELDS} fields")
    for name in required:
        if not form.get(name) or not form[name][-1]:
            raise FieldError(f"missing {name}")
    params = {}
    for name, values in form.items():
        if name not in _NAMES_SEEN and not _new_name(name):
            raise FieldError("a field name is not a short ASCII word")
        if len(values) > MAX_REPEATS:
            raise FieldError(f"{name} is repeated more than {MAX_REPEATS} times")
        rule = rules.get(name)
        longest, test = rule.quick if rule else _OTHER_QUICK
        for value in values:
            if len(value) <= longest and value.isprintable() and (test is None or test(value)):
                continue  # the checks below would all pass
            if FORBIDDEN.search(value):
                raise FieldError(f"{name} holds a control character")
            why = rule.problem(value) if rule else (
                f"longer than {OTHER_FIELD_MAX} characters" if len(value) > OTHER_FIELD_MAX else None)
            if why:
                raise FieldError(f"{name} {why}")
        params[name] = values[-1]
    return params


#: Field names found to be short ASCII words: providers send the same few.
_NAMES_SEEN: set[str] = set()
_NAMES_SEEN_MAX = 1024
#: :attr:`FieldRule.quick` for a field no rule names: any text short enough.
_OTHER_QUICK = (OTHER_FIELD_MAX, None)


def _new_name(name: str) -> bool:
    """Whether ``name`` is a short ASCII word; remembered (a bounded few) when it is."""
    if not NAME.fullmatch(name):
        return False
    if len(_NAMES_SEEN) < _NAMES_SEEN_MAX:
        _NAMES_SEEN.add(name)
    return True


def checked(form: dict[str, list[str]], rules: Mapping[str, FieldRule],
            required: tuple[str, ...] = ()) -> dict[str, str]:
    """:func:`check_form` for a dialect's ``check``: a field that does not
    fit is a :class:`ivr.providers.dialect.Refusal` (400)."""
    try:
        return check_form(form, rules, required)
    except FieldError as error:
        raise Refusal(400, str(error)) from None
