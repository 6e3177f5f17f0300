"""The compiled, immutable form of a call flow: what the engine runs.

``ivr.flow`` builds these from YAML once the whole file has been validated,
so the engine never meets a missing field or an unknown target.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

#: Node kinds the flow language knows, in the order the docs present them.
NODE_KINDS = (
    "say", "menu", "input", "set", "branch", "lookup", "sms", "hours",
    "transfer", "record", "callback", "hangup",
)

#: Why a call reached a human.  ``policy``: the flow sends this question to
#: an agent by design (a lost parcel, a return); ``callback``: the caller
#: asked to be called back rather than put through.
TRANSFER_CAUSES = (
    "caller_asked", "no_input", "no_match", "not_found", "closed", "error",
    "loop_guard", "policy", "dial_failed", "callback",
)

OUTCOMES = ("self_served", "transferred", "abandoned", "failed")

#: The reason of a call whose caller never got as far as saying why.
REASON_NOT_STATED = "not_stated"


@dataclass(frozen=True)
class PromptItem:
    """One thing to play: ``kind`` is ``prompt`` (a template name), ``play``
    (an audio URL) or ``pause`` (seconds)."""

    kind: str
    value: Any


Prompts = tuple  # tuple[PromptItem, ...]


@dataclass(frozen=True)
class Retry:
    """What happens on no-input or no-match: ``max`` retries, an apology
    per attempt (the last one repeats), then ``to`` (None: the human)."""

    max: int
    say: tuple = ()  # tuple[Prompts, ...]
    to: str | None = None


@dataclass(frozen=True)
class Choice:
    key: str | None
    words: Mapping[str, tuple]  # language -> phrases, as written
    to: str
    assign: tuple = ()  # ((variable, value), ...)
    reason: str | None = None
    confirms: bool = False
    examples: Mapping[str, tuple] = field(default_factory=dict)  # language -> utterances
    label: Mapping[str, str] = field(default_factory=dict)  # language -> what the choice is, for confirm_choice


@dataclass(frozen=True)
class Node:
    """A node of the flow.  Fields every kind shares are attributes; the
    kind's own settings are in ``opts`` (see docs/flow-language.md)."""

    name: str
    kind: str
    line: int
    say: Prompts = ()
    reprompt: tuple = ()  # tuple[Prompts, ...] for attempts 2, 3, ...
    next: str | None = None
    reason: str | None = None
    resolves: bool = False
    opts: Mapping[str, Any] = field(default_factory=dict)

    def prompt_for_attempt(self, attempt: int) -> Prompts:
        """The prompt for the 1-based ``attempt``: ``say`` first, then each
        ``reprompt`` in turn, the last one repeating."""
        if attempt <= 1 or not self.reprompt:
            return self.say
        return self.reprompt[min(attempt - 2, len(self.reprompt) - 1)]


@dataclass(frozen=True)
class Escape:
    """The flow-wide way out to a human: keys and words that work in every
    menu and every input."""

    keys: tuple
    words: Mapping[str, tuple]
    to: str
    label: Mapping[str, str] = field(default_factory=dict)  # language -> text for confirm_choice


@dataclass(frozen=True)
class Flow:
    name: str
    path: str
    version: str
    languages: tuple
    default_language: str
    country_languages: Mapping[str, str]
    other_countries_language: str | None
    voices: Mapping[str, str]
    timezone: str
    start: str
    human: str
    escape: Escape
    no_input: Retry
    no_match: Retry
    timeout: int
    max_steps: int
    max_visits: int
    reasons: Mapping[str, str]
    calendars: Mapping[str, Any]
    variables: Mapping[str, Any]
    nodes: Mapping[str, Node]
    prompts: Any  # ivr.flow.prompts.PromptLibrary: a snapshot of this version's templates
    source: str = ""  # the YAML text of this version
    #: What the server says without a template at hand, rendered when the
    #: flow loaded: language -> prompt name (ivr.flow.prompts.FIXED_SERVER_PROMPTS)
    #: -> the <Say> text.
    server_says: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    #: The menu asked once, before a person, of a call with no reason yet.
    ask_reason: str | None = None
    #: reason -> language -> description, when the flow describes its
    #: reasons per language (``reasons`` then holds the default language's).
    reason_labels: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def reason_text(self, reason: str, lang: str | None = None) -> str | None:
        """How the flow describes ``reason``, in ``lang`` when it can."""
        labels = self.reason_labels.get(reason) or {}
        return labels.get(lang) or self.reasons.get(reason)
    speech: Any = None  # ivr.flow.speech.Settings: the flow's take/confirm/no-match thresholds
    #: language -> ivr.flow.speech.Matcher for read-backs (yes, no, escape) and
    #: for inputs of digits (escape only); built once per version.
    yes_no: Mapping[str, Any] = field(default_factory=dict)
    escape_only: Mapping[str, Any] = field(default_factory=dict)
    #: What each node listens for, by (node, wait, yes or no, language): the engine's
    #: Gather settings and hints, worked out on first use (a version never
    #: changes, so neither do they).  Not a field of the flow's value.
    listening: dict = field(default_factory=dict, init=False, compare=False, repr=False)
    #: Whether going to each node is going to a person, by node name: the
    #: engine's answer, worked out on first use.  Not a field of the flow's value.
    to_human: dict = field(default_factory=dict, init=False, compare=False, repr=False)
