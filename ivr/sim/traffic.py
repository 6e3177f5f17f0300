"""Ground-truth traffic: calls with known answers, played as a provider would.

Reports are only as right as the figures they are checked against.  This
module plays a seeded mix of callers through the server's own code path
(:class:`ivr.calls.CallHandler` on a :class:`ivr.store.CallStore`, the
flows of a :class:`ivr.registry.FlowRegistry`, the embedded order look-ups
over the demo orders), each turn a webhook with the parameters Twilio
sends, each call ended by the ``completed`` status callback.  Time is
simulated: every call starts at a seeded moment of the traffic period,
nights, Sundays and public holidays included.

What each caller does, and how the call must end, is written down by hand
in :data:`BEHAVIOURS` (reason, outcome, transfer cause, the node where the
call leaves the flow, the nodes it reaches).  The expected figures
(:class:`Expected`) are computed from that table and the call plan
(caller, reason, start, outcome), never from what the engine logged, so a
report that disagrees with them shows a bug in the report or in the engine.

The table is written for the demo flow ``flows/post_sale.yaml`` and the
demo orders (``ivr.demo_orders``).  A caller "with the orders of" a demo
caller gets a number of its own and copies of those orders in the traffic's
database, so that only the deliberate repeat episodes call twice.
"""

from __future__ import annotations

import bisect
import json
import random
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field, replace
from datetime import date, datetime, time, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import holidays as holidays_lib
from twisted.internet import defer, task
from twisted.python.failure import Failure

from ivr.server.calls import CallHandler
from ivr.lookups.demo_orders import (
    DEMO_CALLERS,
    DEMO_ORDERS,
    UNKNOWN_ORDER,
    create_demo_db,
    demo_orders,
)
from ivr.flow.loader import load_flow
from ivr.lookups.embedded import EmbeddedOrderLookups
from ivr.flow.model import OUTCOMES, REASON_NOT_STATED, TRANSFER_CAUSES
from ivr.server.registry import FlowRegistry
from ivr.sim.remote import API_VERSION, SPEECH_CONFIDENCE, parse_twiml, queue_result
from ivr.store.sqlite.store import CallStore

__all__ = ["BEHAVIOURS", "EPISODES", "Behaviour", "Episode", "Expected", "NumberPool",
           "PlannedCall", "Traffic", "TrafficError", "caller_orders", "check_figures",
           "expectation", "generate", "plan_calls", "later", "play", "single_call"]

#: The flow the behaviour table is written for.
FLOW_NAME = "post_sale"
#: Where the period starts when none is given: two weeks with two Sundays
#: and Armistice Day (Wednesday 11 November), a French public holiday.
DEFAULT_START = date(2026, 11, 2)
DEFAULT_DAYS = 14
#: The demo orders are dated from the first day of the period; past 30 days
#: the oldest order of a two-order caller leaves the 60-day "recent" window
#: and the calls would no longer go as the table says.
ORDERS_VALID_DAYS = 30
#: Leaves room for the second call of a repeat episode (up to 36 hours on).
MAX_DAYS = 28
CALLED = "+33100000000"
#: Steps that hang up while the step before them is on hold.
HOLD_HANG_UPS = ("hangup on hold", "hangup on hold answered")
#: Seconds an answered or failed transfer waited in the agents' queue.
QUEUE_SECONDS = 30
ACCOUNT_SID = "AC" + "0" * 32

# Callers that are not demo callers (DEMO_CALLERS keys name the others).
NEW_FR = "new_fr"        # a French number with no order
NEW_EN = "new_en"        # a US number with no order
WITHHELD = "withheld"    # the caller hid their number
#: What the provider sends as ``From`` for a withheld number.
WITHHELD_NUMBER = "anonymous"


class TrafficError(Exception):
    """The traffic cannot be generated as asked (bad figures, a foreign
    database), or a behaviour's script no longer fits the flow."""


# --- The behaviour table ------------------------------------------------------------

@dataclass(frozen=True)
class Behaviour:
    """One kind of caller: who calls, when, what they do, and how the call
    must end, written by hand from the flow (not from the engine's log).

    ``steps`` use ``ivr-sim call``'s words: keys (``1``, ``12345#``),
    ``say <words>``, ``silence``, ``dial <status>`` (the transfer's result;
    ``dial canceled`` in the agents' queue: the caller hung up there),
    ``record <seconds>`` and ``hangup`` (the status callback arrives while
    the call waits).  ``hold`` makes the step before it a slow look-up:
    the caller hears "one moment" and comes back for the answer;
    ``hangup on hold`` likewise, but the caller hangs up before it answers
    (``hangup on hold answered``: it answers during the hold's pause, and
    the caller hangs up before coming back for it).  ``hours`` is when the
    call may start: ``open`` (agents on duty until well after the call),
    ``closed`` or ``any`` (the call never asks the calendar).  ``nodes``
    are all the nodes the call reaches.  ``caller`` is a demo caller's key
    (a number of its own with copies of that caller's orders, see
    :func:`caller_orders`) or one of the kinds below.
    """

    name: str
    caller: str
    hours: str
    steps: tuple
    reason: str
    outcome: str
    cause: str | None
    exit_node: str
    nodes: frozenset
    confirmed: bool = False
    handoff: str | None = None
    weight: int = 1


def _nodes(*names: str) -> frozenset:
    """A call not answered at once: no order on its way for its number."""
    return frozenset(("find_recent", "welcome", "main_menu") + names)


def _found(*names: str) -> frozenset:
    """A call from the one order of its number, not on its way (lost, cancelled)."""
    return _nodes("on_its_way", *names)


def _answered_first(status: str, *names: str) -> frozenset:
    """A call whose one order on its way is answered before any menu."""
    return frozenset(("find_recent", "on_its_way", "proactive_answer", "answer", status, "told",
                      "after_answer", "proactive_done", "proactive_more", "main_menu") + names)


_STATUS_QUESTION = ("status_question", "status_lookup", "find_by_phone")
_TYPED = (*_STATUS_QUESTION, "ask_order_number", "find_by_number", "answer")
_BY_PHONE = (*_STATUS_QUESTION, "confirm_order", "answer")
_AFTER = ("told", "after_answer", "anything_else")
_AGENT = ("agent_hours", "agent")
_AGAIN = ("status_question", "answer", "status_reminder")  # the status heard, asked again

