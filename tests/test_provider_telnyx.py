"""Telnyx (TeXML): Ed25519 signatures (checked both ways against the
telnyx SDK's verifier and PyNaCl), field rules, events, rendering checked
by the fake's reading of Telnyx's documented verbs, gaps, and the server's
refusals through its real route (the demo scenarios through every
provider's fake: tests/test_provider_scenarios.py)."""

import base64
from datetime import datetime, timezone
from urllib.parse import urlencode

import pytest
from freezegun import freeze_time
from provider_support import BASE, ROOT, MemoryServer, demo_flow

from ivr.engine import actions as act
from ivr.providers.dialect import Dialect, Refusal, WebhookRequest
from ivr.providers.fake_call import FakeCall, HttpRequest, MarkupError
from ivr.providers.markup_rules import problems
from ivr.providers.telnyx import PROVIDER
from ivr.providers.telnyx.dialect import TelnyxDialect
from ivr.providers.telnyx.fake import RULES, FakeTelnyxCall
from ivr.providers.telnyx.signature import public_key_of, sign
from ivr.providers.twilio.render import render_twiml

FORM = "application/x-www-form-urlencoded"
#: A fixed private key (an Ed25519 seed), so signatures are reproducible.
PRIVATE = base64.b64encode(bytes(range(32))).decode()
PUBLIC = public_key_of(PRIVATE)
NOW = 1_764_000_000  # 2025-11-24T16:00:00Z
CALL = "v3:9X2vxPDFY2RHSJ1EdMS0RHRksMTg7ldNxdjWbVr9zBjbGjGsSe-aiQ"
# The answered callback's example fields (TeXML callback page).
ANSWERED = {"AccountSid": "f5586561-8ff0-4291-a51b-c7dfe4139ff9", "CallSid": CALL,
            "CallSidLegacy": CALL, "CallStatus": "in-progress", "CallbackSource": "call-progress-events",
            "ConnectionId": "1234567890", "From": "+35319605860", "SequenceNumber": "2",
            "Timestamp": "2024-01-15T10:30:00Z", "To": "+13129457420"}
BODY = urlencode(ANSWERED).encode()


def request(body: bytes, headers: dict[str, str]) -> WebhookRequest:
    lowered = {name.lower().encode(): value.encode() for name, value in headers.items()}
    return WebhookRequest("POST", "https://ivr.test/telnyx/voice/f", FORM, body, {}, lowered.get)


def signed(body: bytes = BODY, at: int = NOW, key: str = PRIVATE) -> dict[str, str]:
    return {"telnyx-signature-ed25519": sign(key, at, body), "telnyx-timestamp": str(at)}


def verify(headers: dict[str, str], body: bytes = BODY, now: float = NOW, public: str = PUBLIC) -> None:
    webhook = request(body, headers)
    dialect = TelnyxDialect(now=lambda: now)
    dialect.verify(public, webhook, dialect.parse(webhook))


def test_the_dialect_and_fake_are_what_the_protocols_ask():
    assert isinstance(PROVIDER.dialect(), Dialect) and PROVIDER.prefix == "telnyx/"
    assert isinstance(PROVIDER.fake(lambda r: b"", "+33612345678", "+33100000000", "http://x", None), FakeCall)
    assert (PROVIDER.secret_option, PROVIDER.secret_env) == ("telnyx-public-key", "TELNYX_PUBLIC_KEY")


def test_a_signature_made_as_telnyx_does_verifies_within_five_minutes():
    verify(signed())
    verify(signed(), now=NOW + 300)
    verify(signed(), now=NOW - 300)


def test_the_telnyx_sdks_verifier_accepts_our_signatures():
    verification = pytest.importorskip("telnyx.lib.webhook_verification")
    with freeze_time(datetime.fromtimestamp(NOW, timezone.utc)):
        verification.verify_webhook_signature(BODY, signed(), PUBLIC)
        with pytest.raises(verification.WebhookVerificationError):
            verification.verify_webhook_signature(BODY + b"&x=1", signed(), PUBLIC)


def test_a_signature_made_by_pynacl_as_the_sdk_expects_it_verifies_here():
    signing = pytest.importorskip("nacl.signing")
    key = signing.SigningKey(bytes(range(32)))
    assert base64.b64encode(bytes(key.verify_key)).decode() == PUBLIC
    signature = key.sign(f"{NOW}|".encode() + BODY).signature
    verify({"telnyx-signature-ed25519": base64.b64encode(signature).decode(), "telnyx-timestamp": str(NOW)})


