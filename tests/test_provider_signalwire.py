"""SignalWire (cXML): signatures against the vectors of SignalWire's own
SDK tests, field rules, events, rendering checked by the fake's reading
of SignalWire's documented verbs (the demo scenarios through every
provider's fake: tests/test_provider_scenarios.py)."""

from datetime import datetime, timezone
from urllib.parse import urlencode

import pytest
from provider_support import demo_flow

from ivr.engine import actions as act
from ivr.providers.dialect import Dialect, Refusal, WebhookRequest
from ivr.providers.fake_call import FakeCall, HttpRequest, MarkupError
from ivr.providers.markup_rules import problems
from ivr.providers.signalwire import PROVIDER
from ivr.providers.signalwire.dialect import SignalWireDialect
from ivr.providers.signalwire.fake import RULES, FakeSignalWireCall
from ivr.providers.signalwire.signature import body_signature, is_valid_signalwire_request
from ivr.providers.twilio.render import render_twiml

FORM = "application/x-www-form-urlencoded"
CALL = "a97d4e8a-6047-4e2b-be48-fb96b33b5642"
SIGNING_KEY = "PSK_test_signing_key"

# --- vectors from signalwire 2.1.1 (PyPI), signalwire/tests/test_request_validator.py ---
# Real SignalWire requests, recorded by SignalWire's SDK authors.
SDK_FORM_URL = "https://675d-189-71-169-171.ngrok-free.app/voice"
SDK_FORM_KEY = "PSK_V3bF8oyeRNpJWGoRWHNYQMUU"
SDK_FORM_SIGNATURE = b"muUMpldcBHlzuXGZ5gbw1ETZCYA="
SDK_FORM = {
    "CallSid": "a97d4e8a-6047-4e2b-be48-fb96b33b5642",
    "AccountSid": "6bfbbe86-a901-4197-8759-2a0de1fa319d", "ApiVersion": "2010-04-01",
    "Direction": "outbound-api", "From": "sip:+17063958228@sip.swire.io",
    "To": "sip:jpsantos@joaosantos-2a0de1fa319d.sip.swire.io",
    "Timestamp": "Thu, 09 Nov 2023 14:40:55 +0000", "CallStatus": "no-answer",
    "CallbackSource": "call-progress-events", "HangupDirection": "outbound",
    "HangupBy": "sip:+17063958228@sip.swire.io", "SipResultCode": "487"}
SDK_JSON_URL = "https://81f2-2-45-18-191.ngrok-free.app/"
SDK_JSON_KEY = "PSK_7TruNcSNTxp4zNrykMj4EPzF"
SDK_JSON_SIGNATURE = "b18500437ebb010220ddd770cbe6fd531ea0ba0d"
SDK_JSON_BODY = (
    b'{"call":{"call_id":"b5d63b2e-f75b-4dc8-b6d4-269b635f96c0","node_id":"fa3570ae-f8bd-42c2-83f4-'
    b'9950d906c91b@us-west","segment_id":"b5d63b2e-f75b-4dc8-b6d4-269b635f96c0","call_state":"created",'
    b'"direction":"inbound","type":"phone","from":"+12135877632","to":"+12089806814","from_number":'
    b'"+12135877632","to_number":"+12089806814","project_id":"4b7ae78a-d02e-4889-a63b-08b156d5916e",'
    b'"space_id":"62615f44-2a34-4235-b38b-76b5a1de6ef8"},"vars":{}}')


def request(url, body: bytes, headers: dict[bytes, bytes], content_type=FORM) -> WebhookRequest:
    return WebhookRequest("POST", url, content_type, body, {}, headers.get)


def form_request(url, fields: dict, headers: dict[bytes, bytes]) -> tuple[WebhookRequest, dict]:
    webhook = request(url, urlencode(fields).encode(), headers)
    return webhook, SignalWireDialect().parse(webhook)


def test_the_dialect_and_fake_are_what_the_protocols_ask():
    entry = PROVIDER
    assert isinstance(entry.dialect(), Dialect) and entry.prefix == "signalwire/"
    assert isinstance(entry.fake(lambda r: b"", "+33612345678", "+33100000000", "http://x", None), FakeCall)
    assert (entry.secret_option, entry.secret_env) == ("signalwire-signing-key", "SIGNALWIRE_SIGNING_KEY")


def test_a_real_signalwire_form_request_verifies_with_the_sdks_vector():
    webhook, fields = form_request(SDK_FORM_URL, SDK_FORM, {b"x-signalwire-signature": SDK_FORM_SIGNATURE})
    SignalWireDialect().verify(SDK_FORM_KEY, webhook, fields)
    # The same signature under Twilio's header name: the documented alias.
    webhook, fields = form_request(SDK_FORM_URL, SDK_FORM, {b"x-twilio-signature": SDK_FORM_SIGNATURE})
    SignalWireDialect().verify(SDK_FORM_KEY, webhook, fields)


