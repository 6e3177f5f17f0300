"""Node kinds, each declared once: the registry the loader, lint, the
engine and the flow graph all read.

An entry says what a node of that kind is: the fields it takes (besides
the ones every node takes, :data:`COMMON_FIELDS`) and those it cannot do
without, the ways out of it (:class:`Exit`), whether it listens to the
caller (the escape and the retries then leave it too), whether it puts the
caller through to a person, the variables it sets, and the states a call
may wait in at one of its nodes.  Adding a kind is adding an entry here,
then its ``enter`` and waiting states in the engine (a test checks that
both sides agree).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping

from ivr.flow.fields import (
    LOOKUPS,
    assignments,
    callback_slot,
    choices,
    conditions,
    destination,
    flag,
    lookup_args,
    name,
    one_of,
    pattern,
    positive,
    prompt_list,
    prompts,
    reason,
    retry,
    sms_text,
    sms_to,
    speech_settings,
    target,
    text,
)
from ivr.flow.model import TRANSFER_CAUSES, Node

#: Fields every node takes, whatever its kind.
COMMON_FIELDS = {"kind": text, "description": text, "reason": reason, "resolves": flag}

_SAY = {"say": prompts}

#: The fields of a node that listens to the caller.
_GATHER = {"say": prompts, "reprompt": prompt_list, "timeout": positive,
           "no_input": retry, "no_match": retry}

#: The retry policies of a node that listens: where each one, exhausted, goes.
RETRY_FIELDS = ("no_input", "no_match")


@dataclass(frozen=True)
class Exit:
    """One declared way out of a node: to ``target``, labelled ``label``
    ("next", "found", a choice's key); ``detail`` is the full text behind
    the label (a choice's words), ``condition`` a branch's condition (the
    label is then that condition)."""

    target: str
    label: str
    detail: str | None = None
    condition: str | None = None


@dataclass(frozen=True)
class NodeKind:
    """What a node kind is; see the module's docstring."""

    name: str
    #: Its own fields (field -> checker of ``ivr.flow.fields``).
    fields: Mapping[str, Any]
    #: The fields a node of this kind cannot do without.
    required: tuple[str, ...]
    #: Its declared exits, given the node and the language that labels words.
    exits: Callable[[Node, str], Iterator[Exit]]
    #: It listens to the caller: the escape and the exhausted retries leave it.
    gathers: bool = False
    #: Entering it puts the caller through to a person (or takes their message
    #: or number for one).
    reaches_human: bool = False
    #: It may be the flow's ``human`` or where ``ask_reason`` leads: it
    #: reaches a person, or picks between nodes that do (hours).
    stands_for_human: bool = False
    #: The variables a node of this kind sets, from its parsed fields.
    sets: Callable[[Mapping[str, Any]], frozenset] = lambda parsed: frozenset()
    #: Values of fields a node leaves out.
    defaults: Mapping[str, Any] = field(default_factory=dict)
    #: The states a call may wait in at a node of this kind.
    waits: tuple[str, ...] = ()


# --- exits ---------------------------------------------------------------------------


def _next(node: Node, lang: str) -> Iterator[Exit]:
    if node.next:
        yield Exit(node.next, "next")


def _none(node: Node, lang: str) -> Iterator[Exit]:
    return iter(())


def _named(*fields: str) -> Callable[[Node, str], Iterator[Exit]]:
    """Exits named by fields of the node (``found: status``), in this order."""
    def exits(node: Node, lang: str) -> Iterator[Exit]:
        for field_name in fields:
            if node.opts.get(field_name):
                yield Exit(node.opts[field_name], field_name.replace("_", " "))
    return exits


def _menu(node: Node, lang: str) -> Iterator[Exit]:
    for choice in node.opts.get("choices", ()):
        words = [w for phrases in choice.words.values() for w in phrases]
        label = choice.key or next(iter(choice.words.get(lang) or words), "")
        yield Exit(choice.to, label, detail=", ".join(words) or None)


def _input(node: Node, lang: str) -> Iterator[Exit]:
    if node.next:
        yield Exit(node.next, "confirmed" if "confirm" in node.opts else "entered")


def _branch(node: Node, lang: str) -> Iterator[Exit]:
    for condition, to in node.opts.get("when", ()):
        yield Exit(to, condition, detail=condition, condition=condition)
    if node.opts.get("else"):
        yield Exit(node.opts["else"], "else")


def _sms(node: Node, lang: str) -> Iterator[Exit]:
    if node.next:
        yield Exit(node.next, "sent")
    if node.opts.get("failed") or node.next:
        yield Exit(node.opts.get("failed") or node.next, "failed")


# --- what kinds set ------------------------------------------------------------------


def _saves_as(parsed: Mapping[str, Any]) -> frozenset:
    return frozenset([parsed["save_as"]]) if parsed.get("save_as") else frozenset()


def _assigned(parsed: Mapping[str, Any]) -> frozenset:
    return frozenset(variable for variable, _spec in parsed.get("set", ()))


def _chosen(parsed: Mapping[str, Any]) -> frozenset:
    return frozenset(variable for choice in parsed.get("choices", ())
                     for variable, _spec in choice.assign)


def _found(parsed: Mapping[str, Any]) -> frozenset:
    return frozenset(LOOKUPS[parsed["find"]]["sets"]) if parsed.get("find") in LOOKUPS else frozenset()


# --- the registry --------------------------------------------------------------------

_DECLARED = (
    NodeKind("say", {**_SAY, "next": target}, ("say", "next"), _next),
    NodeKind("menu", {"choices": choices, "input": one_of("dtmf", "speech", "dtmf speech"),
                      "speech": speech_settings, **_GATHER},
             ("say", "choices"), _menu, gathers=True, sets=_chosen,
             waits=("gather", "confirm_choice")),
    NodeKind("input", {"min": positive, "max": positive, "finish_on": one_of("#", "*", ""),
                       "pattern": pattern, "save_as": name, "confirm": prompts,
                       "sensitive": flag, "next": target, **_GATHER},
             ("say", "save_as", "next"), _input, gathers=True, sets=_saves_as,
             waits=("gather", "confirm")),
    NodeKind("set", {"set": assignments, "next": target}, ("set", "next"), _next, sets=_assigned),
    NodeKind("branch", {"when": conditions, "else": target}, ("when", "else"), _branch),
    NodeKind("lookup", {**_SAY, "find": one_of(*LOOKUPS), "with": lookup_args, "found": target,
                        "many": target, "not_found": target, "error": target},
             ("find", "found", "not_found"), _named("found", "many", "not_found", "error"),
             sets=_found, waits=("lookup",)),
    NodeKind("sms", {**_SAY, "text": sms_text, "to": sms_to, "next": target, "failed": target},
             ("text", "next"), _sms, waits=("sms",)),
    NodeKind("hours", {"calendar": text, "open": target, "closed": target},
             ("calendar", "open", "closed"), _named("open", "closed"), stands_for_human=True,
             sets=lambda parsed: frozenset({"opens_at"})),
    NodeKind("transfer", {**_SAY, "to": destination, "timeout": positive, "caller_id": text,
                          "cause": one_of(*TRANSFER_CAUSES), "no_answer": target},
             ("to",), _named("no_answer"), reaches_human=True, stands_for_human=True,
             waits=("dial",)),
    NodeKind("record", {**_SAY, "max_length": positive, "finish_on": text, "next": target},
             ("say",), _next, reaches_human=True, stands_for_human=True,
             sets=lambda parsed: frozenset({"recording_url"}), waits=("record",)),
    NodeKind("callback", {"ask_number": prompts, "save_as": name, "slot": callback_slot,
                          "next": target, **_GATHER},
             ("say", "ask_number", "next"), _next, gathers=True, reaches_human=True,
             stands_for_human=True, sets=_saves_as, defaults={"save_as": "callback_number"},
             waits=("callback_confirm", "callback_number")),
    NodeKind("hangup", dict(_SAY), (), _none),
)

#: Every node kind by name, in the order the docs present them.
KINDS: Mapping[str, NodeKind] = {kind.name: kind for kind in _DECLARED}

#: The names of the node kinds, in the order the docs present them.
NODE_KINDS = tuple(KINDS)


def targets(node: Node) -> Iterator[str]:
    """Every node name ``node`` can lead to: its declared exits, and where
    its retries go when they name a node (else they go to the human)."""
    kind = KINDS[node.kind]
    for way_out in kind.exits(node, ""):
        yield way_out.target
    if kind.gathers:
        for field_name in RETRY_FIELDS:
            spec = node.opts.get(field_name)
            if spec and getattr(spec, "to", None):
                yield spec.to


def waiting_states(gathering: bool | None = None) -> tuple[str, ...]:
    """The states a call may wait in, in declaration order; only those of
    kinds that listen to the caller (``gathering=True``) or of those that
    do not (``False``)."""
    states: dict = {}
    for kind in _DECLARED:
        if gathering is None or kind.gathers == gathering:
            states.update(dict.fromkeys(kind.waits))
    return tuple(states)