OTHER = base64.b64encode(bytes(range(1, 33))).decode()


@pytest.mark.parametrize("headers, now, body, reason", [
    ({}, NOW, BODY, "missing telnyx-signature-ed25519"),
    ({"telnyx-signature-ed25519": sign(PRIVATE, NOW, BODY)}, NOW, BODY, "missing telnyx-timestamp"),
    ({**signed(), "telnyx-timestamp": "yesterday"}, NOW, BODY, "telnyx-timestamp is not a Unix time"),
    (signed(), NOW + 301, BODY, "telnyx-timestamp is more than 5 minutes away"),
    (signed(), NOW - 301, BODY, "telnyx-timestamp is more than 5 minutes away"),
    ({**signed(), "telnyx-signature-ed25519": "x" * 200}, NOW, BODY,
     "telnyx-signature-ed25519 is not a signature"),
    ({**signed(), "telnyx-signature-ed25519": "not base64!"}, NOW, BODY,
     "telnyx-signature-ed25519 is not base64"),
    ({**signed(), "telnyx-signature-ed25519": "AAAA"}, NOW, BODY, "telnyx-signature-ed25519 is not 64 bytes"),
    (signed(), NOW, BODY.replace(b"in-progress", b"completed"),
     "telnyx-signature-ed25519 does not match this request"),
    (signed(key=OTHER), NOW, BODY, "telnyx-signature-ed25519 does not match this request"),
    ({**signed(), "telnyx-timestamp": str(NOW + 1)}, NOW, BODY,
     "telnyx-signature-ed25519 does not match this request"),
])
def test_unsigned_expired_malformed_or_tampered_requests_are_refused(headers, now, body, reason):
    with pytest.raises(Refusal) as refused:
        verify(headers, body, now)
    assert (refused.value.code, refused.value.reason) == (403, reason)


def test_fields_take_telnyx_call_ids_and_refuse_twilio_sids():
    dialect = TelnyxDialect()
    params = dialect.check({k: [v] for k, v in ANSWERED.items()}, dialect.voice_fields)
    assert dialect.call_facts(params).call_id == CALL and dialect.is_call_id(CALL)
    assert not dialect.is_call_id("CA" + "0" * 32)
    with pytest.raises(Refusal) as refused:
        dialect.check({"CallSid": ["CA" + "0" * 32]}, dialect.voice_fields)
    assert (refused.value.code, refused.value.reason) == (400, "CallSid must be a Telnyx call id (v3:…)")
    with pytest.raises(Refusal, match="AccountSid must be a UUID"):
        dialect.check({"CallSid": [CALL], "AccountSid": ["AC" + "0" * 32]})


@pytest.mark.parametrize("params, waiting, event", [
    ({"Digits": "3"}, "gather", {"type": "digits", "digits": "3"}),
    ({"SpeechResult": "where is my order"}, "gather",
     {"type": "speech", "text": "where is my order", "confidence": None}),
    ({}, "gather", {"type": "silence"}),
    ({"DialCallStatus": "busy"}, "dial", {"type": "dial_result", "status": "busy"}),
    ({"QueueResult": "bridged", "QueueTime": "30"}, "dial",
     {"type": "dial_result", "status": "completed", "queue_result": "bridged", "queue_seconds": 30}),
    ({"RecordingUrl": "https://r.invalid/a.wav", "RecordingDuration": "9"}, "record",
     {"type": "recorded", "url": "https://r.invalid/a.wav", "duration": "9"}),
])
def test_requests_become_the_engines_events(params, waiting, event):
    assert TelnyxDialect().event_from({"CallSid": CALL, **params}, {"waiting": waiting}) == event


def test_the_completed_callback_is_a_notice_with_an_iso_timestamp():
    notice = TelnyxDialect().status_from({**ANSWERED, "CallStatus": "completed", "SequenceNumber": "3",
                                          "CallDuration": "45", "Timestamp": "2024-01-15T10:31:00Z"})
    assert (notice.status, notice.final, notice.sequence, notice.duration) == ("completed", True, 3, 45)
    assert notice.timestamp == datetime(2024, 1, 15, 10, 31, tzinfo=timezone.utc)
    assert TelnyxDialect().status_from({"CallSid": CALL, "CallStatus": "ringing",
                                        "Timestamp": "Tue, 24 Nov"}).timestamp is None


