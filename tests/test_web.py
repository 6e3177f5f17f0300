"""The webhook server in memory: real twisted.web resources, no socket."""

import io
import random
import shutil
import xml.etree.ElementTree as ET
from datetime import date, datetime
from pathlib import Path
from urllib.parse import parse_qs, urlencode
from zoneinfo import ZoneInfo

import pytest
from treq.testing import StubTreq
from twisted.internet import defer, task
from twisted.logger import globalLogPublisher

from ivr.lookups.demo_orders import create_demo_db
from ivr.lookups.embedded import EmbeddedOrderLookups
from ivr.providers.bodies import parse_form
from ivr.providers.twilio.render import validate_twiml
from ivr.providers.twilio.signature import signed_headers
from ivr.server.calls import CallHandler
from ivr.server.logs import text_log_observer
from ivr.server.registry import FlowRegistry
from ivr.server.web import build_root
from ivr.store.sqlite.group_commit import GroupCommit
from ivr.store.sqlite.store import CallStore

ROOT = Path(__file__).parent.parent
TUESDAY_10AM = datetime(2026, 11, 24, 10, 0, tzinfo=ZoneInfo("Europe/Paris")).timestamp()
TOKEN = "12345"
BASE = "http://ivr.test"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
#: A demo caller with one order in transit (answered before any menu), and one with none.
ONE_ORDER = "+33612345678"
NO_ORDER = "+33700000000"


def sid(n: int) -> str:
    """A Twilio-shaped CallSid: CA and 32 hex digits."""
    return f"CA{n:032x}"


CA1, CA2, SILENT, CLOSED, AGENT, AGENT_LEG = (sid(n) for n in (1, 2, 3, 4, 5, 6))


class Server:
    """A server over a database file, a flows folder and a Clock."""

    def __init__(self, tmp_path, token=None, perform=None, db_path=None, group_commit=False):
        self.clock = task.Clock()
        self.clock.advance(TUESDAY_10AM)
        self.db_path = db_path or tmp_path / "ivr.db"
        self.flows = tmp_path / "flows"
        if not self.flows.exists():
            self.flows.mkdir()
            shutil.copy(ROOT / "flows" / "post_sale.yaml", self.flows)
        self.store = CallStore.open(self.db_path)
        create_demo_db(self.store.db, date(2026, 11, 24))
        self.registry = FlowRegistry(self.flows, ROOT / "prompts", self.store)
        self.registry.reload_if_changed()
        orders = EmbeddedOrderLookups(create_demo_db(self.store.db, date(2026, 11, 24)))
        self.handler = CallHandler(
            self.registry, self.store, perform or orders.perform, self.clock,
            group_commit=GroupCommit(self.store, self.clock) if group_commit else None)
        self.token = token
        self.http = StubTreq(build_root(self.handler, self.registry, auth_token=token,
                                        public_url=BASE if token else None))

    def request(self, method, path, body=b"", headers=None):
        d = self.http.request(method, BASE + path, data=body, headers=headers or FORM)
        self.http.flush()
        response = self.successful(d)
        content = self.successful(response.content())
        return response.code, response.headers, content

    def successful(self, d):
        results = []
        d.addBoth(results.append)
        self.http.flush()
        assert results, "the request did not finish"
        if isinstance(results[0], Exception) or hasattr(results[0], "raiseException"):
            results[0].raiseException()
        return results[0]

    def post(self, path, **params):
        headers = dict(FORM)
        if self.token:
            headers.update(signed_headers(self.token, BASE + path, params))
        code, _headers, body = self.request("POST", path, urlencode(params).encode(), headers)
        return code, body

    def turn(self, turn, sid=CA1, flow="post_sale", caller=ONE_ORDER, **params):
        path = f"/voice/{flow}" + (f"?turn={turn}" if turn else "")
        return self.post(path, CallSid=sid, From=caller, To="+33100000000", **params)


def says(twiml: bytes) -> str:
    return " ".join("".join(e.itertext()) for e in ET.fromstring(twiml).iter("Say"))


@pytest.fixture
def server(tmp_path):
    return Server(tmp_path)


