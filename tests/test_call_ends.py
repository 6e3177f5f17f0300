"""How a live call ends, as the server logs it: what happened in the
agents' queue, where a caller on hold hung up, and when the call ended by
the provider's end-of-call notice."""

import xml.etree.ElementTree as ET
from datetime import datetime, timedelta

import pytest
from test_web import AGENT_LEG, CA1, NO_ORDER, Server, body_of, says, sid, slow_server, start_request
from twisted.internet import defer

from ivr.reports import analytics


@pytest.fixture
def server(tmp_path):
    return Server(tmp_path)


def transfer(server, sid=CA1):
    """A caller who asks for an agent at the main menu: queued."""
    server.turn(0, sid=sid)
    _, body = server.turn(1, sid=sid, SpeechResult="je voudrais parler à un conseiller")
    assert ET.fromstring(body).find("Enqueue").text == "post-sale"


# -- queue results ----------------------------------------------------------------------


def test_a_caller_who_hangs_up_in_the_queue_is_transferred_and_abandoned_in_the_queue(server):
    transfer(server)
    server.turn(2, QueueResult="hangup", QueueTime="47", QueueSid="QU" + "0" * 32)
    row = server.store.call(CA1)
    assert (row["outcome"], row["transfer_result"], row["queue_seconds"]) == (
        "transferred", "abandoned_in_queue", 47)


@pytest.mark.parametrize("queue_result, expected", [
    ("bridged", "answered"), ("bridging-in-process", "answered"),
    ("redirected-from-bridged", "answered"), ("queue-full", "no_answer"),
    ("error", "no_answer"), ("system-error", "no_answer"), ("leave", "no_answer"),
])
def test_each_queue_result_is_kept_with_the_transfer(server, queue_result, expected):
    transfer(server)
    server.turn(2, QueueResult=queue_result, QueueTime="12")
    row = server.store.call(CA1)
    # Unanswered, the call goes on to the flow's apology and callback offer.
    outcome = "transferred" if expected == "answered" else None
    assert (row["outcome"], row["transfer_result"], row["queue_seconds"]) == (outcome, expected, 12)


@pytest.mark.parametrize("status, expected", [
    ("completed", "answered"), ("busy", "no_answer"), ("no-answer", "no_answer"),
    ("failed", "no_answer"), ("canceled", "no_answer"),
])
def test_a_dial_to_a_number_keeps_answered_or_not(tmp_path, status, expected):
    server = Server(tmp_path)
    flow_file = server.flows / "post_sale.yaml"
    flow_file.write_text(flow_file.read_text().replace("to: {queue: post-sale}",
                                                      'to: {number: "+33180000000"}'))
    server.registry.reload_if_changed()
    server.turn(0)
    server.turn(1, Digits="0")
    server.turn(2, DialCallStatus=status)
    row = server.store.call(CA1)
    outcome = "transferred" if expected == "answered" else None  # unanswered: the flow goes on
    assert (row["outcome"], row["transfer_result"], row["queue_seconds"]) == (outcome, expected, None)


def test_a_garbled_queue_time_is_refused_and_changes_nothing(server):
    transfer(server)
    code, body = server.turn(2, QueueResult="hangup", QueueTime="soon")
    assert (code, body) == (400, b"QueueTime must be a whole number in ASCII digits\n")
    row = server.store.call(CA1)
    assert (row["outcome"], row["transfer_result"]) == ("transferred", None)


def test_the_report_counts_queue_abandonment_next_to_answered_transfers(server):
    for n, result in enumerate(["hangup", "hangup", "bridged", "bridged", "bridged", "queue-full"]):
        transfer(server, sid=sid(n))
        server.turn(2, sid=sid(n), QueueResult=result, QueueTime=str(30 + 10 * n))
        if result == "queue-full":  # offered a callback instead, the caller hangs up
            server.post("/status", CallSid=sid(n), CallStatus="completed")
    [row] = analytics.summary(server.store.db)
    assert (row["transferred"], row["transfers_answered"], row["queue_abandoned"],
            row["transfers_unanswered"]) == (6, 3, 2, 1)
    assert row["queue_abandonment_rate"] == 2 / 5
    assert row["avg_queue_seconds_abandoned"] == 35.0  # 30 s and 40 s


