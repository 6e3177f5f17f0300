"""The engine: one event in, new state, actions and node events out."""

import copy
import dataclasses
import json
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from twisted.internet import defer, task

from ivr.engine import actions as act
from ivr.engine.state import call_summary, new_state
from ivr.engine.step import step
from ivr.engine.turn import play_turn, play_turn_async
from ivr.flow.loader import load_flow

FIXTURES = Path(__file__).parent / "fixtures"
PARIS = ZoneInfo("Europe/Paris")
TUESDAY_10AM = datetime(2026, 11, 24, 10, 0, tzinfo=PARIS)
ORDER = {"number": "100234", "status": "in_transit", "carrier_name": "Colissimo"}


@pytest.fixture(scope="module")
def flow():
    return load_flow(FIXTURES / "shop.yaml", FIXTURES / "prompts")


class Call:
    """Drives the engine the way a runner does, with a stub look-up."""

    def __init__(self, flow, caller="+33612345678", at=TUESDAY_10AM, lookup=None, lang=None):
        self.flow, self.at, self.state = flow, at, None
        self.lookup = lookup or (lambda request, now: {"status": "found", "data": {"order": ORDER}})
        self.requests = []
        self.node_events = []
        self.actions = self._play({"type": "start", "call_id": "CA1", "caller": caller,
                                   "called": "+33100000000", "lang": lang})

    def _perform(self, request, now):
        self.requests.append(request)
        return self.lookup(request, now)

    def _play(self, event):
        event["now"] = self.at
        turn = play_turn(self.flow, self.state, event, self._perform)
        self.state = turn.state
        self.node_events.extend(turn.node_events)
        self.at += timedelta(seconds=10)
        return turn.actions

    def press(self, digits):
        self.actions = self._play({"type": "digits", "digits": digits})
        return self

    def say(self, text):
        self.actions = self._play({"type": "speech", "text": text})
        return self

    def silence(self):
        self.actions = self._play({"type": "silence"})
        return self

    def hangup(self):
        self.actions = self._play({"type": "hangup"})
        return self

    def event(self, **event):
        self.actions = self._play(event)
        return self

    @property
    def heard(self):
        says = []
        for action in self.actions:
            prompts = action.prompts if isinstance(action, act.Gather) else (action,)
            says.extend(p.ssml for p in prompts if isinstance(p, act.Say))
        return " ".join(says)

    @property
    def node(self):
        return self.state["node"]

    @property
    def summary(self):
        return call_summary(self.state)


def test_start_plays_welcome_inside_the_first_gather_for_barge_in(flow):
    call = Call(flow)
    [gather] = call.actions
    assert isinstance(gather, act.Gather)
    assert [p.ssml for p in gather.prompts] == [
        "Bonjour.", "Tapez 1 pour le suivi, 2 pour un retour."]
    assert gather.num_digits == 1 and gather.input == "dtmf speech" and gather.language == "fr-FR"
    assert gather.prompts[0].voice == "Polly.Lea-Neural"
    assert call.node == "menu"


def test_state_is_plain_json(flow):
    call = Call(flow).press("1")
    assert json.loads(json.dumps(call.state)) == call.state


def test_step_does_not_modify_the_state_it_is_given(flow):
    call = Call(flow)
    before = copy.deepcopy(call.state)
    step(flow, call.state, {"type": "digits", "digits": "1", "now": TUESDAY_10AM})
    assert call.state == before


def test_caller_country_picks_the_language(flow):
    assert Call(flow, caller="+14155550123").state["lang"] == "en-US"
    assert Call(flow, caller="+32470123456").state["lang"] == "fr-FR"
    assert Call(flow, caller="anonymous").state["lang"] == "fr-FR"
    assert Call(flow, caller="+33612345678", lang="en-US").state["lang"] == "en-US"


def test_a_menu_choice_can_switch_language(flow):
    call = Call(flow).press("9")
    assert call.state["lang"] == "en-US"
    assert "Press 1 to track" in call.heard


def test_silence_reprompts_with_apology_then_escalated_prompt(flow):
    call = Call(flow).silence()
    assert call.heard == "Je ne vous ai pas entendu. Tapez 1 ou 2."
    assert call.node == "menu"