BEHAVIOURS: dict[str, Behaviour] = {b.name: b for b in (
    # -- answered before any menu: one order on its way ------------------------------------
    Behaviour("answered_first_hangs_up", "one_order", "any", ("hangup",),
              "in_transit_on_time", "self_served", None, "main_menu",
              _answered_first("status_in_transit"), weight=10),
    Behaviour("answered_first_english_hangs_up", "english_one_order", "any", ("hangup",),
              "in_transit_on_time", "self_served", None, "main_menu",
              _answered_first("status_out_for_delivery"), weight=5),
    Behaviour("answered_first_warehouse_delay", "delayed_warehouse", "any", ("hangup",),
              "warehouse_delay", "self_served", None, "main_menu",
              _answered_first("status_delayed_warehouse"), weight=3),
    # Goes on to ask the date again: a reminder, not the same order and message again.
    Behaviour("answered_first_asks_date_again", "one_order", "any", ("1", "2"),
              "in_transit_on_time", "self_served", None, "goodbye",
              _answered_first("status_in_transit", *_AGAIN, "anything_else", "goodbye"),
              confirmed=True, weight=4),
    Behaviour("answered_first_asks_by_voice", "delayed_carrier", "any",
              ("say quand est-ce qu'il arrive", "say non merci"),
              "carrier_delay", "self_served", None, "goodbye",
              _answered_first("status_delayed_carrier", *_AGAIN, "anything_else", "goodbye"),
              confirmed=True, weight=3),
    # Goes on to the menu for something else: counted by what they ask next.
    Behaviour("answered_first_then_return", "one_order", "open", ("2", "dial completed"),
              "return_request", "transferred", "policy", "agent",
              _answered_first("status_in_transit", "which_order", "return_handoff", *_AGENT),
              handoff="queue", weight=3),
    # Heard the answer, still wants a person: transferred, the reason already known.
    Behaviour("answered_first_then_agent", "delayed_carrier", "open", ("0", "dial completed"),
              "carrier_delay", "transferred", "caller_asked", "main_menu",
              _answered_first("status_delayed_carrier", *_AGENT), handoff="queue", weight=2),
    # -- answered after the menu ---------------------------------------------------------------
    Behaviour("typed_order_status", NEW_FR, "any", ("1", DEMO_ORDERS["in_transit"], "1", "2"),
              "in_transit_on_time", "self_served", None, "goodbye",
              _nodes(*_TYPED, "status_in_transit", *_AFTER, "goodbye"), confirmed=True, weight=6),
    Behaviour("withheld_typed_order", WITHHELD, "any",
              ("1", DEMO_ORDERS["out_for_delivery"], "1", "2"),
              "in_transit_on_time", "self_served", None, "goodbye",
              _nodes(*_TYPED, "status_out_for_delivery", *_AFTER, "goodbye"), confirmed=True, weight=3),
    Behaviour("several_orders_typed", "several_orders", "any",
              ("1", DEMO_ORDERS["shipped"], "1", "2"),
              "in_transit_on_time", "self_served", None, "goodbye",
              _nodes("several_orders", *_TYPED, "status_in_transit", *_AFTER, "goodbye"),
              confirmed=True, weight=4),
    Behaviour("preparing_typed", "several_orders", "any",
              ("1", DEMO_ORDERS["preparing"], "1", "2"),
              "preparing_on_time", "self_served", None, "goodbye",
              _nodes("several_orders", *_TYPED, "status_preparing", *_AFTER, "goodbye"),
              confirmed=True, weight=2),
    # A status call about a returned order: the refund, not a return request.
    Behaviour("returned_order_typed", "english_several_orders", "any",
              ("1", DEMO_ORDERS["returned"], "1", "hangup"),
              "refund_follow_up", "self_served", None, "anything_else",
              _nodes("several_orders", *_TYPED, "status_returned", *_AFTER), weight=3),
    Behaviour("cancelled_order", "cancelled", "any", ("1", "1", "2"),
              "order_cancelled", "self_served", None, "goodbye",
              _found(*_BY_PHONE, "status_cancelled", *_AFTER, "goodbye"), confirmed=True, weight=3),
    Behaviour("old_order_delivered", "only_old_orders", "any", ("1", "100101", "1", "2", "2"),
              "delivery_confirmation", "self_served", None, "goodbye",
              _nodes(*_TYPED, "status_delivered", *_AFTER, "goodbye"), confirmed=True, weight=2),
    Behaviour("delivered_silence_hangs_up", NEW_EN, "any",
              ("1", DEMO_ORDERS["delivered"], "1", "silence", "hangup"),
              "delivery_confirmation", "self_served", None, "anything_else",
              _nodes(*_TYPED, "status_delivered", *_AFTER), weight=2),
    # "Not received" about a parcel still in transit: its status, and that cause.
    Behaviour("not_received_in_transit", NEW_FR, "any", ("3", DEMO_ORDERS["in_transit"], "1", "2"),
              "in_transit_on_time", "self_served", None, "goodbye",
              _nodes(*_TYPED, "status_in_transit", *_AFTER, "goodbye"), confirmed=True, weight=2),
    # Two questions in one call: the date again, then the last answer counts.
    Behaviour("status_then_date_again", NEW_FR, "any",
              ("1", DEMO_ORDERS["delayed_warehouse"], "1", "1", "1", "2"),
              "warehouse_delay", "self_served", None, "goodbye",
              _nodes(*_TYPED, "status_delayed_warehouse", *_AFTER, *_AGAIN, "goodbye"),
              confirmed=True, weight=2),
    # "No" to the read-back re-asks the number; the second one is right.
    Behaviour("order_mistyped_then_fixed", NEW_FR, "any",
              ("1", DEMO_ORDERS["in_transit"], "2", DEMO_ORDERS["delayed_warehouse"], "1", "2"),
              "warehouse_delay", "self_served", None, "goodbye",
              _nodes(*_TYPED, "status_delayed_warehouse", *_AFTER, "goodbye"), confirmed=True, weight=2),
    # -- hang-ups: the status callback arrives while the call waits ---------------------------
    Behaviour("hangs_up_at_menu", NEW_FR, "any", ("hangup",),
              "not_stated", "abandoned", None, "main_menu", _nodes(), weight=5),
    Behaviour("hangs_up_at_confirm", "cancelled", "any", ("1", "hangup"),
              "order_status_unknown", "abandoned", None, "confirm_order",
              _found(*_STATUS_QUESTION, "confirm_order"), weight=3),
    Behaviour("hangs_up_typing_order", NEW_EN, "any", ("1", "hangup"),
              "order_status_unknown", "abandoned", None, "ask_order_number",
              _nodes(*_STATUS_QUESTION, "ask_order_number"), weight=3),
    # On hold for a slow look-up ("one moment"): waits, and hears the answer.
    Behaviour("waits_on_hold_typed_order", NEW_FR, "any",
              ("1", "hold", DEMO_ORDERS["in_transit"], "1", "2"),
              "in_transit_on_time", "self_served", None, "goodbye",
              _nodes(*_TYPED, "status_in_transit", *_AFTER, "goodbye"), confirmed=True, weight=2),
    # Or is gone: the call left at the look-up, not at the question its
    # answer would have led to, whether it answered before the hang-up
    # (during the hold's pause) or not.
    Behaviour("hangs_up_on_hold", NEW_FR, "any", ("1", "hangup on hold"),
              "order_status_unknown", "abandoned", None, "find_by_phone",
              _nodes(*_STATUS_QUESTION), weight=3),
    Behaviour("hangs_up_on_hold_answered", NEW_EN, "any",
              ("1", DEMO_ORDERS["in_transit"], "1", "hangup on hold answered"),
              "order_status_unknown", "abandoned", None, "find_by_number",
              _nodes(*_STATUS_QUESTION, "ask_order_number", "find_by_number"), weight=2),
    # Heard "delivered", asked about a parcel not received, found the line
    # closed and hung up: that last question was never answered.
    Behaviour("delivered_then_not_received_closed", NEW_FR, "closed",
              ("1", DEMO_ORDERS["delivered"], "1", "1", "hangup"),
              "delivered_not_received", "abandoned", None, "closed_menu",
              _nodes(*_TYPED, "status_delivered", "not_received_handoff", "agent_hours", "closed_menu"),
              weight=2),
    # Asked for a human at night, skipped the reason, then said nothing.
    Behaviour("closed_gives_up", NEW_FR, "closed", ("0", "silence", "silence", "silence"),
              "not_stated", "abandoned", None, "goodbye_closed",
              _nodes("ask_reason", "agent_hours", "closed_menu", "goodbye_closed"), weight=1),
    Behaviour("closed_gives_up_after_reason", NEW_EN, "closed", ("0", "2", "silence", "silence"),
              "return_request", "abandoned", None, "goodbye_closed",
              _nodes("ask_reason", "agent_hours", "closed_menu", "goodbye_closed"), weight=1),
    # -- to a human: asked once why, before any reason is known ------------------------------
    Behaviour("agent_key_gives_reason", NEW_FR, "open", ("0", "1", "dial completed"),
              "order_status_unknown", "transferred", "caller_asked", "main_menu",
              _nodes("ask_reason", *_AGENT), handoff="queue", weight=4),
    Behaviour("agent_key_skips_reason", NEW_FR, "open", ("0", "silence", "dial completed"),
              "not_stated", "transferred", "caller_asked", "main_menu",
              _nodes("ask_reason", *_AGENT), handoff="queue", weight=1),
    Behaviour("agent_word_english_invoice", "english_no_order", "open",
              ("say I want to talk to an agent", "say it's about my invoice", "dial completed"),
              "billing", "transferred", "caller_asked", "main_menu",
              _nodes("ask_reason", *_AGENT), handoff="queue", weight=2),
    Behaviour("agent_word_faulty_item", NEW_FR, "open",
              ("say je voudrais parler à un conseiller", "say l'article est défectueux", "dial completed"),
              "product_issue", "transferred", "caller_asked", "main_menu",
              _nodes("ask_reason", *_AGENT), handoff="queue", weight=3),
    # The reason already known: no question before the person.
    Behaviour("agent_word_at_confirm", "cancelled", "open", ("1", "say conseiller", "dial completed"),
              "order_status_unknown", "transferred", "caller_asked", "confirm_order",
              _found(*_STATUS_QUESTION, "confirm_order", *_AGENT), handoff="queue", weight=3),
    Behaviour("silence_no_input", NEW_FR, "open",
              ("silence", "silence", "silence", "2", "dial completed"),
              "return_request", "transferred", "no_input", "main_menu",
              _nodes("ask_reason", *_AGENT), handoff="queue", weight=3),
    Behaviour("silent_throughout", NEW_FR, "open",
              ("silence", "silence", "silence", "silence", "dial completed"),
              "not_stated", "transferred", "no_input", "main_menu",
              _nodes("ask_reason", *_AGENT), handoff="queue", weight=1),
    Behaviour("wrong_keys_no_match", NEW_EN, "open", ("7", "8", "5", "6", "dial completed"),
              "product_issue", "transferred", "no_match", "main_menu",
              _nodes("ask_reason", *_AGENT), handoff="queue", weight=3),
    # Three bad order numbers: the retries run out at the number prompt.
    Behaviour("wrong_digits_no_match", NEW_FR, "open", ("1", "12345#", "000000", "98765#", "dial completed"),
              "order_status_unknown", "transferred", "no_match", "ask_order_number",
              _nodes(*_STATUS_QUESTION, "ask_order_number", *_AGENT), handoff="queue", weight=2),
    Behaviour("order_not_found_agent", NEW_FR, "open",
              ("1", UNKNOWN_ORDER, "1", UNKNOWN_ORDER, "1", "dial completed"),
              "order_status_unknown", "transferred", "not_found", "find_by_number",
              _nodes(*_TYPED[:5], "count_not_found", "retry_or_agent", "order_not_found_retry",
                     "order_not_found_agent", *_AGENT), handoff="queue", weight=3),
    Behaviour("lost_parcel", "lost", "open", ("1", "1", "dial completed"),
              "parcel_lost", "transferred", "policy", "agent",
              _found(*_BY_PHONE, "status_lost", *_AGENT), handoff="queue", weight=2),
    Behaviour("return_request", NEW_FR, "open", ("2", DEMO_ORDERS["delivered"], "1", "dial completed"),
              "return_request", "transferred", "policy", "agent",
              _nodes("which_order", "find_by_phone", "ask_order_number", "find_by_number", "answer",
                     "return_handoff", *_AGENT), handoff="queue", weight=3),
    Behaviour("order_change", NEW_EN, "open", ("4", DEMO_ORDERS["preparing"], "1", "dial completed"),
              "order_change", "transferred", "policy", "agent",
              _nodes("which_order", "find_by_phone", "ask_order_number", "find_by_number", "answer",
                     "change_handoff", *_AGENT), handoff="queue", weight=2),
    Behaviour("not_received", "several_orders", "open",
              ("say j'ai jamais reçu mon colis", DEMO_ORDERS["delivered"], "1", "dial completed"),
              "delivered_not_received", "transferred", "policy", "agent",
              _nodes("several_orders", *_TYPED, "not_received_handoff", *_AGENT),
              handoff="queue", weight=2),
    # Two questions in one call: the status answered, then a return for an agent.
    Behaviour("status_then_return", NEW_FR, "open",
              ("1", DEMO_ORDERS["in_transit"], "1", "1", "2", "dial completed"),
              "return_request", "transferred", "policy", "agent",
              _nodes(*_TYPED, "status_in_transit", *_AFTER, "which_order", "return_handoff", *_AGENT),
              handoff="queue", weight=2),
    # Nobody answers: an apology, then a callback instead of a bare hang-up.
    Behaviour("agent_not_answered", NEW_FR, "open", ("0", "4", "dial no-answer", "1", "3", "1"),
              "order_change", "transferred", "callback", "main_menu",
              _nodes("ask_reason", *_AGENT, "agents_busy", "closed_menu", "callback_slot", "callback",
                     "callback_done"), handoff="callback", weight=2),
    Behaviour("agent_busy_gives_up", NEW_EN, "open", ("0", "5", "dial busy", "silence", "silence"),
              "billing", "transferred", "dial_failed", "main_menu",
              _nodes("ask_reason", *_AGENT, "agents_busy", "closed_menu", "goodbye_closed"), weight=1),
    # Hung up while waiting in the agents' queue: still transferred,
    # abandoned in the queue after the seconds the provider says.
    Behaviour("agent_hangs_up_in_queue", NEW_FR, "open", ("0", "1", "dial canceled"),
              "order_status_unknown", "transferred", "caller_asked", "main_menu",
              _nodes("ask_reason", *_AGENT), handoff="queue", weight=3),
    Behaviour("return_hangs_up_in_queue", NEW_EN, "open",
              ("2", DEMO_ORDERS["delivered"], "1", "dial canceled"),
              "return_request", "transferred", "policy", "agent",
              _nodes("which_order", "find_by_phone", "ask_order_number", "find_by_number", "answer",
                     "return_handoff", *_AGENT), handoff="queue", weight=2),
    Behaviour("lost_parcel_hangs_up_in_queue", "lost", "open", ("1", "1", "dial canceled"),
              "parcel_lost", "transferred", "policy", "agent",
              _found(*_BY_PHONE, "status_lost", *_AGENT), handoff="queue", weight=1),
    # -- closed: a callback or a message instead ----------------------------------------------
    Behaviour("closed_callback", NEW_FR, "closed", ("0", "1", "1", "3", "1"),
              "order_status_unknown", "transferred", "callback", "main_menu",
              _nodes("ask_reason", "agent_hours", "closed_menu", "callback_slot", "callback",
                     "callback_done"), handoff="callback", weight=3),
    Behaviour("closed_voicemail", NEW_EN, "closed",
              ("say operator", "say it's about a payment", "2", "record 25"),
              "billing", "transferred", "closed", "main_menu",
              _nodes("ask_reason", "agent_hours", "closed_menu", "voicemail", "voicemail_done"),
              handoff="voicemail", weight=2),
    Behaviour("lost_parcel_closed", "lost", "closed", ("1", "1", "1", "1", "1"),
              "parcel_lost", "transferred", "callback", "agent_hours",
              _found(*_BY_PHONE, "status_lost", "agent_hours", "closed_menu", "callback_slot",
                     "callback", "callback_done"), handoff="callback", weight=1),
    # -- second calls of the repeat episodes (weight 0: only inside an episode) -------------
    Behaviour("asks_again_hangs_up", NEW_FR, "any", ("1", DEMO_ORDERS["in_transit"], "1", "hangup"),
              "in_transit_on_time", "self_served", None, "anything_else",
              _nodes(*_TYPED, "status_in_transit", *_AFTER), weight=0),
    Behaviour("return_asked_hangs_up", NEW_FR, "any", ("2", "hangup"),
              "return_request", "abandoned", None, "ask_order_number",
              _nodes("which_order", "find_by_phone", "ask_order_number"), weight=0),
)}


