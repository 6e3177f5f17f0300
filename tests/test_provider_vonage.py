"""Vonage: the signed-webhook JWT (against Vonage's own SDK code), the
webhooks as engine events and status notices, NCCO as the fake Vonage reads
it, and the gaps."""

import hashlib
import importlib
import json
from pathlib import Path

import jwt
import pytest
from vonage_jwt import verify_signature

from ivr.engine import actions as act
from ivr.flow.loader import load_flow
from ivr.providers.bodies import parse_form
from ivr.providers.dialect import Dialect, Refusal, WebhookRequest
from ivr.providers.fake_call import MarkupError
from ivr.providers.registry import PROVIDER_PACKAGES
from ivr.providers.vonage import ncco_check
from ivr.providers.vonage.dialect import VonageDialect
from ivr.providers.vonage.fake import FakeVonageCall
from ivr.providers.vonage.ncco import render_ncco
from ivr.providers.vonage.signature import sign

ROOT = Path(__file__).parent.parent
SECRET = "a-signature-secret-of-32-chars!!"
NOW = 1_795_000_000
CALL = "CON-aaaaaaaa-bbbb-cccc-dddd-0123456789ab"
LEG = "aaaaaaaa-bbbb-cccc-dddd-0123456789ab"
URL = "https://ivr.example/vonage/voice/post_sale?turn=1"


def post(body: dict, token: str | None = None, raw: bytes | None = None) -> WebhookRequest:
    data = raw if raw is not None else json.dumps(body, separators=(",", ":")).encode()
    headers = {b"authorization": f"Bearer {token}".encode()} if token else {}
    return WebhookRequest("POST", URL, "application/json", data, {}, headers.get)


def claims(payload_hash: str, **extra) -> dict:
    return {"iat": NOW, "jti": "j1", "iss": "Vonage", "payload_hash": payload_hash,
            "api_key": "abcd1234", "application_id": LEG, **extra}


def dialect() -> VonageDialect:
    return VonageDialect(clock=lambda: NOW + 10)


# --- signed webhooks -------------------------------------------------------------------------


def test_a_token_made_by_pyjwt_the_sdks_library_is_accepted():
    body = {"conversation_uuid": CALL, "uuid": LEG, "dtmf": {"digits": "1", "timed_out": False}}
    raw = json.dumps(body).encode()
    token = jwt.encode(claims(hashlib.sha256(raw).hexdigest()), SECRET, algorithm="HS256")
    dialect().verify(SECRET, post(body, token, raw), body)


def test_our_fake_signs_tokens_the_vonage_sdk_verifies():
    token = sign(SECRET, claims("00"))
    assert verify_signature(token, SECRET) is True
    assert verify_signature(token, "another secret of the same size!") is False


def test_a_get_answer_signs_its_query_as_compact_json_in_order():
    query = {"to": ["33100000000"], "from": ["33612345678"], "conversation_uuid": [CALL],
             "uuid": [LEG]}
    text = json.dumps({k: v[0] for k, v in query.items()}, separators=(",", ":"))
    token = jwt.encode(claims(hashlib.sha256(text.encode()).hexdigest()), SECRET, algorithm="HS256")
    request = WebhookRequest("GET", URL, "", b"", query,
                             {b"authorization": f"Bearer {token}".encode()}.get)
    dialect().verify(SECRET, request, {})
    reordered = dict(reversed(list(query.items())))
    with pytest.raises(Refusal, match="payload_hash"):
        dialect().verify(SECRET, WebhookRequest("GET", URL, "", b"", reordered, request.header), {})


@pytest.mark.parametrize("case, reason", [
    ("missing", "missing Authorization"),
    ("basic", "Authorization is not a Bearer JWT"),
    ("garbage", "Authorization is not a Bearer JWT"),
    ("huge", "Authorization is not a Vonage token"),
    ("wrong secret", "the Vonage token's signature does not match"),
    ("tampered body", "the Vonage token's payload_hash does not match the body"),
    ("stale", "the Vonage token is stale"),
    ("no iat", "the Vonage token has no issue time"),
    ("expired", "the Vonage token has expired"),
    ("none alg", "the Vonage token is not HS256"),
])
def test_unsigned_wrong_tampered_or_stale_requests_are_refused_with_403(case, reason):
    body = {"conversation_uuid": CALL}
    raw = json.dumps(body).encode()
    good = hashlib.sha256(raw).hexdigest()
    tokens = {
        "missing": None, "basic": None, "garbage": "not.a.jwt",
        "huge": "x" * 5000,
        "wrong secret": jwt.encode(claims(good), "another secret of the same size!", algorithm="HS256"),
        "tampered body": jwt.encode(claims(hashlib.sha256(b"{}").hexdigest()), SECRET, algorithm="HS256"),
        "stale": jwt.encode({**claims(good), "iat": NOW - 3600}, SECRET, algorithm="HS256"),
        "no iat": jwt.encode({k: v for k, v in claims(good).items() if k != "iat"}, SECRET,
                             algorithm="HS256"),
        "expired": jwt.encode(claims(good, exp=NOW), SECRET, algorithm="HS256"),
        "none alg": jwt.encode(claims(good), None, algorithm="none"),
    }
    request = post(body, tokens[case], raw)
    if case == "basic":
        request = WebhookRequest("POST", URL, "application/json", raw, {},
                                 {b"authorization": b"Basic dXNlcjpwYXNz"}.get)
    with pytest.raises(Refusal) as refused:
        dialect().verify(SECRET, request, body)
    assert (refused.value.code, refused.value.reason) == (403, reason)
    assert SECRET not in refused.value.reason