def test_an_incoming_call_gets_twiml_that_gathers_with_the_next_turn_in_the_url(server):
    code, headers, body = server.request(
        "POST", "/voice/post_sale",
        urlencode({"CallSid": CA1, "From": "+33612345678"}).encode())
    assert code == 200
    assert headers.getRawHeaders("content-type") == ["text/xml; charset=utf-8"]
    assert validate_twiml(body) == []
    gather = ET.fromstring(body).find("Gather")
    assert gather.get("action") == "/voice/post_sale?turn=1"
    assert ET.fromstring(body).find("Redirect").text == "/voice/post_sale?turn=1"
    assert "Bonjour" in says(body)


def test_a_whole_call_is_logged_node_by_node_and_ends_self_served(server):
    _, body = server.turn(0)
    assert "Colissimo" in says(body)  # the one order on its way, before any menu
    _, body = server.turn(1, Digits="1")
    assert "Je vous le confirme" in says(body)
    code, body = server.turn(2, Digits="2")
    assert ET.fromstring(body).find("Hangup") is not None
    nodes = [e["node"] for e in server.store.node_events(CA1)]
    assert nodes[:3] == ["find_recent", "on_its_way", "proactive_answer"]
    assert nodes[-1] == "goodbye"
    call = server.store.call(CA1)
    assert (call["outcome"], call["reason"]) == ("self_served", "in_transit_on_time")
    assert call["caller_hash"] and "+33612345678" not in str(call)


def test_a_retried_turn_gets_the_same_twiml_and_is_logged_once(server):
    server.turn(0)
    _, first = server.turn(1, Digits="1")
    events = len(server.store.node_events(CA1))
    _, again = server.turn(1, Digits="1")
    assert again == first
    assert len(server.store.node_events(CA1)) == events
    assert server.handler.counters.replayed == 1


def test_silence_comes_back_through_the_redirect_and_reprompts(server):
    server.turn(0)
    _, body = server.turn(1)  # the Redirect after the Gather: no Digits
    assert "Je ne vous ai pas entendu" in says(body)


def test_speech_is_understood(server):
    server.turn(0)
    _, body = server.turn(1, SpeechResult="Je voudrais parler à un conseiller", Confidence="0.9")
    assert ET.fromstring(body).find("Enqueue").text == "post-sale"


def test_a_hang_up_reported_by_the_status_callback_is_abandoned(server):
    server.turn(0, caller=NO_ORDER)
    code, _ = server.post("/status", CallSid=CA1, CallStatus="completed", SequenceNumber="0")
    assert code == 204
    call = server.store.call(CA1)
    assert call["outcome"] == "abandoned" and call["ended_at"]
    assert server.store.node_events(CA1)[-1]["branch"] == "hangup"


def test_a_repeated_status_callback_changes_nothing(server):
    server.turn(0)
    server.post("/status", CallSid=CA1, CallStatus="completed", SequenceNumber="1")
    events = server.store.node_events(CA1)
    server.post("/status", CallSid=CA1, CallStatus="completed", SequenceNumber="1")
    assert server.store.node_events(CA1) == events


def test_a_status_callback_after_a_transfer_keeps_it_transferred(server):
    server.turn(0)
    server.turn(1, Digits="0")
    server.post("/status", CallSid=CA1, CallStatus="completed", SequenceNumber="0")
    call = server.store.call(CA1)
    assert (call["outcome"], call["cause"]) == ("transferred", "caller_asked")


def test_an_unknown_flow_is_404_and_writes_nothing(server):
    code, body = server.turn(0, flow="billing")
    assert code == 404 and body == b"no flow named 'billing'\n"
    assert server.store.call(CA1) is None


@pytest.mark.parametrize("body, headers, code, reason", [
    (b"From=%2B33612345678", FORM, 400, b"missing CallSid\n"),
    (b"CallSid=" + CA1.encode() + b"&From=%ff", FORM, 400, b"body is not UTF-8\n"),
    (b"CallSid=" + CA1.encode() + b"&&=&x", FORM, 400, b"malformed form body\n"),
    (b'{"CallSid": CA1}', {"Content-Type": "application/json"}, 415,
     b"expected an application/x-www-form-urlencoded body\n"),
    (b"CallSid=" + CA1.encode() + b"&pad=" + b"x" * 70_000, FORM, 413, b"body larger than 65536 bytes\n"),
])
def test_bad_requests_get_a_4xx_with_a_reason_and_write_nothing(server, body, headers, code, reason):
    got, _, content = server.request("POST", "/voice/post_sale", body, headers)
    assert (got, content) == (code, reason)
    assert server.store.call(CA1) is None


