"""A simulated call: the production engine driven by a simulated clock.

``ivr-sim call`` and the scenario runner both use :class:`SimCall`.  It
plays each input as the provider would (digits, speech, silence, a
hang-up, a dial result) and keeps what the caller heard, the nodes the
call went through and the document the provider would have received
(TwiML unless another ``provider`` is named: rendered by its dialect).  Texts
are not sent: a :class:`ivr.server.sms.RecordingSms` keeps them, and what the
caller heard shows each one as ``[SMS to caller: …]``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ivr.engine import actions as act
from ivr.engine.gathering import GATHERING
from ivr.engine.state import call_summary
from ivr.engine.turn import Perform, SendSmsFn, play_turn
from ivr.flow.model import Flow
from ivr.i18n import _
from ivr.providers.registry import provider as registered
from ivr.providers.twilio.events import event_from
from ivr.providers.twilio.fake import queue_result
from ivr.server.sms import RecordingSms

#: Seconds the simulated clock moves on per turn: a prompt and an answer.
SECONDS_PER_TURN = 8
#: Seconds a simulated caller waits in the agents' queue before an agent
#: answers or they hang up (the provider's ``QueueTime``).
SIMULATED_QUEUE_SECONDS = 30


class InputNotExpected(Exception):
    """The caller did something the provider could not send at this point
    (keys while the call is being transferred, a dial result at a menu)."""


@dataclass
class SimTurn:
    """What one input produced."""

    number: int
    input: str
    actions: list
    node_events: list
    twiml: bytes

    @property
    def heard(self) -> str:
        """What the caller heard, as one line of text; the texts sent during
        the turn come first."""
        return " ".join(self.texts + [part for a in self.actions for part in spoken(a)])

    waiting_at: str | None = None
    #: The texts sent during the turn, as ``[SMS to caller: …]``.
    texts: list = field(default_factory=list)

    @property
    def incidents(self) -> list[str]:
        """Why the turn went wrong, as the log keeps it: the fail-safe's
        cause, a text message that was not sent."""
        return incidents(self.node_events)

    @property
    def path(self) -> list[str]:
        """The nodes this turn went through, in order, without repeats in a
        row, ending with the node the call now waits at."""
        nodes: list[str] = []
        for name in [e["node"] for e in self.node_events] + [self.waiting_at]:
            if name and (not nodes or nodes[-1] != name):
                nodes.append(name)
        return nodes


@dataclass
class SimCall:
    flow: Flow
    perform: Perform
    caller: str
    at: datetime
    lang: str | None = None
    call_id: str = "CA" + "0" * 32
    called: str = "+33100000000"
    state: dict | None = None
    turns: list = field(default_factory=list)
    #: Performs the call's texts; by default they are kept, not sent.
    send_sms: SendSmsFn = field(default_factory=lambda: RecordingSms().send)
    #: The provider whose document each turn shows (see :mod:`ivr.providers.registry`).
    provider: str = "twilio"

    def __post_init__(self):
        chosen = registered(self.provider)
        self._dialect, self._prefix = chosen.dialect(), chosen.prefix

    @property
    def ended(self) -> bool:
        return bool(self.state and self.state["ended"])

    @property
    def waiting_node(self) -> str | None:
        return self.state["node"] if self.state and not self.ended else None

    @property
    def summary(self) -> dict:
        return call_summary(self.state)

    def start(self) -> SimTurn:
        return self._play("call", {"type": "start", "call_id": self.call_id,
                                   "caller": self.caller, "called": self.called,
                                   "lang": self.lang, "provider": self.provider})

    def press(self, digits: str) -> SimTurn:
        self._expect(GATHERING, "keys")
        return self._play(f"press {digits}", {"type": "digits", "digits": digits.rstrip("#")})

    def say(self, words: str) -> SimTurn:
        self._expect(GATHERING, "speech")
        return self._play(f"say {words}", {"type": "speech", "text": words})

    def silence(self) -> SimTurn:
        self._expect(GATHERING, "silence")
        return self._play("silence", {"type": "silence"})

    def hangup(self) -> SimTurn:
        return self._play("hangup", {"type": "hangup"})

    def dial_result(self, status: str) -> SimTurn:
        self._expect(("dial",), "a transfer result")
        if (self.state.get("handoff") or {}).get("kind") == "queue":
            # What the provider's Enqueue action would say (see ivr.providers.twilio.events.event_from).
            event = event_from({"QueueResult": queue_result(status),
                                "QueueTime": str(SIMULATED_QUEUE_SECONDS)}, self.state)
        else:
            event = {"type": "dial_result", "status": status}
        return self._play(f"dial {status}", event)

    def recorded(self, seconds: int = 20) -> SimTurn:
        self._expect(("record",), "a recording")
        return self._play("record", {"type": "recorded", "duration": seconds,
                                     "url": "https://recordings.invalid/sim.wav"})

    def wait(self, seconds: int) -> None:
        self.at += timedelta(seconds=seconds)

    def _expect(self, waiting: tuple, what: str) -> None:
        actual = self.state["waiting"] if self.state else None
        if actual not in waiting:
            doing = {"dial": "a transfer", "record": "a recording", None: "nothing"}.get(
                actual, "keys or speech")
            raise InputNotExpected(f"cannot send {what}: the call waits for {doing}")

    def _play(self, label: str, event: dict) -> SimTurn:
        event["now"] = self.at
        texts = []

        def send_sms(sms, now):
            answer = self.send_sms(sms, now)
            if answer.get("status") == "sent":
                texts.append(self._shown(sms))
            return answer

        turn = play_turn(self.flow, self.state, event, self.perform, send_sms)
        self.state = turn.state
        number = len(self.turns)
        twiml = self._dialect.render(turn.actions,
                                     f"/{self._prefix}voice/{self.flow.name}?turn={number + 1}")
        result = SimTurn(number, label, turn.actions, turn.node_events, twiml, self.waiting_node,
                         texts)
        self.turns.append(result)
        self.at += timedelta(seconds=SECONDS_PER_TURN)
        return result


    def _shown(self, sms) -> str:
        """A text as the transcript shows it, on one line."""
        to = "caller" if sms.to == self.caller else sms.to
        return f"[SMS to {to}: {' / '.join(sms.body.splitlines())}]"


def incidents(node_events) -> list[str]:
    """One sentence per fail-safe or failed text message in ``node_events``,
    with the cause the engine logged (numbers in it already masked)."""
    found = []
    for event in node_events:
        if event.get("branch") == "failsafe":
            found.append(_("The fail-safe put the caller through to a person because of: {cause}")
                         .format(cause=event.get("detail") or _("no cause was logged")))
        elif event.get("kind") == "sms" and event.get("input") == "failed":
            found.append(_("The text message of node {node} was not sent: {error}")
                         .format(node=event["node"], error=event.get("detail") or _("no cause was logged")))
    return found


def spoken(action) -> list[str]:
    """What a caller would notice of ``action``, as short text."""
    if isinstance(action, act.Say):
        return [" ".join("".join(ET.fromstring(f"<s>{action.ssml}</s>").itertext()).split())]
    if isinstance(action, act.Play):
        return [f"[audio {action.url}]"]
    if isinstance(action, act.Pause):
        return [f"[pause {action.length}s]"]
    if isinstance(action, act.Gather):
        return [part for p in action.prompts for part in spoken(p)]
    if isinstance(action, act.Dial):
        return [f"[transfer to {action.target.kind} {action.target.address}]"]
    if isinstance(action, act.Enqueue):
        return [f"[queue {action.queue}]"]
    if isinstance(action, act.Record):
        return ["[beep, recording]"]
    if isinstance(action, act.Hangup):
        return ["[hang up]"]
    return []


def listens_for(actions) -> str | None:
    """What the call waits for after these actions, for the terminal."""
    for action in actions:
        if isinstance(action, act.Gather):
            keys = "speech or keys" if "speech" in action.input else "keys"
            if action.num_digits:
                return f"{keys} ({action.num_digits} digit{'s' if action.num_digits > 1 else ''})"
            return f"{keys} (end with {action.finish_on_key or 'a pause'})"
    return None
