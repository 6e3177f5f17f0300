"""Hostile and malformed requests, private call details and held turns: the
server in memory (real twisted.web resources, no socket), on a Clock."""

import json
import xml.etree.ElementTree as ET
from urllib.parse import urlencode

import pytest
from test_web import BASE, CA1, CA2, FORM, TOKEN, Server, body_of, says, slow_server, start_request
from treq.testing import StubTreq
from twisted.internet import defer

from ivr.providers.form_fields import FORBIDDEN, OTHER_FIELD_MAX, check_form
from ivr.providers.plivo.fields import FIELDS as PLIVO_FIELDS
from ivr.providers.signalwire.webhook_fields import ID_FIELDS as SIGNALWIRE_IDS
from ivr.providers.telnyx.webhook_fields import ID_FIELDS as TELNYX_IDS
from ivr.providers.twilio.signature import signed_headers
from ivr.providers.twilio.webhook_fields import FIELDS, FieldError, check_fields
from ivr.server.web import build_root

CALLER = "+33612345678"
DASHBOARD_TOKEN = "a-dashboard-token-of-24-chars"


@pytest.fixture
def server(tmp_path):
    return Server(tmp_path)


def written(server) -> tuple:
    """Everything a request may write: calls, states, events, statuses."""
    db = server.store.db
    return tuple(db.execute(f"SELECT COUNT(*) FROM [{table}]").fetchone()[0]
                 for table in ("calls", "call_state", "node_events", "status_events"))


def refused(server, method, path, body=b"", headers=None):
    """The request's code and body; asserts it wrote nothing."""
    before = written(server)
    code, response_headers, content = server.request(method, path, body, headers)
    assert written(server) == before
    return code, response_headers, content


# -- every refusal is a 4xx with a one-line reason, and writes nothing --------------

@pytest.mark.parametrize("path, fields, reason", [
    ("/status", {"CallSid": CA1}, "missing CallStatus"),
    ("/status", {"CallSid": CA1, "CallStatus": "completed", "SequenceNumber": "9" * 20},
     "SequenceNumber must be at most 999999999"),
    ("/status", {"CallSid": CA1, "CallStatus": "completed", "CallDuration": "1" * 25},
     "CallDuration must be at most 9999999"),
    ("/status", {"CallSid": CA1, "CallStatus": "completed", "CallDuration": "²"},
     "CallDuration must be a whole number in ASCII digits"),
    ("/status", {"CallSid": CA1, "CallStatus": "completed", "SequenceNumber": "١٢"},
     "SequenceNumber must be a whole number in ASCII digits"),
    ("/status", {"CallSid": CA1, "CallStatus": "exploded"},
     "CallStatus must be a call status such as completed"),
    ("/voice/post_sale", {"CallSid": " "}, "CallSid must be CA followed by 32 hexadecimal digits"),
    ("/voice/post_sale", {"CallSid": "\x00"}, "CallSid holds a control character"),
    ("/voice/post_sale", {"CallSid": "CA1"}, "CallSid must be CA followed by 32 hexadecimal digits"),
    ("/voice/post_sale", {"CallSid": CA1, "From": "+" + "3" * 60_000},
     "From longer than 128 characters"),
    ("/voice/post_sale", {"CallSid": CA1, "Digits": "12a"}, "Digits must be keys (0-9, * and #) or hangup"),
    ("/voice/post_sale", {"CallSid": CA1, "Confidence": "0,9"}, "Confidence must be a decimal number"),
    ("/voice/post_sale", {"CallSid": CA1, "AccountSid": "AC123"},
     "AccountSid must be AC followed by 32 hexadecimal digits"),
    ("/voice/post_sale", {"CallSid": CA1, "SpeechResult": "bonjour\x1b[2J"},
     "SpeechResult holds a control character"),
    ("/voice/post_sale", {"CallSid": CA1, "CityName": "x" * 17_000},
     "CityName longer than 16384 characters"),
    ("/voice/post_sale", {"CallSid": CA1, **{f"F{i}": "1" for i in range(101)}}, "more than 100 fields"),
    ("/whisper", {"CallSid": "CA1-agent-leg"}, "CallSid must be CA followed by 32 hexadecimal digits"),
])
def test_a_field_that_breaks_its_rule_is_400_with_a_reason_and_writes_nothing(server, path, fields, reason):
    server.turn(0, sid=CA2)  # something already stored, so "nothing written" can be told
    code, headers, body = refused(server, "POST", path, urlencode(fields).encode(), FORM)
    assert (code, body) == (400, (reason + "\n").encode())
    assert headers.getRawHeaders(b"content-type") == [b"text/plain; charset=utf-8"]


