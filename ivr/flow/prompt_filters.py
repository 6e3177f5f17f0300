"""The filters prompts may use: dates and times said the caller's way, plain
text, spaces."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal, InvalidOperation

from babel import Locale
from babel.dates import format_date, format_time
from babel.numbers import format_currency
from markupsafe import Markup, escape

#: What ``days:`` of a language's ``speech.yaml`` says, for ``relative_date``:
#: a day near today, and what comes before a weekday or a date
#: ("le mardi 8 décembre", "on Tuesday, December 8").
DAY_WORDS = ("today", "tomorrow", "yesterday", "before_date", "before_weekday")


def _filters(locale: Locale, day_words) -> dict:
    """The filters for ``locale``; ``day_words()`` gives the language's
    :data:`DAY_WORDS` (or raises when it has none), read when first needed."""
    french = locale.language == "fr"
    full = locale.date_formats["full"].pattern
    day_only = _without_year(full)

    def digits(value) -> Markup:
        """Read a number digit by digit: "100234" → "1 0 0 2 3 4"."""
        return escape(" ".join(c for c in _plain(value) if c.isdigit()))

    def spell(value) -> Markup:
        """Spell a code letter by letter: "6A123" → "6 A 1 2 3"."""
        # Upper case: TTS engines read a lone "A" as the letter, not the article.
        return escape(" ".join(c.upper() for c in _plain(value) if c.isalnum()))

    def date(value, form: str | None = None) -> Markup:
        """A spoken date: weekday, day, month; ``"long"`` adds the year."""
        if form not in (None, "long"):
            raise ValueError(f"date format must be 'long' or nothing, not {form!r}")
        day = _as_date(value)
        pattern = full if form == "long" else day_only
        if french and day.day == 1:
            # "vendredi 1er mai": the ordinal is how French says the first.
            pattern = _sub_unquoted(pattern, r"(?<!d)d(?!d)", "'1er'")
        return escape(_spaces(format_date(day, pattern, locale=locale)))

    def relative_date(value, today) -> Markup:
        """A day as said after a verb, seen from ``today``: "today",
        "tomorrow", "yesterday"; a day within six days by its weekday (fr
        "samedi", en "on Saturday"); else its date (fr "le mardi 8
        décembre", en "on Tuesday, December 8").  The words are the
        language's own (``days:`` in its ``speech.yaml``): a language without
        them is an error, never another language's words."""
        day, ref = _as_date(value), _as_date(today)
        words = day_words()
        near = {0: "today", 1: "tomorrow", -1: "yesterday"}.get((day - ref).days)
        if near:
            return escape(words[near])
        if abs((day - ref).days) <= 6:
            return escape(words["before_weekday"] + format_date(day, "EEEE", locale=locale))
        return escape(words["before_date"]) + date(day)

    def time(value) -> Markup:
        """A spoken time of day: fr "18 h 30" / "9 h", en "6:30 PM" / "9 AM"."""
        t = _as_time(value)
        if french:
            # Babel says "18:30"; "18 h 30" is how French writes it to be read aloud.
            text = f"{t.hour} h" + (f" {t.minute:02d}" if t.minute else "")
        elif locale.language == "en" and not t.minute:
            text = format_time(t, "h a", locale=locale)  # "9 AM", as said, not "9:00 AM"
        else:
            text = format_time(t, "short", locale=locale)
        return escape(_spaces(text))

    def money(value, currency: str = "EUR") -> Markup:
        """An amount in ``currency``: fr "42,50 €", en "€42.50"."""
        try:
            amount = Decimal(_plain(value).strip())
        except InvalidOperation as exc:
            raise ValueError(f"not an amount: {value!r}") from exc
        return escape(_spaces(format_currency(amount, currency, locale=locale)))

    return {
        "digits": digits,
        "spell": spell,
        "date": date,
        "relative_date": relative_date,
        "time": time,
        "money": money,
    }


def _plain(value) -> str:
    if isinstance(value, Markup):
        return value.unescape()
    if value is None:
        raise ValueError("no value (None)")
    return str(value)


def _spaces(text: str) -> str:
    # Babel uses (narrow) no-break spaces; plain spaces are what the final
    # whitespace collapsing produces anyway, so filters agree with it.
    return text.replace("\u202f", " ").replace("\xa0", " ")


def _as_date(value) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    text = _plain(value).strip()
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        pass
    try:
        return dt.datetime.fromisoformat(text).date()
    except ValueError:
        raise ValueError(f"not a date: {value!r}") from None


def _as_time(value) -> dt.time:
    if isinstance(value, dt.datetime):
        return value.time()
    if isinstance(value, dt.time):
        return value
    text = _plain(value).strip()
    try:
        return dt.time.fromisoformat(text)
    except ValueError:
        pass
    try:
        # An ISO date-time (as flow variables hold them): its local time.
        return dt.datetime.fromisoformat(text).time()
    except ValueError:
        raise ValueError(f"not a time: {value!r}") from None


_QUOTED = re.compile(r"('(?:[^']|'')*')")


def _sub_unquoted(pattern: str, regex: str, repl: str) -> str:
    """``re.sub`` on a CLDR date pattern, leaving 'quoted literals' alone."""
    return "".join(
        part if _QUOTED.fullmatch(part) else re.sub(regex, repl, part)
        for part in _QUOTED.split(pattern)
    )


def _without_year(pattern: str) -> str:
    """The locale's full date pattern without the year and what ties it in:
    "EEEE d MMMM y" → "EEEE d MMMM", "EEEE, MMMM d, y" → "EEEE, MMMM d",
    "EEEE, d 'de' MMMM 'de' y" → "EEEE, d 'de' MMMM", "y年M月d日EEEE" → "M月d日EEEE"."""
    stripped = re.sub(r"y+[年년]\s*|(?:\s*'[^']*')?[\s,]*\by+\.?", "", pattern)
    return stripped.strip(" ,")