@dataclass(frozen=True)
class Episode:
    """Two calls by the same new caller: ``first``, then ``second`` within
    the repeat window (5 minutes from either end), or when
    ``after_window`` 5 minutes to 12 hours after it ends."""

    name: str
    first: str
    second: str
    after_window: bool = False
    weight: int = 1


EPISODES: dict[str, Episode] = {e.name: e for e in (
    # Self-served, then back for the same reason within the window: not deflected.
    Episode("repeat_same_reason", "typed_order_status", "asks_again_hangs_up", weight=4),
    # Back for the same reason, but after the window: still deflected.
    Episode("repeat_after_window", "typed_order_status", "asks_again_hangs_up",
            after_window=True, weight=2),
    # Back within the window about something else: still deflected.
    Episode("repeat_other_reason", "typed_order_status", "return_asked_hangs_up", weight=2),
)}


# --- The call plan ---------------------------------------------------------------------

@dataclass(frozen=True)
class PlannedCall:
    """One call to play: who, when, which behaviour; ``times`` are the
    seconds after ``start`` at which each step happens, then the status
    callback."""

    call_id: str
    behaviour: str
    caller: str
    start: datetime
    times: tuple
    episode: str | None = None

    @property
    def spec(self) -> Behaviour:
        return BEHAVIOURS[self.behaviour]

    def ivr_seconds(self) -> int:
        """Seconds the call spends with the IVR, from the script: until the
        turn that puts it in the agents' queue, else until it ends (the
        status callback: the last prompt counts)."""
        for index, step in enumerate(self.spec.steps):
            # A dial nobody answered keeps the call in the IVR; one who
            # hangs up in the queue had left it.
            if step == "dial completed" or (step == "dial canceled" and self.spec.handoff == "queue"):
                return self.times[index - 1] if index else 0
        return self.times[-1]

    def transfer_result(self) -> tuple[str | None, int | None]:
        """What happened at the human's end, from the script: ``answered``,
        ``abandoned_in_queue`` with the seconds waited there, or
        ``no_answer``; (None, None) for a call never put through."""
        for index, step in enumerate(self.spec.steps):
            if step == "dial completed":
                return "answered", None
            if step == "dial canceled" and self.spec.handoff == "queue":
                return "abandoned_in_queue", self.queue_seconds(index)
            if step.startswith("dial "):
                return "no_answer", None
        return None, None

    def queue_seconds(self, index: int) -> int:
        """Seconds in the queue before the dial step ``index`` ends it."""
        return self.times[index] - (self.times[index - 1] if index else 0)


