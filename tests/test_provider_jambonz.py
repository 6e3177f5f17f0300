"""jambonz: Jambonz-Signature (a vector checked by jambonz's own node-client),
the hooks as engine events and status notices, verbs as the fake jambonz
reads them, and the gaps."""

import importlib
import json
from pathlib import Path

import pytest

from ivr.engine import actions as act
from ivr.flow.loader import load_flow
from ivr.providers.dialect import Dialect, Refusal, WebhookRequest
from ivr.providers.fake_call import MarkupError
from ivr.providers.jambonz import verbs_check
from ivr.providers.jambonz.dialect import JambonzDialect
from ivr.providers.jambonz.fake import FakeJambonzCall
from ivr.providers.jambonz.signature import header_value
from ivr.providers.jambonz.verbs import render_verbs

ROOT = Path(__file__).parent.parent
CALL = "b6fe6d3c-2b0a-4a5b-9f83-6c3e3e0c1f00"
URL = "https://ivr.example/jambonz/voice/post_sale?turn=1"

# Computed with node 20: the header signed as jambonz-feature-server's
# lib/utils/base-requestor.js _computeSignature does, and accepted by
# @jambonz/node-client 0.4.11's WebhookResponse.verifyJambonzSignature at
# t + 10 s (refused at t + 301 s: "timestamp outside of tolerance").
VECTOR_SECRET = "wh_secret_cJzJ7yqXUbrs3bpQAq6hJm"
VECTOR_T = 1795000000
VECTOR_BODY = (b'{"call_sid":"b6fe6d3c-2b0a-4a5b-9f83-6c3e3e0c1f00","direction":"inbound",'
               b'"from":"+33612345678","to":"+33100000000","call_status":"in-progress",'
               b'"reason":"dtmfDetected","digits":"1"}')
VECTOR_HEADER = "t=1795000000,v1=e61550138a3431e0911e975558049880ffa89f8cb127cf16cc515eb9948f2582"


def request(body: bytes, header: str | None) -> WebhookRequest:
    headers = {b"jambonz-signature": header.encode()} if header is not None else {}
    return WebhookRequest("POST", URL, "application/json", body, {}, headers.get)


def dialect(at: float = VECTOR_T + 10) -> JambonzDialect:
    return JambonzDialect(clock=lambda: at)


# --- signatures ------------------------------------------------------------------------------


def test_the_node_client_vector_is_accepted_and_we_sign_it_the_same_way():
    dialect().verify(VECTOR_SECRET, request(VECTOR_BODY, VECTOR_HEADER), {})
    assert header_value(VECTOR_SECRET, VECTOR_T, VECTOR_BODY) == VECTOR_HEADER


def test_any_of_several_v1_signatures_may_match():
    header = f"t={VECTOR_T},v1={'0' * 64},{VECTOR_HEADER.split(',')[1]}"
    dialect().verify(VECTOR_SECRET, request(VECTOR_BODY, header), {})


@pytest.mark.parametrize("body, header, at, reason", [
    (VECTOR_BODY, None, VECTOR_T, "missing Jambonz-Signature"),
    (VECTOR_BODY, "v1=" + "a" * 64, VECTOR_T, "Jambonz-Signature has no timestamp or no v1 signature"),
    (VECTOR_BODY, f"t={VECTOR_T}", VECTOR_T, "Jambonz-Signature has no timestamp or no v1 signature"),
    (VECTOR_BODY, "t=1," + "v1=ab" * 200, VECTOR_T, "Jambonz-Signature is not a signature"),
    (VECTOR_BODY, "t=1,v1=é", VECTOR_T, "Jambonz-Signature is not a signature"),
    (VECTOR_BODY.replace(b'"1"', b'"2"'), VECTOR_HEADER, VECTOR_T,
     "Jambonz-Signature does not match this request"),
    (VECTOR_BODY, VECTOR_HEADER, VECTOR_T + 301, "Jambonz-Signature timestamp is outside the tolerance"),
    (VECTOR_BODY, VECTOR_HEADER, VECTOR_T - 301, "Jambonz-Signature timestamp is outside the tolerance"),
])
def test_unsigned_wrong_tampered_or_stale_requests_are_refused_with_403(body, header, at, reason):
    with pytest.raises(Refusal) as refused:
        dialect(at).verify(VECTOR_SECRET, request(body, header), {})
    assert (refused.value.code, refused.value.reason) == (403, reason)