def test_other_methods_are_405_in_plain_text_naming_the_allowed_ones(server):
    for method, path, allowed in (("GET", "/voice/post_sale", b"POST"),
                                  ("POST", "/healthz", b"GET, HEAD"),
                                  ("GET", "/status", b"POST"), ("PUT", "/metrics", b"GET, HEAD")):
        code, headers, body = server.request(method, path)
        assert (code, body) == (405, b"method not allowed\n")
        assert headers.getRawHeaders(b"allow") == [allowed]
        assert headers.getRawHeaders(b"content-type") == [b"text/plain; charset=utf-8"]


def test_an_unknown_path_is_404_in_plain_text(server):
    code, headers, body = server.request("GET", "/nothing/here")
    assert (code, body) == (404, b"not found\n")
    assert headers.getRawHeaders(b"content-type") == [b"text/plain; charset=utf-8"]


def test_healthz_lists_the_flows_and_their_versions(server):
    code, _, body = server.request("GET", "/healthz")
    assert code == 200
    version = server.registry.current("post_sale").version
    assert f'"post_sale": "{version}"'.encode() in body


def test_metrics_count_turns(server):
    server.turn(0)
    server.turn(0)
    _, _, body = server.request("GET", "/metrics")
    assert b"ivr_turns_total 1\n" in body and b"ivr_turns_replayed_total 1\n" in body


class TestSignatures:
    @pytest.fixture
    def signed(self, tmp_path):
        return Server(tmp_path, token=TOKEN)

    def test_a_correctly_signed_request_is_served(self, signed):
        assert signed.turn(0)[0] == 200

    def test_an_unsigned_request_is_403_and_never_reaches_the_engine(self, signed):
        body = urlencode({"CallSid": CA1}).encode()
        code, _, reason = signed.request("POST", "/voice/post_sale", body)
        assert (code, reason) == (403, b"missing X-Twilio-Signature\n")
        assert signed.store.call(CA1) is None

    def test_a_tampered_request_is_403(self, signed):
        params = {"CallSid": CA1, "From": "+33612345678"}
        headers = {**FORM, **signed_headers(TOKEN, BASE + "/voice/post_sale", params)}
        body = urlencode({**params, "From": "+33600000000"}).encode()
        code, _, reason = signed.request("POST", "/voice/post_sale", body, headers)
        assert (code, reason) == (403, b"X-Twilio-Signature does not match this request\n")

    def test_the_signature_covers_the_turn_in_the_url(self, signed):
        signed.turn(0)
        params = {"CallSid": CA1, "Digits": "1"}
        headers = {**FORM, **signed_headers(TOKEN, BASE + "/voice/post_sale?turn=1", params)}
        code, _, _ = signed.request("POST", "/voice/post_sale?turn=2",
                                    urlencode(params).encode(), headers)
        assert code == 403


def slow_server(tmp_path):
    pending, answered_at_once = [], []

    def later(lookup, now):
        if not answered_at_once:  # the greeting's look-up: no order, the menu follows
            answered_at_once.append(lookup)
            return {"status": "not_found", "data": {"orders": [], "count": 0}}
        pending.append(defer.Deferred())
        return pending[-1]

    return Server(tmp_path, perform=later), pending


def start_request(server, path, **params):
    answers = []
    server.http.request("POST", BASE + path, data=urlencode(params).encode(),
                        headers=FORM).addBoth(answers.append)
    server.http.flush()
    return answers


def body_of(server, answers):
    assert answers, "no answer yet"
    response = server.successful(defer.succeed(answers[0]))
    return server.successful(response.content())


