"""Reasons that say why, an outcome for the final reason, the reason asked
before a person, and the most common call answered first."""

import re
import textwrap
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from prompt_support import add_server_prompts

from ivr.engine import actions as act
from ivr.engine.state import call_summary, final_reason_answered
from ivr.engine.step import step
from ivr.flow.loader import check_flow, load_flow
from ivr.lookups.demo_orders import DEMO_CALLERS, DEMO_ORDERS
from ivr.providers.twilio.events import event_from
from ivr.sim.call import SimCall
from ivr.sim.scenarios import demo_lookups

ROOT = Path(__file__).parent.parent
PARIS = ZoneInfo("Europe/Paris")
TUESDAY_10AM = datetime(2026, 11, 24, 10, 0, tzinfo=PARIS)
TUESDAY_8PM = datetime(2026, 11, 24, 20, 0, tzinfo=PARIS)
NO_ORDER = DEMO_CALLERS["no_order"]
#: The longest the caller may hear before the answer to their one order on its way.
MAX_WORDS_BEFORE_ANSWER = 30


@pytest.fixture(scope="module")
def demo():
    return load_flow(ROOT / "flows" / "post_sale.yaml", ROOT / "prompts")


def call(flow, caller=NO_ORDER, at=TUESDAY_10AM):
    sim = SimCall(flow, demo_lookups(at), caller=caller, at=at, call_id="CA1")
    sim.first = sim.start()
    return sim


def words(text: str) -> list[str]:
    """The spoken words of a prompt: SSML tags dropped, digits read one by one."""
    return re.findall(r"[\w'’-]+", re.sub(r"<[^>]+>", " ", text))


# --- the outcome belongs to the final reason -----------------------------------------------

def test_an_answered_question_then_an_unanswered_one_is_abandoned(demo):
    sim = call(demo, at=TUESDAY_8PM)
    for keys in ("1", DEMO_ORDERS["delivered"], "1"):
        sim.press(keys)
    assert sim.waiting_node == "status_delivered"  # "delivered": answered
    sim.press("1")                                  # "but I never got it": the line is closed
    assert sim.waiting_node == "closed_menu"
    sim.hangup()
    assert (sim.summary["reason"], sim.summary["outcome"]) == ("delivered_not_received", "abandoned")


def test_the_last_answered_reason_is_self_served(demo):
    sim = call(demo)
    for keys in ("1", DEMO_ORDERS["delivered"], "1", "2"):
        sim.press(keys)
    assert sim.state["answered"] == ["delivery_confirmation"]
    sim.hangup()
    assert (sim.summary["reason"], sim.summary["outcome"]) == ("delivery_confirmation", "self_served")


def test_a_state_saved_before_answers_were_kept_per_reason_still_ends(demo):
    sim = call(demo, caller=DEMO_CALLERS["one_order"])
    old = {k: v for k, v in sim.state.items() if k not in ("answered", "reason_asked")}
    assert final_reason_answered(old) is True  # only "resolved" was kept then
    state, actions, _ = step(demo, old, {"type": "hangup", "now": TUESDAY_10AM})
    assert call_summary(state)["outcome"] == "self_served"
    state, _, _ = step(demo, old, {"type": "digits", "digits": "0", "now": TUESDAY_10AM})
    assert state["node"] == "agent"  # the reason is known: no question first


# --- asking the reason once, before a person ---------------------------------------------------

def test_a_caller_who_asks_for_a_person_first_is_asked_why_once(demo):
    sim = call(demo)
    turn = sim.press("0")
    assert turn.path[-1] == "ask_reason"
    assert "l'objet de votre appel" in turn.heard
    turn = sim.say("c'est au sujet de ma facture")
    assert turn.path == ["ask_reason", "agent_hours", "agent"]
    summary = sim.summary
    assert (summary["reason"], summary["cause"], summary["exit_node"]) == (
        "billing", "caller_asked", "main_menu")
    [enqueue] = [a for a in turn.actions if isinstance(a, act.Enqueue)]
    assert ("X-IVR-Reason", "billing") in enqueue.params


@pytest.mark.parametrize("answer", ["silence", "7", "0", "say aucune idée"])
def test_silence_a_wrong_key_or_the_escape_again_skips_the_reason(demo, answer):
    sim = call(demo)
    sim.press("0")
    if answer == "silence":
        turn = sim.silence()
    elif answer.startswith("say "):
        turn = sim.say(answer[4:])
    else:
        turn = sim.press(answer)
    assert turn.path == ["ask_reason", "agent_hours", "agent"]
    assert "pas compris" not in turn.heard and "pas entendu" not in turn.heard
    assert (sim.summary["reason"], sim.summary["cause"]) == ("not_stated", "caller_asked")


def test_exhausted_retries_ask_the_reason_and_keep_their_cause(demo):
    sim = call(demo)
    sim.press("7")
    sim.press("8")
    turn = sim.press("5")
    assert turn.path[-1] == "ask_reason"
    sim.press("6")
    assert (sim.summary["reason"], sim.summary["cause"], sim.summary["exit_node"]) == (
        "product_issue", "no_match", "main_menu")