def plan_calls(calls: int, seed: int, start: datetime, days: int,
               repeat_window: timedelta = timedelta(hours=24)) -> list[PlannedCall]:
    """The calls to play, the same for the same arguments, in the order
    they start."""
    check_figures(calls, days, repeat_window)
    end = start + timedelta(days=days)
    slots = {"any": [(start, end)], "open": _open_slots(start, end), "closed": _closed_slots(start, end)}
    for hours in ("open", "closed"):
        if not slots[hours]:
            raise TrafficError(f"the period {start:%Y-%m-%d} + {days} days has no "
                               f"{'business hours' if hours == 'open' else 'closed hours'}; "
                               "give more days")
    rng = random.Random(seed)
    numbers = NumberPool()
    units = [(b.name, None) for b in BEHAVIOURS.values() if b.weight] + \
            [(None, e.name) for e in EPISODES.values()]
    weights = [BEHAVIOURS[b].weight if b else EPISODES[e].weight for b, e in units]
    singles = [(b, e) for b, e in units if b]
    plan: list[PlannedCall] = []
    while len(plan) < calls:
        behaviour, episode = rng.choices(units, weights)[0]
        if episode and calls - len(plan) < 2:
            behaviour, episode = rng.choices(singles, [BEHAVIOURS[b].weight for b, _ in singles])[0]
        if behaviour:
            spec = BEHAVIOURS[behaviour]
            caller = numbers.take(spec.caller)
            plan.append(_planned(rng, spec, caller, _sample(rng, slots[spec.hours])))
            continue
        ep = EPISODES[episode]
        first = BEHAVIOURS[ep.first]
        caller = numbers.take(first.caller)
        at = _sample(rng, slots[first.hours])
        window = int(repeat_window.total_seconds())
        low, high = (window + 300, window + 12 * 3600) if ep.after_window else (300, window - 300)
        plan.append(_planned(rng, first, caller, at, episode))
        plan.append(_planned(rng, BEHAVIOURS[ep.second], caller,
                             later(at, rng.randint(low, high)), episode))
    _separate(plan, repeat_window)
    return sorted(plan, key=lambda c: (c.start.timestamp(), c.call_id))


def later(moment: datetime, seconds: float) -> datetime:
    """``moment`` plus ``seconds`` of elapsed time, in its timezone.  Plain
    ``+`` on an aware datetime adds wall-clock time, an hour off across a
    change of clocks."""
    return (moment.astimezone(timezone.utc) + timedelta(seconds=seconds)).astimezone(moment.tzinfo)


def _planned(rng, spec: Behaviour, caller: str, at: datetime, episode=None) -> PlannedCall:
    elapsed, times = 0, []
    for step in spec.steps:
        elapsed += _step_seconds(rng, step)
        times.append(elapsed)
    times.append(elapsed if spec.steps[-1].startswith("hangup") else elapsed + rng.randint(1, 3))
    return PlannedCall(f"CA{rng.getrandbits(128):032x}", spec.name, caller, at, tuple(times), episode)


