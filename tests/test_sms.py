"""Text messages: the ``sms`` node, its checks, the runner's performers, the
Twilio sender against a fake Messages API (in memory and over a socket),
and what ivr-sim shows."""

import base64
import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
from datetime import datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from prompt_support import add_server_prompts
from treq.testing import StubTreq
from twisted.internet import defer, task
from twisted.internet import error as net
from twisted.logger import formatEvent, globalLogPublisher
from twisted.python.usage import UsageError
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from ivr.engine import actions as act
from ivr.engine.turn import play_turn, play_turn_async
from ivr.flow.loader import check_flow, load_flow
from ivr.flow.prompts import PromptError, PromptLibrary
from ivr.phone import mask_numbers, textable
from ivr.server import tap
from ivr.server.sms import (
    NoSms,
    RecordingSms,
    SmsConfigError,
    TwilioAccount,
    TwilioSms,
    sender_for,
)
from ivr.sim.call import SimCall
from ivr.sim.cli import main
from ivr.sim.remote import RemoteCall
from ivr.sim.scenarios import ScenarioFileError, run_paths

ROOT = Path(__file__).parent.parent
PARIS = ZoneInfo("Europe/Paris")
NOW = datetime(2026, 11, 24, 10, 0, tzinfo=PARIS)
SID = "AC" + "a1" * 16
SERVICE = "MG" + "b2" * 16
TOKEN = "t0ken"
CALLER = "+33612345678"
MESSAGES_PATH = f"/2010-04-01/Accounts/{SID}/Messages.json"

FLOW = """\
flow: texts
languages: [fr-FR, en-US]
start: menu
human: agent
reasons:
  order_status: Where is my order
vars:
  order: {number: "100234", carrier_name: "Dupont & Fils", tracking_url: "https://t.example/track?a=1&b=2"}
nodes:
  menu:
    kind: menu
    say: question
    choices:
      - {key: "1", reason: order_status, to: text_caller}
      - {key: "2", to: ask_number}
      - {key: "3", to: text_no_failed}
      - {key: "4", to: text_broken}
  text_caller:
    kind: sms
    text: tracking
    say: sent
    next: bye
    failed: sorry
  ask_number:
    kind: input
    say: question
    min: 9
    max: 15
    save_as: callback_number
    sensitive: true
    next: text_number
  text_number:
    kind: sms
    text: tracking
    to: "{{ callback_number }}"
    next: bye
    failed: sorry
  text_no_failed:
    kind: sms
    text: tracking
    say: sent
    next: bye
  text_broken:
    kind: sms
    text: broken
    next: bye
    failed: sorry
  sorry: {kind: say, say: sorry, next: bye}
  bye: {kind: hangup, say: bye}
  agent: {kind: transfer, to: {queue: support}}
"""

PROMPTS = {
    "question": ("Tapez 1.", "Press 1."),
    "sent": ("SMS envoyé.", "Text sent."),
    "sorry": ("Pas de SMS.", "No text."),
    "bye": ("Au revoir.", "Goodbye."),
    "tracking": ("Colis {{ order.number }} avec {{ order.carrier_name }}.\n\n   Suivi :   {{ order.tracking_url }}\n",
                 "Parcel {{ order.number }} with {{ order.carrier_name }}.\nTrack: {{ order.tracking_url }}\n"),
    "broken": ("Livré {{ order.delivered_on }}", "Delivered {{ order.delivered_on }}"),
}

REPO_PROMPTS = Path(__file__).parent.parent / "prompts"


@pytest.fixture
def prompts_root(tmp_path):
    root = tmp_path / "prompts"
    for index, lang in enumerate(("fr-FR", "en-US")):
        (root / lang).mkdir(parents=True)
        for name, texts in PROMPTS.items():
            (root / lang / f"{name}.j2").write_text(texts[index], encoding="utf-8")
    add_server_prompts(root)
    return root


@pytest.fixture
def flow(tmp_path, prompts_root):
    path = tmp_path / "texts.yaml"
    path.write_text(FLOW.replace(
        'tracking_url: "https', 'delivered_on: null, tracking_url: "https'))
    # Not rehearsed: text_broken's template fails on purpose, to show what
    # a text that cannot be written does at run time (lint refuses it).
    return load_flow(path, prompts_root, rehearse=False)


