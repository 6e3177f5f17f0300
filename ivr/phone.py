"""Caller numbers: which country they belong to, whether they are real,
whether a text can reach them, and how to show them in a log.

Kept apart from the engine and the look-ups because both need it.
"""

from __future__ import annotations

import re

import phonenumbers

#: What providers put in ``From`` when the caller withheld their number:
#: words, or those words spelled on a keypad (ANONYMOUS, RESTRICTED,
#: BLOCKED, UNKNOWN, UNAVAILABLE) — well-formed E.164 that belongs to
#: nobody, so it must never match an order or be called back.
WITHHELD_CALLER_IDS = frozenset({
    "", "anonymous", "restricted", "blocked", "unknown", "unavailable", "private",
    "withheld", "+266696687", "+7378742833", "+2562533", "+8656696", "+86282452253",
})


def is_withheld(number: str | None) -> bool:
    """Whether ``number`` says the caller hid their number (or gave none)."""
    return (number or "").strip().lower() in WITHHELD_CALLER_IDS


#: A number already in clean E.164 form: "+", then 7 to 15 digits.
_E164 = re.compile(r"\+[1-9][0-9]{6,14}")


def country_of(number: str | None) -> str | None:
    """The ISO country of an E.164 number ("FR"), or None when unknown or withheld."""
    if is_withheld(number) or not (number or "").startswith("+"):
        return None
    single = _single_country(number)
    if single is not None:
        return single
    try:
        return phonenumbers.region_code_for_number(phonenumbers.parse(number)) or None
    except phonenumbers.NumberParseException:
        return None


def _single_country(number) -> str | None:
    """The country of a clean E.164 number whose calling code belongs to
    one country alone ("+33" is France): the answer of a full parse,
    without it (a parse costs as much as a whole turn's engine step).
    None when a full parse must decide: a calling code shared by several
    countries ("+1", "+44"), or a number not in clean E.164 form."""
    if not _E164.fullmatch(number):
        return None
    digits = number[1:]
    for length in (1, 2, 3):  # calling codes are prefix-free
        regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(int(digits[:length]))
        if regions is not None:
            return regions[0] if len(regions) == 1 else None
    return None


#: Number types a text message can reach.  Landlines, toll-free and
#: premium numbers cannot; an invalid number would be refused by the
#: provider anyway.
_TEXTABLE = (phonenumbers.PhoneNumberType.MOBILE,
             phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE)


def textable(number: str | None, region: str | None = None) -> tuple[str | None, str | None]:
    """``(E.164 number, None)`` when ``number`` looks like a mobile phone,
    else ``(None, why)``.  National digits ("0612345678", as a caller
    types a callback number) are read in ``region`` (an ISO country).
    The reason never repeats the number, so it can be logged."""
    if is_withheld(number):
        return None, "the number is withheld" if number else "no number to text"
    text = str(number).strip()
    try:
        parsed = phonenumbers.parse(text, None if text.startswith("+") else region)
    except phonenumbers.NumberParseException:
        return None, "not a phone number"
    if not phonenumbers.is_valid_number(parsed):
        return None, "not a valid phone number"
    if phonenumbers.number_type(parsed) not in _TEXTABLE:
        return None, "not a mobile number"
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164), None


#: Seven digits or more, maybe spaced or dotted, that are not an ISO date.
_NUMBER_IN_TEXT = re.compile(r"(?<![\w+])(?!\d{4}-\d\d-\d\d(?!\d))\+?\d(?:[ .()-]?\d){6,}")


def mask(number: str) -> str:
    """``number`` with every digit but the last two hidden: ``+*********78``."""
    digits = sum(c.isdigit() for c in number)
    seen, out = 0, []
    for c in number:
        if c.isdigit():
            seen += 1
            out.append(c if seen > digits - 2 else "*")
        else:
            out.append(c)
    return "".join(out)


def mask_numbers(text: str) -> str:
    """``text`` with every phone-like run of seven digits or more masked,
    e.g. a provider's "The 'To' number +33612345678 is not valid"."""
    return _NUMBER_IN_TEXT.sub(lambda m: mask(m.group()), text)
