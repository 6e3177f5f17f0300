"""The demo flow's scenarios through the fake Vonage, against the real
handler and web resources speaking the Vonage dialect: the same outcomes
and reasons as through Twilio."""

import pytest

from ivr.providers.fake_call import HttpRequest
from ivr.providers.vonage.dialect import VonageDialect
from ivr.providers.vonage.fake import FakeVonageCall
from tests.provider_support import BASE, ProviderServer, play_scenario, scenarios


def _fake(send, caller, called):
    return FakeVonageCall(send, caller, called, BASE, status_path="status")


@pytest.mark.parametrize("scenario", [s for _, s in scenarios()], ids=[i for i, _ in scenarios()])
def test_each_demo_scenario_ends_as_it_says_through_vonage(tmp_path, scenario):
    assert play_scenario(tmp_path, VonageDialect(), _fake, scenario) == []


SECRET = "a-signature-secret-of-32-chars!!"
NOW = 1_795_000_000.0


def test_signed_requests_pass_the_server_and_unsigned_ones_get_403(tmp_path):
    server = ProviderServer(tmp_path, VonageDialect(clock=lambda: NOW), secret=SECRET)
    call = FakeVonageCall(server.send, "+33612345678", "+33100000000", BASE, SECRET,
                          status_path="status", clock=lambda: NOW)
    call.answer(f"{BASE}/voice/post_sale")
    assert call.next.wait == "gather"
    code, body = server.request(HttpRequest("POST", call.next.action,
                                            {"Content-Type": "application/json"},
                                            b'{"conversation_uuid":"%s"}' % call.call_id.encode()))
    assert (code, body) == (403, b"missing Authorization\n")
    call.press("1")
    assert server.handler.describe(call.call_id)["turn"] == 1