# -- a hang-up while on hold ------------------------------------------------------------


def test_a_hang_up_while_on_hold_is_at_the_look_up_not_the_question_after(tmp_path):
    server, pending = slow_server(tmp_path)
    server.turn(0)
    first = start_request(server, "/voice/post_sale?turn=1", CallSid=CA1, Digits="1")
    server.clock.advance(1.5)
    server.http.flush()
    assert b"Redirect" in body_of(server, first)  # on hold
    status = start_request(server, "/status", CallSid=CA1, CallStatus="completed",
                           SequenceNumber="3")
    server.clock.advance(1)
    pending[0].callback({"status": "found", "data": {"orders": [], "count": 1}})  # too late
    server.http.flush()
    assert server.successful(defer.succeed(status[0])).code == 204
    row = server.store.call(CA1)
    assert (row["outcome"], row["exit_node"]) == ("abandoned", "find_by_phone")
    events = server.store.node_events(CA1)
    assert [(e["node"], e["branch"]) for e in events][-1] == ("find_by_phone", "hangup")
    assert "confirm_order" not in [e["node"] for e in events]  # never heard
    [at_lookup] = [r for r in analytics.funnel(server.store.db, "post_sale")
                   if r["node"] == "find_by_phone"]
    assert (at_lookup["reached"], at_lookup["hung_up"], at_lookup["continued"]) == (1, 1, 0)
    assert server.clock.getDelayedCalls() == []


def test_a_hang_up_while_on_hold_for_a_look_up_that_times_out_is_at_the_look_up(tmp_path):
    server, _pending = slow_server(tmp_path)
    server.turn(0)
    start_request(server, "/voice/post_sale?turn=1", CallSid=CA1, Digits="1")
    server.clock.advance(1.5)
    status = start_request(server, "/status", CallSid=CA1, CallStatus="completed")
    server.clock.advance(2.5)  # the look-up's timeout
    server.http.flush()
    assert server.successful(defer.succeed(status[0])).code == 204
    assert server.store.call(CA1)["exit_node"] == "find_by_phone"
    assert server.clock.getDelayedCalls() == []


def test_a_caller_who_waits_on_hold_hears_the_answer_and_is_not_ended(tmp_path):
    server, pending = slow_server(tmp_path)
    server.turn(0)
    start_request(server, "/voice/post_sale?turn=1", CallSid=CA1, Digits="1")
    server.clock.advance(1.5)
    poll = start_request(server, "/voice/post_sale?turn=1&hold=1", CallSid=CA1)
    status = start_request(server, "/status", CallSid=CA1, CallStatus="in-progress")
    pending[0].callback({"status": "not_found", "data": {"orders": [], "count": 0}})
    server.http.flush()
    assert "numéro de commande" in says(body_of(server, poll))
    assert server.successful(defer.succeed(status[0])).code == 204
    assert server.store.call(CA1)["outcome"] is None
    assert server.clock.getDelayedCalls() == []


def test_the_hold_prompt_is_in_the_flows_voice_and_language(tmp_path):
    server, pending = slow_server(tmp_path)
    server.post("/voice/post_sale", CallSid=CA1, From="+14155550100")  # American: English
    first = start_request(server, "/voice/post_sale?turn=1", CallSid=CA1, Digits="1")
    server.clock.advance(1.5)
    server.http.flush()
    say = ET.fromstring(body_of(server, first)).find("Say")
    assert (say.text, say.get("voice"), say.get("language")) == (
        "One moment, I'm looking up your order.", "Polly.Joanna-Neural", "en-US")
    pending[0].callback({"status": "not_found", "data": {"orders": [], "count": 0}})
    poll = start_request(server, "/voice/post_sale?turn=1&hold=1", CallSid=CA1)
    assert "order number" in says(body_of(server, poll))
    assert server.clock.getDelayedCalls() == []


