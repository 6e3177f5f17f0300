"""The operator's language: chosen from the environment or ``--lang``,
messages from the catalogues, numbers, money and dates in its locale."""

import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from ivr import i18n

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(("environ", "expected"), [
    ({"LANG": "fr_FR.UTF-8"}, "fr"),
    ({"LANG": "en_US.UTF-8"}, "en"),
    ({"LANG": "C.UTF-8"}, "en"),
    ({"LANG": "de_DE.UTF-8"}, "en"),
    ({}, "en"),
    ({"LC_ALL": "fr_BE.UTF-8", "LANG": "en_US.UTF-8"}, "fr"),
    ({"LC_MESSAGES": "fr_CA", "LANG": "en_US"}, "fr"),
    ({"LANGUAGE": "de:fr", "LANG": "en_US"}, "fr"),
    ({"LANGUAGE": "de", "LANG": "fr_FR"}, "fr"),
])
def test_the_language_follows_the_environment_as_gettext_reads_it(environ, expected):
    assert i18n.language_from_env(environ) == expected


def test_use_language_overrides_the_environment(monkeypatch):
    monkeypatch.setenv("LANG", "en_US.UTF-8")
    assert i18n.use_language("fr-FR") == "fr"
    assert i18n.current_language() == "fr"
    assert i18n.use_language(None) == "en"


def test_numbers_money_and_dates_follow_the_operator_locale():
    french, english = i18n.Formats("fr"), i18n.Formats("en")
    # Babel writes a narrow no-break space before the euro sign and as the thousands separator.
    assert french.money(1404.15).replace("\u202f", " ").replace("\xa0", " ") == "1 404,15 €"
    assert english.money(1404.15) == "€1,404.15"
    assert french.percent(0.4567).replace("\u202f", " ").replace("\xa0", " ") == "45,7 %"
    assert english.percent(0.4567) == "45.7%"
    assert french.number(12345).replace("\u202f", " ").replace("\xa0", " ") == "12 345"
    assert french.day(date(2026, 12, 6)) == "6 déc. 2026"
    assert english.day(date(2026, 12, 6)) == "Dec 6, 2026"


def test_the_catalogues_are_in_step_with_the_code():
    checked = subprocess.run([sys.executable, str(ROOT / "tools" / "update_catalog.py"),
                              "--missing"], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout == "", f"untranslated messages:\n{checked.stdout}"
