"""The traffic generator's behaviour table: each kind of call the demo flow
gets, with its share of the traffic, the inputs the caller gives and what
the call should end as; and the episodes that bring a caller back."""

from __future__ import annotations

from dataclasses import dataclass

from ivr.lookups.demo_orders import (
    DEMO_ORDERS,
    UNKNOWN_ORDER,
)

#: The demo orders are dated from the first day of the period; past 30 days
#: the oldest order of a two-order caller leaves the 60-day "recent" window
#: and the calls would no longer go as the table says.
ORDERS_VALID_DAYS = 30


#: Leaves room for the second call of a repeat episode (up to 36 hours on).
MAX_DAYS = 28

#: The flow the behaviour table is written for.
FLOW_NAME = "post_sale"


# Callers that are not demo callers (DEMO_CALLERS keys name the others).
NEW_FR = "new_fr"        # a French number with no order


NEW_EN = "new_en"        # a US number with no order


WITHHELD = "withheld"    # the caller hid their number


#: What the provider sends as ``From`` for a withheld number.
WITHHELD_NUMBER = "anonymous"


class TrafficError(Exception):
    """The traffic cannot be generated as asked (bad figures, a foreign
    database), or a behaviour's script no longer fits the flow."""


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