def test_a_look_up_slower_than_the_timeout_takes_the_error_branch_after_holding(tmp_path):
    server, _pending = slow_server(tmp_path)
    server.turn(0)
    first = start_request(server, "/voice/post_sale?turn=1", CallSid=CA1, Digits="1")
    assert first == []  # the turn waits on the look-up
    server.clock.advance(1.5)
    server.http.flush()
    hold = ET.fromstring(body_of(server, first))
    assert [e.tag for e in hold] == ["Say", "Pause", "Redirect"]
    assert hold.find("Say").text == "Un instant, je recherche votre commande."
    assert hold.find("Redirect").text == "/voice/post_sale?turn=1&hold=1"

    poll = start_request(server, "/voice/post_sale?turn=1&hold=1", CallSid=CA1)
    server.clock.advance(1.5)
    server.http.flush()
    again = ET.fromstring(body_of(server, poll))
    assert [e.tag for e in again] == ["Pause", "Redirect"]  # "one moment" is said once

    poll = start_request(server, "/voice/post_sale?turn=1&hold=1", CallSid=CA1)
    server.clock.advance(1)  # 4 s after the request: the look-up timeout
    server.http.flush()
    body = body_of(server, poll)
    # orders_by_phone failed: the flow asks for the order number instead
    assert "numéro de commande" in says(body)
    [event] = [e for e in server.store.node_events(CA1) if e["node"] == "find_by_phone"]
    assert (event["input"], event["detail"]) == ("error", "timeout")
    assert server.handler.counters.holds == 2
    assert server.clock.getDelayedCalls() == []


def test_a_look_up_answered_while_the_caller_holds_is_the_poll_answer(tmp_path):
    server, pending = slow_server(tmp_path)
    server.turn(0)
    first = start_request(server, "/voice/post_sale?turn=1", CallSid=CA1, Digits="1")
    server.clock.advance(1.5)
    server.http.flush()
    assert b"Redirect" in body_of(server, first)
    poll = start_request(server, "/voice/post_sale?turn=1&hold=1", CallSid=CA1)
    assert poll == []
    server.clock.advance(0.5)
    pending[0].callback({"status": "not_found", "data": {"orders": [], "count": 0}})
    server.http.flush()
    assert "numéro de commande" in says(body_of(server, poll))
    # The provider retrying that poll gets the same answer, from the database.
    assert server.post("/voice/post_sale?turn=1&hold=1", CallSid=CA1)[1] == body_of(server, poll)
    assert server.clock.getDelayedCalls() == []


def test_the_hold_s_log_line_is_written_in_the_pass_that_puts_the_caller_on_hold(tmp_path):
    server, pending = slow_server(tmp_path)
    server.turn(0)
    first = start_request(server, "/voice/post_sale?turn=1", CallSid=CA1, Digits="1")
    # A reactor runs what its timed calls schedule at its next pass, after it
    # has sent what they answered: the next pass is a Clock left where it is.
    next_pass, out = task.Clock(), io.StringIO()
    observer = text_log_observer(out, reactor=next_pass)
    globalLogPublisher.addObserver(observer)
    try:
        server.clock.advance(1.5)  # the hold's timed call
        server.http.flush()
    finally:
        globalLogPublisher.removeObserver(observer)
    assert b"Redirect" in body_of(server, first)
    assert f"turn {CA1} 1 on hold (opening)" in out.getvalue()
    assert next_pass.getDelayedCalls() == []
    poll = start_request(server, "/voice/post_sale?turn=1&hold=1", CallSid=CA1)
    pending[0].callback({"status": "not_found", "data": {"orders": [], "count": 0}})
    server.http.flush()
    assert "numéro de commande" in says(body_of(server, poll))
    assert server.clock.getDelayedCalls() == []


def test_a_quick_look_up_is_answered_without_a_hold(tmp_path):
    server, pending = slow_server(tmp_path)
    server.turn(0)
    first = start_request(server, "/voice/post_sale?turn=1", CallSid=CA1, Digits="1")
    server.clock.advance(1)
    pending[0].callback({"status": "not_found", "data": {"orders": [], "count": 0}})
    server.http.flush()
    assert "numéro de commande" in says(body_of(server, first))
    assert server.handler.counters.holds == 0
    assert server.clock.getDelayedCalls() == []


def test_a_turn_waiting_only_for_its_commit_is_never_put_on_hold(tmp_path):
    server = Server(tmp_path, group_commit=True)
    commits = []

    def slow_commit(write, then):  # a slow disk: the commit ends when the test says
        commits.append((write, defer.Deferred()))
        return commits[-1][1].addBoth(then)

    server.handler.group_commit.write = slow_commit
    first = start_request(server, "/voice/post_sale", CallSid=CA1, From="+33612345678")
    server.clock.advance(5)  # far longer than hold_after
    assert first == [] and server.handler.counters.holds == 0
    [(write, committed)] = commits
    with server.store.transaction():
        write()
    committed.callback(None)
    server.http.flush()
    assert "Bonjour" in says(body_of(server, first))