def test_a_status_callback_with_a_large_but_valid_sequence_is_taken(server):
    server.turn(0)
    code, _ = server.post("/status", CallSid=CA1, CallStatus="completed",
                          SequenceNumber="999999999", CallDuration="0042")
    assert code == 204
    [row] = server.store.db.execute("SELECT sequence, duration_s FROM status_events").fetchall()
    assert tuple(row) == (999_999_999, 42)


@pytest.mark.parametrize("query", ["X-IVR-Reason=return%01refund", "X-IVR-Reason=a%0Ab",
                                   "X-IVR-Order=%00", "X-IVR-Call=%ff", "X-IVR-Reason=a&&"])
def test_a_whisper_query_with_control_characters_or_bad_bytes_is_400(server, query):
    code, _, body = refused(server, "POST", "/whisper?" + query,
                            urlencode({"CallSid": CA2}).encode(), FORM)
    assert code == 400 and body.count(b"\n") == 1 and b"Traceback" not in body


@pytest.mark.parametrize("path", ["/voice/post_sale", "/status", "/whisper"])
def test_head_on_a_webhook_is_405_naming_post(server, path):
    code, headers, body = refused(server, "HEAD", path)
    assert code == 405 and body == b""
    assert headers.getRawHeaders(b"allow") == [b"POST"]


@pytest.mark.parametrize("path", ["/healthz", "/metrics"])
def test_head_on_a_page_answers_like_get_without_a_body(server, path):
    get_code, get_headers, _ = server.request("GET", path)
    code, headers, body = server.request("HEAD", path)
    assert (code, body) == (get_code, b"") == (200, b"")
    assert headers.getRawHeaders(b"content-type") == get_headers.getRawHeaders(b"content-type")


def test_head_on_call_details_asks_for_credentials_like_get(server):
    assert refused(server, "HEAD", f"/calls/{CA1}")[0] == 403


@pytest.mark.parametrize("signature", [b"\xff\xfe\x80", "é".encode("latin-1"), b"A" * 5000])
def test_a_signature_that_is_not_short_ascii_is_403(tmp_path, signature):
    signed = Server(tmp_path, token=TOKEN)
    code, _, body = refused(signed, "POST", "/voice/post_sale", urlencode({"CallSid": CA1}).encode(),
                            {**FORM, "X-Twilio-Signature": signature})
    assert (code, body) == (403, b"X-Twilio-Signature is not a signature\n")


def test_a_content_type_that_is_not_utf8_is_400(server):
    code, _, body = refused(server, "POST", "/voice/post_sale", b"CallSid=" + CA1.encode(),
                            {"Content-Type": b"application/x-www-form-urlencoded; x=\xff"})
    assert (code, body) == (400, b"content-type header is not UTF-8\n")


def test_a_turn_number_in_unicode_digits_or_with_underscores_is_400(server):
    for turn in ("%C2%B2", "1_0", "+1", "123456"):
        code, _, body = refused(server, "POST", f"/voice/post_sale?turn={turn}",
                                urlencode({"CallSid": CA1}).encode(), FORM)
        assert code == 400 and body in (b"turn must be a whole number\n", b"turn out of range\n")


def test_the_root_is_a_plain_404(server):
    assert server.request("GET", "/")[::2] == (404, b"not found\n")


def test_every_declared_numeric_rule_refuses_non_ascii_digits():
    numeric = [name for name, rule in FIELDS.items() if rule.at_most is not None]
    assert {"SequenceNumber", "CallDuration", "RecordingDuration"} <= set(numeric)
    for name in numeric:
        with pytest.raises(FieldError, match=f"^{name} must be a whole number in ASCII digits$"):
            check_fields({"CallSid": [CA1], name: ["３"]})