class Call:
    """Drives the engine as a runner does, recording the texts asked for."""

    def __init__(self, flow, caller=CALLER, send_sms=None):
        self.flow, self.state, self.requests, self.node_events = flow, None, [], []
        self.answer = send_sms or (lambda sms, now: {"status": "sent", "sid": "SM1", "error": None})
        self.actions = self._play({"type": "start", "call_id": "CA1", "caller": caller,
                                   "called": "+33100000000"})

    def _send(self, sms, now):
        self.requests.append(sms)
        return self.answer(sms, now)

    def _play(self, event):
        event["now"] = NOW
        turn = play_turn(self.flow, self.state, event, self._lookup, self._send)
        self.state = turn.state
        self.node_events.extend(turn.node_events)
        return turn.actions

    def _lookup(self, lookup, now):
        raise AssertionError("no look-up in this flow")

    def press(self, digits):
        self.actions = self._play({"type": "digits", "digits": digits})
        return self

    @property
    def heard(self):
        says = []
        for action in self.actions:
            prompts = action.prompts if isinstance(action, act.Gather) else (action,)
            says.extend(p.ssml for p in prompts if isinstance(p, act.Say))
        return " ".join(says)

    def event_at(self, node):
        return [(e["input"], e["branch"], e["detail"]) for e in self.node_events if e["node"] == node]


# --- The engine ------------------------------------------------------------------------------


def test_a_sent_text_plays_say_and_goes_to_next(flow):
    call = Call(flow).press("1")
    [sms] = call.requests
    assert sms.to == CALLER and sms.request_id == "CA1:2"
    assert sms.body == ("Colis 100234 avec Dupont & Fils.\n"
                        "Suivi : https://t.example/track?a=1&b=2")
    assert call.heard == "SMS envoyé. Au revoir."
    assert call.event_at("text_caller") == [("sent", "sent", "SM1")]
    assert call.state["ended"] and call.state["node"] == "bye"


def test_a_failed_text_takes_failed_without_say_and_masks_numbers_in_the_cause(flow):
    refuse = lambda sms, now: {"status": "failed", "error": f"The 'To' number {sms.to} is not valid"}
    call = Call(flow, send_sms=refuse).press("1")
    assert len(call.requests) == 1
    assert call.heard == "Pas de SMS. Au revoir."
    assert call.event_at("text_caller") == [
        ("failed", "failed", "The 'To' number +*********78 is not valid")]


def test_without_failed_a_failed_text_goes_to_next(flow):
    call = Call(flow, send_sms=lambda sms, now: {"status": "failed", "error": "no"}).press("3")
    assert call.heard == "Au revoir."
    assert call.event_at("text_no_failed") == [("failed", "failed", "no")]


@pytest.mark.parametrize("caller, cause", [
    ("anonymous", "the number is withheld"),
    ("+266696687", "the number is withheld"),       # ANONYMOUS on a keypad
    ("", "no number to text"),
    ("+33123456789", "not a mobile number"),         # a Paris landline
    ("+33700000000", "not a valid phone number"),
])
def test_a_number_no_text_can_reach_fails_without_asking_the_runner(flow, caller, cause):
    call = Call(flow, caller=caller).press("1")
    assert call.requests == []
    assert call.event_at("text_caller") == [("failed", "failed", cause)]
    assert call.heard == "Pas de SMS. Au revoir."


def test_to_takes_an_expression_and_national_digits_are_read_in_the_callers_country(flow):
    call = Call(flow).press("2").press("0698765432")
    [sms] = call.requests
    assert sms.to == "+33698765432"
    assert call.event_at("text_number") == [("sent", "sent", "SM1")]


def test_no_node_event_holds_the_number(flow):
    call = Call(flow).press("2").press("0698765432")
    logged = json.dumps(call.node_events)
    assert "98765432" not in logged and "12345678" not in logged


def test_a_text_that_cannot_be_written_fails_without_asking_the_runner(flow):
    call = Call(flow).press("4")
    assert call.requests == []
    [(status, branch, detail)] = call.event_at("text_broken")
    assert (status, branch) == ("failed", "failed")
    assert detail == "cannot write the text: fr-FR/broken.j2:1: ValueError: no value (None)"
    assert not call.state["outcome"] == "failed"  # not the fail-safe