def test_a_poll_the_server_no_longer_holds_repeats_the_last_question(tmp_path):
    server = Server(tmp_path)
    _code, question = server.turn(0)
    # The server restarted while the caller held: the look-up is gone.
    code, body = server.post("/voice/post_sale?turn=1&hold=1", CallSid=CA1)
    assert (code, body) == (200, question)


def test_a_hang_up_while_on_hold_ends_the_call_after_its_turn_is_saved(tmp_path):
    server, pending = slow_server(tmp_path)
    server.turn(0)
    start_request(server, "/voice/post_sale?turn=1", CallSid=CA1, Digits="1")
    server.clock.advance(1.5)
    status = start_request(server, "/status", CallSid=CA1, CallStatus="completed",
                           SequenceNumber="3")
    assert status == []  # waits for the turn on hold
    server.clock.advance(2.5)  # the look-up times out; the turn is saved
    server.http.flush()
    assert server.successful(defer.succeed(status[0])).code == 204
    row = server.store.call(CA1)
    assert row["ended_at"] is not None and row["outcome"] == "abandoned"

def test_an_exception_while_rendering_routes_to_a_human_and_fails_the_call(server, monkeypatch):
    import ivr.providers.twilio.dialect

    server.turn(0)
    real = ivr.providers.twilio.dialect.render_twiml
    calls = []

    def broken_once(actions, url):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("renderer bug")
        return real(actions, url)

    monkeypatch.setattr(ivr.providers.twilio.dialect, "render_twiml", broken_once)
    code, body = server.turn(1, Digits="1")
    assert code == 200
    assert "problème technique" in says(body)
    assert ET.fromstring(body).find("Enqueue").text == "post-sale"
    assert server.store.call(CA1)["outcome"] == "failed"


def test_a_call_continues_after_a_restart(tmp_path):
    first = Server(tmp_path)
    first.turn(0)
    first.store.db.close()
    second = Server(tmp_path)  # same database file, new process state
    _, body = second.turn(1, Digits="1")
    assert "Je vous le confirme : votre colis devrait vous être livré demain" in says(body)
    assert second.store.node_events(CA1)[0]["node"] == "find_recent"


def test_a_call_runs_to_its_end_on_the_version_it_started_with(server):
    server.turn(0)
    old = server.registry.current("post_sale").version
    flow_file = server.flows / "post_sale.yaml"
    flow_file.write_text(flow_file.read_text().replace("limits: {max_steps: 60", "limits: {max_steps: 61"))
    assert server.registry.reload_if_changed()
    assert server.registry.current("post_sale").version != old
    server.turn(1, Digits="1")
    assert {e["version"] for e in server.store.node_events(CA1)} == {old}
    server.turn(0, sid=CA2)
    assert server.store.call(CA2)["version"] == server.registry.current("post_sale").version
    assert server.store.flow_version("post_sale", old)["source"]


def test_a_broken_flow_edit_keeps_the_last_good_version_serving(server):
    good = server.registry.current("post_sale").version
    flow_file = server.flows / "post_sale.yaml"
    flow_file.write_text(flow_file.read_text().replace("next: main_menu", "next: main_menuu", 1))
    server.registry.reload_if_changed()
    assert server.registry.current("post_sale").version == good
    [problem] = server.registry.problems[str(flow_file)]
    line = flow_file.read_text().splitlines().index("    next: main_menuu") + 1
    assert problem.code == "unknown-target" and problem.line == line
    assert server.turn(0)[0] == 200
    code, _, body = server.request("GET", "/healthz")
    assert str(flow_file).encode() in body


def test_a_transfer_nobody_answers_ends_politely(server):
    server.turn(0)
    server.turn(1, Digits="0")
    _, body = server.turn(2, DialCallStatus="no-answer")
    assert says(body).startswith("Toutes nos excuses pour l'attente.")
    assert "Pour être rappelé, tapez 1" in says(body)  # a callback or a message instead
    server.turn(3)
    _, body = server.turn(4)
    assert ET.fromstring(body).find("Hangup") is not None
    call = server.store.call(CA1)
    assert (call["outcome"], call["cause"]) == ("transferred", "dial_failed")