def test_a_raw_body_is_signed_in_hex_over_the_url_and_body():
    assert body_signature(SDK_JSON_KEY, SDK_JSON_URL, SDK_JSON_BODY) == SDK_JSON_SIGNATURE
    assert is_valid_signalwire_request(SDK_JSON_KEY, SDK_JSON_URL, {}, SDK_JSON_SIGNATURE.encode(),
                                       SDK_JSON_BODY)
    # Signed without the port, checked under the URL with :443, as the SDK does.
    with_port = SDK_JSON_URL.replace(".app/", ".app:443/")
    assert is_valid_signalwire_request(SDK_JSON_KEY, with_port, {}, SDK_JSON_SIGNATURE.encode(),
                                       SDK_JSON_BODY)
    assert not is_valid_signalwire_request(SDK_JSON_KEY, SDK_JSON_URL, {}, SDK_JSON_SIGNATURE.encode(),
                                           SDK_JSON_BODY + b" ")


@pytest.mark.parametrize("headers, reason", [
    ({}, "missing X-SignalWire-Signature"),
    ({b"x-signalwire-signature": b"x" * 200}, "X-SignalWire-Signature is not a signature"),
    ({b"x-signalwire-signature": "é".encode()}, "X-SignalWire-Signature is not a signature"),
    ({b"x-signalwire-signature": b"AAAAAAAAAAAAAAAAAAAAAAAAAAA="},
     "X-SignalWire-Signature does not match this request"),
])
def test_unsigned_malformed_or_wrong_signatures_are_refused(headers, reason):
    webhook, fields = form_request(SDK_FORM_URL, SDK_FORM, headers)
    with pytest.raises(Refusal) as refused:
        SignalWireDialect().verify(SDK_FORM_KEY, webhook, fields)
    assert (refused.value.code, refused.value.reason) == (403, reason)


def test_a_tampered_field_or_another_key_is_refused():
    tampered = {**SDK_FORM, "CallStatus": "completed"}
    for key, fields in ((SDK_FORM_KEY, tampered), ("PSK_other", SDK_FORM)):
        webhook, parsed = form_request(SDK_FORM_URL, fields, {b"x-signalwire-signature": SDK_FORM_SIGNATURE})
        with pytest.raises(Refusal, match="does not match"):
            SignalWireDialect().verify(key, webhook, parsed)


def test_fields_take_signalwire_uuids_and_refuse_twilio_sids():
    dialect = SignalWireDialect()
    params = dialect.check({k: [v] for k, v in SDK_FORM.items()}, dialect.voice_fields)
    assert params["CallSid"] == CALL and dialect.is_call_id(CALL)
    assert not dialect.is_call_id("CA" + "0" * 32)
    for bad, reason in ((["CA" + "0" * 32], "CallSid must be a UUID"), ([""], "missing CallSid")):
        with pytest.raises(Refusal) as refused:
            dialect.check({"CallSid": bad}, dialect.voice_fields)
        assert (refused.value.code, refused.value.reason) == (400, reason)
    with pytest.raises(Refusal, match="Digits must be keys"):
        dialect.check({"CallSid": [CALL], "Digits": ["12a"]})


@pytest.mark.parametrize("params, waiting, event", [
    ({"Digits": "1"}, "gather", {"type": "digits", "digits": "1"}),
    ({"SpeechResult": "mon colis", "Confidence": "0.82"}, "gather",
     {"type": "speech", "text": "mon colis", "confidence": 0.82}),
    ({}, "gather", {"type": "silence"}),
    ({"DialCallStatus": "no-answer"}, "dial", {"type": "dial_result", "status": "no-answer"}),
    ({"QueueResult": "hangup", "QueueTime": "42"}, "dial",
     {"type": "dial_result", "status": "completed", "queue_result": "hangup", "queue_seconds": 42}),
    ({"RecordingUrl": "https://r.invalid/a.wav", "RecordingDuration": "12"}, "record",
     {"type": "recorded", "url": "https://r.invalid/a.wav", "duration": "12"}),
])
def test_requests_become_the_engines_events(params, waiting, event):
    assert SignalWireDialect().event_from({"CallSid": CALL, **params}, {"waiting": waiting}) == event


def test_the_status_callback_is_a_notice_with_duration_and_time():
    notice = SignalWireDialect().status_from({"CallSid": CALL, "CallStatus": "completed",
                                              "CallDuration": "42", "Timestamp": SDK_FORM["Timestamp"]})
    assert (notice.call_id, notice.final, notice.duration) == (CALL, True, 42)
    assert notice.timestamp == datetime(2023, 11, 9, 14, 40, 55, tzinfo=timezone.utc)