def test_no_input_exhausted_goes_to_the_human_with_cause_no_input(flow):
    call = Call(flow).silence().silence().silence()
    assert call.node == "agent"
    dial = call.actions[-1]
    assert isinstance(dial, act.Dial) and dial.target == act.DialTarget("number", "+33180000000")
    assert call.summary["outcome"] == "transferred"
    assert call.summary["cause"] == "no_input"
    branches = [(e["node"], e["branch"]) for e in call.node_events if e["node"] == "menu"]
    assert branches == [("menu", "no_input"), ("menu", "no_input"), ("menu", "agent")]


def test_no_match_has_its_own_counter(flow):
    call = Call(flow).silence().press("5")
    assert call.heard == "Je n'ai pas compris. Tapez 1 ou 2."
    call.press("6")
    assert call.summary["cause"] == "no_match"
    branches = [e["branch"] for e in call.node_events if e["node"] == "menu"]
    assert branches == ["no_input", "no_match", "agent"]  # max 1 no-match, 2 no-inputs


def test_escape_key_reaches_a_human_from_any_menu(flow):
    call = Call(flow).press("1").press("0")
    assert call.node == "agent"
    assert call.summary["cause"] == "caller_asked"


def test_escape_word_with_accents_and_case_reaches_a_human(flow):
    call = Call(flow).say("Je veux un OPERATEUR s'il vous plaît")
    assert call.node == "agent"
    assert call.summary["cause"] == "caller_asked"


def test_speech_synonym_selects_a_menu_choice(flow):
    call = Call(flow).say("Où est ma commande ?")
    assert call.node == "ask_number"
    assert call.state["reason"] == "order_status"


def test_digit_collection_validates_then_reads_back(flow):
    call = Call(flow).press("1").press("012345")
    assert "Je n'ai pas compris" in call.heard and call.node == "ask_number"
    call.press("100234")
    assert call.heard == "Vous avez tapé 1 0 0 2 3 4. Tapez 1 si c'est correct, 2 sinon."
    assert call.state["waiting"] == "confirm"


def test_confirmation_no_asks_again_and_yes_looks_the_order_up(flow):
    call = Call(flow).press("1").press("100234").press("2")
    assert call.node == "ask_number" and call.state["waiting"] == "gather"
    call.press("100234").press("1")
    assert [r.args for r in call.requests] == [{"number": "100234"}]
    assert call.requests[0].what == "order_by_number"


def test_sensitive_input_is_masked_in_node_events(flow):
    call = Call(flow).press("1").press("100234")
    inputs = [e["input"] for e in call.node_events if e["node"] == "ask_number"]
    assert inputs == ["******"]


def test_found_order_is_answered_and_the_call_self_served(flow):
    call = Call(flow).press("1").press("100234").press("1")
    assert call.heard == "Votre commande 1 0 0 2 3 4 est chez Colissimo. Au revoir."
    assert isinstance(call.actions[-1], act.Hangup)
    summary = call.summary
    assert (summary["outcome"], summary["reason"], summary["cause"]) == (
        "self_served", "order_status", None)


def test_the_last_reason_marked_wins(flow):
    late = {"status": "found", "data": {"order": {**ORDER, "status": "delayed_carrier"}}}
    call = Call(flow, lookup=lambda r, n: late).press("1").press("100234").press("1")
    assert call.summary["reason"] == "carrier_delay"


def test_lookup_error_takes_the_error_branch(flow):
    call = Call(flow, lookup=lambda r, n: {"status": "error", "error": "timeout"})
    call.press("1").press("100234").press("1")
    assert call.node == "agent"
    assert call.summary["cause"] == "error"
    [event] = [e for e in call.node_events if e["node"] == "find"]
    assert (event["branch"], event["detail"]) == ("agent", "timeout")


def test_lookup_that_raises_is_an_error_branch_not_a_failure(flow):
    def broken(request, now):
        raise ConnectionError("refused")
    call = Call(flow, lookup=broken).press("1").press("100234").press("1")
    assert call.node == "agent" and call.summary["outcome"] == "transferred"


class TimerCountingClock(task.Clock):
    """A Clock that counts the timers set on it."""

    def __init__(self):
        super().__init__()
        self.timers = 0

    def callLater(self, *args, **kwargs):
        self.timers += 1
        return super().callLater(*args, **kwargs)


