"""The demo flow's scenarios through the fake Vonage and the fake jambonz,
against the real handler and web resources speaking each one's dialect:
the same outcomes and reasons as through Twilio.  jambonz keeps no
voicemail (a gap): its scenarios leave the recording out."""

import importlib
from dataclasses import dataclass

import pytest

from ivr.providers.fake_call import FakeCall, HttpRequest
from ivr.providers.jambonz.dialect import JambonzDialect
from ivr.providers.jambonz.fake import FakeJambonzCall
from ivr.providers.vonage.dialect import VonageDialect
from ivr.providers.vonage.fake import FakeVonageCall
from tests.provider_server_support import BASE, ProviderServer, play_scenario, scenarios

NOW = 1_795_000_000.0


@dataclass(frozen=True)
class Case:
    dialect: type
    fake: type
    secret: str
    unsigned: bytes  # the body of a request without its signature
    refusal: bytes
    skip: frozenset = frozenset()


CASES = {
    "vonage": Case(VonageDialect, FakeVonageCall, "a-signature-secret-of-32-chars!!",
                   b'{"conversation_uuid":"%s"}', b"missing Authorization\n"),
    "jambonz": Case(JambonzDialect, FakeJambonzCall, "wh_secret_cJzJ7yqXUbrs3bpQAq6hJm",
                    b'{"call_sid":"%s"}', b"missing Jambonz-Signature\n", frozenset({"record"})),
}


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("scenario", [s for _, s in scenarios()], ids=[i for i, _ in scenarios()])
def test_each_demo_scenario_ends_as_it_says(tmp_path, name, scenario):
    case = CASES[name]

    def fake(send, caller, called):
        return case.fake(send, caller, called, BASE, status_path="status")

    assert play_scenario(tmp_path, case.dialect(), fake, scenario, skip=case.skip) == []


@pytest.mark.parametrize("name", CASES)
def test_each_fake_is_a_fake_call_made_by_its_registry_entry(name):
    entry = importlib.import_module(f"ivr.providers.{name}").PROVIDER
    call = entry.fake(lambda request: b"[]", "+33612345678", "+33100000000", BASE, None)
    assert isinstance(call, FakeCall) and isinstance(call, CASES[name].fake)
    assert call.provider == entry.name == entry.dialect().name


@pytest.mark.parametrize("name", CASES)
def test_signed_requests_pass_the_server_and_unsigned_ones_get_403(tmp_path, name):
    case = CASES[name]
    server = ProviderServer(tmp_path, case.dialect(clock=lambda: NOW), secret=case.secret)
    call = case.fake(server.send, "+33612345678", "+33100000000", BASE, case.secret,
                     status_path="status", clock=lambda: NOW)
    call.answer(f"{BASE}/voice/post_sale")
    assert call.next.wait == "gather"
    code, body = server.request(HttpRequest("POST", call.next.action,
                                            {"Content-Type": "application/json"},
                                            case.unsigned % call.call_id.encode()))
    assert (code, body) == (403, case.refusal)
    call.press("1")
    assert server.handler.describe(call.call_id)["turn"] == 1