GATHER = act.Gather(prompts=(act.Say("Hello.", voice="Polly.Joanna-Neural", language="en-US"),),
                    input="dtmf speech", num_digits=1, finish_on_key="", timeout=5,
                    speech_timeout="auto", hints=("agent", "refund"), language="en-US")
EVERY_ACTION = [
    [act.Say("One moment.", language="en-US"), act.Play("https://x.invalid/a.mp3"), act.Pause(2),
     act.Redirect("http://ivr.test/telnyx/voice/f?turn=1&hold=1")],
    [GATHER],
    [act.Gather(input="dtmf", finish_on_key="#", timeout=300)],
    [act.Dial(act.DialTarget("number", "+33100000001"), timeout=20,
              params=(("reason", "return"),), whisper_url="http://ivr.test/telnyx/whisper")],
    [act.Dial(act.DialTarget("queue", "post-sale"), timeout=300)],
    [act.Enqueue("post-sale", wait_url="http://ivr.test/hold", params=(("reason", "return"),))],
    [act.Record(max_length=60)],
    [act.Say("Goodbye."), act.Hangup()],
]


@pytest.mark.parametrize("actions", EVERY_ACTION, ids=lambda a: "+".join(type(x).__name__ for x in a))
def test_every_action_renders_as_texml_telnyx_can_play(actions):
    document = TelnyxDialect().render(actions, "http://ivr.test/telnyx/voice/f?turn=1")
    assert problems(document, RULES) == []
    scripted = iter([document, b"<Response />"])  # the redirect, if any, is followed
    call = FakeTelnyxCall(lambda r: next(scripted), "+33612345678", "+33100000000", "http://ivr.test")
    played = call.answer("http://ivr.test/telnyx/voice/f")
    assert [type(a).__name__ for a in played.actions] == [type(a).__name__ for a in actions]


def test_the_gather_is_texmls():
    document = TelnyxDialect().render([GATHER], "http://ivr.test/telnyx/voice/f?turn=1").decode()
    gather = document[document.index("<Gather"):document.index(">", document.index("<Gather"))]
    assert "method=" not in gather and "speechTimeout" not in gather
    assert 'transcriptionEngine="Google"' in gather and 'hints="agent, refund"' in gather
    assert 'timeout="5"' in gather and 'voice="Polly.Joanna-Neural"' in document
    assert '<Redirect method="POST">http://ivr.test/telnyx/voice/f?turn=1</Redirect>' in document
    long_wait = TelnyxDialect().render([act.Gather(timeout=300)], "/v").decode()
    assert 'timeout="120"' in long_wait and "transcriptionEngine" not in long_wait


def test_twilios_gather_is_not_texml():
    twiml = render_twiml([GATHER], "http://ivr.test/telnyx/voice/f?turn=1")
    assert any("no attribute 'method'" in p for p in problems(twiml, RULES))
    call = FakeTelnyxCall(lambda r: twiml, "+33612345678", "+33100000000", "http://x")
    with pytest.raises(MarkupError, match="method"):
        call.answer("http://x/telnyx/voice/f")


def test_the_fakes_requests_are_telnyxs_and_signed():
    sent: list[HttpRequest] = []

    def send(one):
        sent.append(one)
        return (b'<Response><Gather action="/telnyx/voice/f?turn=1" finishOnKey="#" />'
                b"<Redirect>/telnyx/voice/f?turn=1</Redirect></Response>")

    call = FakeTelnyxCall(send, "+33612345678", "+33100000000", "http://ivr.test", PRIVATE, clock=lambda: NOW)
    call.answer("http://ivr.test/telnyx/voice/f")
    call.press("12#9")
    call.silence()
    call.hang_up(40, datetime(2025, 11, 24, 16, 0, 40, tzinfo=timezone.utc))
    assert [one.url for one in sent] == [
        "http://ivr.test/telnyx/voice/f", "http://ivr.test/telnyx/voice/f?turn=1",
        "http://ivr.test/telnyx/voice/f?turn=1", "http://ivr.test/telnyx/status"]
    dialect = TelnyxDialect(now=lambda: NOW)
    checked = []
    for one in sent:
        webhook = request(one.body, one.headers)
        fields = dialect.parse(webhook)
        dialect.verify(PUBLIC, webhook, fields)
        checked.append(dialect.check(fields))
    assert {params["CallSid"] for params in checked} == {call.call_id}
    assert checked[1]["Digits"] == "12" and "Digits" not in checked[2]
    notice = dialect.status_from(checked[3])
    assert (notice.final, notice.duration, notice.timestamp.isoformat()) == (
        True, 40, "2025-11-24T16:00:40+00:00")


