"""Every demo scenario through every registered provider's fake, against
one server that serves all providers at once, every request signed; and
two providers' calls on one server, each recorded under its provider."""

from __future__ import annotations

import json

import pytest
from provider_support import BASE, DASHBOARD_TOKEN, ROOT, MemoryServer, keys_of

from ivr.providers.fake_call import FakeCall, HttpRequest
from ivr.providers.memory import RecordingDialect
from ivr.providers.registry import providers
from ivr.providers.twilio.dialect import TwilioDialect
from ivr.server.served import Served
from ivr.sim.scenarios import run_paths

SCENARIOS = ROOT / "flows" / "tests"


@pytest.mark.parametrize("name", sorted(providers()))
def test_every_demo_scenario_plays_through_the_providers_fake(tmp_path, name):
    provider = providers()[name]
    server = MemoryServer(tmp_path)
    report = run_paths([SCENARIOS], url=BASE, token=keys_of(provider)[1], provider=name,
                       transport=server.send, dashboard_token=DASHBOARD_TOKEN)
    assert [str(failure) for failure in report.failures] == []
    played = report.scenarios - len(report.skipped)
    assert played > 20
    providers_logged = {row["provider"] for row in server.store.db.query(
        "SELECT provider FROM calls")}
    assert providers_logged == {name}
    assert server.store.db.execute("SELECT count(*) FROM calls").fetchone()[0] == played
    assert server.clock.getDelayedCalls() == []


def test_each_providers_fake_is_a_fake_call(tmp_path):
    for provider in providers().values():
        fake = provider.fake(lambda request: b"", "+33612345678", "+33100000000", BASE, None)
        assert isinstance(fake, FakeCall) and fake.provider == provider.name


def memory_call(server: MemoryServer, path: str, secret: str, **fields) -> tuple[int, bytes]:
    body = "&".join(f"{k}={v}" for k, v in fields.items()).encode()
    return server.request(HttpRequest("POST", BASE + path, {
        "Content-Type": "application/x-www-form-urlencoded", "x-test-secret": secret}, body))


def test_one_root_serves_twilio_and_another_provider_each_with_its_secret(tmp_path):
    memory = RecordingDialect()
    server = MemoryServer(tmp_path, served=[Served(TwilioDialect(), "", "twilio-token"),
                                            Served(memory, "memory/", "memory-secret")])
    twilio = providers()["twilio"].fake(server.send, "+33612345678", "+33100000000", BASE,
                                        "twilio-token")
    twilio.answer(BASE + "/voice/post_sale")
    code, body = memory_call(server, "/memory/voice/post_sale", "memory-secret",
                             call="m1", **{"from": "%2B33612345678"})
    assert code == 200
    # Its next request goes under its own prefix, and is read by its own dialect.
    assert json.loads(body)["next"] == "/memory/voice/post_sale?turn=1"
    code, body = memory_call(server, "/memory/voice/post_sale?turn=1", "memory-secret",
                             call="m1", keys="1")
    assert code == 200 and memory.rendered[-1][1] == "/memory/voice/post_sale?turn=2"
    # Each provider's routes check its own secret only.
    assert memory_call(server, "/memory/voice/post_sale", "twilio-token", call="m2") == (
        403, b"wrong x-test-secret\n")
    assert memory_call(server, "/voice/post_sale", "memory-secret", CallSid="CA" + "1" * 32)[0] == 403
    assert memory_call(server, "/memory/nowhere", "memory-secret") == (404, b"not found\n")
    rows = {row["call_id"]: row["provider"] for row in server.store.db.query(
        "SELECT call_id, provider FROM calls")}
    assert rows == {twilio.call_id: "twilio", "m1": "memory"}
    code, metrics = server.request(HttpRequest("GET", BASE + "/metrics"))
    assert 'ivr_provider_calls_started_total{provider="memory"} 1' in metrics.decode()
    assert 'ivr_provider_calls_started_total{provider="twilio"} 1' in metrics.decode()
    assert 'ivr_provider_turns_total{provider="memory"} 2' in metrics.decode()
    assert server.clock.getDelayedCalls() == []