GATHER = act.Gather(prompts=(act.Say("Bonjour.", voice="Polly.Lea-Neural", language="fr-FR"),),
                    input="dtmf speech", num_digits=1, finish_on_key="", timeout=5,
                    speech_timeout="auto", hints=("agent", "retour"), language="fr-FR")
EVERY_ACTION = [
    [act.Say("Un instant.", language="fr-FR"), act.Play("https://x.invalid/a.mp3"), act.Pause(2),
     act.Redirect("http://ivr.test/signalwire/voice/f?turn=1&hold=1")],
    [GATHER],
    [act.Dial(act.DialTarget("number", "+33100000001"), timeout=20,
              params=(("reason", "return"), ("order", "100234")),
              whisper_url="http://ivr.test/signalwire/whisper")],
    [act.Enqueue("post-sale", wait_url="http://ivr.test/hold", params=(("reason", "return"),))],
    [act.Record(max_length=60)],
    [act.Say("Au revoir."), act.Hangup()],
]


@pytest.mark.parametrize("actions", EVERY_ACTION, ids=lambda a: "+".join(type(x).__name__ for x in a))
def test_every_action_renders_as_cxml_signalwire_can_play(actions):
    document = SignalWireDialect().render(actions, "http://ivr.test/signalwire/voice/f?turn=1")
    assert problems(document, RULES) == []
    scripted = iter([document, b"<Response />"])  # the redirect, if any, is followed
    call = FakeSignalWireCall(lambda r: next(scripted), "+33612345678", "+33100000000", "http://ivr.test")
    played = call.answer("http://ivr.test/signalwire/voice/f")
    kinds = [type(a).__name__ for a in played.actions]
    assert kinds == [type(a).__name__ for a in actions]


def test_the_gather_keeps_its_attributes_and_a_redirect_for_a_silent_caller():
    document = SignalWireDialect().render([GATHER], "http://ivr.test/signalwire/voice/f?turn=1").decode()
    assert 'hints="agent, retour"' in document and 'speechTimeout="auto"' in document
    assert 'voice="Polly.Lea-Neural"' in document
    assert document.endswith('<Redirect method="POST">http://ivr.test/signalwire/voice/f?turn=1</Redirect>'
                             "</Response>")


def test_google_voices_are_spelled_as_signalwire_spells_them():
    gather = act.Gather(prompts=(act.Say("Hi.", voice="Google.en-US-Standard-C"),))
    actions = [act.Say("Hello.", voice="Google.en-GB-Wavenet-A"), gather]
    document = SignalWireDialect().render(actions, "/signalwire/voice/f?turn=1")
    assert document.count(b'voice="gcloud.') == 2 and b"Google." not in document
    assert problems(document, RULES) == []
    twiml = render_twiml(actions, "/signalwire/voice/f?turn=1")
    assert any("must be man, woman, alice" in p for p in problems(twiml, RULES))


def test_the_fake_refuses_what_signalwire_could_not_play():
    for body in (b"<Response><Speak>hi</Speak></Response>", b"<Response><Gather input=\"keys\" /></Response>",
                 b"<Response><Gather timout=\"5\" /></Response>", b"not xml"):
        call = FakeSignalWireCall(lambda r, body=body: body, "+33612345678", "+33100000000", "http://x")
        with pytest.raises(MarkupError):
            call.answer("http://x/signalwire/voice/f")


def test_the_fakes_requests_are_signalwires():
    sent: list[HttpRequest] = []

    def send(request):
        sent.append(request)
        return b'<?xml version="1.0" encoding="UTF-8"?><Response><Gather action="/signalwire/voice/f?turn=1" ' \
               b'numDigits="1" /><Redirect>/signalwire/voice/f?turn=1</Redirect></Response>'

    call = FakeSignalWireCall(send, "+33612345678", "+33100000000", "http://ivr.test", SIGNING_KEY)
    call.answer("http://ivr.test/signalwire/voice/f")
    call.press("42")
    call.hang_up(30, datetime(2026, 11, 24, 9, 0, 30, tzinfo=timezone.utc))
    urls = [r.url for r in sent]
    assert urls == ["http://ivr.test/signalwire/voice/f", "http://ivr.test/signalwire/voice/f?turn=1",
                    "http://ivr.test/signalwire/status"]
    dialect = SignalWireDialect()
    for one in sent:
        webhook = request(one.url, one.body, {k.lower().encode(): v.encode() for k, v in one.headers.items()})
        fields = dialect.parse(webhook)
        dialect.verify(SIGNING_KEY, webhook, fields)
        assert dialect.check(fields)["CallSid"] == call.call_id
    assert dialect.parse(request(urls[1], sent[1].body, {}))["Digits"] == ["4"]
    status = dialect.status_from(dialect.check(dialect.parse(request(urls[2], sent[2].body, {}))))
    assert (status.final, status.duration) == (True, 30)


def test_cxml_has_no_gap_for_the_demo_flow():
    assert SignalWireDialect().gaps(demo_flow()) == []