def test_is_signed_looks_for_a_bearer_token():
    assert dialect().is_signed({b"authorization": b"Bearer x.y.z"}.get)
    assert not dialect().is_signed({}.get)


# --- fields, events and notices -------------------------------------------------------------


def test_the_dialect_is_a_dialect_and_registered():
    assert isinstance(VonageDialect(), Dialect)
    entry = importlib.import_module("ivr.providers.vonage").PROVIDER
    assert (entry.prefix, entry.secret_env) == ("vonage/", "VONAGE_SIGNATURE_SECRET")
    assert "vonage" in PROVIDER_PACKAGES


def test_a_get_answer_is_parsed_from_its_query_and_numbers_get_their_plus():
    request = WebhookRequest("GET", URL, "", b"", {"to": ["33100000000"], "from": ["33612345678"],
                                                   "conversation_uuid": [CALL], "uuid": [LEG]},
                             {}.get)
    d = dialect()
    params = d.check(d.parse(request), d.voice_fields)
    facts = d.call_facts(params)
    assert (facts.call_id, facts.caller, facts.called) == (CALL, "+33612345678", "+33100000000")


@pytest.mark.parametrize("fields, reason", [
    ({"uuid": LEG}, "missing conversation_uuid"),
    ({"conversation_uuid": "CON-123"}, "conversation_uuid must be CON-and a UUID"),
    ({"conversation_uuid": CALL, "from": "3" * 200}, "from longer than 128 characters"),
    ({"conversation_uuid": CALL, "status": "exploded"},
     "status must be a Vonage call status such as completed"),
    ({"conversation_uuid": CALL, "duration": "-1"}, "duration must be a whole number from 0 to 9999999"),
    ({"conversation_uuid": CALL, "speech": {"results": [{"text": "a\x00b"}]}},
     "speech holds a control character"),
    ({"conversation_uuid": CALL, "status": "ringing"}, "a call progress event is not a turn's answer"),
])
def test_malformed_fields_are_refused_with_400(fields, reason):
    with pytest.raises(Refusal) as refused:
        dialect().check(fields, dialect().voice_fields)
    assert (refused.value.code, refused.value.reason) == (400, reason)


def test_a_progress_event_is_a_status_notice_at_the_event_url():
    d = dialect()
    params = d.check({"conversation_uuid": CALL, "uuid": LEG, "status": "ringing"}, d.status_fields)
    assert d.status_from(params).final is False