def full_check(rule, value: str) -> str | None:
    """What the quick test of a value (its length, printable, one pattern)
    stands in for: the control characters, then the rule's own checks."""
    if FORBIDDEN.search(value):
        return "holds a control character"
    if rule is None:
        return f"longer than {OTHER_FIELD_MAX} characters" if len(value) > OTHER_FIELD_MAX else None
    return rule.problem(value)


@pytest.mark.parametrize("rules", [FIELDS, PLIVO_FIELDS, {**FIELDS, **TELNYX_IDS},
                                   {**FIELDS, **SIGNALWIRE_IDS}])
def test_each_rule_takes_a_value_exactly_when_its_full_checks_do(rules):
    values = ["", "0", "00", "1", "999999999", "1000000000", "9999999", "10000000", "0000000001",
              "-1", "1.5", "2e3", "３", "completed", "Completed", "completed ", "in-progress",
              "bridged", "hangup", "12#*", CA1, CA1.upper(), CA1[:-1], "AC" + CA1[2:], "+33612345678",
              "PARIS CEDEX 08", "tab\there", "line\nbreak", "cr\rhere", "nbsp\u00a0here",
              "zero\u200bwidth", "bell\x07", "del\x7f", "nonchar\ufffe", "é" * 20, "x" * 129,
              "x" * 4097, "x" * (OTHER_FIELD_MAX + 1), "https://example.com/r.wav", "http://a b",
              "3c4a1f6e-0b1d-4c1e-9d2f-1a2b3c4d5e6f", "v3:abc-DEF_123", "Reason_1"]
    for name, rule in [*rules.items(), ("NotARule", None)]:
        for value in values:
            why = full_check(rule, value)
            if why is None:
                assert check_form({name: [value]}, rules) == {name: value}, (name, value)
            else:
                with pytest.raises(FieldError, match=f"^{name} "):
                    check_form({name: [value]}, rules)


# -- /calls/<sid> is private -----------------------------------------------------

def calls_server(tmp_path, token=None, dashboard_token=None):
    server = Server(tmp_path, token=token)
    server.http = StubTreq(build_root(server.handler, server.registry, auth_token=token,
                                      public_url=BASE if token else None, simulated_clock=True,
                                      dashboard_token=dashboard_token))
    return server


def evening_callback(server):
    """A call at 20:00 (closed) that asks to be called back on its own number."""
    headers = {**FORM, "X-IVR-Simulated-Time": "2026-11-24T20:00:00+01:00"}
    for turn, digits in enumerate([None, "0", "1", "3", "1"]):
        params = {"CallSid": CA1, "From": CALLER, **({"Digits": digits} if digits else {})}
        path = "/voice/post_sale" + (f"?turn={turn}" if turn else "")
        if server.token:
            headers = {**headers, **signed_headers(server.token, BASE + path, params)}
        code, _, _ = server.request("POST", path, urlencode(params).encode(), headers)
        assert code == 200
    assert server.store.call(CA1)["cause"] == "callback"


def test_call_details_without_any_token_configured_are_403_with_the_reason(tmp_path):
    server = calls_server(tmp_path)
    evening_callback(server)
    code, _, body = server.request("GET", f"/calls/{CA1}")
    assert (code, body) == (403, b"call details are private: start the server with "
                                 b"--dashboard-token or a provider's signing secret "
                                 b"(e.g. --twilio-auth-token) to read them\n")


def test_call_details_need_the_dashboard_token(tmp_path):
    server = calls_server(tmp_path, dashboard_token=DASHBOARD_TOKEN)
    evening_callback(server)
    assert server.request("GET", f"/calls/{CA1}")[::2] == (
        401, b"call details need the dashboard token (Bearer) or a provider signature\n")
    wrong = {"Authorization": "Bearer not-the-token"}
    assert server.request("GET", f"/calls/{CA1}", headers=wrong)[::2] == (
        403, b"wrong credentials for call details\n")
    code, _, body = server.request("GET", f"/calls/{CA1}",
                                   headers={"Authorization": f"Bearer {DASHBOARD_TOKEN}"})
    assert code == 200
    described = json.loads(body)
    assert described["summary"]["handoff"] == {"kind": "callback", "target": "+*********78",
                                               "node": "callback"}
    assert CALLER not in body.decode() and "612345678" not in body.decode()


