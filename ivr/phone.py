"""Caller numbers: which country they belong to, and whether they are real.

Kept apart from the engine and the look-ups because both need it.
"""

from __future__ import annotations

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


def country_of(number: str | None) -> str | None:
    """The ISO country of an E.164 number ("FR"), or None when unknown or withheld."""
    if is_withheld(number) or not (number or "").startswith("+"):
        return None
    try:
        return phonenumbers.region_code_for_number(phonenumbers.parse(number)) or None
    except phonenumbers.NumberParseException:
        return None