@pytest.mark.parametrize("body, state, event", [
    ({"dtmf": {"digits": "42", "timed_out": False}}, {"waiting": "gather"},
     {"type": "digits", "digits": "42"}),
    ({"dtmf": "7"}, {"waiting": "gather"}, {"type": "digits", "digits": "7"}),
    ({"dtmf": {"digits": None, "timed_out": False},
      "speech": {"timeout_reason": "end_on_silence_timeout",
                 "results": [{"confidence": "0.9405097", "text": "Support"},
                             {"confidence": "0.70543784", "text": "Supper"}]}},
     {"waiting": "gather"}, {"type": "speech", "text": "Support", "confidence": 0.9405097}),
    ({"speech": {"results": [{"confidence": "high", "text": "oui"}]}}, {"waiting": "confirm"},
     {"type": "speech", "text": "oui", "confidence": None}),
    ({"dtmf": {"digits": None, "timed_out": True}, "speech": {"timeout_reason": "start_timeout"}},
     {"waiting": "gather"}, {"type": "silence"}),
    ({"payload": {"ivr": "poll"}}, {"waiting": "gather"}, {"type": "silence"}),
    ({"status": "completed", "duration": "60"}, {"waiting": "dial"},
     {"type": "dial_result", "status": "completed"}),
    ({"status": "busy"}, {"waiting": "dial"}, {"type": "dial_result", "status": "busy"}),
    ({"status": "timeout"}, {"waiting": "dial"}, {"type": "dial_result", "status": "no-answer"}),
    ({"status": "unanswered"}, {"waiting": "dial"}, {"type": "dial_result", "status": "no-answer"}),
    ({"status": "cancelled"}, {"waiting": "dial"}, {"type": "dial_result", "status": "canceled"}),
    ({"status": "rejected"}, {"waiting": "dial"}, {"type": "dial_result", "status": "failed"}),
    ({"status": "completed"}, {"waiting": "dial", "handoff": {"kind": "queue"}},
     {"type": "dial_result", "status": "completed", "queue_result": "bridged",
      "queue_seconds": None}),
    # The caller hung up in the conversation standing in for the queue.
    ({"status": "cancelled"}, {"waiting": "dial", "handoff": {"kind": "queue"}},
     {"type": "dial_result", "status": "completed", "queue_result": "hangup",
      "queue_seconds": None}),
    ({"status": "busy"}, {"waiting": "dial", "handoff": {"kind": "queue"}},
     {"type": "dial_result", "status": "busy", "queue_result": "error", "queue_seconds": None}),
    ({"recording_url": "https://api.nexmo.com/v1/files/x", "start_time": "2020-01-01T12:00:00.000Z",
      "end_time": "2020-01-01T12:00:25.000Z"}, {"waiting": "record"},
     {"type": "recorded", "url": "https://api.nexmo.com/v1/files/x", "duration": 25}),
    ({"payload": {"ivr": "transfer"}}, {"waiting": "dial"}, {"type": "dial_result", "status": "failed"}),
    ({"payload": {"ivr": "recorded"}}, {"waiting": "record"},
     {"type": "recorded", "url": None, "duration": None}),
])
def test_each_request_shape_becomes_its_engine_event(body, state, event):
    d = dialect()
    params = d.check({"conversation_uuid": CALL, **body}, d.voice_fields)
    assert d.event_from(params, state) == event


def test_the_sdks_sample_shapes_are_read():
    # As in vonage-dotnet-sdk Vonage.Test/Voice/Data: a record event without
    # uuid, a confidence written ".91", timed_out as a string.
    d = dialect()
    record = d.check({"timestamp": "2020-01-01T12:00:00.000Z", "start_time": "2020-01-01T12:00:00.000Z",
                      "end_time": "2020-01-01T12:00:01.000Z", "size": 12222,
                      "recording_url": "https://api.nexmo.com/v1/files/bbbbbbbb-aaaa-cccc-dddd-0123456789ab",
                      "recording_uuid": LEG, "conversation_uuid": CALL}, d.voice_fields)
    assert d.event_from(record, {"waiting": "record"})["duration"] == 1
    speech = d.check({"from": "442079460000", "to": "447700900000", "uuid": LEG,
                      "conversation_uuid": CALL, "timed_out": "true", "timestamp": "2020-01-01T12:00:00.000Z",
                      "speech": {"results": [{"text": "hello world", "confidence": ".91"}],
                                 "error": "foo", "timeout_reason": "bar"}}, d.voice_fields)
    assert d.event_from(speech, {"waiting": "gather"}) == {"type": "speech", "text": "hello world",
                                                           "confidence": 0.91}


def test_the_completed_event_is_a_final_notice_with_duration_and_end_time():
    d = dialect()
    params = d.check({"conversation_uuid": CALL, "uuid": LEG, "status": "completed",
                      "duration": "42", "end_time": "2026-11-24T09:05:03.000Z",
                      "timestamp": "2026-11-24T09:05:04.000Z"}, d.status_fields)
    notice = d.status_from(params)
    assert (notice.call_id, notice.status, notice.final, notice.duration) == (
        CALL, "completed", True, 42)
    assert notice.timestamp.isoformat() == "2026-11-24T09:05:03+00:00"
    assert d.status_from({"conversation_uuid": CALL, "status": "answered"}).final is False


# --- NCCO ------------------------------------------------------------------------------------


def load(document: bytes) -> list[dict]:
    return ncco_check.load(document, URL)