def _turn_to_the_look_up(flow, perform, clock):
    """The turn whose look-up finds the order, played with a timeout on ``clock``."""
    state = Call(flow).press("1").press("100234").state
    return defer.ensureDeferred(play_turn_async(
        flow, state, {"type": "digits", "digits": "1", "now": TUESDAY_10AM},
        perform, clock, 4.0))


def test_a_look_up_that_answers_at_once_sets_no_timer(flow):
    clock = TimerCountingClock()
    asked = []
    played = _turn_to_the_look_up(
        flow, lambda request, now: asked.append(request) or {"status": "found", "data": {"order": ORDER}},
        clock)
    assert played.called and played.result.state["vars"]["order"] == ORDER
    assert len(asked) == 1 and clock.timers == 0


def test_a_look_up_that_answers_later_is_timed_out_on_the_clock(flow):
    clock = TimerCountingClock()
    played = _turn_to_the_look_up(flow, lambda request, now: defer.Deferred(), clock)
    assert clock.timers == 1
    clock.advance(4.0)
    [event] = [e for e in played.result.node_events if e["node"] == "find"]
    assert (event["branch"], event["detail"]) == ("agent", "timeout")
    assert clock.getDelayedCalls() == []


def test_not_found_routes_with_cause_not_found(flow):
    call = Call(flow, lookup=lambda r, n: {"status": "not_found"})
    call.press("1").press("100234").press("1")
    assert call.summary["cause"] == "not_found"


def test_caller_hanging_up_before_an_answer_is_abandoned(flow):
    call = Call(flow).press("1").hangup()
    assert call.summary["outcome"] == "abandoned"
    assert call.summary["reason"] == "order_status"
    assert call.node_events[-1]["branch"] == "hangup"


def test_a_call_that_never_states_a_reason_has_reason_not_stated(flow):
    assert Call(flow).hangup().summary["reason"] == "not_stated"


def test_loop_guard_sends_the_caller_to_a_human_and_is_logged(flow):
    call = Call(flow).press("7").press("7").press("7")
    assert call.node == "agent"
    assert call.summary["cause"] == "loop_guard"
    assert any(e["branch"] == "loop_guard" for e in call.node_events)


def test_hours_open_transfers_and_closed_offers_a_callback(flow):
    assert Call(flow).press("2").node == "agent"
    saturday = datetime(2026, 11, 28, 10, 0, tzinfo=PARIS)
    call = Call(flow, at=saturday).press("2")
    assert call.node == "callback"
    assert call.heard.startswith("On vous rappelle au 3 3 6 1 2")


def test_christmas_is_closed(flow):
    christmas = datetime(2026, 12, 25, 10, 0, tzinfo=PARIS)
    assert Call(flow, at=christmas).press("2").node == "callback"


def test_callback_keeps_the_number_and_counts_as_a_handoff(flow):
    saturday = datetime(2026, 11, 28, 10, 0, tzinfo=PARIS)
    call = Call(flow, at=saturday).press("2").press("2").press("0699887766")
    assert call.state["vars"]["callback_number"] == "0699887766"
    summary = call.summary
    assert summary["outcome"] == "transferred" and summary["cause"] == "callback"
    assert summary["handoff"]["kind"] == "callback"


def test_dial_no_answer_goes_where_the_flow_says(flow):
    call = Call(flow).press("2")
    call.event(type="dial_result", status="no-answer")
    assert call.node == "voicemail"
    assert isinstance(call.actions[-1], act.Record)
    call.event(type="recorded", url="https://r.invalid/1.wav", duration=12)
    assert call.summary["handoff"]["kind"] == "voicemail"
    assert call.summary["cause"] == "dial_failed"


def test_completed_transfer_ends_the_call(flow):
    call = Call(flow).press("2").event(type="dial_result", status="completed")
    assert call.state["ended"] and call.summary["outcome"] == "transferred"


def test_an_error_routes_the_caller_to_a_human_and_marks_the_call_failed(flow):
    call = Call(flow).event(type="error", message="boom")
    say, dial = call.actions
    # The flow's own words (prompts/fr-FR/failsafe_apology.j2), in its voice.
    assert say.ssml == flow.server_says["fr-FR"]["failsafe_apology"]
    assert say.ssml.startswith("Désolé, nous rencontrons un problème technique")
    assert (say.voice, say.language) == (flow.voices["fr-FR"], "fr-FR")
    assert dial.target == act.DialTarget("number", "+33180000000")
    assert call.summary["outcome"] == "failed"
    assert call.node_events[-1]["branch"] == "failsafe"