def test_a_sender_that_raises_is_a_failed_text_not_a_broken_call(flow):
    def boom(sms, now):
        raise RuntimeError("socket closed")
    call = Call(flow, send_sms=boom).press("1")
    assert call.event_at("text_caller") == [("failed", "failed", "RuntimeError: socket closed")]
    assert call.state["outcome"] == "abandoned" and call.heard == "Pas de SMS. Au revoir."


def test_without_a_sender_texts_are_not_configured(flow):
    turn = play_turn(flow, None, {"type": "start", "call_id": "CA1", "caller": CALLER, "now": NOW},
                     None)
    turn = play_turn(flow, turn.state, {"type": "digits", "digits": "1", "now": NOW}, None)
    assert [e["detail"] for e in turn.node_events if e["node"] == "text_caller"] == [
        "SMS not configured"]


def test_an_answer_to_another_request_is_ignored(flow):
    from ivr.engine.step import step
    state, actions, _ = step(flow, None, {"type": "start", "call_id": "CA1", "caller": CALLER,
                                          "now": NOW})
    state, actions, _ = step(flow, state, {"type": "digits", "digits": "1", "now": NOW})
    [sms] = [a for a in actions if isinstance(a, act.SendSms)]
    assert state["waiting"] == "sms"
    same, actions, events = step(flow, state, {"type": "sms_result", "request_id": "CA1:99",
                                               "status": "sent", "now": NOW})
    assert events == [] and same["waiting"] == "sms"
    answer = {"type": "sms_result", "request_id": sms.request_id, "status": "sent", "now": NOW}
    _state, _actions, events = step(flow, state, answer)
    assert [e["node"] for e in events] == ["text_caller", "bye"]


def test_a_slow_sender_times_out_on_the_runners_clock(flow):
    clock = task.Clock()
    state = play_turn(flow, None, {"type": "start", "call_id": "CA1", "caller": CALLER,
                                   "now": NOW}, None).state
    d = defer.ensureDeferred(play_turn_async(
        flow, state, {"type": "digits", "digits": "1", "now": NOW}, None, clock, 4.0,
        send_sms=lambda sms, now: defer.Deferred()))
    clock.advance(3.9)
    assert not d.called
    clock.advance(0.1)
    turn = fired(d)
    assert [(e["input"], e["detail"]) for e in turn.node_events if e["node"] == "text_caller"] == [
        ("failed", "timeout")]
    assert clock.getDelayedCalls() == []


# --- Plain-text prompts and numbers ------------------------------------------------------------


def test_plain_text_prompts_are_not_escaped_and_keep_their_line_breaks(prompts_root):
    library = PromptLibrary(prompts_root)
    context = {"order": {"number": "1", "carrier_name": "A & <B>", "tracking_url": "https://x/?a=1&b=2"}}
    assert library.render_text("fr-FR", "tracking", context) == (
        "Colis 1 avec A & <B>.\nSuivi : https://x/?a=1&b=2")
    # The same template spoken is escaped for TwiML, on one line.
    assert library.render("fr-FR", "tracking", context) == (
        "Colis 1 avec A &amp; &lt;B&gt;. Suivi : https://x/?a=1&amp;b=2")


def test_filters_give_plain_text_and_none_is_an_error(tmp_path):
    (tmp_path / "fr-FR").mkdir()
    (tmp_path / "fr-FR" / "t.j2").write_text("{{ when|date }} {{ total|money }} {{ name }}")
    library = PromptLibrary(tmp_path)
    assert library.render_text("fr-FR", "t", {"when": "2026-05-01", "total": "42.5",
                                               "name": "L'Atelier & Co"}) == (
        "vendredi 1er mai 42,50 € L'Atelier & Co")
    with pytest.raises(PromptError, match="no value"):
        library.render_text("fr-FR", "t", {"when": "2026-05-01", "total": "1", "name": None})


def test_textable_numbers_and_masking():
    assert textable("+33612345678") == ("+33612345678", None)
    assert textable("06 12 34 56 78", "FR") == ("+33612345678", None)
    assert textable("+14155550123") == ("+14155550123", None)  # US: mobile or landline alike
    assert textable("+33123456789") == (None, "not a mobile number")
    assert textable("hello", "FR") == (None, "not a phone number")
    assert mask_numbers("To +33612345678 or 06 12 34 56 78, error 21211, id SM0123456789") == (
        "To +*********78 or ** ** ** ** 78, error 21211, id SM0123456789")


