"""Serving several providers: each one's credentials from its option or
environment variable, one warning per provider taking unsigned requests,
GET turns for a provider that sends them, and Twilio's shared key."""

from __future__ import annotations

from dataclasses import replace

import pytest
from provider_support import BASE, MemoryServer
from twisted.logger import globalLogPublisher

from ivr.engine import actions as act
from ivr.providers.fake_call import HttpRequest
from ivr.providers.memory import RecordingDialect
from ivr.providers.registry import providers
from ivr.providers.twilio.dialect import TwilioDialect
from ivr.providers.twilio.fake import FakeTwilioCall
from ivr.server import tap
from ivr.server.served import Served, secrets_from, served_providers, warn_unsigned
from ivr.sim.remote import RemoteError


@pytest.fixture
def warnings():
    seen: list[dict] = []
    globalLogPublisher.addObserver(seen.append)
    yield seen
    globalLogPublisher.removeObserver(seen.append)


def test_every_providers_secret_is_an_option_defaulting_to_its_environment_variable(monkeypatch):
    for provider in providers().values():
        monkeypatch.setenv(provider.secret_env, f"from-env-{provider.name}")
    monkeypatch.setenv("TWILIO_SHARED_KEY", "shared-from-env")
    options = tap.Options()
    options.parseOptions(["--twilio-auth-token", "from-option"])
    assert options["twilio-auth-token"] == "from-option"
    assert options["twilio-shared-key"] == "shared-from-env"
    for provider in providers().values():
        if provider.name != "twilio":
            assert options[provider.secret_option] == f"from-env-{provider.name}"
    assert secrets_from({}, {"TWILIO_AUTH_TOKEN": "t"})["twilio"] == "t"
    assert secrets_from({"twilio-auth-token": "o"}, {"TWILIO_AUTH_TOKEN": "t"})["twilio"] == "o"


def test_one_warning_per_provider_that_takes_unsigned_requests(warnings):
    served = served_providers({"twilio": None})
    assert warn_unsigned(served) == [s.name for s in served]
    said = [event for event in warnings if event.get("provider") == "twilio"]
    assert len(said) == 1
    assert said[0]["how"] == "--twilio-auth-token or TWILIO_AUTH_TOKEN"
    warnings.clear()
    assert "twilio" not in warn_unsigned(served_providers({"twilio": "token"}))
    assert "twilio" not in warn_unsigned(served_providers({}, twilio_shared_key="key"))
    assert not [event for event in warnings if event.get("provider") == "twilio"]


class GetDialect(RecordingDialect):
    """The in-memory dialect, its turns sent as GETs (as Vonage's answer webhook is)."""

    name = "getter"
    voice_methods = ("GET", "POST")


def test_a_provider_that_sends_gets_has_its_turns_taken_as_gets(tmp_path):
    server = MemoryServer(tmp_path, served=[Served(TwilioDialect()),
                                            Served(GetDialect(), "getter/")])
    code, body = server.request(HttpRequest(
        "GET", BASE + "/getter/voice/post_sale?call=g1&from=%2B33612345678"))
    assert code == 200 and b'"next": "/getter/voice/post_sale?turn=1"' in body
    assert server.store.call("g1")["provider"] == "getter"
    assert server.request(HttpRequest("GET", BASE + "/voice/post_sale"))[0] == 405
    assert server.clock.getDelayedCalls() == []


def test_a_transfer_whispers_at_its_providers_own_route(tmp_path):
    server = MemoryServer(tmp_path, served=[Served(TwilioDialect())])
    dial = act.Dial(act.DialTarget("number", "+33100000001"))
    telnyx = Served(providers()["telnyx"].dialect(), "telnyx/")
    assert server.handler._with_whisper(dial, telnyx).whisper_url == "/telnyx/whisper"
    assert server.handler._with_whisper(dial, server.served[0]).whisper_url == "/whisper"


def test_twilio_signed_with_a_shared_key_is_served_and_unsigned_refused(tmp_path):
    server = MemoryServer(tmp_path, served=[Served(TwilioDialect(shared_key="shh"))])
    call = FakeTwilioCall(server.send, "+33612345678", "+33100000000", base_url=BASE,
                          shared_key="shh")
    played = call.answer(BASE + "/voice/post_sale")
    assert played.actions and call.next.wait == "gather"
    unsigned = FakeTwilioCall(server.send, "+33612345678", "+33100000000", base_url=BASE)
    with pytest.raises(RemoteError, match="HTTP 403: missing X-Twilio-Signature"):
        unsigned.answer(BASE + "/voice/post_sale")
    wrong = FakeTwilioCall(server.send, "+33612345678", "+33100000000", base_url=BASE,
                           shared_key="other")
    with pytest.raises(RemoteError, match="HTTP 403: X-Twilio-Signature does not match"):
        wrong.answer(BASE + "/voice/post_sale")
    assert server.store.call(unsigned.call_id) is None


def test_a_secret_option_written_with_dashes_is_the_same_option(monkeypatch):
    import ivr.server.options as options_module
    import ivr.server.served as served_module

    stub = replace(providers()["twilio"], name="stub", secret_option="--stub-secret",
                   secret_env="STUB_SECRET", dialect=RecordingDialect)
    monkeypatch.setattr(served_module, "providers", lambda: {**providers(), "stub": stub})
    monkeypatch.setattr(options_module, "providers", lambda: {**providers(), "stub": stub})
    assert "stub-secret" in [o.name for o in options_module.provider_secret_options()]
    assert ("stub-secret", "STUB_SECRET") in served_module.provider_secrets()
    assert served_module.secrets_from({"stub-secret": "s"}, {})["stub"] == "s"
    assert served_module.secrets_from({}, {"STUB_SECRET": "e"})["stub"] == "e"