def test_the_reason_is_asked_only_once_per_call(demo):
    sim = call(demo, at=TUESDAY_8PM)
    sim.press("0")
    turn = sim.silence()
    assert turn.path[-1] == "closed_menu"
    turn = sim.press("0")  # asks for a person again at the closed line
    assert "ask_reason" not in turn.path


def test_a_known_reason_goes_to_the_person_without_the_question(demo):
    sim = call(demo)
    sim.press("1")  # where is my order: asked, then not found
    turn = sim.press("0")
    assert "ask_reason" not in turn.path
    assert sim.summary["reason"] == "order_status_unknown"


# --- the demo flow's reasons ---------------------------------------------------------------------

@pytest.mark.parametrize("order, reason", [
    ("preparing", "preparing_on_time"), ("shipped", "in_transit_on_time"),
    ("in_transit", "in_transit_on_time"), ("out_for_delivery", "in_transit_on_time"),
    ("delivered", "delivery_confirmation"), ("delayed_carrier", "carrier_delay"),
    ("delayed_warehouse", "warehouse_delay"), ("cancelled", "order_cancelled"),
    ("returned", "refund_follow_up"), ("lost", "parcel_lost"),
])
def test_a_status_call_is_counted_under_the_cause_of_its_answer(demo, order, reason):
    sim = call(demo)
    for keys in ("1", DEMO_ORDERS[order], "1"):
        sim.press(keys)
    assert sim.summary["reason"] == reason or sim.state["reason"] == reason


@pytest.mark.parametrize("order, reason", [
    ("delivered", "delivered_not_received"), ("in_transit", "in_transit_on_time"),
    ("lost", "parcel_lost"), ("cancelled", "order_cancelled"),
])
def test_not_received_is_only_a_reason_for_a_delivered_order(demo, order, reason):
    sim = call(demo)
    for keys in ("3", DEMO_ORDERS[order], "1"):
        sim.press(keys)
    assert sim.state["reason"] == reason


def test_a_return_and_a_refund_follow_up_are_different_reasons(demo):
    refund = call(demo)
    for keys in ("1", DEMO_ORDERS["returned"], "1"):
        refund.press(keys)
    ret = call(demo)
    for keys in ("2", DEMO_ORDERS["returned"], "1"):
        ret.press(keys)
    assert refund.state["reason"] == "refund_follow_up" and refund.waiting_node == "anything_else"
    assert ret.state["reason"] == "return_request" and ret.waiting_node == "agent"


def test_the_demo_reasons_are_described_in_both_languages(demo):
    for reason in demo.reasons:
        assert demo.reason_text(reason, "fr-FR") != demo.reason_text(reason, "en-US"), reason
    assert demo.reasons["carrier_delay"] == "Retard chez le transporteur"  # the default language


# --- the most common call answered first -----------------------------------------------------------

@pytest.mark.parametrize("caller, date_words", [
    (DEMO_CALLERS["one_order"], "Il devrait vous être livré demain"),
    (DEMO_CALLERS["english_one_order"], "It should arrive today"),
    (DEMO_CALLERS["delayed_carrier"], "Il devrait maintenant vous être livré"),
    (DEMO_CALLERS["delayed_warehouse"], "Elle devrait maintenant vous être livrée"),
])
def test_one_order_on_its_way_is_answered_within_30_words(demo, caller, date_words):
    sim = call(demo, caller=caller)
    heard = sim.first.heard
    assert date_words in heard
    before_the_date = heard[:heard.index(date_words) + len(date_words)]
    assert len(words(before_the_date)) <= MAX_WORDS_BEFORE_ANSWER, before_the_date
    assert sim.waiting_node == "main_menu"
    assert heard.index("vous pouvez raccrocher" if caller.startswith("+33") else "you can hang up") \
        < heard.index("tapez 1" if caller.startswith("+33") else "press 1")


@pytest.mark.parametrize("caller", [DEMO_CALLERS["several_orders"], DEMO_CALLERS["no_order"],
                                    DEMO_CALLERS["lost"], DEMO_CALLERS["cancelled"], "anonymous"])
def test_other_callers_get_the_welcome_and_the_menu(demo, caller):
    sim = call(demo, caller=caller)
    assert "Je peux vous renseigner" in sim.first.heard
    assert "proactive_answer" not in sim.first.path


def test_hanging_up_after_the_first_answer_is_self_served(demo):
    sim = call(demo, caller=DEMO_CALLERS["one_order"])
    sim.hangup()
    assert (sim.summary["reason"], sim.summary["outcome"]) == ("in_transit_on_time", "self_served")


def test_asking_again_gets_a_reminder_without_the_order_question(demo):
    sim = call(demo, caller=DEMO_CALLERS["one_order"])
    turn = sim.press("1")
    assert turn.path == ["main_menu", "status_question", "answer", "status_reminder", "told",
                         "after_answer", "anything_else"]
    assert turn.heard.startswith("Je vous le confirme : votre colis devrait vous être livré demain.")
    assert "Bonne nouvelle" not in turn.heard