# --- Checking flows ----------------------------------------------------------------------------


def problems(tmp_path, prompts_root, text):
    path = tmp_path / "flow.yaml"
    path.write_text(textwrap.dedent(text))
    return [(p.line, p.column, p.code, p.message) for p in check_flow(path, prompts_root)]


def edited(old, new):
    assert FLOW.count(old) == 1
    return FLOW.replace(old, new)


def test_the_test_flow_is_valid_but_for_its_broken_text(tmp_path, prompts_root):
    found = problems(tmp_path, prompts_root, FLOW)
    assert [(line, code) for line, _column, code, _message in found] == [
        (1, "prompt-undefined"), (1, "prompt-undefined")]
    assert all("node 'text_broken'" in message and "'delivered_on'" in message
               for *_, message in found)


def test_an_sms_node_needs_a_text(tmp_path, prompts_root):
    text = edited("    kind: sms\n    text: tracking\n    say: sent\n    next: bye\n    failed: sorry",
                  "    kind: sms\n    say: sent\n    next: bye\n    failed: sorry")
    assert problems(tmp_path, prompts_root, text) == [
        (18, 3, "missing-field", "missing field 'text'")]


def test_an_unknown_text_prompt_is_reported_at_the_text(tmp_path, prompts_root):
    text = edited("  text_caller:\n    kind: sms\n    text: tracking",
                  "  text_caller:\n    kind: sms\n    text: trackin")
    assert problems(tmp_path, prompts_root, text) == [
        (20, 11, "missing-prompt", f"prompt 'trackin' has no en-US version: expected "
                                   f"{prompts_root / 'en-US' / 'trackin.j2'}; did you mean 'tracking'?"),
        (20, 11, "missing-prompt", f"prompt 'trackin' has no fr-FR version: expected "
                                   f"{prompts_root / 'fr-FR' / 'trackin.j2'}; did you mean 'tracking'?")]


@pytest.mark.parametrize("value, column, code, message", [
    ("+33612345678", 9, "wrong-type",
     'expected an E.164 number in quotes such as "+33612345678", or an expression such as '
     '"{{ callback_number }}", found a number 33612345678'),
    ('"0612345678"', 9, "wrong-value",
     'expected an E.164 number in quotes such as "+33612345678", or an expression such as '
     '"{{ callback_number }}", found \'0612345678\''),
    ('"{{ callback_nmber }}"', 9, "unknown-variable",
     "expression uses unknown variable 'callback_nmber'"),
])
def test_to_must_be_a_number_or_an_expression(tmp_path, prompts_root, value, column, code, message):
    text = edited('    to: "{{ callback_number }}"', f"    to: {value}")
    assert problems(tmp_path, prompts_root, text) == [(35, column, code, message)]


def test_text_is_one_prompt_name_and_failed_a_known_node(tmp_path, prompts_root):
    text = edited("    text: tracking\n    say: sent\n    next: bye\n    failed: sorry",
                  "    text: [tracking]\n    say: sent\n    next: bye\n    failed: sory")
    assert problems(tmp_path, prompts_root, text) == [
        (20, 11, "wrong-type", "expected the name of the text message's template (e.g. "
                               "sms_tracking for prompts/<language>/sms_tracking.j2), found a "
                               "list ['tracking']"),
        (23, 13, "unknown-target", "node 'text_caller' 'failed' goes to unknown node 'sory'; did you mean 'sorry'?")]


def test_unknown_fields_of_an_sms_node_are_listed(tmp_path, prompts_root):
    text = edited("    text: broken\n", "    text: broken\n    body: hello\n")
    assert problems(tmp_path, prompts_root, text) == [
        (46, 5, "unknown-field", "unknown field 'body'; expected one of description, failed, "
                                 "kind, next, reason, resolves, say, text, to")]


def test_a_text_template_is_checked_like_other_prompts(tmp_path, prompts_root):
    (prompts_root / "en-US" / "tracking.j2").write_text("Parcel {{ order.number }}\n{{ coupon }}")
    assert problems(tmp_path, prompts_root, FLOW) == [
        (2, 4, "unknown-variable", "unknown variable 'coupon'")]


# --- Twilio's Messages API, faked in memory -----------------------------------------------------