def test_a_timeout_telnyx_cannot_wait_is_a_gap_at_its_node(tmp_path):
    from ivr.flow.loader import load_flow

    assert TelnyxDialect().gaps(demo_flow()) == []
    source = (ROOT / "flows" / "post_sale.yaml").read_text(encoding="utf-8")
    (tmp_path / "post_sale.yaml").write_text(source.replace("  timeout: 5\n", "  timeout: 150\n", 1),
                                             encoding="utf-8")
    gaps = TelnyxDialect().gaps(load_flow(tmp_path / "post_sale.yaml", ROOT / "prompts"))
    assert gaps and {gap.code for gap in gaps} == {"provider-timeout-range"}
    flow = demo_flow()
    assert {gap.node for gap in gaps} == {name for name, node in flow.nodes.items()
                                          if node.kind in ("menu", "input", "callback")
                                          and "timeout" not in node.opts}
    assert "120 seconds are used instead of 150" in gaps[0].message
    transfer = source.replace("    to: {queue: post-sale}\n", "    to: {queue: post-sale}\n    timeout: 3\n", 1)
    assert transfer != source
    (tmp_path / "post_sale.yaml").write_text(transfer, encoding="utf-8")
    gaps = TelnyxDialect().gaps(load_flow(tmp_path / "post_sale.yaml", ROOT / "prompts"))
    assert [(gap.field, gap.code) for gap in gaps] == [("timeout", "provider-timeout-range")]
    assert "lets a transfer ring 5 to 120 seconds; 5 seconds are used instead of 3" in gaps[0].message


def test_a_say_without_voice_in_french_gets_alice_and_the_change_is_logged_once(monkeypatch):
    from twisted.logger import Logger

    from ivr.providers.telnyx import render

    logged: list = []
    monkeypatch.setattr(render, "_log", Logger(observer=logged.append))
    monkeypatch.setattr(render, "_logged", set())
    actions = [act.Say("Bonjour.", language="fr-FR"), act.Say("Hello.", language="en-US"),
               act.Gather(prompts=(act.Say("Tapez 1.", language="fr-FR"),), timeout=200)]
    document = TelnyxDialect().render(actions, "/telnyx/voice/f?turn=1").decode()
    assert document.count('voice="alice"') == 2 and '<Say language="en-US">Hello.</Say>' in document
    TelnyxDialect().render(actions, "/telnyx/voice/f?turn=2")
    messages = sorted(event["message"] for event in logged)
    assert len(messages) == 2 and "120s used" in messages[0] and "alice used" in messages[1]


def test_the_registrys_test_keys_are_a_working_pair():
    public, private = PROVIDER.test_keys()
    assert public == public_key_of(private)


def test_the_server_refuses_an_expired_or_unsigned_request_and_writes_nothing(tmp_path):
    server = MemoryServer(tmp_path)  # Telnyx's routes hold the test public key
    now = int(server.clock.seconds())  # the server's clock, not the wall clock's
    url = f"{BASE}/telnyx/voice/post_sale"
    private = PROVIDER.test_keys()[1]
    for headers, reason in (({}, "missing telnyx-signature-ed25519"),
                            (signed(at=now - 301, key=private),
                             "telnyx-timestamp is more than 5 minutes away")):
        assert server.request(HttpRequest("POST", url, {"Content-Type": FORM, **headers}, BODY)) == (
            403, f"{reason}\n".encode())
    assert server.handler.describe(CALL) is None
    code, _ = server.request(HttpRequest("POST", url, {"Content-Type": FORM,
                                                       **signed(at=now - 299, key=private)}, BODY))
    assert code == 200 and server.handler.describe(CALL)["node"] is not None
    assert server.clock.getDelayedCalls() == []
