"""Hearing what a caller means: score every answer a question allows.

A menu's candidates are its choices, the flow's escape to a human and, on a
read-back, yes and no.  Each candidate has a vocabulary: the stems of its
``words`` (strong evidence) and of its ``examples`` (weaker evidence).  An
utterance is folded, its number words turned into digits, its filler words
dropped and its words stemmed; each stem it shares with a candidate is
evidence for that candidate, weighed by how distinctive the stem is (a stem
in the vocabulary of three choices, such as "commande", counts a third), and
a multi-word phrase heard whole ("pas reçu") adds to it, so the phrase that
says more wins over a generic one.  Words the recogniser misheard are
brought to the nearest known stem with a fuzzy score.

The best candidate's evidence against the runner-up gives a ``score`` and a
``margin`` in 0..1; :class:`Settings` turn them, with the recogniser's
confidence, into a :class:`Decision`: take it, confirm it, or no-match.

Everything per menu and language is computed once, when the flow is built
(:class:`Matcher`); a speech turn only folds, stems and adds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Hashable, Mapping

import snowballstemmer
import yaml
from rapidfuzz import fuzz, process
from text_to_num import alpha2digit

from .matching import normalise

#: The language data file beside a language's prompts.
LEXICON_FILE = "speech.yaml"

#: Candidate names that are not a choice of the menu.
ESCAPE, YES, NO = "escape", "yes", "no"

#: Weight of a stem known only from a choice's examples, against one of its words.
EXAMPLE_WEIGHT = 0.5
#: Extra evidence per word beyond the first of a phrase heard whole.
PHRASE_BONUS = 0.5
#: Extra evidence per filler word of a phrase heard whole, in place.
FILLER_BONUS = 0.25
#: Evidence for one full-weight distinctive word: enough to be sure.
SURE = 1.0
#: Shortest word the fuzzy match may correct, and how close it must be (0..100).
FUZZY_MIN_LENGTH, FUZZY_CUTOFF = 4, 80


class LexiconError(Exception):
    """A language's speech data file is missing or malformed."""


@dataclass(frozen=True)
class Settings:
    """When to take, confirm or reject the best candidate.

    ``accept``: lowest score taken without asking; ``confirm``: lowest
    score worth confirming (below: no-match); ``margin``: lowest lead over
    the runner-up taken without asking; ``confidence``: lowest recogniser
    confidence taken without asking.
    """

    accept: float = 0.6
    confirm: float = 0.3
    margin: float = 0.3
    confidence: float = 0.5

    FIELDS = ("accept", "confirm", "margin", "confidence")

    def merged(self, overrides: Mapping[str, float]) -> "Settings":
        """These settings with ``overrides`` (a menu's own) applied."""
        return Settings(**{name: overrides.get(name, getattr(self, name)) for name in self.FIELDS})


@dataclass(frozen=True)
class Decision:
    """What an utterance means: ``verdict`` is ``take``, ``confirm`` or
    ``no_match``; ``candidate`` the best candidate (None when nothing was
    heard of any)."""

    verdict: str
    candidate: Hashable | None
    score: float
    margin: float

    @property
    def detail(self) -> str:
        """The figures a node event keeps."""
        return f"score={self.score:.2f} margin={self.margin:.2f}"


@dataclass(frozen=True)
class Lexicon:
    """One language's speech data: stemmer, yes/no words, default escape
    words, filler words a caller adds ("euh", "s'il vous plaît") and the
    number words said alone for a key ("un", "deux")."""

    lang: str
    stemmer: str
    yes: tuple
    no: tuple
    escape: tuple
    filler: frozenset
    numbers: Mapping[str, str]
    source: str = ""

    def tokens(self, text: str) -> list[str]:
        """Folded words of ``text``, numbers of several words as digits
        ("vingt-deux" -> "22")."""
        folded = normalise(text)
        try:
            folded = normalise(alpha2digit(folded, self.lang[:2]))
        except Exception:  # noqa: BLE001 - a language text2num lacks: keep the words
            pass
        return folded.split()

    def content(self, text: str) -> list[str]:
        """The words of ``text`` that carry meaning, stemmed.  A number word
        said alone ("un", "one") is left out: "un retour" is about a return,
        not key 1 (:meth:`spoken_digits` hears "la une")."""
        words = [w for w in self.tokens(text) if w not in self.filler and w not in self.numbers]
        return _stemmer(self.stemmer).stemWords(words)

    def digits_in(self, text: str) -> str:
        """Every digit ``text`` says, in order, around other words ("my
        order is one two three" -> "123")."""
        # A lone number word counts only when digits are all there is:
        # "j'ai un numéro" has no 1 in it.
        return self.spoken_digits(text) or "".join(w for w in self.tokens(text) if w.isdigit())

    def spoken_digits(self, text: str) -> str | None:
        """The digits an utterance says and nothing else ("un deux trois",
        "cent deux mille", "la une"), or None when it says more than digits."""
        words = [self.numbers.get(w, w) for w in self.tokens(text)
                 if w in self.numbers or w not in self.filler]
        if words and all(w.isdigit() for w in words):
            return "".join(words)
        return None