def test_a_date_after_tomorrow_is_said_with_its_article(demo):
    monday = datetime(2026, 11, 30, 10, 0, tzinfo=PARIS)
    sim = call(demo, caller=DEMO_CALLERS["delayed_warehouse"], at=monday)
    assert "livrée le lundi 7 décembre" in sim.first.heard
    english = call(demo, caller=DEMO_CALLERS["english_no_order"], at=monday)
    for keys in ("1", DEMO_ORDERS["delayed_warehouse"]):
        english.press(keys)
    assert "should now arrive on Monday, December 7" in english.press("1").heard


# --- nobody answers: an apology and an alternative ---------------------------------------------------

@pytest.mark.parametrize("params", [
    {"QueueResult": "queue-full"}, {"QueueResult": "error"}, {"QueueResult": "system-error"},
    {"DialCallStatus": "busy"}, {"DialCallStatus": "no-answer"}, {"DialCallStatus": "failed"},
])
def test_a_transfer_nobody_takes_leads_to_the_no_answer_branch(demo, params):
    sim = call(demo, caller=DEMO_CALLERS["one_order"])
    sim.press("0")
    assert sim.state["waiting"] == "dial"
    event = {**event_from(params, sim.state), "now": TUESDAY_10AM}
    state, actions, events = step(demo, sim.state, event)
    assert [e["node"] for e in events][:2] == ["agent", "agents_busy"]
    assert state["node"] == "closed_menu" and not state["ended"]
    assert not any(isinstance(a, act.Hangup) for a in actions)


# --- lint ---------------------------------------------------------------------------------------------

ASKING = """\
flow: mini
languages: [fr-FR]
start: menu
human: agent
ask_reason: why
reasons:
  billing: Invoices
  track: Tracking
nodes:
  menu:
    kind: menu
    say: hello
    choices:
      - {key: "1", reason: track, to: bye}
  why:
    kind: menu
    say: hello
    choices:
      - {key: "1", reason: billing, to: agent}
  bye:
    kind: hangup
    say: hello
  agent:
    kind: transfer
    to: {queue: support}
"""


@pytest.fixture
def prompts(tmp_path):
    (tmp_path / "prompts" / "fr-FR").mkdir(parents=True)
    (tmp_path / "prompts" / "fr-FR" / "hello.j2").write_text("Bonjour")
    add_server_prompts(tmp_path / "prompts", ("fr-FR",))
    return tmp_path / "prompts"


def lint(tmp_path, prompts, text):
    path = tmp_path / "flow.yaml"
    path.write_text(textwrap.dedent(text))
    return [(p.line, p.column, p.code, p.message) for p in check_flow(path, prompts)]


def test_an_ask_reason_menu_that_marks_reasons_and_leads_to_a_person_is_valid(tmp_path, prompts):
    assert lint(tmp_path, prompts, ASKING) == []
    flow = load_flow(tmp_path / "flow.yaml", prompts)
    assert flow.ask_reason == "why"


def test_ask_reason_must_name_an_existing_menu(tmp_path, prompts):
    assert lint(tmp_path, prompts, ASKING.replace("ask_reason: why", "ask_reason: whyy")) == [
        # The node meant is offered, and not reported unreachable on top.
        (5, 13, "unknown-target", "'ask_reason' goes to unknown node 'whyy'; did you mean 'why'?")]
    assert lint(tmp_path, prompts, ASKING.replace("ask_reason: why", "ask_reason: bye")) == [
        (5, 13, "wrong-value", "'ask_reason' must name a menu whose choices mark reasons; "
                               "'bye' is of kind hangup"),
        (15, 3, "unreachable-node", "node 'why' is unreachable: no node leads to it")]


def test_every_ask_reason_choice_marks_a_reason_and_leads_to_a_person(tmp_path, prompts):
    text = ASKING.replace('- {key: "1", reason: billing, to: agent}',
                          '- {key: "1", to: agent}\n      - {key: "2", reason: billing, to: bye}')
    assert lint(tmp_path, prompts, text) == [
        (19, 9, "missing-field", "choice 1 of the ask_reason menu 'why' marks no reason; add "
                                 "'reason: …' (the caller's answer is the call's reason)"),
        (20, 41, "wrong-value", "choice 2 of the ask_reason menu 'why' goes to 'bye', a hangup; "
                                "expected the human or a transfer, callback, record or hours node "
                                "(the caller asked for a person)")]


def test_reasons_may_be_described_per_language(tmp_path, prompts):
    text = ASKING.replace("  billing: Invoices", "  billing: {fr-FR: Factures}")
    assert lint(tmp_path, prompts, text) == []
    flow = load_flow(tmp_path / "flow.yaml", prompts)
    assert flow.reasons["billing"] == "Factures" and flow.reason_text("billing", "fr-FR") == "Factures"
    wrong = ASKING.replace("  billing: Invoices", "  billing: {de-DE: Rechnungen}")
    assert lint(tmp_path, prompts, wrong) == [
        (7, 20, "unknown-language", "language 'de-DE' is not one of the flow's languages (fr-FR)")]
