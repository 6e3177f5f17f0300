"""Suggestions ("did you mean …?"): the closest known name to a misspelt one.

Used wherever a problem names something unknown (a node, a field, a
prompt, a filter, a scenario step) so the message can offer the name the
author most likely meant.  Only a close match is offered: a wrong guess is
worse than none.
"""

from __future__ import annotations

import difflib
from typing import Iterable

#: How alike (0 to 1, difflib's ratio) a known name must be to be offered.
CUTOFF = 0.7


def closest(word, candidates: Iterable) -> str | None:
    """The known name in ``candidates`` most like ``word``, if one is close
    enough to be a likely typo of it; else None."""
    if not isinstance(word, str):
        return None
    names = sorted({str(c) for c in candidates if str(c) != word})
    found = difflib.get_close_matches(word, names, n=1, cutoff=CUTOFF)
    if found:
        return found[0]
    # Swapped letters ("sya") or another case ("Main_Menu") score low on
    # short names but are plain typos: always worth saying.
    folded = sorted(word.casefold())
    alike = [n for n in names if sorted(n.casefold()) == folded]
    return alike[0] if alike else None