def test_a_look_up_answered_during_the_holds_pause_waits_for_the_caller_to_come_back(tmp_path):
    server, pending = slow_server(tmp_path)
    server.turn(0)
    first = start_request(server, "/voice/post_sale?turn=1", CallSid=CA1, Digits="1")
    server.clock.advance(1.5)
    server.http.flush()
    assert b"Redirect" in body_of(server, first)  # the caller hears "one moment", then a pause
    pending[0].callback({"status": "not_found", "data": {"orders": [], "count": 0}})
    server.http.flush()
    assert server.store.load_call(CA1).state["node"] == "main_menu"  # not played on yet
    server.clock.advance(2)
    poll = start_request(server, "/voice/post_sale?turn=1&hold=1", CallSid=CA1)
    assert "numéro de commande" in says(body_of(server, poll))
    assert server.store.call(CA1)["outcome"] is None
    assert server.clock.getDelayedCalls() == []


def test_a_hang_up_during_the_holds_pause_after_the_look_up_answered_is_at_the_look_up(tmp_path):
    server, pending = slow_server(tmp_path)
    server.turn(0)
    start_request(server, "/voice/post_sale?turn=1", CallSid=CA1, Digits="1")
    server.clock.advance(1.5)
    server.http.flush()
    pending[0].callback({"status": "not_found", "data": {"orders": [], "count": 0}})
    server.clock.advance(1)
    status = start_request(server, "/status", CallSid=CA1, CallStatus="completed")
    assert server.successful(defer.succeed(status[0])).code == 204
    row = server.store.call(CA1)
    assert (row["outcome"], row["exit_node"]) == ("abandoned", "find_by_phone")
    assert "ask_order_number" not in [e["node"] for e in server.store.node_events(CA1)]
    assert server.clock.getDelayedCalls() == []


def test_a_caller_who_neither_comes_back_nor_hangs_up_gets_the_turn_played_on(tmp_path):
    server, pending = slow_server(tmp_path)
    server.turn(0)
    start_request(server, "/voice/post_sale?turn=1", CallSid=CA1, Digits="1")
    server.clock.advance(1.5)
    server.http.flush()
    pending[0].callback({"status": "not_found", "data": {"orders": [], "count": 0}})
    server.clock.advance(2 + 1.5 + 5)  # the pause, a poll's wait and the margin: a lost poll
    server.http.flush()
    assert server.store.load_call(CA1).state["node"] == "ask_order_number"
    assert server.clock.getDelayedCalls() == []


# -- when the call ended ----------------------------------------------------------------


def self_served_call(server):
    server.turn(0)  # the one order on its way, answered first
    server.turn(1, Digits="1")  # when does it arrive? the date again
    _, body = server.turn(2, Digits="2")  # goodbye
    assert ET.fromstring(body).find("Hangup") is not None
    return server.store.call(CA1)


def status(server, **params):
    code, _ = server.post("/status", CallSid=CA1, CallStatus="completed", **params)
    assert code == 204
    return server.store.call(CA1)


def test_ivr_time_runs_to_the_end_of_call_notice_so_the_goodbye_counts(server):
    before = self_served_call(server)
    assert before["ivr_seconds"] == 0.0  # every turn at the same instant: the goodbye uncounted
    server.clock.advance(20)
    row = status(server, CallDuration="12", Timestamp="Tue, 24 Nov 2026 09:00:19 +0000")
    started = datetime.fromisoformat(row["started_at"])
    assert datetime.fromisoformat(row["ended_at"]) == started + timedelta(seconds=12)
    assert row["ivr_seconds"] == 12.0 and row["outcome"] == "self_served"
    assert row["ended_at"].endswith("+01:00")  # the flow's local time, as before


def test_without_a_call_duration_the_notice_timestamp_ends_the_call(server):
    self_served_call(server)
    server.clock.advance(20)
    row = status(server, Timestamp="Tue, 24 Nov 2026 09:00:15 +0000")
    assert row["ended_at"] == "2026-11-24T10:00:15+01:00" and row["ivr_seconds"] == 15.0


