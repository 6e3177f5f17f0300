"""Matching what a caller said against the words a menu expects.

Speech recognisers disagree on case, accents and punctuation ("Opérateur",
"operateur", "opérateur !"), so both sides are folded the same way before
comparing, and a phrase matches when its words appear together in the
utterance.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

_NON_WORD = re.compile(r"[^\w]+")


@lru_cache(maxsize=4096)
def normalise(text: str) -> str:
    """Lower-case, accent-free, punctuation-free, single-spaced ``text``."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(_NON_WORD.sub(" ", bare).split())


def said(phrase: str, utterance: str) -> bool:
    """Whether ``phrase`` occurs as whole words in the already-normalised
    ``utterance``."""
    return f" {normalise(phrase)} " in f" {utterance} "
