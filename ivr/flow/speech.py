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

Negation words ("pas", "never", "personne") never count alone: they count
as part of a phrase heard whole.  A word known only from negated phrases
("reçu" of "pas reçu") is evidence only when the caller negates something,
so "yes I did get it" is not "didn't get".  A yes or no said beside words
that name a choice counts half: "no it's fine, I got it" is about having
it.  A request to talk to a human (an escape word heard in full and a
``talk`` word) wins over a question the menu would answer ("where is my
parcel? no, let me talk to an agent"); "have an agent call me back" asks
for the call back.  A word one choice gives alone belongs to it: in
another choice's phrase it counts only through the phrase.  Fuzzy matching
never corrects a word of the language's own lists ("nobody" is not
"somebody") nor one of its ``distinct`` words ("personnel").

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

from ivr.i18n import _

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
#: Weight of a yes or no word beside words that name a choice.
ANSWER_BESIDE_CONTENT = 0.5
#: Shortest word the fuzzy match may correct, and how close it must be (0..100).
FUZZY_MIN_LENGTH, FUZZY_CUTOFF = 5, 80
#: Letters a long misheard word may gain or lose (a short one: one).
FUZZY_LONG_SLACK = 3
#: Evidence a negation gives the choice that holds the no words ("I never had
#: it" to "if you have not received it, press 1"): enough to confirm.
NEGATION_AS_NO = 0.5
#: Words after a negation word that it bears on ("I never received it",
#: but not the refund of "I don't want it anymore, I want a refund").
NEGATION_SCOPE = 3


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
    words, filler words a caller adds ("euh", "s'il vous plaît"), the
    number words said alone for a key ("un", "deux") and the negation
    words ("pas", "never")."""

    lang: str
    stemmer: str
    yes: tuple
    no: tuple
    escape: tuple
    filler: frozenset
    numbers: Mapping[str, str]
    source: str = ""
    negation: frozenset = frozenset()
    talk: frozenset = frozenset()
    distinct: frozenset = frozenset()

    def negated(self, tokens: list) -> frozenset:
        """Positions of the folded words a negation word bears on: the
        few words after it.  A yes or no said first answers the question:
        "non c'est bon j'ai reçu" negates nothing, "colis non reçu" does."""
        answers = {normalise(a) for a in self.yes + self.no}
        start = 0
        while start < len(tokens) and (tokens[start] in answers or tokens[start] in self.filler):
            start += 1
        # "I got nothing": the word before counts too.
        return frozenset(j for i in range(start, len(tokens)) if tokens[i] in self.negation
                         for j in range(max(start, i - 1), min(len(tokens), i + 1 + NEGATION_SCOPE))
                         if j != i)

    def stem(self, word: str) -> str:
        """One folded word brought to its common form."""
        return _stem(self.stemmer, word)

    @property
    def negation_stems(self) -> frozenset:
        """The stems of the negation words."""
        return frozenset(self.stem(w) for w in self.negation)

    @property
    def function_words(self) -> frozenset:
        """Words that are never another word misheard: fillers, numbers,
        negations and yes/no words."""
        answers = {w for text in self.yes + self.no for w in normalise(text).split()}
        return frozenset(self.filler | set(self.numbers) | self.negation | answers)

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
        return [stem for _, stem in self.content_words(text)]

    def content_words(self, text: str) -> list[tuple[str, str]]:
        """The words of ``text`` that carry meaning, each with its stem."""
        return [(word, stem) for _, word, stem in self.content_at(self.tokens(text))]

    def content_at(self, tokens: list) -> list[tuple[int, str, str]]:
        """The folded words that carry meaning, each with its position and stem."""
        return [(i, w, _stem(self.stemmer, w)) for i, w in enumerate(tokens)
                if w not in self.filler and w not in self.numbers]

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


@lru_cache(maxsize=1 << 16)
def _stem(stemmer: str, word: str) -> str:
    # Callers say the same few thousand words: each is stemmed once.
    return _stemmer(stemmer).stemWord(word)


class _WordsLoader(yaml.SafeLoader):
    """YAML without booleans: the bare words on, off, yes and no of a word
    list stay words (the pronoun "on", the answer "no")."""


_WordsLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}


def load_lexicon(path: Path, lang: str) -> Lexicon:
    """Read a language's speech data (``prompts/<lang>/speech.yaml``)."""
    try:
        source = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise LexiconError(_("cannot read {path}: {error}").format(path=path, error=error)) from None
    return lexicon_from_source(source, lang, path)