@pytest.mark.parametrize("params", [
    {}, {"Timestamp": "yesterday"},
    {"Timestamp": "Tue, 24 Nov 2026 08:00:00 +0000"},  # before the last webhook
    {"CallDuration": "9999999"},  # far after the notice arrived
    {"Timestamp": "Tue, 99 Nov 2026 09:00:15 +0000"},
])
def test_a_missing_or_garbled_end_keeps_the_end_we_logged(server, params):
    before = self_served_call(server)
    server.clock.advance(20)
    row = status(server, **params)
    assert (row["ended_at"], row["ivr_seconds"]) == (before["ended_at"], before["ivr_seconds"])


@pytest.mark.parametrize("duration", ["soon", "-5", "99999999", "²"])
def test_a_call_duration_that_is_not_a_count_is_refused_and_changes_nothing(server, duration):
    before = self_served_call(server)
    code, body = server.post("/status", CallSid=CA1, CallStatus="completed", CallDuration=duration)
    assert code == 400 and body.startswith(b"CallDuration ")
    assert server.store.call(CA1) == before


def test_a_hang_up_at_a_question_ends_when_the_provider_says(server):
    server.turn(0, caller=NO_ORDER)
    server.clock.advance(30)
    row = status(server, CallDuration="21")
    assert row["outcome"] == "abandoned" and row["ivr_seconds"] == 21.0


def test_a_garbled_end_of_a_call_in_progress_falls_back_to_when_the_notice_came(server):
    server.turn(0, caller=NO_ORDER)
    server.clock.advance(30)
    row = status(server, Timestamp="not a time")
    assert row["outcome"] == "abandoned" and row["ivr_seconds"] == 30.0


def test_a_transfer_answered_by_a_human_counts_ivr_time_until_the_transfer(server):
    transfer(server)
    server.clock.advance(5)
    server.turn(2, QueueResult="bridged", QueueTime="3")
    server.clock.advance(300)  # talking with the agent
    row = status(server, CallDuration="310")
    assert row["ivr_seconds"] == 0.0  # the transfer came at once
    assert datetime.fromisoformat(row["ended_at"]) == (
        datetime.fromisoformat(row["started_at"]) + timedelta(seconds=310))


def test_the_end_of_a_call_in_the_hour_the_clocks_go_back_is_kept():
    from zoneinfo import ZoneInfo

    from ivr.providers.twilio.events import provider_end

    # 02:02 the second time round on 25 October 2026 in Paris (UTC+1).
    received = datetime(2026, 10, 25, 2, 2, 49, tzinfo=ZoneInfo("Europe/Paris"), fold=1)
    state = {"started_at": "2026-10-25T02:02:22+01:00", "now": "2026-10-25T02:02:46+01:00"}
    assert provider_end({"CallDuration": "27"}, state, received).isoformat() == "2026-10-25T02:02:49+01:00"


# -- what the agent hears ------------------------------------------------------------------


def test_the_agent_whisper_spells_an_order_number_with_letters_in_the_flows_voice(server):
    server.turn(0)
    code, body = server.post(f"/whisper?X-IVR-Call={CA1}&X-IVR-Reason=return_request&X-IVR-Order=AB-12",
                             CallSid=AGENT_LEG)
    assert code == 200
    say = ET.fromstring(body).find("Say")
    assert say.text == ("Appel du serveur vocal. Motif : Demande de retour, d'échange ou de remboursement. "
                        "Commande A B 1 2.")
    assert (say.get("voice"), say.get("language")) == ("Polly.Lea-Neural", "fr-FR")


def test_the_agent_whisper_of_an_unknown_call_is_silent_not_an_error(server):
    code, body = server.post(f"/whisper?X-IVR-Call={sid(99)}&X-IVR-Reason=return_refund", CallSid=sid(9))
    assert code == 200 and ET.fromstring(body).find("Say") is None