class FakeTwilio(Resource):
    """Twilio's ``Messages.json`` as far as sending goes: Basic auth, the
    form, a 201 with the message, or the error answer given."""

    isLeaf = True

    def __init__(self, answer=None, hang=False):
        super().__init__()
        self.answer, self.hang = answer, hang
        self.requests = []

    def render_POST(self, request):
        form = {k.decode(): v[0].decode() for k, v in request.args.items()}
        self.requests.append({"path": request.path.decode(), "form": form,
                              "auth": (request.getHeader("authorization") or "")})
        if self.hang:
            return NOT_DONE_YET
        code, body = self.answer or self._created(request, form)
        request.setResponseCode(code)
        request.setHeader("Content-Type", "application/json")
        return body if isinstance(body, bytes) else json.dumps(body).encode()

    @staticmethod
    def _created(request, form):
        expected = "Basic " + base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()
        if request.getHeader("authorization") != expected:
            return 401, {"code": 20003, "message": "Authenticate",
                         "more_info": "https://www.twilio.com/docs/errors/20003", "status": 401}
        if request.path.decode() != MESSAGES_PATH:
            return 404, {"code": 20404, "message": "The requested resource was not found",
                         "more_info": "https://www.twilio.com/docs/errors/20404", "status": 404}
        return 201, {"sid": "SM" + "c3" * 16, "status": "queued", "to": form["To"],
                     "from": form.get("From"), "body": form["Body"], "error_code": None,
                     "error_message": None}


class ScriptedHttp:
    """treq's ``post`` failing as told, counting requests."""

    def __init__(self, failure):
        self.failure, self.posts = failure, 0

    def post(self, url, **kwargs):
        self.posts += 1
        return defer.fail(self.failure)


def fired(d, *stubs):
    for stub in stubs:
        stub.flush()
    results = []
    d.addBoth(results.append)
    assert results, "nothing answered"
    return results[0]


def account(**changes):
    fields = {"account_sid": SID, "auth_token": TOKEN, "sender": "+33100000000", **changes}
    return TwilioAccount(**fields)


def twilio(fake=None, clock=None, **changes):
    fake = fake or FakeTwilio()
    stub = StubTreq(fake)
    return TwilioSms(account(**changes), clock or task.Clock(), http=stub), stub, fake


SMS = act.SendSms("CA1:7", CALLER, "Votre colis & vous : https://t.example/?a=1&b=2 — été")


def test_a_text_is_posted_to_the_messages_api_with_basic_auth():
    sender, stub, fake = twilio()
    answer = fired(sender.send(SMS, NOW), stub)
    assert answer == {"status": "sent", "sid": "SM" + "c3" * 16, "error": None}
    [request] = fake.requests
    assert request["path"] == MESSAGES_PATH
    assert request["form"] == {"To": CALLER, "From": "+33100000000", "Body": SMS.body}


def test_a_messaging_service_sends_without_from():
    sender, stub, fake = twilio(sender=None, messaging_service_sid=SERVICE)
    assert fired(sender.send(SMS, NOW), stub)["status"] == "sent"
    assert fake.requests[0]["form"] == {"To": CALLER, "MessagingServiceSid": SERVICE, "Body": SMS.body}


@pytest.mark.parametrize("code, body, cause", [
    (400, {"code": 21211, "message": "The 'To' number +33612345678 is not a valid phone number.",
           "more_info": "https://www.twilio.com/docs/errors/21211", "status": 400},
     "HTTP 400: Twilio error 21211: The 'To' number +*********78 is not a valid phone number."),
    (400, {"code": 21614, "message": "'To' number is not a valid mobile number", "status": 400},
     "HTTP 400: Twilio error 21614: 'To' number is not a valid mobile number"),
    (429, {"code": 20429, "message": "Too Many Requests", "status": 429},
     "HTTP 429: Twilio error 20429: Too Many Requests"),
    (500, {"code": 20500, "message": "Internal Server Error", "status": 500},
     "HTTP 500: Twilio is unavailable: Twilio error 20500: Internal Server Error"),
    (503, b"<html>Service Unavailable</html>", "HTTP 503: Twilio is unavailable"),
    (201, b'{"sid": "SM1", "status":', "malformed JSON from Twilio: Expecting value: line 1 "
                                         "column 25 (char 24)"),
    (201, {"status": "queued"}, "unexpected answer from Twilio: no message sid in it"),
    (201, {"sid": "SM1", "status": "failed", "error_code": 30007, "error_message": "Filtered"},
     "Twilio says the message failed: error 30007: Filtered"),
    (302, b"", "unexpected HTTP 302 from Twilio"),
])
def test_each_failure_has_its_cause_and_is_not_retried(code, body, cause):
    sender, stub, fake = twilio(FakeTwilio(answer=(code, body)))
    assert fired(sender.send(SMS, NOW), stub) == {"status": "failed", "sid": None, "error": cause}
    assert len(fake.requests) == 1


