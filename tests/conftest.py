"""What every test shares: the operator's language is English unless a test
chooses another, whatever the machine's locale."""

import os

import pytest

from ivr import i18n

# Subprocesses started by a test inherit this; a test sets LANG itself to
# try another language.
for _name in ("LANGUAGE", "LC_ALL", "LC_MESSAGES"):
    os.environ.pop(_name, None)
os.environ["LANG"] = "C.UTF-8"


@pytest.fixture(autouse=True)
def _english_unless_chosen():
    """A command run with --lang fr in one test does not make the next
    test's messages French (the language is set per process)."""
    yield
    i18n._current.set(None)
