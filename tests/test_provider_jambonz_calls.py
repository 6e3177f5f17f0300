"""The demo flow's scenarios through the fake jambonz, against the real
handler and web resources speaking the jambonz dialect: the same outcomes
and reasons as through Twilio (a voicemail is not recorded: a gap)."""

import pytest

from ivr.providers.fake_call import HttpRequest
from ivr.providers.jambonz.dialect import JambonzDialect
from ivr.providers.jambonz.fake import FakeJambonzCall
from tests.provider_support import BASE, ProviderServer, play_scenario, scenarios


def _fake(send, caller, called):
    return FakeJambonzCall(send, caller, called, BASE, status_path="status")


@pytest.mark.parametrize("scenario", [s for _, s in scenarios()], ids=[i for i, _ in scenarios()])
def test_each_demo_scenario_ends_as_it_says_through_jambonz(tmp_path, scenario):
    problems = play_scenario(tmp_path, JambonzDialect(), _fake, scenario, skip=frozenset({"record"}))
    assert problems == []


SECRET = "wh_secret_cJzJ7yqXUbrs3bpQAq6hJm"
NOW = 1_795_000_000.0


def test_signed_requests_pass_the_server_and_unsigned_ones_get_403(tmp_path):
    server = ProviderServer(tmp_path, JambonzDialect(clock=lambda: NOW), secret=SECRET)
    call = FakeJambonzCall(server.send, "+33612345678", "+33100000000", BASE, SECRET,
                           status_path="status", clock=lambda: NOW)
    call.answer(f"{BASE}/voice/post_sale")
    assert call.next.wait == "gather"
    code, body = server.request(HttpRequest("POST", call.next.action,
                                            {"Content-Type": "application/json"},
                                            b'{"call_sid":"%s"}' % call.call_id.encode()))
    assert (code, body) == (403, b"missing Jambonz-Signature\n")
    call.press("1")
    assert server.handler.describe(call.call_id)["turn"] == 1