def test_wrong_credentials_say_which_variables_to_check():
    sender, stub, _fake = twilio(auth_token="wrong")
    assert fired(sender.send(SMS, NOW), stub)["error"] == (
        "HTTP 401: Twilio error 20003: Authenticate (check TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN)")


@pytest.mark.parametrize("failure, cause", [
    (net.ConnectionRefusedError(), "connection refused"),
    (net.DNSLookupError("api.twilio.com"), "DNS lookup failed"),
    (net.TCPTimedOutError(), "connect timeout (TCPTimedOutError)"),
])
def test_connection_failures_are_not_retried(failure, cause):
    http = ScriptedHttp(failure)
    sender = TwilioSms(account(), task.Clock(), http=http)
    assert fired(sender.send(SMS, NOW)) == {"status": "failed", "sid": None, "error": cause}
    assert http.posts == 1


def test_a_slow_twilio_times_out_after_3_seconds_on_the_clock():
    clock = task.Clock()
    sender, stub, fake = twilio(FakeTwilio(hang=True), clock=clock)
    d = sender.send(SMS, NOW)
    stub.flush()
    clock.advance(2.9)
    assert not d.called and len(fake.requests) == 1
    clock.advance(0.1)
    assert fired(d, stub) == {"status": "failed", "sid": None, "error": "timeout after 3 s"}
    assert clock.getDelayedCalls() == []


def test_under_the_runner_twilios_own_timeout_gives_the_cause(flow):
    clock = task.Clock()
    sender, stub, _fake = twilio(FakeTwilio(hang=True), clock=clock)
    state = play_turn(flow, None, {"type": "start", "call_id": "CA1", "caller": CALLER,
                                   "now": NOW}, None).state
    d = defer.ensureDeferred(play_turn_async(
        flow, state, {"type": "digits", "digits": "1", "now": NOW}, None, clock, 4.0,
        send_sms=sender.send))
    stub.flush()
    clock.advance(3)
    turn = fired(d, stub)
    assert [(e["input"], e["detail"]) for e in turn.node_events if e["node"] == "text_caller"] == [
        ("failed", "timeout after 3 s")]
    assert clock.getDelayedCalls() == []


def test_logs_show_numbers_masked():
    events = []
    globalLogPublisher.addObserver(events.append)
    try:
        sender, stub, _fake = twilio()
        fired(sender.send(SMS, NOW), stub)
        refused = FakeTwilio(answer=(400, {"code": 21211, "message": f"The 'To' number {CALLER} "
                                           "is not a valid phone number.", "status": 400}))
        sender, stub, _fake = twilio(refused)
        fired(sender.send(SMS, NOW), stub)
    finally:
        globalLogPublisher.removeObserver(events.append)
    text = "\n".join(formatEvent(e) for e in events)
    assert "sms CA1:7 to +*********78 sent as SM" in text
    assert "sms CA1:7 to +*********78 failed: HTTP 400: Twilio error 21211" in text
    assert "12345678" not in text and TOKEN not in text


def test_no_sms_and_the_recording_sender():
    assert NoSms().send(SMS, NOW) == {"status": "failed", "sid": None, "error": "SMS not configured"}
    kept = RecordingSms()
    assert kept.send(SMS, NOW)["status"] == "sent" and kept.sent == [SMS]
    assert RecordingSms(fail="down").send(SMS, NOW) == {"status": "failed", "sid": None, "error": "down"}


# --- Configuration --------------------------------------------------------------------------------