@lru_cache(maxsize=None)
def _stemmer(name: str):
    return snowballstemmer.stemmer(name)


def load_lexicon(path: Path, lang: str) -> Lexicon:
    """Read a language's speech data (``prompts/<lang>/speech.yaml``)."""
    try:
        source = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise LexiconError(f"cannot read {path}: {error}") from None
    return lexicon_from_source(source, lang, path)


def lexicon_from_source(source: str, lang: str, path) -> Lexicon:
    """A language's speech data from its YAML text (``path`` names it in errors)."""
    try:
        data = yaml.safe_load(source)
    except yaml.YAMLError as error:
        raise LexiconError(f"cannot read {path}: {error}") from None
    fields = ("stemmer", "yes", "no", "escape", "filler", "numbers")
    if not isinstance(data, dict):
        raise LexiconError(f"{path}: expected a mapping with {', '.join(fields)}")
    missing = [k for k in fields if k not in data]
    if missing:
        raise LexiconError(f"{path}: missing {', '.join(missing)}")
    if data["stemmer"] not in snowballstemmer.algorithms():
        raise LexiconError(f"{path}: unknown stemmer {data['stemmer']!r}; expected one of "
                           f"{', '.join(snowballstemmer.algorithms())}")
    return Lexicon(
        lang=lang, stemmer=data["stemmer"],
        yes=tuple(map(str, data["yes"])), no=tuple(map(str, data["no"])),
        escape=tuple(map(str, data["escape"])),
        filler=frozenset(w for f in data["filler"] for w in normalise(str(f)).split()),
        numbers={normalise(str(k)): str(v) for k, v in (data["numbers"] or {}).items()},
        source=source,
    )


@dataclass(frozen=True)
class Candidate:
    """An answer the question allows: ``name`` (a choice's index, or
    ``escape``, ``yes``, ``no``), the keys that select it, its words and
    its examples."""

    name: Hashable
    keys: tuple = ()
    words: tuple = ()
    examples: tuple = ()