def test_an_exception_inside_the_flow_is_caught_by_the_fail_safe(flow):
    broken = {"status": "found", "data": {"order": "not a mapping"}}
    call = Call(flow, lookup=lambda r, n: broken).press("1").press("100234").press("1")
    assert call.summary["outcome"] == "failed"
    assert isinstance(call.actions[-1], act.Dial)


def test_node_events_carry_what_the_log_needs(flow):
    call = Call(flow).press("1")
    event = call.node_events[0]
    assert set(event) == {"call_id", "seq", "flow", "version", "node", "kind", "input",
                          "branch", "detail", "at"}
    assert [e["seq"] for e in call.node_events] == list(range(1, len(call.node_events) + 1))
    assert (event["flow"], event["version"]) == ("shop", flow.version)


def test_transfer_carries_reason_and_order_to_the_agent(flow):
    call = Call(flow).press("1").press("0")
    dial = call.actions[-1]
    assert ("X-IVR-Reason", "order_status") in dial.params
    assert ("X-IVR-Call", "CA1") in dial.params


def test_input_after_the_call_ended_gets_a_hangup(flow):
    call = Call(flow).hangup().press("1")
    assert call.actions == [act.Hangup()]


def test_the_fail_safe_outcome_survives_the_transfer_completing(flow):
    call = Call(flow).event(type="error", message="boom")
    call.event(type="dial_result", status="completed")
    assert call.summary["outcome"] == "failed"


LOOPING = """\
flow: looping
languages: [fr-FR]
start: hello
human: hours
reasons: {order_status: Where is my order}
hours:
  never: {timezone: Europe/Paris, weekly: {}}
nodes:
  hello: {kind: say, say: hello, reason: order_status, next: hours}
  hours: {kind: hours, calendar: never, open: agent, closed: ping}
  ping: {kind: say, say: hello, next: pong}
  pong: {kind: say, say: hello, next: ping}
  agent: {kind: transfer, to: {number: "+33180000000"}}
"""


def test_a_flow_that_loops_even_on_the_way_to_a_human_ends_in_the_fail_safe(tmp_path):
    path = tmp_path / "looping.yaml"
    path.write_text(LOOPING)
    looping = load_flow(path, FIXTURES / "prompts")
    call = Call(looping)
    assert call.summary["outcome"] == "failed"
    assert isinstance(call.actions[-1], act.Dial)
    assert "still loops" in call.node_events[-1]["detail"]


# --- where a call left the flow, and its time with the IVR ------------------------


def test_exit_node_is_where_the_call_hung_up(flow):
    call = Call(flow).press("1").hangup()  # started 10:00:00, hung up 10:00:20
    assert call.summary["exit_node"] == "ask_number"
    assert call.summary["ivr_seconds"] == 20.0


def test_exit_node_of_a_transfer_is_where_the_call_turned_to_a_human(flow):
    exhausted = Call(flow).silence().silence().silence()
    assert exhausted.summary["exit_node"] == "menu"
    not_found = Call(flow, lookup=lambda r, n: {"status": "not_found"})
    not_found.press("1").press("100234").press("1")
    assert not_found.summary["exit_node"] == "find"


def test_exit_node_stays_where_the_caller_asked_when_the_line_is_then_closed():
    demo = load_flow(Path(__file__).parent.parent / "flows" / "post_sale.yaml",
                     Path(__file__).parent.parent / "prompts")
    sunday = datetime(2026, 11, 29, 10, 0, tzinfo=PARIS)
    no_orders = lambda r, n: {"status": "not_found", "data": {"orders": [], "count": 0}}  # noqa: E731
    call = Call(demo, at=sunday, lookup=no_orders).press("0")
    assert call.node == "ask_reason"
    call.silence().press("1").press("3").press("1")  # no reason given; then a callback
    assert call.summary["cause"] == "callback"
    assert call.summary["exit_node"] == "main_menu"


