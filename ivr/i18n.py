"""The operator's language: what lint, ``ivr-sim``, ``ivr-report`` and the
dashboard say, in French or English (what callers hear is the flows'
own business: ``prompts/<lang>/``).

Messages are marked in the code with :func:`_` (or :func:`N_` for a
constant translated where it is shown, and :func:`ngettext` for counts)
and translated in gettext catalogues, ``ivr/locale/<lang>/LC_MESSAGES/ivr.po``,
read with babel at first use (no compiled ``.mo`` to keep in step).
``python tools/update_catalog.py --write`` adds new messages to every
catalogue; ``tests/test_i18n.py`` fails while one is untranslated.

The language comes from ``--lang`` or the environment (``LANGUAGE``,
``LC_ALL``, ``LC_MESSAGES``, ``LANG``, as gettext reads them); anything
but French is English.  A command sets it once with :func:`use_language`;
the dashboard picks one per request and formats through
:class:`Formats` rather than the current language.
"""

from __future__ import annotations

import gettext
import os
from collections.abc import Mapping
from contextvars import ContextVar
from datetime import date, datetime
from decimal import Decimal
from functools import cache
from io import BytesIO
from pathlib import Path

from babel import Locale
from babel.dates import format_date, format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_currency, format_decimal, format_percent

DOMAIN = "ivr"
LOCALE_DIR = Path(__file__).parent / "locale"
#: Languages with a catalogue, and the locale each formats numbers, money and dates in.
LOCALES = {"en": "en_US", "fr": "fr_FR"}
DEFAULT = "en"

_current: ContextVar[str | None] = ContextVar("operator_language", default=None)


def language_from(value: str | None) -> str | None:
    """``fr``, ``en``… from a locale name (``fr_FR.UTF-8``, ``fr-FR``,
    ``en``); None for one without a catalogue (``C``, ``POSIX``, ``de_DE``)."""
    if not value:
        return None
    code = value.split(":")[0].split(".")[0].split("@")[0].replace("-", "_").split("_")[0].lower()
    return code if code in LOCALES else None


def language_from_env(environ: Mapping[str, str] | None = None) -> str:
    """The operator's language from the environment, as gettext looks it
    up: the first of ``LANGUAGE``, ``LC_ALL``, ``LC_MESSAGES``, ``LANG``
    that is set decides (English when it names no catalogue)."""
    environ = os.environ if environ is None else environ
    for name in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        value = environ.get(name)
        if value:
            if name == "LANGUAGE":  # a list of preferences, ``fr:en``
                for choice in value.split(":"):
                    if language_from(choice):
                        return language_from(choice) or DEFAULT
                continue
            return language_from(value) or DEFAULT
    return DEFAULT


def use_language(lang: str | None) -> str:
    """Speak ``lang`` (a language or locale name; None: the environment's)
    from now on in this context; returns the language chosen."""
    chosen = language_from(lang) or language_from_env()
    _current.set(chosen)
    return chosen


def current_language() -> str:
    """The language set by :func:`use_language`, else the environment's."""
    return _current.get() or language_from_env()


@cache
def translations(lang: str, domain: str = DOMAIN) -> gettext.NullTranslations:
    """The catalogue of ``lang``, compiled in memory from its ``.po`` file
    (``domain``: ours, or ``click`` for click's own words); no translation
    (the English source) when it has none."""
    po = LOCALE_DIR / lang / "LC_MESSAGES" / f"{domain}.po"
    if not po.is_file():
        return gettext.NullTranslations()
    with po.open("rb") as handle:
        catalog = read_po(handle, locale=lang)
    compiled = BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return gettext.GNUTranslations(compiled)


def _(message: str) -> str:
    """``message`` in the operator's language."""
    return translations(current_language()).gettext(message)


def ngettext(singular: str, plural: str, count: int) -> str:
    """The singular or plural form for ``count``, in the operator's language."""
    return translations(current_language()).ngettext(singular, plural, count)


def N_(message: str) -> str:
    """Marks a constant for the catalogue; it is translated where shown, with :func:`_`."""
    return message


class Formats:
    """Numbers, money, percentages and dates in one operator language, and
    its messages: what a request of the dashboard uses."""

    def __init__(self, lang: str | None = None):
        self.lang = language_from(lang) or current_language()
        self.locale = Locale.parse(LOCALES[self.lang])
        self._translations = translations(self.lang)

    def gettext(self, message: str) -> str:
        return self._translations.gettext(message)

    def ngettext(self, singular: str, plural: str, count: int) -> str:
        return self._translations.ngettext(singular, plural, count)

    def number(self, value: float | int, digits: int = 0) -> str:
        pattern = "#,##0" + ("." + "0" * digits if digits else "")
        return format_decimal(value, format=pattern, locale=self.locale)

    def money(self, amount: float | Decimal, currency: str = "EUR") -> str:
        return format_currency(Decimal(str(amount)), currency, locale=self.locale)

    def percent(self, ratio: float, digits: int = 1) -> str:
        pattern = "#,##0" + ("." + "0" * digits if digits else "") + " %"
        if self.lang == "en":
            pattern = pattern.replace(" %", "%")
        return format_percent(ratio, format=pattern, locale=self.locale)

    def day(self, value: date) -> str:
        return format_date(value, format="medium", locale=self.locale)

    def moment(self, value: datetime) -> str:
        return format_datetime(value, format="medium", locale=self.locale)


def formats() -> Formats:
    """Formats in the current operator language."""
    return Formats(current_language())