def test_say_play_and_pause_become_talk_stream_and_a_silent_talk():
    document = render_ncco([act.Say("Bonjour &amp; <break time=\"1s\"/>", language="fr-FR", loop=2),
                            act.Play("https://cdn.example/a.mp3"), act.Pause(12)], URL)
    ncco = load(document)
    assert ncco[0] == {"action": "talk", "text": '<speak>Bonjour &amp; <break time="1s"/></speak>',
                       "loop": 2, "language": "fr-FR"}
    assert ncco[1] == {"action": "stream", "streamUrl": ["https://cdn.example/a.mp3"]}
    assert [ncco_check.prompt(a) for a in ncco[2:]] == [act.Pause(10), act.Pause(2)]


def test_a_gather_is_barge_in_prompts_then_an_input_that_reports_to_the_next_url():
    gather = act.Gather(prompts=(act.Say("Tapez 1", language="fr-FR"), act.Pause(1)),
                        input="dtmf speech", num_digits=1, finish_on_key="", timeout=6,
                        hints=("oui", "non"), language="fr-FR")
    ncco = load(render_ncco([gather], URL))
    assert [a.get("bargeIn") for a in ncco[:2]] == [True, True]
    assert ncco[2] == {"action": "input", "type": ["dtmf", "speech"], "eventUrl": [URL],
                       "eventMethod": "POST",
                       "dtmf": {"timeOut": 6, "maxDigits": 1, "submitOnHash": False},
                       "speech": {"startTimeout": 6, "language": "fr-FR", "context": ["oui", "non"]}}


def test_an_input_without_a_digit_count_takes_twenty_keys_not_vonages_four():
    ncco = load(render_ncco([act.Gather(finish_on_key="#", timeout=30)], URL))
    assert ncco[0]["dtmf"] == {"timeOut": 10, "maxDigits": 20, "submitOnHash": True}


def test_a_dial_is_a_synchronous_connect_with_the_whisper_on_answer():
    dial = act.Dial(act.DialTarget("number", "+33123456789"), timeout=20, caller_id="+33100000000",
                    params=(("X-IVR-Reason", "return_request"), ("X-IVR-Call", CALL)),
                    whisper_url="https://ivr.example/whisper")
    connect, notify = load(render_ncco([act.Say("Un instant"), dial], URL))[1:]
    # Busy or unavailable, the connect ends and the notify fetches the turn's answer.
    assert notify == {"action": "notify", "payload": {"ivr": "transfer"}, "eventUrl": [URL],
                      "eventMethod": "POST"}
    assert connect == {
        "action": "connect", "eventType": "synchronous", "eventUrl": [URL], "eventMethod": "POST",
        "from": "33100000000", "timeout": 20,
        "endpoint": [{"type": "phone", "number": "33123456789", "onAnswer": {
            "url": f"https://ivr.example/whisper?X-IVR-Reason=return_request&X-IVR-Call={CALL}"}}]}
    sip = load(render_ncco([act.Dial(act.DialTarget("sip", "sip:agent@pbx.example"),
                                     params=(("X-IVR-Reason", "lost"),))], URL))[0]
    assert sip["endpoint"] == [{"type": "sip", "uri": "sip:agent@pbx.example",
                                "headers": {"X-IVR-Reason": "lost"}}]
    assert sip["randomFromNumber"] is True


def test_a_queue_is_a_conversation_the_caller_waits_in():
    for action in (act.Enqueue("post-sale"), act.Dial(act.DialTarget("queue", "post-sale"))):
        assert load(render_ncco([action], URL))[0] == {
            "action": "conversation", "name": "post-sale", "startOnEnter": False,
            "eventUrl": [URL], "eventMethod": "POST"}


def test_a_record_reports_its_recording_then_a_notify_fetches_the_next_ncco():
    ncco = load(render_ncco([act.Record(max_length=120, timeout=5, finish_on_key="#")], URL))
    assert ncco == [
        {"action": "record", "timeOut": 120, "endOnSilence": 5, "beepStart": True,
         "eventUrl": [URL], "eventMethod": "POST", "endOnKey": "#"},
        {"action": "notify", "payload": {"ivr": "recorded"}, "eventUrl": [URL],
         "eventMethod": "POST"}]


def test_a_redirect_is_a_notify_and_a_hangup_is_the_end_of_the_actions():
    poll = "https://ivr.example/vonage/voice/f?turn=2&hold=1"
    assert load(render_ncco([act.Say("Un instant"), act.Pause(2), act.Redirect(poll)], URL))[-1] == {
        "action": "notify", "payload": {"ivr": "poll"}, "eventUrl": [poll], "eventMethod": "POST"}
    assert render_ncco([act.Say("Au revoir"), act.Hangup()], URL).endswith(b"</speak>\"}]")
    assert render_ncco([act.Hangup()], URL) == b"[]"