def test_the_account_comes_from_the_environment():
    env = {"TWILIO_ACCOUNT_SID": SID, "TWILIO_AUTH_TOKEN": TOKEN, "TWILIO_SMS_FROM": "Boutique"}
    assert TwilioAccount.from_environment(env) == account(sender="Boutique")
    assert TwilioAccount.from_environment({}) is None
    # The token that signs webhooks serves when the variable is not set.
    assert TwilioAccount.from_environment(
        {"TWILIO_ACCOUNT_SID": SID, "TWILIO_MESSAGING_SERVICE_SID": SERVICE}, auth_token="x"
    ) == TwilioAccount(SID, "x", None, SERVICE)


def test_a_partial_configuration_names_every_problem():
    with pytest.raises(SmsConfigError) as error:
        TwilioAccount.from_environment({"TWILIO_ACCOUNT_SID": "AC123", "TWILIO_SMS_FROM": "0612345678"})
    assert str(error.value) == (
        "texts cannot be sent: TWILIO_ACCOUNT_SID must be AC followed by 32 hexadecimal digits; "
        "TWILIO_AUTH_TOKEN is not set; TWILIO_SMS_FROM must be an E.164 number such as "
        "+33100000000 or a sender ID of up to 11 letters and digits")


def test_the_server_refuses_to_start_with_a_partial_configuration(monkeypatch):
    monkeypatch.delenv("TWILIO_AUTH_TOKEN", raising=False)
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", SID)
    with pytest.raises(UsageError, match="TWILIO_AUTH_TOKEN is not set; set TWILIO_SMS_FROM"):
        tap.Options().parseOptions([])
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", TOKEN)
    monkeypatch.setenv("TWILIO_SMS_FROM", "+33100000000")
    options = tap.Options()
    options.parseOptions([])
    assert options["sms-account"] == account()
    assert isinstance(sender_for(options["sms-account"], task.Clock()), TwilioSms)
    assert isinstance(sender_for(None, task.Clock()), NoSms)


# --- ivr-sim ---------------------------------------------------------------------------------------