@dataclass
class Matcher:
    """Scores utterances against a question's candidates in one language."""

    lexicon: Lexicon
    candidates: tuple
    # Computed in __post_init__:
    keys: dict = field(default_factory=dict, init=False)
    strength: dict = field(default_factory=dict, init=False)   # stem -> {name: weight}
    phrases: list = field(default_factory=list, init=False)    # (name, stems, " folded words ")
    vocabulary: tuple = field(default=(), init=False)

    def __post_init__(self):
        for candidate in self.candidates:
            for key in candidate.keys:
                self.keys[key] = candidate.name
            for weight, texts in ((1.0, candidate.words), (EXAMPLE_WEIGHT, candidate.examples)):
                for text in texts:
                    stems = self.lexicon.content(text)
                    # A word of a phrase says less alone than a word given
                    # alone: "get" of "didn't get" is not "not received".
                    alone = weight if weight < 1.0 else weight / max(1, len(set(stems)))
                    for stem in stems:
                        known = self.strength.setdefault(stem, {})
                        known[candidate.name] = max(known.get(candidate.name, 0.0), alone)
                    folded = " ".join(self.lexicon.tokens(text))
                    if weight == 1.0 and (len(set(stems)) > 1 or len(folded.split()) > 1):
                        self.phrases.append((candidate.name, frozenset(stems), f" {folded} "))
        self.vocabulary = tuple(self.strength)

    def evidence(self, utterance: str) -> dict:
        """Each candidate's evidence for ``utterance`` (candidates with none
        are left out)."""
        heard = self._heard(utterance)
        said = f" {' '.join(self.lexicon.tokens(utterance))} "
        totals: dict = {}
        for stem, closeness in heard.items():
            owners = self.strength.get(stem, {})
            # A stem every candidate knows tells them apart no better than none.
            share = 1.0 / len(owners) if owners else 0.0
            for name, weight in owners.items():
                totals[name] = totals.get(name, 0.0) + closeness * share * weight
        for name, stems, folded in self.phrases:
            # A phrase heard whole says more than its words one by one, and
            # an idiom of filler words ("c'est bon", "that's it") says
            # something only as a whole.
            bonus = 0.0
            if stems and stems <= heard.keys():
                bonus = PHRASE_BONUS * (len(stems) - 1)
            if folded in said:
                # Filler words said in place count a little: "call me" is
                # more than "call".
                whole = PHRASE_BONUS * (len(stems) - 1) + FILLER_BONUS * (len(folded.split()) - len(stems))
                bonus = max(bonus, whole, 0.0 if stems else SURE)
            if bonus:
                totals[name] = totals.get(name, 0.0) + bonus
        return totals

    def decide(self, utterance: str, settings: Settings, confidence: float | None = None) -> Decision:
        """Take, confirm or reject the best candidate for ``utterance``."""
        spoken = self.lexicon.spoken_digits(utterance)
        if spoken is not None and spoken in self.keys:
            return self._verdict(self.keys[spoken], 1.0, 1.0, settings, confidence)
        ranked = sorted(self.evidence(utterance).items(), key=lambda item: -item[1])
        if not ranked:
            return Decision("no_match", None, 0.0, 0.0)
        (best, first), second = ranked[0], (ranked[1][1] if len(ranked) > 1 else 0.0)
        sureness = min(1.0, first / SURE)
        score = sureness * first / (first + second)
        margin = (first - second) / max(first, SURE)
        return self._verdict(best, score, margin, settings, confidence)

    @staticmethod
    def _verdict(best, score, margin, settings, confidence) -> Decision:
        score, margin = round(score, 2), round(margin, 2)
        if score < settings.confirm:
            return Decision("no_match", best, score, margin)
        sure = (score >= settings.accept and margin >= settings.margin
                and (confidence is None or confidence >= settings.confidence))
        return Decision("take" if sure else "confirm", best, score, margin)

    def _heard(self, utterance: str) -> dict:
        """Stems of the utterance, each with how closely it was heard (1:
        exactly; less: the nearest known stem to a misheard word)."""
        heard: dict = {}
        for stem in self.lexicon.content(utterance):
            if stem in self.strength:
                heard[stem] = 1.0
            elif len(stem) >= FUZZY_MIN_LENGTH and self.vocabulary:
                match = process.extractOne(stem, self.vocabulary, scorer=fuzz.ratio,
                                           score_cutoff=FUZZY_CUTOFF)
                if match is not None:
                    heard[match[0]] = max(heard.get(match[0], 0.0), match[1] / 100)
        return heard


def yes_no_matcher(lexicon: Lexicon, escape: Candidate) -> Matcher:
    """A matcher for a read-back: yes (key 1), no (key 2), or a human."""
    return Matcher(lexicon, (
        Candidate(YES, ("1",), lexicon.yes), Candidate(NO, ("2",), lexicon.no), escape,
    ))


def escape_matcher(lexicon: Lexicon, escape: Candidate) -> Matcher:
    """A matcher for an input of digits: only a request for a human (by
    words: a key is a digit of the number)."""
    return Matcher(lexicon, (Candidate(ESCAPE, (), escape.words, escape.examples),))


def menu_matcher(lexicon: Lexicon, choices, escape: Candidate) -> Matcher:
    """A matcher for a menu: its choices (named by their index) and the escape.

    A choice with the language's first yes word ("oui", "yes") among its
    words hears every yes word no other choice has, and likewise for no:
    "absolument" is as good a yes to "is it this order?" as "oui"."""
    lang = lexicon.lang
    words = [tuple(c.words.get(lang, ())) for c in choices]
    taken = {normalise(w) for ws in words for w in ws}
    return Matcher(lexicon, tuple(
        Candidate(i, (c.key,) if c.key else (),
                  words[i] + _answers(lexicon, words[i], taken), c.examples.get(lang, ()))
        for i, c in enumerate(choices)) + (escape,))


def _answers(lexicon: Lexicon, words: tuple, taken: set) -> tuple:
    folded = {normalise(w) for w in words}
    extra = ()
    for answers in (lexicon.yes, lexicon.no):
        if answers and normalise(answers[0]) in folded:
            extra += tuple(a for a in answers if normalise(a) not in taken)
    return extra