@pytest.mark.parametrize("actions, message", [
    ([act.Lookup("r1", "orders_by_phone")], "cannot render"),
    ([act.Hangup(), act.Say("x")], "would never be reached"),
    ([act.Say("x" * 1600)], "Vonage takes 1500"),
    ([act.Dial(act.DialTarget("number", "call me"))], "not an international phone number"),
    ([act.Dial(act.DialTarget("client", "bob"))], "unknown dial target kind"),
])
def test_what_ncco_cannot_hold_is_a_value_error(actions, message):
    with pytest.raises(ValueError, match=message):
        render_ncco(actions, URL)


@pytest.mark.parametrize("ncco, message", [
    ([{"action": "hangup"}], "not a documented NCCO action"),
    ([{"action": "talk"}], "text is required"),
    ([{"action": "talk", "text": "x", "voice": "Amy"}], "has no field 'voice'"),
    ([{"action": "input", "type": ["dtmf"], "dtmf": {"timeOut": 11}}], "from 0 to 10"),
    ([{"action": "input", "type": ["dtmf"], "dtmf": {"maxDigits": 21}}], "from 1 to 20"),
    ([{"action": "input", "type": ["keys"]}], "dtmf and/or speech"),
    ([{"action": "input", "type": ["dtmf"], "eventUrl": "https://x"}], "array of one"),
    ([{"action": "talk", "text": "x", "bargeIn": True}], "bargeIn needs an input"),
    ([{"action": "connect", "endpoint": [{"type": "phone", "number": "33123456789"}]}],
     "exactly one of from and randomFromNumber"),
    ([{"action": "record", "timeOut": 2}], "from 3 to 7200"),
    ([{"action": "notify", "eventUrl": ["https://x"]}], "payload"),
])
def test_the_fake_refuses_an_ncco_vonage_could_not_play(ncco, message):
    with pytest.raises(MarkupError, match=message):
        load(json.dumps(ncco).encode())
    with pytest.raises(MarkupError, match="JSON array"):
        load(b'{"action": "talk"}')


# --- the fake's requests ---------------------------------------------------------------------


def test_the_fake_answers_with_a_signed_get_then_posts_signed_json():
    sent = []

    def send(request):
        sent.append(request)
        if request.method == "GET":
            return json.dumps([{"action": "input", "type": ["dtmf"], "eventUrl": [URL],
                               "dtmf": {"submitOnHash": True}}]).encode()
        return b"[]"

    call = FakeVonageCall(send, "+33612345678", "+33100000000", "https://ivr.example", SECRET,
                          clock=lambda: NOW)
    call.answer("https://ivr.example/vonage/voice/post_sale")
    call.press("12#")
    get, posted = sent
    assert get.url.startswith("https://ivr.example/vonage/voice/post_sale?to=33100000000&from=33612345678")
    assert json.loads(posted.body)["dtmf"] == {"digits": "12", "timed_out": False}
    assert call.next.wait == "over"
    d = dialect()
    for request in sent:
        query = parse_form(request.url.partition("?")[2])
        webhook = WebhookRequest(request.method, request.url, "application/json" if request.body else "",
                                 request.body, query,
                                 {k.lower().encode(): v.encode() for k, v in request.headers.items()}.get)
        d.verify(SECRET, webhook, {})


# --- gaps ------------------------------------------------------------------------------------


def test_the_demo_flows_queue_is_a_gap_for_vonage():
    flow = load_flow(ROOT / "flows" / "post_sale.yaml", ROOT / "prompts")
    gaps = VonageDialect().gaps(flow)
    assert [(g.node, g.field, g.code) for g in gaps] == [("agent", "to", "provider-no-queue")]
    assert "conversation" in gaps[0].message


def test_the_fake_plays_a_hold_then_the_ncco_its_notify_fetches():
    poll = "https://ivr.example/vonage/voice/f?turn=1&hold=1"
    hold = render_ncco([act.Say("Un instant"), act.Pause(2), act.Redirect(poll)], URL)
    answers = iter([hold, render_ncco([act.Gather(prompts=(act.Say("Tapez 1"),))], URL)])
    sent = []

    def send(request):
        sent.append(request)
        return next(answers)

    call = FakeVonageCall(send, "+33612345678", "+33100000000", "https://ivr.example")
    played = call.answer("https://ivr.example/vonage/voice/f")
    assert [r.url for r in sent][1] == poll
    assert json.loads(sent[1].body)["payload"] == {"ivr": "poll"}
    assert json.loads(sent[1].body)["conversation_uuid"] == call.call_id
    assert len(played.documents) == 2 and call.next.wait == "gather"
    assert [type(a).__name__ for a in played.actions] == ["Say", "Pause", "Redirect", "Gather"]
