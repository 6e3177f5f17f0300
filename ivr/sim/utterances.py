"""Speech regression: play sets of utterances against a flow's menu.

A set is a YAML file::

    flow: ../post_sale.yaml        # relative to the set file
    lang: fr-FR
    node: main_menu                # a menu of that flow
    threshold: 0.9                 # lowest accuracy that passes, 0..1
    utterances:                    # phrasings the words may be tuned on
      - {say: "où en est ma commande", meant: "1"}
      - {say: "un conseiller", meant: escape, confidence: 0.4}
    held_out:                      # phrasings never used to tune: the honest figure
      - {say: "c'est pour un retour", meant: "2"}

``meant`` is a choice's key (or its 1-based position when it has none),
``escape`` for the way out to a human, or ``no_match``.  An utterance is
routed as meant when the menu takes that choice, or asks to confirm it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ivr.flow.loader import load_flow
from ivr.flow.speech import ESCAPE
from ivr.i18n import _, formats

NO_MATCH, CONFIRM = "no_match", "confirm"


class UtteranceFileError(Exception):
    """A set file that cannot be played."""


@dataclass(frozen=True)
class Played:
    say: str
    meant: str
    got: str           # what the menu decided: a key, escape or no_match
    confirmed: bool    # it asked the caller to confirm ``got``
    held_out: bool
    detail: str

    @property
    def right(self) -> bool:
        return self.got == self.meant


@dataclass
class Result:
    """One set played: every utterance, and the figures."""

    path: str
    node: str
    lang: str
    threshold: float
    columns: list
    played: list = field(default_factory=list)

    def part(self, held_out: bool) -> list:
        return [p for p in self.played if p.held_out == held_out]

    @staticmethod
    def accuracy(played) -> float | None:
        """Share routed as meant (taken or confirmed); None for no phrasings."""
        return sum(p.right for p in played) / len(played) if played else None

    @property
    def passed(self) -> bool:
        return all(a is None or a >= self.threshold
                   for a in (self.accuracy(self.part(False)), self.accuracy(self.part(True))))


def play_set(path) -> Result:
    """Play the set file at ``path``.  Raises :class:`UtteranceFileError`."""
    path = Path(path)
    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise UtteranceFileError(_("{file}: cannot read the set: {error}").format(file=path, error=error)) from None
    if not isinstance(spec, dict):
        raise UtteranceFileError(_("{file}: expected a mapping with flow, lang, node, threshold, utterances")
                                 .format(file=path))
    missing = [k for k in ("flow", "lang", "node", "threshold", "utterances") if k not in spec]
    if missing:
        raise UtteranceFileError(_("{file}: missing {fields}").format(file=path, fields=", ".join(missing)))
    flow_path = path.parent / spec["flow"]
    flow = load_flow(flow_path, flow_path.resolve().parent.parent / "prompts")
    node = flow.nodes.get(spec["node"])
    if node is None or node.kind != "menu":
        raise UtteranceFileError(_("{file}: {node!r} is not a menu of {flow}").format(
            file=path, node=spec["node"], flow=flow_path))
    if spec["lang"] not in flow.languages:
        raise UtteranceFileError(_("{file}: {lang!r} is not a language of {flow}").format(
            file=path, lang=spec["lang"], flow=flow_path))
    names = [c.key or str(i + 1) for i, c in enumerate(node.opts["choices"])]
    result = Result(str(path), node.name, spec["lang"], float(spec["threshold"]),
                    names + [ESCAPE])
    matcher = node.opts["matchers"][spec["lang"]]
    for held_out, items in ((False, spec["utterances"]), (True, spec.get("held_out") or ())):
        for i, item in enumerate(items):
            if not isinstance(item, dict) or "say" not in item or "meant" not in item:
                raise UtteranceFileError(_("{file}: utterance {number}: expected {{say: ..., meant: ...}}").format(
                    file=path, number=i + 1))
            meant = str(item["meant"])
            if meant not in result.columns + [NO_MATCH]:
                raise UtteranceFileError(_("{file}: utterance {say!r} means {meant!r}; expected one of {expected}")
                                         .format(file=path, say=item["say"], meant=meant,
                                                 expected=", ".join(result.columns + [NO_MATCH])))
            decision = matcher.decide(str(item["say"]), node.opts["speech"], item.get("confidence"))
            got = NO_MATCH if decision.verdict == "no_match" else (
                ESCAPE if decision.candidate == ESCAPE else names[decision.candidate])
            result.played.append(Played(str(item["say"]), meant, got, decision.verdict == "confirm",
                                        held_out, decision.detail))
    return result


def confusion_table(result: Result, held_out: bool | None = None) -> str:
    """Meant (rows) x got (columns), plus how many of each row were
    confirmed and not matched; ``held_out`` None: every phrasing."""
    played = [p for p in result.played if held_out is None or p.held_out == held_out]
    cells = Counter((p.meant, p.got) for p in played if p.got != NO_MATCH)
    confirmed = Counter(p.meant for p in played if p.confirmed)
    missed = Counter(p.meant for p in played if p.got == NO_MATCH)
    columns = result.columns
    # Translators: the corner of the confusion table: rows are what a phrasing meant, columns what it got.
    header = [_("meant\\got")] + columns + [CONFIRM, NO_MATCH]
    rows = [header]
    for meant in columns + [NO_MATCH]:
        if not any(p.meant == meant for p in played):
            continue
        rows.append([meant] + [str(cells[meant, c] or ".") for c in columns]
                    + [str(confirmed[meant] or "."), str(missed[meant] or ".")])
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    return "\n".join("  ".join(cell.rjust(w) for cell, w in zip(row, widths)) for row in rows)


def percent(value: float | None) -> str:
    """An accuracy in the operator's locale ("87.5%"); "n/a" for none."""
    return _("n/a") if value is None else formats().percent(value, 1)