def test_call_details_open_to_a_provider_signature(tmp_path):
    server = calls_server(tmp_path, token=TOKEN)
    evening_callback(server)
    path = f"/calls/{CA1}"
    assert server.request("GET", path)[0] == 401
    forged = {"X-Twilio-Signature": "AAAAAAAAAAAAAAAAAAAAAAAAAAA="}
    assert server.request("GET", path, headers=forged)[::2] == (
        403, b"X-Twilio-Signature does not match this request\n")
    code, _, body = server.request("GET", path, headers=signed_headers(TOKEN, BASE + path, {}))
    assert code == 200 and CALLER not in body.decode()


def test_call_details_of_a_malformed_sid_are_404(tmp_path):
    server = calls_server(tmp_path, dashboard_token=DASHBOARD_TOKEN)
    code, _, body = server.request("GET", "/calls/%00", headers={
        "Authorization": f"Bearer {DASHBOARD_TOKEN}"})
    assert (code, body) == (404, b"no such call: not a call id of any provider served\n")


# -- /healthz names the flow files that fail while the last good version serves --

def test_healthz_lists_an_invalid_flow_file_with_its_first_problem_and_stays_200(server):
    good = server.registry.current("post_sale").version
    flow_file = server.flows / "post_sale.yaml"
    flow_file.write_text(flow_file.read_text().replace("next: main_menu", "next: main_menuu", 1))
    server.registry.reload_if_changed()
    code, _, body = server.request("GET", "/healthz")
    assert code == 200
    health = json.loads(body)
    assert health["status"] == "ok" and health["flows"] == {"post_sale": good}
    [invalid] = health["invalid_files"]
    assert invalid["file"] == str(flow_file) and invalid["serving"] == good
    line = flow_file.read_text().splitlines().index("    next: main_menuu") + 1
    assert invalid["problem"].startswith(f"{flow_file}:{line}:")
    assert invalid["problem"].endswith("[unknown-target]") and invalid["problems"] == 1


def test_healthz_forgets_an_invalid_file_once_fixed_or_removed(server):
    flow_file = server.flows / "post_sale.yaml"
    text = flow_file.read_text()
    broken = server.flows / "broken.yaml"
    broken.write_text("name: broken\nnodes: [\n")
    flow_file.write_text(text.replace("next: main_menu", "next: main_menuu", 1))
    server.registry.reload_if_changed()
    files = [f["file"] for f in json.loads(server.request("GET", "/healthz")[2])["invalid_files"]]
    assert files == [str(broken), str(flow_file)]
    broken.unlink()
    flow_file.write_text(text + "\n")
    server.registry.reload_if_changed()
    assert json.loads(server.request("GET", "/healthz")[2])["invalid_files"] == []


# -- every retry of a turn gets the same bytes --------------------------------------

def test_concurrent_retries_of_a_held_turn_get_the_same_bytes_as_the_first(tmp_path):
    server, pending = slow_server(tmp_path)
    server.turn(0)
    first = start_request(server, "/voice/post_sale?turn=1", CallSid=CA1, Digits="1")
    server.clock.advance(1)
    retry = start_request(server, "/voice/post_sale?turn=1", CallSid=CA1, Digits="1")
    server.clock.advance(0.5)  # hold_after from the first request
    server.http.flush()
    hold = body_of(server, first)
    assert [e.tag for e in ET.fromstring(hold)] == ["Say", "Pause", "Redirect"]
    assert body_of(server, retry) == hold
    late = start_request(server, "/voice/post_sale?turn=1", CallSid=CA1, Digits="1")
    assert body_of(server, late) == hold  # at once: the answer is already given

    polls = [start_request(server, "/voice/post_sale?turn=1&hold=1", CallSid=CA1)]
    server.clock.advance(1)
    polls.append(start_request(server, "/voice/post_sale?turn=1&hold=1", CallSid=CA1))
    server.clock.advance(0.5)
    server.http.flush()
    poll_hold = body_of(server, polls[0])
    assert [e.tag for e in ET.fromstring(poll_hold)] == ["Pause", "Redirect"]
    assert body_of(server, polls[1]) == poll_hold

    pending[0].callback({"status": "not_found", "data": {"orders": [], "count": 0}})
    server.http.flush()
    # The turn is done: its request retried still gets the hold it got...
    assert server.post("/voice/post_sale?turn=1", CallSid=CA1, Digits="1")[1] == hold
    # ...and the poll, the answer, the same each time.
    answer = server.post("/voice/post_sale?turn=1&hold=1", CallSid=CA1)[1]
    assert "numéro de commande" in says(answer)
    assert server.post("/voice/post_sale?turn=1&hold=1", CallSid=CA1)[1] == answer
    assert server.handler.counters.holds == 2  # one per answer given, not per request
    assert len([e for e in server.store.node_events(CA1) if e["node"] == "find_by_phone"]) == 1
    assert server.clock.getDelayedCalls() == []