def _step_seconds(rng, step: str) -> int:
    """How long before this input reaches the server: the prompts heard,
    then the caller's answer (a conversation with the agent for a dial)."""
    if step == "silence":
        return 5 + rng.randint(3, 10)   # the Gather's timeout after the prompt
    if step == "dial completed":
        return rng.randint(60, 600)
    if step == "dial canceled":          # waited in the queue, then hung up
        return rng.randint(20, 300)
    if step.startswith("dial "):
        return rng.randint(30, 120)
    if step.startswith("record"):
        return int(step.split()[1]) + rng.randint(2, 5)
    return rng.randint(3, 12)


def _separate(plan: list, window: timedelta) -> None:
    """Move calls by a second where a caller has two calls at the same
    second or exactly one window apart: whether those are repeats would
    depend on a boundary no figure should hang on."""
    used: dict[str, set] = defaultdict(set)
    step = int(window.total_seconds())
    for index, call in enumerate(plan):
        if call.caller == WITHHELD_NUMBER:
            continue
        seen = used[call.caller]
        moment = int(call.start.timestamp())
        while moment in seen or moment - step in seen or moment + step in seen:
            moment += 1
        seen.add(moment)
        if moment != int(call.start.timestamp()):
            start = datetime.fromtimestamp(moment, call.start.tzinfo)
            plan[index] = PlannedCall(call.call_id, call.behaviour, call.caller, start,
                                      call.times, call.episode)


class NumberPool:
    """Caller numbers from ranges kept for fiction (ARCEP 06 39 98, NANP
    555-01xx, Ofcom 07700 900xxx), never the demo callers' own: fresh
    numbers with no order, and for each demo caller with orders a block of
    numbers that get copies of its orders (see :func:`caller_orders`), so
    one number never calls twice by chance.  Numbers are handed out in
    turn, and reused only once every one of their block has been used."""

    _AREAS = (201, 202, 206, 212, 213, 303, 305, 312, 404, 503,
              512, 602, 617, 702, 713, 718, 773, 808, 917, 949)
    #: Areas for American callers with orders, apart from those with none.
    _ORDER_AREAS = (214, 215, 216, 301, 310)
    #: Blocks of the French fiction range (06 39 98 NN NN) by kind of caller.
    _FRENCH_BLOCKS = {"one_order": (1000, 3000), "several_orders": (3000, 3500),
                      "cancelled": (3500, 4000), "delayed_carrier": (4000, 4500),
                      "delayed_warehouse": (4500, 5000), "lost": (5000, 5500),
                      "only_old_orders": (5500, 6000), NEW_FR: (6000, 10000)}
    #: Demo callers with no order: any fresh number of their country will do.
    _NO_ORDER = {"no_order": NEW_FR, "english_no_order": NEW_EN}

    def __init__(self):
        demo = set(DEMO_CALLERS.values())
        pools = {kind: [f"+3363998{i:04d}" for i in range(*span)]
                 for kind, span in self._FRENCH_BLOCKS.items()}
        pools[NEW_EN] = [f"+1{a}55501{i:02d}" for a in self._AREAS for i in range(100)]
        pools["english_one_order"] = [f"+1{a}55501{i:02d}" for a in self._ORDER_AREAS
                                      for i in range(100)]
        pools["english_several_orders"] = [f"+447700900{i:03d}" for i in range(1000)]
        self.pools = {kind: [n for n in numbers if n not in demo] for kind, numbers in pools.items()}
        self.next = Counter()

    def take(self, kind: str) -> str:
        if kind == WITHHELD:
            return WITHHELD_NUMBER
        kind = self._NO_ORDER.get(kind, kind)
        pool = self.pools[kind]
        number = pool[self.next[kind] % len(pool)]
        self.next[kind] += 1
        return number

    def with_orders(self) -> dict[str, tuple[str, int]]:
        """Every number that gets orders: its kind of caller (a demo
        caller's key) and its place among them, which numbers its orders."""
        numbers = {}
        for kind, pool in self.pools.items():
            if kind in DEMO_CALLERS:
                for number in pool:
                    numbers[number] = (kind, len(numbers))
        return numbers


#: Orders of the generated callers are numbered from here, apart from the
#: demo orders (100xxx) and the unknown one (999999).
FIRST_GENERATED_ORDER = 200_000
#: The most orders a demo caller has.
_MAX_ORDERS = 3


def caller_orders(kind: str, place: int, *, phone: str, today: date) -> list:
    """Copies of the orders of demo caller ``kind`` for the generated
    caller ``phone`` (the ``place``-th number with orders), dated from
    ``today``: the same statuses and days, so the call goes as the demo
    caller's would, under order numbers of its own."""
    own = [o for o in demo_orders(today) if o.phone == DEMO_CALLERS[kind]]
    return [replace(order, phone=phone, number=str(FIRST_GENERATED_ORDER + place * _MAX_ORDERS + i))
            for i, order in enumerate(own)]


# --- When calls may start ---------------------------------------------------------------
# The post_sale flow's "support" calendar, written down again by hand:
# Monday to Friday 09:00-18:00, Saturday 09:00-12:00, closed on Sundays and
# French public holidays, 24 and 31 December until 16:00.

# A call starts at least this long after the line opens or closes, and
# this long before it changes again: longer than any call's way to the agent.
_AFTER_CHANGE = timedelta(minutes=2)
_BEFORE_CHANGE = timedelta(minutes=15)


def _opening_hours(day: date) -> tuple[time, time] | None:
    if (day.month, day.day) in ((12, 24), (12, 31)):
        return time(9), time(16)
    if day in holidays_lib.country_holidays("FR", years=day.year) or day.weekday() == 6:
        return None
    return (time(9), time(12)) if day.weekday() == 5 else (time(9), time(18))


def _open_intervals(start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    zone = start.tzinfo
    result = []
    day = start.date() - timedelta(days=1)
    while day <= end.date():
        hours = _opening_hours(day)
        if hours:
            result.append((datetime.combine(day, hours[0], zone), datetime.combine(day, hours[1], zone)))
        day += timedelta(days=1)
    return result


def _open_slots(start, end):
    """Moments a call may start and still find agents on duty when it asks."""
    return _clip([(a + _AFTER_CHANGE, b - _BEFORE_CHANGE)
                  for a, b in _open_intervals(start, end)], start, end)


def _closed_slots(start, end):
    """Moments a call may start and still find the line closed when it asks."""
    edges = [(start - timedelta(days=1), start - timedelta(days=1))] + _open_intervals(start, end) + \
            [(end + timedelta(days=1), end + timedelta(days=1))]
    gaps = [(edges[i][1] + _AFTER_CHANGE, edges[i + 1][0] - _BEFORE_CHANGE)
            for i in range(len(edges) - 1)]
    return _clip(gaps, start, end)


def _clip(intervals, start, end):
    clipped = [(max(a, start), min(b, end)) for a, b in intervals]
    return [(a, b) for a, b in clipped if b - a >= timedelta(minutes=1)]


def _sample(rng, intervals) -> datetime:
    """A moment drawn evenly from ``intervals`` (whole seconds, in UTC
    arithmetic so a change of clocks neither adds nor loses time)."""
    spans = [int(b.timestamp()) - int(a.timestamp()) for a, b in intervals]
    point = rng.randrange(sum(spans))
    for (a, _b), span in zip(intervals, spans):
        if point < span:
            return datetime.fromtimestamp(int(a.timestamp()) + point, a.tzinfo)
        point -= span
    raise AssertionError("unreachable")


# --- The expected figures ------------------------------------------------------------------

@dataclass
class Expected:
    """The figures a report over the generated calls must show, exactly.

    ``causes`` count transferred calls only; ``reasons`` hold the same
    figures per reason; ``nodes`` the funnel's exits per node (``reached``
    from the table's node lists); ``repeat_calls`` are self-served calls
    followed within the window by a call from the same (not withheld)
    caller for the same reason."""

    flow: str
    version: str
    seed: int
    start: str
    days: int
    repeat_window_s: int
    calls: int
    outcomes: dict
    causes: dict
    confirmed: int
    repeat_calls: int
    deflected: int
    ivr_seconds: int
    reasons: dict
    nodes: dict
    worst_drop_off: str | None
    behaviours: dict = field(default_factory=dict)
    #: Calls with no reason: abandoned (ended before stating one), transferred without one.
    ended_before_reason: int = 0
    transferred_without_reason: int = 0
    #: Transfers by what happened at the human's end (answered, the caller
    #: hung up in the agents' queue, nobody answered), the share of those
    #: who waited that hung up, and how long they had waited on average.
    transfers_answered: int = 0
    queue_abandoned: int = 0
    transfers_unanswered: int = 0
    queue_abandonment_rate: float | None = None
    avg_queue_seconds_abandoned: float | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True, ensure_ascii=False) + "\n"

    def write(self, path) -> Path:
        path = Path(path)
        path.write_text(self.to_json(), encoding="utf-8")
        return path

    @classmethod
    def read(cls, path) -> "Expected":
        return cls(**json.loads(Path(path).read_text(encoding="utf-8")))