def test_a_wrong_secret_is_refused():
    with pytest.raises(Refusal, match="does not match"):
        dialect().verify("another secret", request(VECTOR_BODY, VECTOR_HEADER), {})


def test_is_signed_looks_for_the_header():
    assert dialect().is_signed({b"jambonz-signature": b"t=1,v1=a"}.get)
    assert not dialect().is_signed({}.get)


# --- fields, events and notices -------------------------------------------------------------


def test_the_dialect_is_a_dialect_and_registered():
    assert isinstance(JambonzDialect(), Dialect)
    entry = importlib.import_module("ivr.providers.jambonz").PROVIDER
    assert (entry.name, entry.prefix, entry.secret_option) == (
        "jambonz", "jambonz/", "jambonz-webhook-secret")


def test_the_call_webhook_gives_the_call_and_its_numbers():
    d = dialect()
    params = d.check(d.parse(request(VECTOR_BODY, None)), d.voice_fields)
    facts = d.call_facts(params)
    assert (facts.call_id, facts.caller, facts.called) == (CALL, "+33612345678", "+33100000000")
    assert d.is_call_id(CALL) and not d.is_call_id("CA" + "0" * 32)


@pytest.mark.parametrize("fields, reason", [
    ({"from": "+33612345678"}, "missing call_sid"),
    ({"call_sid": "not-a-uuid"}, "call_sid must be a UUID"),
    ({"call_sid": CALL, "digits": "12a"}, "digits must be keys (0-9, * and #)"),
    ({"call_sid": CALL, "call_status": "exploded"},
     "call_status must be a jambonz call status such as completed"),
    ({"call_sid": CALL, "duration": 1e12}, "duration must be a whole number from 0 to 9999999"),
    ({"call_sid": CALL, "speech": {"alternatives": [{"transcript": "x" * 20000}]}},
     "speech longer than 16384 characters"),
])
def test_malformed_fields_are_refused_with_400(fields, reason):
    with pytest.raises(Refusal) as refused:
        dialect().check(fields, dialect().voice_fields)
    assert (refused.value.code, refused.value.reason) == (400, reason)


def test_a_body_that_is_not_a_json_object_is_refused():
    with pytest.raises(Refusal) as refused:
        dialect().parse(request(b"[1]", None))
    assert refused.value.code == 400
    with pytest.raises(Refusal) as refused:
        dialect().parse(WebhookRequest("POST", URL, "application/x-www-form-urlencoded", b"a=1",
                                       {}, {}.get))
    assert refused.value.code == 415


@pytest.mark.parametrize("body, state, event", [
    ({"reason": "dtmfDetected", "digits": "100312"}, {"waiting": "gather"},
     {"type": "digits", "digits": "100312"}),
    ({"reason": "speechDetected", "speech": {"is_final": True, "alternatives": [
        {"transcript": "où est mon colis", "confidence": 0.87}, {"transcript": "ou est"}]}},
     {"waiting": "gather"}, {"type": "speech", "text": "où est mon colis", "confidence": 0.87}),
    ({"reason": "speechDetected", "speech": {"alternatives": [{"transcript": "oui"}]}},
     {"waiting": "confirm"}, {"type": "speech", "text": "oui", "confidence": None}),
    ({"reason": "timeout"}, {"waiting": "gather"}, {"type": "silence"}),
    ({"reason": "error", "details": "stt failed"}, {"waiting": "gather"}, {"type": "silence"}),
    ({}, {"waiting": "gather"}, {"type": "silence"}),
    ({"dial_call_status": "completed", "dial_sip_status": 200}, {"waiting": "dial"},
     {"type": "dial_result", "status": "completed"}),
    ({"dial_call_status": "no-answer", "dial_sip_status": 487}, {"waiting": "dial"},
     {"type": "dial_result", "status": "no-answer"}),
    ({"dial_call_status": "busy"}, {"waiting": "dial"}, {"type": "dial_result", "status": "busy"}),
    ({"queue_result": "bridged", "queue_time": 42}, {"waiting": "dial"},
     {"type": "dial_result", "status": "completed", "queue_result": "bridged", "queue_seconds": 42}),
    ({"queue_result": "hangup", "queue_time": 12}, {"waiting": "dial"},
     {"type": "dial_result", "status": "completed", "queue_result": "hangup", "queue_seconds": 12}),
    ({"queue_result": "error"}, {"waiting": "dial"},
     {"type": "dial_result", "status": "failed", "queue_result": "error", "queue_seconds": None}),
    ({}, {"waiting": "record"}, {"type": "recorded", "url": None, "duration": None}),
])
def test_each_hook_becomes_its_engine_event(body, state, event):
    d = dialect()
    params = d.check({"call_sid": CALL, **body}, d.voice_fields)
    assert d.event_from(params, state) == event