def test_ivr_sim_shows_the_text_in_what_the_caller_heard():
    result = CliRunner().invoke(main, ["call", str(ROOT / "flows" / "post_sale.yaml"), "--at",
                                       "2026-11-24 10:00"], input="1\n3\n2\n",
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert ("heard: [SMS to caller: Votre commande 100234 est en route avec Colissimo. / "
            "Livraison prévue le mercredi 25 novembre. / Suivez votre colis : "
            "https://www.laposte.fr/outils/suivre-vos-envois?code=6A1002340000FR] C'est fait"
            in result.output)


def test_a_sim_call_keeps_the_texts_of_each_turn_apart(flow):
    kept = RecordingSms()
    call = SimCall(flow, None, caller=CALLER, at=NOW, send_sms=kept.send)
    assert call.start().texts == []
    turn = call.press("1")
    assert turn.texts == ["[SMS to caller: Colis 100234 avec Dupont & Fils. / "
                          "Suivi : https://t.example/track?a=1&b=2]"]
    assert turn.heard.startswith("[SMS to caller: Colis 100234")
    assert [sms.to for sms in kept.sent] == [CALLER]


def test_a_scenario_can_make_texts_fail(tmp_path):
    scenario = tmp_path / "t.yaml"
    flow_path = (ROOT / "flows" / "post_sale.yaml").as_posix()
    steps = "steps: [{press: 1}, {press: 3, expect: {heard: \"n'ai pas pu\"}}]"
    scenario.write_text(f"flow: {flow_path}\nscenarios:\n"
                        f"  - {{name: fails, sms: failed, {steps}}}\n"
                        f"  - {{name: sends, {steps}}}\n")
    report = run_paths([scenario], ROOT / "prompts")
    assert [str(f).split(": ", 1)[1] for f in report.failures] == [
        "sends: turn 2 (press 3): expected to hear \"n'ai pas pu\"\n    heard: [SMS to caller: "
        "Votre commande 100234 est en route avec Colissimo. / Livraison prévue le mercredi 25 "
        "novembre. / Suivez votre colis : https://www.laposte.fr/outils/suivre-vos-envois?"
        "code=6A1002340000FR] C'est fait : je vous ai envoyé un SMS avec le lien de suivi de votre "
        "colis. Puis-je vous aider pour autre chose ? Pour une autre question, tapez 1. Pour "
        "terminer l'appel, tapez 2."]


def test_a_wrong_sms_value_is_reported_at_its_line_and_column_before_any_call(tmp_path):
    scenario = tmp_path / "t.yaml"
    flow_path = (ROOT / "flows" / "post_sale.yaml").as_posix()
    scenario.write_text(f"flow: {flow_path}\nscenarios:\n"
                        "  - {name: sends, steps: [{press: 1}]}\n"
                        "  - {name: typo, sms: maybe, steps: [{press: 1}]}\n")
    with pytest.raises(ScenarioFileError) as caught:
        run_paths([scenario], ROOT / "prompts")
    assert str(caught.value) == f"{scenario}:4:23: error: expected sent or failed, found 'maybe' [wrong-value]"


# --- The server sending over a socket to a fake Twilio ----------------------------------------------


class _TwilioHandler(BaseHTTPRequestHandler):
    """A stand-in for api.twilio.com over a real socket: keeps each request
    and answers what the test set in ``server.answer``."""

    def do_POST(self):
        length = int(self.headers.get("Content-Length", 0))
        form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
        self.server.requests.append({"path": self.path, "auth": self.headers.get("Authorization"),
                                     "form": form})
        code, body = self.server.answer
        payload = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def live(tmp_path):
    """``ivr-serve`` configured for texts, and a fake Twilio it reaches
    over a loopback socket."""
    twilio_server = HTTPServer(("127.0.0.1", 0), _TwilioHandler)
    twilio_server.requests = []
    twilio_server.answer = (201, {"sid": "SM" + "d4" * 16, "status": "queued"})
    thread = threading.Thread(target=twilio_server.serve_forever, daemon=True)
    thread.start()
    db = tmp_path / "ivr.db"
    subprocess.run([sys.executable, "-c", "from ivr.sim.cli import main; main()", "demo-orders",
                    "--db", str(db), "--today", "2026-11-24"],
                   check=True, capture_output=True, cwd=ROOT, timeout=60)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "TWILIO_ACCOUNT_SID": SID, "TWILIO_AUTH_TOKEN": TOKEN,
           "TWILIO_SMS_FROM": "+33100000000",
           "TWILIO_API_URL": f"http://127.0.0.1:{twilio_server.server_port}"}
    log_path = tmp_path / "server.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-c", "from ivr.server.tap import main; main()",
             "--listen", f"tcp:{port}:interface=127.0.0.1", "--db", str(db),
             "--flows", str(ROOT / "flows"), "--prompts", str(ROOT / "prompts"),
             "--simulated-clock"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):  # readiness, bounded to about 10 s
            try:
                with urllib.request.urlopen(f"{url}/healthz", timeout=1):
                    break
            except OSError:
                if process.poll() is not None:
                    break
                time.sleep(0.1)
        else:
            pytest.fail("the server did not start")
        yield url, twilio_server, log_path
    finally:
        process.terminate()
        process.wait(timeout=10)
        twilio_server.shutdown()
        twilio_server.server_close()


def test_the_server_texts_the_tracking_link_through_twilio(live):
    url, twilio_server, log_path = live
    call = RemoteCall(url, "post_sale", caller=CALLER, at=NOW, token=TOKEN)
    call.start()   # the one order on its way is answered first
    call.press("1")
    assert "je vous ai envoyé un SMS" in call.press("3").heard
    [request] = twilio_server.requests
    assert request["path"] == MESSAGES_PATH
    assert request["auth"] == "Basic " + base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()
    assert request["form"]["To"] == CALLER and request["form"]["From"] == "+33100000000"
    assert request["form"]["Body"].endswith("https://www.laposte.fr/outils/suivre-vos-envois?"
                                            "code=6A1002340000FR")
    # Twilio refuses the next one: the caller is told, and the cause is kept, masked.
    twilio_server.answer = (400, {"code": 21610, "message": f"Attempt to send to unsubscribed "
                                  f"recipient {CALLER}", "status": 400})
    second = RemoteCall(url, "post_sale", caller=CALLER, at=NOW, token=TOKEN)
    second.start()
    second.press("1")
    turn = second.press("3")
    assert "je n'ai pas pu vous envoyer le SMS" in turn.heard
    second.hangup()
    texts = [(e["input"], e["detail"]) for e in turn.node_events if e["node"] == "text_tracking_link"]
    assert texts == [("failed", "HTTP 400: Twilio error 21610: Attempt to send to "
                                "unsubscribed recipient +*********78")]
    assert "612345678" not in log_path.read_text()
