"""The Dialect protocol: Twilio's and the in-memory one, and a whole call
served through the in-memory one, which knows nothing of Twilio."""

import json
from urllib.parse import urlencode

import pytest
from provider_support import demo_parts
from treq.testing import StubTreq

from ivr.providers.dialect import Dialect, Refusal, WebhookRequest
from ivr.providers.memory import RecordingDialect
from ivr.providers.twilio.dialect import TwilioDialect
from ivr.server.calls import CallHandler
from ivr.server.web import build_root

BASE = "http://ivr.test"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
ONE_ORDER = "+33612345678"


def protocol_members() -> set[str]:
    return {name for name in vars(Dialect) if not name.startswith("_")} | set(
        Dialect.__annotations__)


@pytest.mark.parametrize("dialect", [TwilioDialect(), RecordingDialect()], ids=lambda d: d.name)
def test_each_dialect_has_every_member_of_the_protocol(dialect):
    assert isinstance(dialect, Dialect)
    missing = {name for name in protocol_members() if not hasattr(dialect, name)}
    assert missing == set()


def test_twilio_status_callbacks_become_notices():
    notice = TwilioDialect().status_from({
        "CallSid": "CA" + "1" * 32, "CallStatus": "completed", "SequenceNumber": "3",
        "CallDuration": "42", "Timestamp": "Tue, 24 Nov 2026 09:05:03 +0000"})
    assert (notice.call_id, notice.status, notice.final) == ("CA" + "1" * 32, "completed", True)
    assert (notice.sequence, notice.duration) == (3, 42)
    assert notice.timestamp.isoformat() == "2026-11-24T09:05:03+00:00"
    assert TwilioDialect().status_from({"CallSid": "CA" + "1" * 32,
                                        "CallStatus": "ringing"}).final is False


def test_twilio_refusals_carry_the_http_code():
    dialect = TwilioDialect()
    with pytest.raises(Refusal) as refused:
        request = WebhookRequest("POST", BASE + "/voice/f", "application/x-www-form-urlencoded",
                                 b"", {}, lambda name: None)
        dialect.verify("token", request, {})
    assert (refused.value.code, refused.value.reason) == (403, "missing X-Twilio-Signature")
    with pytest.raises(Refusal) as refused:
        dialect.check({"Digits": ["12"]}, dialect.voice_fields)
    assert (refused.value.code, refused.value.reason) == (400, "missing CallSid")


class Server:
    """The real handler and web resources, speaking the in-memory dialect."""

    def __init__(self, tmp_path, secret=None):
        self.clock, self.store, orders, registry = demo_parts(tmp_path)
        self.dialect = RecordingDialect()
        self.handler = CallHandler(registry, self.store, orders.perform, self.clock,
                                   dialect=self.dialect)
        self.http = StubTreq(build_root(self.handler, registry, auth_token=secret))

    def request(self, method, path, params=None, headers=None):
        body = urlencode(params).encode() if params is not None else b""
        d = self.http.request(method, BASE + path, data=body, headers={**FORM, **(headers or {})})
        self.http.flush()
        results = []
        d.addCallback(lambda response: response.content().addCallback(
            lambda content: (response.code, response.headers, content))).addBoth(results.append)
        self.http.flush()
        assert results and isinstance(results[0], tuple), results
        return results[0]


def test_a_whole_call_is_served_through_the_in_memory_dialect(tmp_path):
    server = Server(tmp_path)
    code, headers, body = server.request("POST", "/voice/post_sale",
                                         {"call": "c1", "from": ONE_ORDER, "to": "+33100000000"})
    assert code == 200
    assert headers.getRawHeaders("content-type") == ["application/json"]
    first = json.loads(body)
    assert "Gather" in first["actions"] and first["next"] == "/voice/post_sale?turn=1"
    server.request("POST", "/voice/post_sale?turn=1", {"call": "c1", "keys": "1"})
    _code, _headers, body = server.request("POST", "/voice/post_sale?turn=2",
                                           {"call": "c1", "keys": "2"})
    assert json.loads(body)["actions"][-1] == "Hangup"
    assert len(server.dialect.rendered) == 3
    call = server.store.call("c1")
    assert (call["outcome"], call["reason"]) == ("self_served", "in_transit_on_time")
    nodes = [e["node"] for e in server.store.node_events("c1")]
    assert nodes[:3] == ["find_recent", "on_its_way", "proactive_answer"]
    code, _headers, _body = server.request("POST", "/status", {"call": "c1", "status": "ended",
                                                               "sequence": "0", "duration": "40"})
    assert code == 204 and server.handler.counters.status_callbacks == 1
    assert server.clock.getDelayedCalls() == []


def test_a_retried_turn_gets_the_same_document_without_rendering_again(tmp_path):
    server = Server(tmp_path)
    server.request("POST", "/voice/post_sale", {"call": "c2", "from": ONE_ORDER})
    _code, _headers, first = server.request("POST", "/voice/post_sale?turn=1",
                                            {"call": "c2", "keys": "1"})
    _code, _headers, again = server.request("POST", "/voice/post_sale?turn=1",
                                            {"call": "c2", "keys": "1"})
    assert again == first and len(server.dialect.rendered) == 2
    assert server.handler.counters.replayed == 1


def test_the_dialects_field_rules_and_signature_guard_the_routes(tmp_path):
    server = Server(tmp_path, secret="s3cret")
    code, _headers, body = server.request("POST", "/voice/post_sale", {"call": "c3"})
    assert (code, body) == (403, b"wrong x-test-secret\n")
    signed = {"x-test-secret": "s3cret"}
    code, _headers, body = server.request("POST", "/voice/post_sale", {"from": ONE_ORDER}, signed)
    assert (code, body) == (400, b"missing call\n")
    code, _headers, _body = server.request("POST", "/voice/post_sale", {"call": "c3"}, signed)
    assert code == 200
    code, _headers, body = server.request("GET", "/calls/c3", None, signed)
    assert code == 200 and json.loads(body)["call_id"] == "c3"
    code, _headers, _body = server.request("POST", "/status", {"call": "c3"}, signed)
    assert code == 400