def expectation(plan: list[PlannedCall], *, flow: str = FLOW_NAME, version: str = "",
                seed: int = 0, start: datetime | None = None, days: int = 0,
                repeat_window: timedelta = timedelta(hours=24)) -> Expected:
    """The figures the call plan must produce, from the behaviour table."""
    repeats = _repeat_calls(plan, repeat_window)

    def figures(calls) -> dict:
        outcomes = Counter(c.spec.outcome for c in calls)
        causes = Counter(c.spec.cause for c in calls if c.spec.outcome == "transferred")
        repeat = sum(1 for c in calls if c.call_id in repeats)
        results = Counter(c.transfer_result()[0] for c in calls)
        return {"calls": len(calls), **{o: outcomes[o] for o in OUTCOMES},
                "causes": {cause: causes[cause] for cause in TRANSFER_CAUSES},
                "confirmed": sum(1 for c in calls if c.spec.confirmed),
                "repeat_calls": repeat, "deflected": outcomes["self_served"] - repeat,
                "transfers_answered": results["answered"],
                "queue_abandoned": results["abandoned_in_queue"],
                "transfers_unanswered": results["no_answer"]}

    total = figures(plan)
    waits = [seconds for result, seconds in (c.transfer_result() for c in plan)
             if result == "abandoned_in_queue"]
    waited = total["transfers_answered"] + total["queue_abandoned"]
    by_reason = defaultdict(list)
    for call in plan:
        by_reason[call.spec.reason].append(call)
    nodes: dict = {}
    for call in plan:
        spec = call.spec
        for node in spec.nodes:
            nodes.setdefault(node, {"reached": 0, "hung_up": 0, "transferred": 0, "ended": 0})
            nodes[node]["reached"] += 1
        column = {"abandoned": "hung_up", "transferred": "transferred", "failed": "transferred",
                  "self_served": "ended"}[spec.outcome]
        nodes[spec.exit_node][column] += 1
    return Expected(
        flow=flow, version=version, seed=seed, start=start.isoformat() if start else "",
        days=days, repeat_window_s=int(repeat_window.total_seconds()),
        calls=total["calls"], outcomes={o: total[o] for o in OUTCOMES}, causes=total["causes"],
        confirmed=total["confirmed"], repeat_calls=total["repeat_calls"],
        deflected=total["deflected"], ivr_seconds=sum(c.ivr_seconds() for c in plan),
        reasons={reason: figures(calls) for reason, calls in sorted(by_reason.items())},
        nodes=dict(sorted(nodes.items())), worst_drop_off=worst_drop_off(nodes),
        behaviours=dict(sorted(Counter(c.behaviour for c in plan).items())),
        ended_before_reason=_unstated(plan, "abandoned"),
        transferred_without_reason=_unstated(plan, "transferred"),
        transfers_answered=total["transfers_answered"], queue_abandoned=total["queue_abandoned"],
        transfers_unanswered=total["transfers_unanswered"],
        queue_abandonment_rate=total["queue_abandoned"] / waited if waited else None,
        avg_queue_seconds_abandoned=round(sum(waits) / len(waits), 1) if waits else None,
    )


def _unstated(plan: list[PlannedCall], outcome: str) -> int:
    return sum(1 for c in plan if c.spec.reason == REASON_NOT_STATED and c.spec.outcome == outcome)


def worst_drop_off(nodes: dict) -> str | None:
    """The node the funnel puts first: most calls lost there (hung up or
    transferred), then the highest share of the calls that reached it."""
    def key(item):
        name, row = item
        dropped = row["hung_up"] + row["transferred"]
        return (-dropped, -(dropped / row["reached"]), name)
    ranked = sorted(nodes.items(), key=key)
    return ranked[0][0] if ranked else None


def _repeat_calls(plan: list[PlannedCall], window: timedelta) -> set[str]:
    """Ids of the self-served calls whose caller called again for the same
    reason after them and within ``window``.  Withheld numbers cannot be
    recognised, so they never repeat."""
    # Elapsed seconds, not wall-clock differences: a day with a change of
    # clocks has 23 or 25 hours.
    starts = defaultdict(list)
    for call in plan:
        if call.caller != WITHHELD_NUMBER:
            starts[(call.caller, call.spec.reason)].append(call.start.timestamp())
    for moments in starts.values():
        moments.sort()
    repeats = set()
    for call in plan:
        if call.spec.outcome != "self_served" or call.caller == WITHHELD_NUMBER:
            continue
        moments = starts[(call.caller, call.spec.reason)]
        began = call.start.timestamp()
        after = bisect.bisect_right(moments, began)
        if after < len(moments) and moments[after] - began <= window.total_seconds():
            repeats.add(call.call_id)
    return repeats


# --- Playing the calls ----------------------------------------------------------------------

@dataclass
class Traffic:
    """What :func:`generate` played, and the figures it must produce."""

    plan: list
    expected: Expected


def generate(flow, database, *, calls: int, seed: int, start: date | datetime | None = None,
             days: int = DEFAULT_DAYS, repeat_window: timedelta = timedelta(hours=24),
             prompts=None) -> Traffic:
    """Play ``calls`` planned calls to the post_sale flow into ``database``.

    ``flow`` is the flow file (its folder is loaded as the server loads
    it, prompts from ``prompts`` or ``prompts/`` beside the flows folder)
    or a loaded :class:`FlowRegistry`.  ``database`` is a path (created
    with the schema and the demo orders when missing) or a
    :class:`CallStore`.  The demo orders are dated from the first day of
    the period, as a new server dates them from the day it starts.
    """
    check_figures(calls, days, repeat_window)
    if not isinstance(flow, FlowRegistry):
        flow = _check_flow_file(Path(flow), prompts)
    store = database if isinstance(database, CallStore) else CallStore.open(database)
    registry = flow if isinstance(flow, FlowRegistry) else _registry(flow, store)
    current = _current(registry)
    period_start = _start_moment(start, ZoneInfo(current.timezone))
    plan = plan_calls(calls, seed, period_start, days, repeat_window)
    play(plan, registry, store, period_start.date())
    expected = expectation(plan, flow=FLOW_NAME, version=current.version, seed=seed,
                           start=period_start, days=days, repeat_window=repeat_window)
    return Traffic(plan, expected)