def test_a_policy_transfer_leaves_where_the_flow_routes_it(flow):
    saturday = datetime(2026, 11, 28, 10, 0, tzinfo=PARIS)
    assert Call(flow, at=saturday).press("2").press("1").summary["exit_node"] == "hours"


def test_exit_node_is_unknown_while_the_call_goes_on(flow):
    assert Call(flow).press("1").summary["exit_node"] is None


def test_ivr_time_stops_when_a_human_takes_the_call(flow):
    call = Call(flow).press("2")  # put through at 10:00:10
    assert call.summary["ivr_seconds"] == 10.0
    call.event(type="dial_result", status="completed")  # the agent talks for a while
    assert call.summary["outcome"] == "transferred"
    assert call.summary["ivr_seconds"] == 10.0


def test_a_new_reason_to_need_a_human_moves_the_exit_node():
    demo = load_flow(Path(__file__).parent.parent / "flows" / "post_sale.yaml",
                     Path(__file__).parent.parent / "prompts")
    no_orders = lambda r, n: {"status": "not_found", "data": {"orders": [], "count": 0}}  # noqa: E731
    call = Call(demo, caller="+33700000000", lookup=no_orders).press("1")
    assert call.node == "ask_order_number"  # not found by phone: asked for the number
    call.silence().silence().silence()
    assert call.summary["cause"] == "no_input"
    assert call.summary["exit_node"] == "ask_order_number"


def test_the_fail_safe_apologises_even_when_every_template_breaks(flow, monkeypatch):
    from ivr.flow.prompts import PromptError

    call = Call(flow)

    def broken(lang, name, context):
        raise PromptError(lang, name, "the disk is gone")

    monkeypatch.setattr(flow.prompts, "render", broken)
    call.press("1")  # the next prompt cannot be rendered: the fail-safe
    say, dial = call.actions
    assert say.ssml == "Désolé, nous rencontrons un problème technique. Je vous passe un conseiller."
    assert (say.voice, say.language) == ("Polly.Lea-Neural", "fr-FR")
    assert isinstance(dial, act.Dial) and call.summary["outcome"] == "failed"


def test_a_queue_result_is_kept_in_the_summary(flow):
    call = Call(flow).press("0")
    call.event(type="dial_result", status="completed", queue_result="hangup", queue_seconds=52)
    assert (call.summary["outcome"], call.summary["transfer_result"], call.summary["queue_seconds"]) == (
        "transferred", "abandoned_in_queue", 52)


def test_a_hang_up_during_a_look_up_ends_the_call_at_the_look_up(flow):
    call = Call(flow).press("1").press("100234")
    state, _actions, _events = step(flow, call.state, {"type": "digits", "digits": "1",
                                                        "now": TUESDAY_10AM})
    assert (state["node"], state["waiting"]) == ("find", "lookup")
    ended, _actions, events = step(flow, state, {"type": "hangup", "now": TUESDAY_10AM,
                                                 "detail": "hung up on hold"})
    summary = call_summary(ended)
    assert (summary["outcome"], summary["exit_node"]) == ("abandoned", state["node"])
    assert [(e["node"], e["branch"], e["detail"]) for e in events] == [
        (state["node"], "hangup", "hung up on hold")]
# -- speech: every choice scored, confirmed when unsure ---------------------------------

def NOT_FOUND(request, now):
    return {"status": "not_found"}


@pytest.fixture(scope="module")
def demo():
    return load_flow(Path(__file__).parent.parent / "flows" / "post_sale.yaml",
                     Path(__file__).parent.parent / "prompts")


def test_a_menu_event_records_the_utterance_score_and_margin(demo):
    call = Call(demo, lookup=NOT_FOUND).say("je veux être remboursé")
    menu_event = next(e for e in call.node_events if e["node"] == "main_menu" and e["input"])
    assert menu_event["input"] == "je veux etre rembourse"
    assert menu_event["branch"] == "which_order"
    assert menu_event["detail"].startswith("choice=2 score=") and " margin=" in menu_event["detail"]
    assert call.state["reason"] == "return_request"