def test_the_call_status_hook_is_a_notice_final_at_the_end():
    d = dialect()
    notice = d.status_from(d.check({"call_sid": CALL, "call_status": "completed", "duration": 42},
                                   d.status_fields))
    assert (notice.call_id, notice.status, notice.final, notice.duration) == (
        CALL, "completed", True, 42)
    assert d.status_from({"call_sid": CALL, "call_status": "ringing"}).final is False


# --- verbs -----------------------------------------------------------------------------------


def load(document: bytes) -> list[dict]:
    return verbs_check.load(document, URL)


def test_say_with_a_polly_voice_play_pause_and_hangup():
    verbs = load(render_verbs([act.Say("Bonjour", voice="Polly.Lea-Neural", language="fr-FR"),
                               act.Say("Hi", voice="alice", language="en-US", loop=2),
                               act.Play("https://cdn.example/a.mp3"), act.Pause(2), act.Hangup()],
                              URL))
    assert verbs == [
        {"verb": "say", "text": "<speak>Bonjour</speak>",
         "synthesizer": {"vendor": "aws", "voice": "Lea", "language": "fr-FR", "engine": "neural"}},
        {"verb": "say", "text": "<speak>Hi</speak>", "loop": 2},
        {"verb": "play", "url": "https://cdn.example/a.mp3"},
        {"verb": "pause", "length": 2},
        {"verb": "hangup"}]
    assert verbs_check.say(verbs[0]) == act.Say("Bonjour", voice="Polly.Lea-Neural", language="fr-FR")


def test_a_gather_nests_its_spoken_prompts_and_reports_to_the_next_url():
    gather = act.Gather(prompts=(act.Say("Tapez 1", language="fr-FR"), act.Pause(1),
                                 act.Say("ou dites oui", language="fr-FR")),
                        input="dtmf speech", num_digits=1, finish_on_key="", timeout=6,
                        hints=("oui", "non"), language="fr-FR")
    (verb,) = load(render_verbs([gather], URL))
    assert verb == {"verb": "gather", "input": ["digits", "speech"], "actionHook": URL, "timeout": 6,
                    "dtmfBargein": True, "numDigits": 1, "bargein": True,
                    "recognizer": {"language": "fr-FR", "hints": ["oui", "non"]},
                    "say": {"text": '<speak>Tapez 1<break time="1s"/>ou dites oui</speak>'}}
    keys = load(render_verbs([act.Gather(finish_on_key="#")], URL))[0]
    assert (keys["input"], keys["finishOnKey"], "numDigits" in keys) == (["digits"], "#", False)


def test_a_gather_with_mixed_prompts_plays_them_before_it():
    verbs = load(render_verbs([act.Gather(prompts=(act.Say("a"), act.Play("https://x/a.mp3")))], URL))
    assert [v["verb"] for v in verbs] == ["say", "play", "gather"]


def test_a_dial_carries_the_reason_as_headers_and_the_whisper_as_confirm_hook():
    dial = act.Dial(act.DialTarget("number", "+33123456789"), timeout=20, caller_id="+33100000000",
                    params=(("X-IVR-Reason", "return_request"), ("X-IVR-Call", CALL)),
                    whisper_url="https://ivr.example/whisper")
    (verb,) = load(render_verbs([dial], URL))
    assert verb == {"verb": "dial", "target": [{"type": "phone", "number": "+33123456789"}],
                    "actionHook": URL, "timeout": 20, "callerId": "+33100000000",
                    "headers": {"X-IVR-Reason": "return_request", "X-IVR-Call": CALL},
                    "confirmHook": "https://ivr.example/whisper?X-IVR-Reason=return_request"
                                   f"&X-IVR-Call={CALL}"}
    sip = load(render_verbs([act.Dial(act.DialTarget("sip", "sip:agent@pbx.example"))], URL))[0]
    assert sip["target"] == [{"type": "sip", "sipUri": "sip:agent@pbx.example"}]