def lexicon_from_source(source: str, lang: str, path) -> Lexicon:
    """A language's speech data from its YAML text (``path`` names it in errors)."""
    try:
        data = yaml.load(source, Loader=_WordsLoader)  # noqa: S506 - a safe loader
    except yaml.YAMLError as error:
        raise LexiconError(_("cannot read {path}: {error}").format(path=path, error=error)) from None
    fields = ("stemmer", "yes", "no", "escape", "filler", "numbers")
    if not isinstance(data, dict):
        raise LexiconError(_("{path}: expected a mapping with {fields}").format(path=path, fields=", ".join(fields)))
    missing = [k for k in fields if k not in data]
    if missing:
        raise LexiconError(_("{path}: missing {fields}").format(path=path, fields=", ".join(missing)))
    if data["stemmer"] not in snowballstemmer.algorithms():
        raise LexiconError(_("{path}: unknown stemmer {stemmer!r}; expected one of {expected}").format(
            path=path, stemmer=data["stemmer"], expected=", ".join(snowballstemmer.algorithms())))
    return Lexicon(
        lang=lang, stemmer=data["stemmer"],
        yes=tuple(map(str, data["yes"])), no=tuple(map(str, data["no"])),
        escape=tuple(map(str, data["escape"])),
        filler=frozenset(w for f in data["filler"] for w in normalise(str(f)).split()),
        numbers={normalise(str(k)): str(v) for k, v in (data["numbers"] or {}).items()},
        source=source,
        # Optional: a language without them treats no word as a negation.
        negation=frozenset(w for f in data.get("negation") or () for w in normalise(str(f)).split()),
        talk=frozenset(w for f in data.get("talk") or () for w in normalise(str(f)).split()),
        distinct=frozenset(w for f in data.get("distinct") or () for w in normalise(str(f)).split()),
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
    # (stem, name) pairs known only from negated phrases: evidence only when
    # the caller negates something.
    negated_only: frozenset = field(default=frozenset(), init=False)
    negated_words: frozenset = field(default=frozenset(), init=False)   # from negated phrases
    _negated_stems: frozenset = field(default=frozenset(), init=False)
    # (name, stems, " folded words ", evidence the negation words hold back)
    phrases: list = field(default_factory=list, init=False)
    vocabulary: tuple = field(default=(), init=False)
    answer_stems: frozenset = field(default=frozenset(), init=False)
    no_choice: Hashable | None = field(default=None, init=False)   # holds the no words
    _negations: frozenset = field(default=frozenset(), init=False)
    _function_words: frozenset = field(default=frozenset(), init=False)

    def __post_init__(self):
        self._negations = self.lexicon.negation_stems
        self._function_words = self.lexicon.function_words
        self.answer_stems = frozenset(
            stem for text in self.lexicon.yes + self.lexicon.no for stem in self.lexicon.content(text))
        plain: set = set()
        negated: set = set()
        alone: dict = {}        # (stem, name) -> learnt from a word given alone
        for candidate in self.candidates:
            for key in candidate.keys:
                self.keys[key] = candidate.name
            for weight, texts in ((1.0, candidate.words), (EXAMPLE_WEIGHT, candidate.examples)):
                for text in texts:
                    self._learn(candidate.name, weight, text, plain, negated, alone)
        self.negated_only = frozenset(negated - plain)
        self.negated_words = frozenset(negated)
        self._negated_stems = frozenset(stem for stem, _ in negated)
        self._give_words_to_their_owners(alone)
        no_words = {normalise(w) for w in self.lexicon.no[:1]}
        self.no_choice = next((c.name for c in self.candidates if c.name != ESCAPE
                               and no_words & {normalise(w) for w in c.words}), None)
        self.vocabulary = tuple(self.strength)

    def _give_words_to_their_owners(self, alone: dict) -> None:
        """A word one candidate gives alone is that candidate's: in another
        candidate's phrase it counts only through the phrase's bonus
        ("remboursement" is a return; "où en est mon remboursement" asks
        for a status)."""
        for stem, owners in self.strength.items():
            givers = {name for name in owners if alone.get((stem, name))}
            if givers:
                for name in [n for n in owners if n not in givers and (stem, n) in alone]:
                    del owners[name]

    def _learn(self, name, weight, text, plain: set, negated: set, alone_words: dict) -> None:
        """Add one of a candidate's words or examples to the vocabulary."""
        stems = self.lexicon.content(text)
        folded = " ".join(self.lexicon.tokens(text))
        is_phrase = len(folded.split()) > 1
        negating = is_phrase and any(w in self.lexicon.negation for w in folded.split())
        # A word of a phrase says less alone than a word given alone:
        # "get" of "didn't get" is not "not received".
        alone = weight if weight < 1.0 else weight / max(1, len(set(stems)))
        held_back = 0.0
        for stem in stems:
            if is_phrase and stem in self._negations:
                # "pas" of "pas reçu" counts only with the phrase.
                held_back += alone
                continue
            known = self.strength.setdefault(stem, {})
            known[name] = max(known.get(name, 0.0), alone)
            (negated if negating else plain).add((stem, name))
            if weight == 1.0:
                # True: given alone; False: only inside phrases so far.
                alone_words[stem, name] = alone_words.get((stem, name), False) or len(set(stems)) == 1
        if weight == 1.0 and (len(set(stems)) > 1 or is_phrase):
            self.phrases.append((name, frozenset(stems), f" {folded} ", held_back))

    def evidence(self, utterance: str) -> dict:
        """Each candidate's evidence for ``utterance`` (candidates with none
        are left out)."""
        tokens = self._rejoined(self.lexicon.tokens(utterance))
        negated = self.lexicon.negated(tokens)
        heard = self._heard(tokens, negated)
        said = f" {' '.join(tokens)} "
        content: dict = {}
        answers: dict = {}
        for stem, (closeness, under_negation) in heard.items():
            # A word under a negation is evidence for the negated phrases
            # that know it ("never received"), not for the plain ones
            # ("received it"); and the other way round.
            owners = {name: weight for name, weight in self.strength.get(stem, {}).items()
                      if self._counts(stem, name, under_negation)}
            # A stem every candidate knows tells them apart no better than none.
            share = 1.0 / len(owners) if owners else 0.0
            totals = answers if stem in self.answer_stems else content
            for name, weight in owners.items():
                totals[name] = totals.get(name, 0.0) + closeness * share * weight
        for name, bonus in self._phrase_bonuses(heard, said).items():
            content[name] = content.get(name, 0.0) + bonus
        if negated and self.no_choice is not None:
            answers[self.no_choice] = answers.get(self.no_choice, 0.0) + NEGATION_AS_NO
        # A yes or no beside words that name a choice answers less than they
        # do: "no it's fine, I got it".
        half = ANSWER_BESIDE_CONTENT if content and max(content.values()) >= SURE else 1.0
        for name, value in answers.items():
            content[name] = content.get(name, 0.0) + half * value
        return content

    def _counts(self, stem: str, name, under_negation: bool) -> bool:
        """Whether a heard stem is evidence for a candidate."""
        if under_negation:
            # Under a negation a word is not evidence for a candidate that
            # knows it only in plain words when another knows it negated.
            return (stem, name) in self.negated_words or stem not in self._negated_stems
        return (stem, name) not in self.negated_only

    def _phrase_bonuses(self, heard: dict, said: str) -> dict:
        """Extra evidence of the phrases heard whole."""
        bonuses: dict = {}
        # A phrase heard in place inside a longer one of another candidate
        # says nothing of its own: "pas celle-ci" is not "celle-ci".
        said_in_place = [(name, folded) for name, _, folded, _ in self.phrases if folded in said]
        for name, stems, folded, held_back in self.phrases:
            if any(other != name and folded != longer and folded in longer
                   for other, longer in said_in_place):
                continue
            # A phrase heard whole says more than its words one by one, and
            # an idiom of filler words ("c'est bon", "that's it") says
            # something only as a whole.
            bonus = 0.0
            in_place = folded in said
            # A phrase whose only stems are negations ("une personne") must
            # be heard in place: "personne ne m'a rien livré" asks for nobody.
            loose = stems and stems <= heard.keys() and (in_place or stems - self._negations)
            if loose:
                bonus = PHRASE_BONUS * (len(stems) - 1) + held_back
            if in_place:
                # Filler words said in place count a little: "call me" is
                # more than "call".
                whole = (PHRASE_BONUS * (len(stems) - 1) + held_back
                         + FILLER_BONUS * (len(folded.split()) - len(stems)))
                bonus = max(bonus, whole, 0.0 if stems else SURE)
            if bonus:
                bonuses[name] = bonuses.get(name, 0.0) + bonus
        return bonuses

    def decide(self, utterance: str, settings: Settings, confidence: float | None = None) -> Decision:
        """Take, confirm or reject the best candidate for ``utterance``."""
        spoken = self.lexicon.spoken_digits(utterance)
        if spoken is not None and spoken in self.keys:
            return self._verdict(self.keys[spoken], 1.0, 1.0, settings, confidence)
        totals = self.evidence(utterance)
        escape = totals.get(ESCAPE, 0.0)
        if escape >= SURE and self.lexicon.talk & set(self.lexicon.tokens(utterance)):
            # A request to talk to a human heard in full is what the caller
            # wants most: it leads the best choice by its own evidence.
            # ("I want an agent to call me back" asks for a call back.)
            totals[ESCAPE] = escape + max((v for k, v in totals.items() if k != ESCAPE), default=0.0)
        ranked = sorted(totals.items(), key=lambda item: -item[1])
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

    def _heard(self, tokens: list, negated: frozenset) -> dict:
        """Stems of the utterance, each with how closely it was heard (1:
        exactly; less: the nearest known stem to a misheard word) and
        whether a negation bears on it."""
        heard: dict = {}
        for i, word, stem in self.lexicon.content_at(tokens):
            if word in self.lexicon.distinct:
                continue            # "personal" stems like "person" but is not one
            if stem not in self.strength:
                match = self._misheard(word, stem)
                if match is None:
                    continue
                stem, closeness = match[0], match[1] / 100
            else:
                closeness = 1.0
            before = heard.get(stem, (0.0, False))
            heard[stem] = (max(before[0], closeness), before[1] or i in negated)
        return heard

    def _rejoined(self, tokens: list) -> list:
        """Folded words with a word the recogniser cut in two joined again
        ("re fund", "represent ative") when only the whole is known."""
        joined, i = [], 0
        while i < len(tokens):
            if i + 1 < len(tokens) and not all(self.lexicon.stem(t) in self.strength
                                               for t in tokens[i:i + 2]):
                stem = self.lexicon.stem(tokens[i] + tokens[i + 1])
                if stem in self.strength:
                    joined.append(tokens[i] + tokens[i + 1])
                    i += 2
                    continue
            joined.append(tokens[i])
            i += 1
        return joined

    def _misheard(self, word: str, stem: str):
        """The known stem a misheard word stands for, with its closeness
        (0..100), or None.  A word of the language's own lists ("nobody",
        "personne") is never another word misheard; nor are its distinct
        words ("personnel" is not "personne": :meth:`_heard` skips them)."""
        if len(stem) < FUZZY_MIN_LENGTH or word in self._function_words or not self.vocabulary:
            return None
        match = process.extractOne(stem, self.vocabulary, scorer=fuzz.ratio, score_cutoff=FUZZY_CUTOFF)
        # A slip keeps a word's length; "dress" is not "address" misheard.
        if match is None or abs(len(match[0]) - len(stem)) > (FUZZY_LONG_SLACK if len(stem) >= 8 else 1):
            return None
        return match


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