def test_low_confidence_asks_to_confirm_the_choice_by_its_label(demo):
    call = Call(demo, lookup=NOT_FOUND).event(type="speech", text="je veux être remboursé", confidence=0.2)
    assert call.state["waiting"] == "confirm_choice" and call.node == "main_menu"
    assert "Vous souhaitez faire un retour ou être remboursé, c'est bien ça ?" in call.heard
    [gather] = call.actions
    assert gather.input == "dtmf speech" and "oui" in gather.hints
    event = call.node_events[-1]
    assert event["branch"] == "confirm_choice" and event["detail"].startswith("choice=2 score=")


def test_yes_to_the_confirmation_takes_the_choice(demo):
    call = Call(demo, lookup=NOT_FOUND).event(type="speech", text="je veux être remboursé", confidence=0.2).say("oui")
    assert call.state["reason"] == "return_request" and call.node == "ask_order_number"
    assert call.state["pending"] is None


def test_no_to_the_confirmation_asks_the_menu_again_as_a_no_match(demo):
    call = Call(demo, lookup=NOT_FOUND).event(type="speech", text="je veux être remboursé", confidence=0.2).press("2")
    assert call.node == "main_menu" and call.state["waiting"] == "gather"
    assert call.state["no_match"] == 1 and call.state["reason"] is None
    assert "Tapez 1 pour le suivi" in call.heard


def test_a_confirmed_escape_goes_to_a_human(demo):
    call = Call(demo, lookup=NOT_FOUND).event(type="speech", text="une vraie personne", confidence=0.1)
    assert call.state["waiting"] == "confirm_choice"
    assert "parler à un conseiller" in call.heard
    call.say("oui")  # no reason known yet: asked once what the call is about
    assert call.state["cause"] == "caller_asked" and call.node == "ask_reason"


def test_a_digit_input_listens_for_escape_words(demo):
    call = Call(demo, caller="anonymous", lookup=NOT_FOUND).press("1")
    [gather] = call.actions
    assert call.node == "ask_order_number"
    assert gather.input == "dtmf speech" and "conseiller" in gather.hints
    call.say("je veux parler à un conseiller")
    assert call.node == "agent" and call.state["cause"] == "caller_asked"


def test_a_spoken_order_number_is_read_as_digits(demo):
    call = Call(demo, caller="anonymous", lookup=NOT_FOUND).press("1").say("un zéro zéro deux trois quatre")
    assert call.state["vars"]["order_number"] == "100234"
    assert call.state["waiting"] == "confirm"


def test_a_sensitive_input_masks_the_spoken_number(flow):
    call = Call(flow).press("1").say("un deux trois quatre cinq six")
    event = next(e for e in call.node_events if e["node"] == "ask_number" and e["input"])
    assert event["input"] == "******"


def test_the_webhook_passes_the_recognisers_confidence():
    from ivr.providers.twilio.events import event_from
    event = event_from({"SpeechResult": "retour", "Confidence": "0.42"}, {"waiting": "gather"})
    assert event == {"type": "speech", "text": "retour", "confidence": 0.42}
    assert event_from({"SpeechResult": "retour", "Confidence": "abc"},
                      {"waiting": "gather"})["confidence"] is None


def test_a_menu_listens_the_same_each_time_in_each_language(flow):
    first = Call(flow).actions[0]
    again = Call(flow).actions[0]
    english = Call(flow, lang="en-US").actions[0]
    assert (again.hints, again.input, again.num_digits) == (first.hints, first.input, first.num_digits)
    assert english.language == "en-US" and english.hints != first.hints
    assert len(set(first.hints)) == len(first.hints)  # each word once


def test_a_flow_changed_by_replace_listens_afresh(flow):
    Call(flow)
    assert flow.listening  # worked out on the first menu
    narrower = dataclasses.replace(flow, escape=dataclasses.replace(flow.escape, words={}))
    assert narrower.listening == {}
    [gather] = Call(narrower).actions
    assert not set(flow.escape.words["fr-FR"]) & set(gather.hints)



def test_a_new_calls_list_and_dict_variables_are_its_own(flow):
    shared = {"tags": ["a"], "limits": {"max": 1}, "greeting": "hello"}
    defaults = dataclasses.replace(flow, variables=shared)
    state = new_state(defaults, {"call_id": "CA1", "caller": "+33612345678"}, TUESDAY_10AM)
    assert state["vars"] == shared
    assert state["vars"]["tags"] is not shared["tags"]
    assert state["vars"]["limits"] is not shared["limits"]