def play(plan: list[PlannedCall], registry: FlowRegistry, store: CallStore, today: date) -> None:
    """Play ``plan`` through a :class:`CallHandler` on ``store``, over the
    demo orders dated from ``today``."""
    _current(registry)
    _refuse_known_calls(store, plan)
    orders = _demo_orders(store, today, plan)
    clock = task.Clock()
    lookups = _Lookups(EmbeddedOrderLookups(orders).perform)
    provider = _Provider(CallHandler(registry, store, lookups.perform, clock), FLOW_NAME, lookups)
    for call in plan:
        provider.play(call)
    if clock.getDelayedCalls():
        raise TrafficError("look-up timers were left pending after the calls")


def single_call(behaviour: str, start: datetime, seed: int = 0) -> PlannedCall:
    """A plan of one call of ``behaviour`` starting at ``start``, to check
    one line of the table on its own."""
    spec = BEHAVIOURS[behaviour]
    return _planned(random.Random(seed), spec, NumberPool().take(spec.caller), start)


def _current(registry: FlowRegistry):
    current = registry.current(FLOW_NAME)
    if current is None:
        raise TrafficError(f"the behaviour table is written for the {FLOW_NAME} flow, "
                           f"which is not among the loaded flows {sorted(registry.versions())}")
    return current


def check_figures(calls: int, days: int, repeat_window: timedelta) -> None:
    """Refuse figures the plan cannot honour, before any file is touched."""
    if calls < 1:
        raise TrafficError(f"the number of calls must be at least 1, got {calls}")
    if not 1 <= days <= MAX_DAYS:
        raise TrafficError(f"days must be between 1 and {MAX_DAYS} (the demo orders' story "
                           f"holds for {ORDERS_VALID_DAYS} days), got {days}")
    if not timedelta(minutes=30) <= repeat_window <= timedelta(days=1):
        raise TrafficError(f"the repeat window must be between 30 minutes and 24 hours, "
                           f"got {repeat_window}")


@dataclass(frozen=True)
class _FlowFile:
    path: Path
    prompts: Path
    version: str


def _check_flow_file(flow_path: Path, prompts) -> _FlowFile:
    """The flow file, checked before the database is opened: it exists,
    passes validation (FlowError lists every problem) and is post_sale."""
    if not flow_path.is_file():
        raise TrafficError(f"no flow file {str(flow_path)!r}")
    prompts_dir = Path(prompts) if prompts else flow_path.resolve().parent.parent / "prompts"
    loaded = load_flow(flow_path, prompts_dir)
    if loaded.name != FLOW_NAME:
        raise TrafficError(f"the behaviour table is written for the {FLOW_NAME} flow, "
                           f"not {loaded.name!r}")
    return _FlowFile(flow_path.resolve(), prompts_dir, loaded.version)


def _registry(flow: _FlowFile, store: CallStore) -> FlowRegistry:
    """The flows of the file's folder, loaded as the server loads them."""
    registry = FlowRegistry(flow.path.parent, flow.prompts, store)
    registry.reload()
    current = registry.current(FLOW_NAME)
    if current is None or current.version != flow.version:
        raise TrafficError(f"{flow.path} is not the {FLOW_NAME} flow of its folder")
    return registry


def _start_moment(start, zone: ZoneInfo) -> datetime:
    if start is None:
        start = DEFAULT_START
    if not isinstance(start, datetime):
        start = datetime.combine(start, time(0))
    return start.replace(tzinfo=zone) if start.tzinfo is None else start.astimezone(zone)


def _demo_orders(store: CallStore, today: date, plan: list):
    """The demo orders in the call log's database, and the orders of the
    plan's generated callers: created when missing, re-dated to the period
    when the file holds only such orders (those of earlier traffic too)."""
    last_call = max(call.start for call in plan)
    if last_call.date() > today + timedelta(days=ORDERS_VALID_DAYS):
        raise TrafficError(f"calls until {last_call:%Y-%m-%d} outlive the demo orders' story "
                           f"({ORDERS_VALID_DAYS} days from {today})")
    generated = NumberPool().with_orders()
    phones = {call.caller for call in plan if call.caller in generated}
    if "orders" in store.db.table_names():
        demo = {order.number for order in demo_orders(today)}
        others = []
        for row in store.db.query("SELECT number, phone FROM orders"):
            if row["number"] in demo:
                continue
            if row["phone"] in generated and _is_generated(row["number"], generated[row["phone"]][1]):
                phones.add(row["phone"])
            else:
                others.append(row["number"])
        if others:
            raise TrafficError(f"the database holds orders that are not demo orders "
                               f"({', '.join(sorted(others)[:3])}{', …' if len(others) > 3 else ''}); "
                               "generated traffic needs a new database or one with only the demo orders")
    orders = create_demo_db(store.db, today)
    orders.add_many(order for phone in sorted(phones)
                    for order in caller_orders(*generated[phone], phone=phone, today=today))
    return orders


def _is_generated(number: str, place: int) -> bool:
    first = FIRST_GENERATED_ORDER + place * _MAX_ORDERS
    return number.isdigit() and first <= int(number) < first + _MAX_ORDERS


def _refuse_known_calls(store: CallStore, plan: list) -> None:
    ids = [c.call_id for c in plan]
    for chunk in range(0, len(ids), 500):
        part = ids[chunk:chunk + 500]
        row = next(iter(store.db.query(
            f"SELECT call_id FROM calls WHERE call_id IN ({', '.join('?' for _ in part)}) LIMIT 1",
            part)), None)
        if row is not None:
            raise TrafficError("the database already holds calls of this seed and period; "
                               "use another seed or a new database")


class _Lookups:
    """The embedded order look-ups, answered at once, or, while ``slow``,
    only when :meth:`answer` is called: a look-up that keeps its caller on
    hold."""

    def __init__(self, perform):
        self._perform = perform
        self.slow = False
        self.pending: list = []

    def perform(self, lookup, now):
        if not self.slow:
            return self._perform(lookup, now)
        answer = defer.Deferred()
        self.pending.append((answer, lookup, now))
        return answer

    def answer(self) -> None:
        """Answer the look-ups held back, as they would have answered."""
        self.slow = False
        pending, self.pending = self.pending, []
        for answer, lookup, now in pending:
            answer.callback(self._perform(lookup, now))