def test_retries_of_a_turn_answered_before_the_hold_get_its_answer(tmp_path):
    server, pending = slow_server(tmp_path)
    server.turn(0)
    first = start_request(server, "/voice/post_sale?turn=1", CallSid=CA1, Digits="1")
    server.clock.advance(1)
    retry = start_request(server, "/voice/post_sale?turn=1", CallSid=CA1, Digits="1")
    server.clock.advance(0.2)
    pending[0].callback({"status": "not_found", "data": {"orders": [], "count": 0}})
    server.http.flush()
    answer = body_of(server, first)
    assert "numéro de commande" in says(answer) and body_of(server, retry) == answer
    server.clock.advance(5)
    assert server.post("/voice/post_sale?turn=1", CallSid=CA1, Digits="1")[1] == answer
    assert server.handler.counters.holds == 0
    assert server.clock.getDelayedCalls() == []


def test_a_retry_whose_first_request_was_dropped_still_gets_the_first_answer(tmp_path):
    server, pending = slow_server(tmp_path)
    server.turn(0)
    d = server.http.request("POST", BASE + "/voice/post_sale?turn=1", headers=FORM,
                            data=urlencode({"CallSid": CA1, "Digits": "1"}).encode())
    server.http.flush()
    d.cancel()  # the provider gave up on it
    d.addErrback(lambda failure: None)
    server.clock.advance(0.5)
    retry = start_request(server, "/voice/post_sale?turn=1", CallSid=CA1, Digits="1")
    server.clock.advance(1)
    server.http.flush()
    hold = body_of(server, retry)
    assert [e.tag for e in ET.fromstring(hold)] == ["Say", "Pause", "Redirect"]
    pending[0].callback({"status": "not_found", "data": {"orders": [], "count": 0}})
    server.http.flush()
    assert server.post("/voice/post_sale?turn=1", CallSid=CA1, Digits="1")[1] == hold
    server.clock.advance(10)  # the turn waits for the caller back from the hold, then goes on
    assert server.clock.getDelayedCalls() == []


def test_a_turn_whose_look_up_is_done_is_not_held_while_it_commits(tmp_path):
    server = Server(tmp_path, group_commit=True)
    lookups = []
    server.handler.perform = lambda lookup, now: lookups.append(defer.Deferred()) or lookups[-1]
    commits = []
    server.handler.group_commit.write = lambda write, then: commits.append(
        (write, defer.Deferred())) or commits[-1][1].addBoth(then)
    opening = start_request(server, "/voice/post_sale", CallSid=CA1, From=CALLER)
    lookups[0].callback({"status": "not_found", "data": {"orders": [], "count": 0}})  # no order first
    [(write, committed)] = commits
    with server.store.transaction():
        write()
    committed.callback(None)
    server.http.flush()
    assert "Bonjour" in says(body_of(server, opening))
    first = start_request(server, "/voice/post_sale?turn=1", CallSid=CA1, Digits="1")
    server.clock.advance(1)
    lookups[1].callback({"status": "not_found", "data": {"orders": [], "count": 0}})
    server.clock.advance(4)  # the commit is slow: far past hold_after, but no hold
    assert first == [] and server.handler.counters.holds == 0
    write, committed = commits[1]
    with server.store.transaction():
        write()
    committed.callback(None)
    server.http.flush()
    assert "numéro de commande" in says(body_of(server, first))
    assert server.clock.getDelayedCalls() == []