@pytest.mark.parametrize("queue_result", ["queue-full", "error", "system-error"])
def test_a_queue_that_cannot_take_the_call_offers_a_callback(server, queue_result):
    server.turn(0)
    _, body = server.turn(1, Digits="0")
    assert ET.fromstring(body).find("Enqueue").text == "post-sale"
    _, body = server.turn(2, QueueResult=queue_result, QueueSid="QU" + "0" * 32)
    assert says(body).startswith("Toutes nos excuses pour l'attente.")
    assert ET.fromstring(body).find("Hangup") is None


def test_a_status_callback_ends_the_call_at_the_simulated_time(tmp_path):
    server = Server(tmp_path)
    server.http = StubTreq(build_root(server.handler, server.registry, simulated_clock=True))
    server.turn(0)
    headers = {**FORM, "X-IVR-Simulated-Time": "2026-11-24T10:01:00+01:00"}
    body = urlencode({"CallSid": CA1, "CallStatus": "completed", "SequenceNumber": "0"}).encode()
    assert server.request("POST", "/status", body, headers)[0] == 204
    assert server.store.call(CA1)["ended_at"] == "2026-11-24T10:01:00+01:00"


def test_a_transfer_to_a_number_whispers_the_reason_and_order_to_the_agent(tmp_path):
    server = Server(tmp_path)
    flow_file = server.flows / "post_sale.yaml"
    flow_file.write_text(flow_file.read_text().replace("to: {queue: post-sale}",
                                                      'to: {number: "+33180000000"}'))
    server.registry.reload_if_changed()
    server.turn(0)   # the one order, answered at once: the flow knows it
    _, body = server.turn(1, Digits="2")   # a return: straight to an agent
    number = ET.fromstring(body).find("Dial/Number")
    assert number.text == "+33180000000"
    url = number.get("url")
    assert url.startswith("/whisper?") and "X-IVR-Order=100234" in url
    code, whisper = server.post(url, CallSid=AGENT_LEG)
    assert code == 200
    assert says(whisper) == ("Appel du serveur vocal. Motif : Demande de retour, d'échange ou de "
                             "remboursement. Commande 1 0 0 2 3 4.")
    say = ET.fromstring(whisper).find("Say")  # prompts/fr-FR/agent_whisper.j2, in the flow's voice
    assert (say.get("voice"), say.get("language")) == ("Polly.Lea-Neural", "fr-FR")


def test_a_call_whose_flow_is_gone_hears_an_apology_and_reaches_the_fallback(tmp_path, monkeypatch):
    from ivr.engine.actions import DialTarget

    server = Server(tmp_path)
    server.handler.fallback = DialTarget("number", "+33180000000")
    server.turn(0)
    monkeypatch.setattr(server.registry, "version", lambda name, version: None)
    monkeypatch.setattr(server.registry, "current", lambda name: None)
    code, body = server.turn(1, Digits="1")
    assert code == 200
    # The apology a flow rendered when it loaded, in its voice.
    assert says(body) == "Désolé, nous rencontrons un problème technique. Je vous passe un conseiller."
    assert ET.fromstring(body).find("Say").get("voice") == "Polly.Lea-Neural"
    assert ET.fromstring(body).find("Dial/Number").text == "+33180000000"
    call = server.store.call(CA1)
    assert (call["outcome"], call["cause"]) == ("failed", "error")


def test_with_group_commit_a_turn_is_answered_once_its_events_are_committed(tmp_path):
    server = Server(tmp_path, group_commit=True)
    answers = []
    for sid in (CA1, CA2):
        d = server.http.request("POST", BASE + "/voice/post_sale", headers=FORM,
                                data=urlencode({"CallSid": sid, "From": NO_ORDER}).encode())
        d.addCallback(answers.append)
    server.http.flush()
    assert answers == [] and server.store.node_events(CA1) == []
    server.clock.advance(0)  # the next reactor iteration: one commit for both turns
    server.http.flush()
    assert [r.code for r in answers] == [200, 200]
    assert server.store.node_events(CA1) and server.store.node_events(CA2)
    assert server.handler.group_commit.commits == 1
    _, _, metrics = server.request("GET", "/metrics")
    assert b"ivr_commits_total 1\n" in metrics and b"ivr_committed_writes_total 2\n" in metrics
    assert b"ivr_writer_lock_waits_total 0\n" in metrics  # no other process writes the file

    taken = []
    server.http.request("POST", BASE + "/status", headers=FORM, data=urlencode(
        {"CallSid": CA1, "CallStatus": "completed", "SequenceNumber": "2"}).encode()
    ).addCallback(taken.append)
    server.http.flush()
    assert taken == []
    server.clock.advance(0)
    server.http.flush()
    assert [r.code for r in taken] == [204]
    assert server.store.call(CA1)["outcome"] == "abandoned"