class _Provider:
    """Plays a planned call to the handler as Twilio would: webhooks at the
    TwiML's action URLs, the Redirect after a Gather for a silent caller,
    ``QueueResult`` after an Enqueue, ``DialCallStatus`` after a Dial, the
    poll at a hold's Redirect, and the ``completed`` status callback at
    the end."""

    def __init__(self, handler: CallHandler, flow_name: str, lookups: _Lookups):
        self.handler, self.flow_name, self.lookups = handler, flow_name, lookups

    def play(self, call: PlannedCall) -> None:
        base = {"CallSid": call.call_id, "AccountSid": ACCOUNT_SID, "From": call.caller,
                "To": CALLED, "Caller": call.caller, "Called": CALLED,
                "Direction": "inbound", "ApiVersion": API_VERSION}
        url = self.handler.action_url(self.flow_name, 0).split("?")[0]
        nxt = self._turn(url, {**base, "CallStatus": "ringing"}, call.start)
        steps = call.spec.steps
        for index, step in enumerate(steps):
            now = later(call.start, call.times[index])
            if step == "hangup":
                if nxt.wait == "over":
                    raise self._misfit(call, index, "the call is already over")
                break
            if step == "hold" or step in HOLD_HANG_UPS:
                if index == 0 or steps[index - 1] in ("hangup", "hold", *HOLD_HANG_UPS):
                    raise self._misfit(call, index, "a hold must follow the step put on hold")
                continue  # played with the step before it
            extra, url = self._answer(call, index, step, nxt)
            if url is None:  # a silence with nothing after the Gather: the provider hangs up
                break
            params = {**base, "CallStatus": "in-progress", **extra}
            if index + 1 < len(steps) and steps[index + 1] in HOLD_HANG_UPS:
                return self._hang_up_on_hold(call, index, url, params, self._ended(call, base))
            if index + 1 < len(steps) and steps[index + 1] == "hold":
                nxt = self._wait_on_hold(call, index, url, params)
                continue
            nxt = self._turn(url, params, now)
        else:
            if nxt.wait != "over":
                raise self._misfit(call, len(steps), f"the call still waits for {nxt.wait}")
        self.handler.status(*self._ended(call, base))

    @staticmethod
    def _ended(call, base) -> tuple[dict, datetime]:
        """The ``completed`` status callback of ``call``, and when it comes."""
        end = later(call.start, call.times[-1])
        return ({**base, "CallStatus": "completed", "CallDuration": str(call.times[-1]),
                 "SequenceNumber": "0",
                 "Timestamp": format_datetime(end.astimezone(timezone.utc), usegmt=True)}, end)

    def _put_on_hold(self, call, index, url, params) -> bytes:
        """Send step ``index`` with its look-ups held back past the hold's
        wait: the hold's TwiML ("one moment", a pause, a Redirect back)."""
        self.lookups.slow = True
        opening = self._start_voice(url, params, later(call.start, call.times[index]))
        if opening or not self.lookups.pending:
            self.lookups.slow = False
            raise self._misfit(call, index, "the step has no look-up to wait for")
        self.handler.clock.advance(self.handler.hold_after)
        if not opening or b"hold=1" not in self._answered(opening):
            raise self._misfit(call, index, "the caller was not put on hold")
        return opening[0]

    def _wait_on_hold(self, call, index, url, params):
        """Step ``index`` put on hold; its look-ups answer during the
        hold's pause and the caller comes back for the answer."""
        _actions, back = parse_twiml(self._put_on_hold(call, index, url, params), url)
        self.lookups.answer()
        now = later(call.start, call.times[index + 1])
        polled = {k: v for k, v in params.items() if k not in ("Digits", "SpeechResult", "Confidence")}
        answered = self._start_voice(back.action, polled, now)
        if not answered:
            raise self._misfit(call, index + 1, "the answer was not ready when the caller came back")
        _actions, nxt = parse_twiml(self._answered(answered), back.action)
        return self._turn(nxt.action, polled, now) if nxt.wait == "redirect" else nxt

    def _hang_up_on_hold(self, call, index, url, params, ended) -> None:
        """Play step ``index`` with its look-ups held back past the hold's
        wait: the caller hears "one moment" and a pause, then hangs up,
        before the look-ups answer or (``hangup on hold answered``) after
        they answered during the pause.  The status callback waits for
        the turn, as the server's does."""
        self._put_on_hold(call, index, url, params)
        answered_first = call.spec.steps[index + 1] == "hangup on hold answered"
        if answered_first:
            self.lookups.answer()
        status = []
        defer.ensureDeferred(self.handler.status_committed(*ended)).addBoth(status.append)
        if not answered_first:
            self.lookups.answer()
        if not status:
            raise TrafficError(f"{call.call_id}: the hang-up on hold was never taken")
        self._answered(status)

    def _answer(self, call, index, step, nxt):
        """The parameters of the webhook ``step`` sends, and its URL."""
        word, _, rest = step.partition(" ")
        wanted = {"say": "gather", "silence": "gather", "dial": "dial", "record": "record"}.get(word, "gather")
        if nxt.wait != wanted:
            raise self._misfit(call, index, f"the call waits for {nxt.wait}")
        if word == "say":
            return {"SpeechResult": rest, "Confidence": SPEECH_CONFIDENCE}, nxt.action
        if word == "silence":
            return {}, nxt.after
        if word == "dial":
            if nxt.queue:
                waited = call.queue_seconds(index) if rest == "canceled" else QUEUE_SECONDS
                return {"QueueResult": queue_result(rest), "QueueSid": "QU" + "0" * 32,
                        "QueueTime": str(waited)}, nxt.action
            return {"DialCallStatus": rest, "DialCallSid": "CA" + "1" * 32}, nxt.action
        if word == "record":
            return {"RecordingUrl": "https://recordings.invalid/traffic.wav",
                    "RecordingDuration": rest, "RecordingSid": "RE" + "0" * 32, "Digits": "#"}, nxt.action
        sent = step
        if nxt.finish_on_key and nxt.finish_on_key in sent:
            sent = sent[:sent.index(nxt.finish_on_key)]  # the provider stops at the key
        if nxt.num_digits:
            sent = sent[:nxt.num_digits]
        return {"Digits": sent}, nxt.action

    def _turn(self, url: str, params: dict, now: datetime):
        for _ in range(10):
            body = self._voice(url, params, now)
            _actions, nxt = parse_twiml(body, url)
            if nxt.wait != "redirect":
                return nxt
            url, params = nxt.action, {k: v for k, v in params.items()
                                       if k not in ("Digits", "SpeechResult", "Confidence")}
        raise TrafficError(f"{params['CallSid']}: more than 10 redirects in a row")

    def _voice(self, url: str, params: dict, now: datetime) -> bytes:
        answered = self._start_voice(url, params, now)
        if not answered:
            raise TrafficError("a turn did not answer at once: the embedded look-ups should never wait")
        return self._answered(answered)

    def _start_voice(self, url: str, params: dict, now: datetime) -> list:
        """Send a voice webhook: a list that gets its answer (or failure)."""
        query = parse_qs(urlsplit(url).query)
        turn = int(query.get("turn", ["0"])[-1])
        poll = query.get("hold") == ["1"]  # back from a hold
        answered = []
        defer.ensureDeferred(self.handler.voice(self.flow_name, turn, params, now=now, poll=poll)
                             ).addBoth(answered.append)
        return answered

    @staticmethod
    def _answered(answered: list):
        if isinstance(answered[0], Failure):
            answered[0].raiseException()
        return answered[0]

    @staticmethod
    def _misfit(call, index, why) -> TrafficError:
        steps = call.spec.steps
        step = steps[index] if index < len(steps) else "(end of script)"
        return TrafficError(f"behaviour {call.behaviour!r} no longer fits the flow: "
                            f"step {index + 1} ({step}): {why}")