def test_a_queue_is_a_jambonz_queue_and_a_redirect_is_a_redirect():
    assert load(render_verbs([act.Enqueue("post-sale", wait_url="https://ivr.example/wait",
                                          params=(("X-IVR-Reason", "lost"),))], URL)) == [
        {"verb": "enqueue", "name": "post-sale", "actionHook": URL,
         "waitHook": "https://ivr.example/wait?X-IVR-Reason=lost"}]
    poll = "https://ivr.example/jambonz/voice/f?turn=2&hold=1"
    assert load(render_verbs([act.Pause(2), act.Redirect(poll)], URL))[-1] == {
        "verb": "redirect", "actionHook": poll}


def test_a_record_goes_on_unrecorded():
    assert load(render_verbs([act.Record()], URL)) == [
        {"verb": "pause", "length": 1}, {"verb": "redirect", "actionHook": URL}]


@pytest.mark.parametrize("actions, message", [
    ([act.Lookup("r1", "orders_by_phone")], "cannot render"),
    ([act.Hangup(), act.Say("x")], "would never be reached"),
    ([act.Enqueue("q" * 65)], "queue name"),
    ([act.Dial(act.DialTarget("client", "bob"))], "unknown dial target kind"),
])
def test_what_verbs_cannot_hold_is_a_value_error(actions, message):
    with pytest.raises(ValueError, match=message):
        render_verbs(actions, URL)


@pytest.mark.parametrize("verbs, message", [
    ([{"verb": "record_voicemail"}], "not a jambonz verb"),
    ([{"verb": "listen", "url": "wss://x"}], "does not play"),
    ([{"say": "x"}], "with a 'verb'"),
    ([{"verb": "pause"}], "requires 'length'"),
    ([{"verb": "play", "url": 3}], "must be string|array"),
    ([{"verb": "dial", "target": []}], "non-empty array"),
    ([{"verb": "dial", "target": [{"type": "fax"}]}], "must be one of"),
    ([{"verb": "say", "text": "x", "synthesizer": {"voice": "Lea"}}], "requires 'vendor'"),
    ([{"verb": "gather", "numDigit": 1}], "no property 'numDigit'"),
    ([{"verb": "redirect"}], "requires 'actionHook'"),
])
def test_the_fake_refuses_verbs_jambonz_would_not_take(verbs, message):
    with pytest.raises(MarkupError, match=message):
        load(json.dumps(verbs).encode())


# --- the fake's requests ---------------------------------------------------------------------


def test_the_fake_posts_signed_json_and_follows_a_redirect():
    sent = []
    answers = iter([
        json.dumps([{"verb": "redirect", "actionHook": "https://ivr.example/jambonz/voice/f?turn=1"}]),
        json.dumps([{"verb": "gather", "input": ["digits"], "actionHook": URL, "finishOnKey": "#"}]),
        json.dumps([{"verb": "hangup"}]),
    ])

    def send(http_request):
        sent.append(http_request)
        return next(answers).encode()

    call = FakeJambonzCall(send, "+33612345678", "+33100000000", "https://ivr.example",
                           VECTOR_SECRET, clock=lambda: VECTOR_T)
    played = call.answer("https://ivr.example/jambonz/voice/f")
    assert len(played.documents) == 2 and call.next.wait == "gather"
    call.press("12#")
    assert json.loads(sent[-1].body)["digits"] == "12"
    assert json.loads(sent[-1].body)["reason"] == "dtmfDetected"
    assert call.next.wait == "over"
    for http_request in sent:
        dialect().verify(VECTOR_SECRET, request(http_request.body,
                                                http_request.headers["Jambonz-Signature"]), {})


# --- gaps ------------------------------------------------------------------------------------


def test_the_demo_flows_voicemail_is_a_gap_for_jambonz():
    flow = load_flow(ROOT / "flows" / "post_sale.yaml", ROOT / "prompts")
    gaps = JambonzDialect().gaps(flow)
    assert [(g.node, g.code) for g in gaps] == [("voicemail", "provider-no-record")]