def test_a_retry_and_the_status_callback_join_a_turn_waiting_for_its_commit(tmp_path):
    server = Server(tmp_path, group_commit=True)
    first = start_request(server, "/voice/post_sale", CallSid=CA1, From=NO_ORDER)
    retry = start_request(server, "/voice/post_sale", CallSid=CA1, From=NO_ORDER)
    status = start_request(server, "/status", CallSid=CA1, CallStatus="completed",
                           SequenceNumber="1")
    assert first == retry == status == []
    server.clock.advance(0)  # the turn's commit, then the status callback's
    server.http.flush()
    assert "Bonjour" in says(body_of(server, first))
    assert body_of(server, retry) == body_of(server, first)
    assert [r.code for r in status] == [204] and server.handler.group_commit.commits == 2
    assert (server.handler.counters.turns, server.handler.counters.replayed) == (2, 0)
    assert server.store.call(CA1)["outcome"] == "abandoned"
    assert server.handler._held == {} and server.clock.getDelayedCalls() == []


def test_a_turn_whose_request_is_dropped_while_it_commits_is_still_kept_and_counted(tmp_path):
    server = Server(tmp_path, group_commit=True)
    answer = server.handler.answer("post_sale", 0, {"CallSid": CA1, "From": NO_ORDER})
    answer.cancel()  # what the resource does when the provider hangs up on the request
    answer.addErrback(lambda failure: None)
    server.clock.advance(0)
    assert server.handler.counters.turns == 1 and server.handler._held == {}
    assert server.store.node_events(CA1)
    code, body = server.post("/voice/post_sale", CallSid=CA1, From=NO_ORDER)  # its retry
    assert code == 200 and "Bonjour" in says(body) and server.handler.counters.replayed == 1


def test_the_sweep_ends_calls_whose_status_callback_never_came(server):
    server.turn(0, sid=SILENT, caller=NO_ORDER)
    server.turn(0, sid=CLOSED)
    server.post("/status", CallSid=CLOSED, CallStatus="completed", SequenceNumber="1")
    server.clock.advance(3599)
    assert server.handler.sweep() == 0
    server.clock.advance(2)
    assert server.handler.sweep() == 1
    row = server.store.call(SILENT)
    assert row["outcome"] == "abandoned" and row["exit_node"] == "main_menu"
    assert row["ended_at"] == row["started_at"]  # its last turn, not the sweep's time
    last = server.store.node_events(SILENT)[-1]
    assert (last["branch"], last["detail"]) == ("hangup", "no status callback")
    assert server.handler.sweep() == 0


def test_the_sweep_leaves_a_call_with_an_agent_until_the_dial_time_limit(server):
    server.turn(0, sid=AGENT)
    server.turn(1, sid=AGENT, Digits="0")  # put through to the agents' queue
    server.clock.advance(2 * 3600)
    assert server.handler.sweep() == 0
    server.clock.advance(2 * 3600 + 601)
    assert server.handler.sweep() == 1
    row = server.store.call(AGENT)
    assert (row["outcome"], row["cause"]) == ("transferred", "caller_asked")


@pytest.mark.parametrize("body", [
    "", "CallSid=CA1", "a=1&b=2&a=3", "From=%2B33612345678&City=PARIS+CEDEX+08",
    "empty=&x=y", "=nameless", "sp%20ace=%C3%A9t%C3%A9", "plus=a+b%2Bc", "bad%zz=%",
    "dup=1&dup=", "k%3Dv=x%26y", "mix=é%C3%A9+ü", "name%C3%A9=%E2%82%AC€", "a+b=%25",
])
def test_the_form_parser_reads_bodies_as_urllib_does(body):
    expected = parse_qs(body, keep_blank_values=True, strict_parsing=bool(body), errors="strict")
    assert parse_form(body) == expected


@pytest.mark.parametrize("body", ["novalue", "a=1&&b=2", "a=1&", "&", "x=%ff", "x=%C3é",
                                  "x=é%A9", "x=%E2%82€", "%C3=1"])
def test_the_form_parser_refuses_what_urllib_refuses(body):
    with pytest.raises(ValueError) as ours:
        parse_form(body)
    with pytest.raises(ValueError) as theirs:
        parse_qs(body, keep_blank_values=True, strict_parsing=True, errors="strict")
    # Both tell a body that is not UTF-8 from a malformed one (two different answers).
    assert isinstance(ours.value, UnicodeDecodeError) == isinstance(theirs.value, UnicodeDecodeError)


def test_the_form_parser_decodes_escapes_beside_any_characters_as_urllib_does():
    pieces = ["%", "C3", "A9", "E2", "82", "ff", "+", "a", "é", "€", "%C3", "%A9", "%E2%82",
              "%AC", "%2B", "0", "%26", "%3d", "%25", "%2", "%3A", "=", "&y="]
    chosen = random.Random(7)
    for _ in range(3000):
        value = "".join(chosen.choice(pieces) for _ in range(chosen.randint(1, 8)))
        try:
            expected = parse_qs(f"x={value}", keep_blank_values=True, strict_parsing=True,
                                errors="strict")
        except UnicodeDecodeError:
            with pytest.raises(UnicodeDecodeError):
                parse_form(f"x={value}")
        else:
            assert parse_form(f"x={value}") == expected, value


def test_read_off_the_reactor_a_version_never_loaded_is_rebuilt_there_too(tmp_path):
    first = Server(tmp_path)
    first.turn(0)
    old = first.registry.current("post_sale").version
    first.store.db.close()
    flow_file = first.flows / "post_sale.yaml"
    flow_file.write_text(flow_file.read_text().replace("limits: {max_steps: 60",
                                                       "limits: {max_steps: 61"))
    second = Server(tmp_path)  # a restart on a new version of the flow
    assert second.registry.current("post_sale").version != old
    in_thread: list = []
    second.handler.read_in_thread = lambda function, *args: (
        in_thread.append(getattr(function, "__name__", function)) or
        defer.maybeDeferred(function, *args))
    _, body = second.turn(1, Digits="1")
    assert "Je vous le confirme" in says(body)
    assert in_thread == ["load_call", "version"]
    assert {e["version"] for e in second.store.node_events(CA1)} == {old}


@pytest.mark.parametrize("query", [
    b"", b"turn=3", b"turn=3&hold=1", b"turn=3&turn=4", b"turn=&hold=1", b"turn", b"=3",
    b"turn=3;hold=1", b"&&turn=1&", b"turn=1=2", b"turn=%31", b"turn=+1", b"t%75rn=1",
    b"turn=%ff", b"a=b;c&d=e=f;;g=",
])
def test_the_voice_query_reads_as_twisted_s_parse_qs(query):
    from twisted.web.http import parse_qs as twisted_parse_qs

    from ivr.server.web import VoiceResource

    class Request:
        uri = b"/voice/post_sale?" + query if query else b"/voice/post_sale"

    assert VoiceResource._query(Request()) == twisted_parse_qs(query)


@pytest.mark.parametrize("query", [
    b"", b"turn=3", b"turn=3&hold=1", b"hold=1&turn=3", b"turn=3&hold=2", b"turn=3;hold=1",
    b"turn=%33", b"turn=x", b"turn=\xc2\xb2", b"turn=123456", b"turn=1_0", b"turn=3&turn=4",
])
def test_a_voice_query_answered_again_gets_the_same_turn_and_hold(query):
    from ivr.server.requests import BadRequest
    from ivr.server.web import VoiceResource

    class Request:
        uri = b"/voice/post_sale?" + query if query else b"/voice/post_sale"

    def read():
        try:
            return VoiceResource._turn_and_poll(Request())
        except BadRequest as error:
            return error.code, error.reason

    parsed = VoiceResource._query(Request())
    try:
        expected = (VoiceResource._turn(parsed), VoiceResource._polls(parsed))
    except BadRequest as error:
        expected = error.code, error.reason
    assert read() == expected
    assert read() == expected  # kept, or refused again
