"""The Plivo dialect: its V3 signature (vectors computed with plivo-python's
own code), its field rules, callbacks as engine events and notices, its
Plivo XML (read back by the fake, which checks it as Plivo documents it)
and its gaps."""

from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from twisted.logger import Logger

from ivr.engine import actions as act
from ivr.flow.loader import load_flow
from ivr.providers.dialect import Dialect, Refusal, WebhookRequest
from ivr.providers.fake_call import MarkupError
from ivr.providers.plivo import PROVIDER, render
from ivr.providers.plivo.dialect import PlivoDialect
from ivr.providers.plivo.markup import parse_document, step_of
from ivr.providers.plivo.signature import signature_base, signed_headers, v3_signature
from ivr.providers.registry import PROVIDER_PACKAGES

ROOT = Path(__file__).parent.parent
TOKEN = "MAXXXXXXXXXXXXXXXXXX-token"
UUID = "3c4b5f2e-8a71-4b0e-9d0c-5b9d3f1a2e7c"
VOICE_URL = "https://ivr.example.com/plivo/voice/post_sale?turn=2"
TURN = {"CallUUID": UUID, "CallStatus": "in-progress", "Digits": "1", "Direction": "inbound",
        "From": "+33612345678", "InputType": "dtmf", "Speech": "", "To": "+33100000000"}
# Computed with plivo-python 4.63's own functions (plivo/utils/signature_v3.py):
#   get_signature_v3(token, construct_post_url(VOICE_URL, TURN), nonce)
TURN_NONCE, TURN_SIGNATURE = "05429567804466091622", "H0c8LFdkriK/b5R+dGkkP+EJKo88vMDHTIc+i8rzUR4="
TURN_BASE = ("https://ivr.example.com/plivo/voice/post_sale?turn=2.CallStatusin-progress"
             f"CallUUID{UUID}Digits1DirectioninboundFrom+33612345678InputTypedtmfSpeechTo+33100000000")
STATUS_URL = "https://ivr.example.com/plivo/status"
HANGUP = {"CallUUID": UUID, "CallStatus": "completed", "Duration": "42",
          "HangupCause": "NORMAL_CLEARING"}
HANGUP_NONCE, HANGUP_SIGNATURE = "12345678901234567890", "w8YfE4tHLKmwvz+O91GrwsVu6TeryilYAWGEZHtYAF8="
NEXT = "https://ivr.example.com/plivo/voice/post_sale?turn=3"


def request(url, params, headers, method="POST"):
    lower = {name.lower().encode(): value.encode() for name, value in headers.items()}
    body = urlencode(params).encode() if method == "POST" else b""
    query = parse_qs(urlsplit(url).query, keep_blank_values=True)
    return WebhookRequest(method, url, "application/x-www-form-urlencoded", body, query, lower.get)


def verify(url, params, headers, method="POST"):
    webhook = request(url, params, headers, method)
    dialect = PlivoDialect()
    dialect.verify(TOKEN, webhook, dialect.parse(webhook))


def signed(signature=TURN_SIGNATURE, nonce=TURN_NONCE):
    return {"X-Plivo-Signature-V3": signature, "X-Plivo-Signature-V3-Nonce": nonce}


# --- Signature --------------------------------------------------------------------


def test_the_signed_string_and_signatures_are_plivo_pythons():
    assert signature_base("POST", VOICE_URL, TURN) == TURN_BASE
    assert v3_signature(TOKEN, "POST", VOICE_URL, TURN, TURN_NONCE) == TURN_SIGNATURE
    assert v3_signature(TOKEN, "POST", STATUS_URL, HANGUP, HANGUP_NONCE) == HANGUP_SIGNATURE
    verify(VOICE_URL, TURN, signed())
    verify(STATUS_URL, HANGUP, signed(HANGUP_SIGNATURE, HANGUP_NONCE))


@pytest.mark.parametrize("method, url, params", [
    ("POST", VOICE_URL, TURN),
    ("POST", "https://ivr.example.com:8443/plivo/status", HANGUP),
    ("POST", "https://ivr.example.com/plivo/voice/f?turn=1&b=%2B1", {}),
    ("GET", f"https://ivr.example.com/plivo/voice/f?turn=1&CallUUID={UUID}", {}),
    ("POST", "https://ivr.example.com/p", {"A": ["2", "1"], "é": "ü"}),
])
def test_plivo_pythons_validator_accepts_what_we_sign(method, url, params):
    sdk = pytest.importorskip("plivo.utils.signature_v3")
    nonce = "98765432109876543210"
    ours = v3_signature(TOKEN, method, url, params, nonce)
    assert sdk.validate_v3_signature(method, url, nonce, TOKEN, ours, dict(params)) is True
    assert sdk.validate_v3_signature(method, url, nonce, TOKEN + "x", ours, dict(params)) is False


def test_one_of_several_signatures_matching_is_enough_while_a_token_rotates():
    other = v3_signature("the-old-token", "POST", VOICE_URL, TURN, TURN_NONCE)
    verify(VOICE_URL, TURN, signed(f"{other},{TURN_SIGNATURE}"))
    with pytest.raises(Refusal):
        verify(VOICE_URL, TURN, signed(f"{other},{other}"))


def test_the_main_accounts_signature_is_accepted_too():
    other = v3_signature("the-subaccount-token", "POST", VOICE_URL, TURN, TURN_NONCE)
    verify(VOICE_URL, TURN, {**signed(other), "X-Plivo-Signature-Ma-V3": TURN_SIGNATURE})
    with pytest.raises(Refusal, match="does not match"):
        verify(VOICE_URL, TURN, {**signed(other), "X-Plivo-Signature-Ma-V3": other})


def test_a_get_is_signed_over_its_url_alone():
    url = f"https://ivr.example.com/plivo/voice/f?CallUUID={UUID}&turn=1"
    verify(url, {}, signed_headers(TOKEN, "GET", url, None), method="GET")


@pytest.mark.parametrize("change, reason", [
    (lambda url, params, headers: (url, params, {}), "missing X-Plivo-Signature-V3"),
    (lambda url, params, headers: (url, params, {"X-Plivo-Signature-V3": TURN_SIGNATURE}),
     "missing X-Plivo-Signature-V3-Nonce"),
    (lambda url, params, headers: (url, params, signed("A" * 600)),
     "X-Plivo-Signature-V3 is not a signature"),
    (lambda url, params, headers: (url, params, signed(TURN_SIGNATURE, "9" * 200)),
     "X-Plivo-Signature-V3-Nonce is not a nonce"),
    (lambda url, params, headers: (url, {**params, "Digits": "2"}, headers),
     "X-Plivo-Signature-V3 does not match this request"),
    (lambda url, params, headers: (url + "&turn=9", params, headers),
     "X-Plivo-Signature-V3 does not match this request"),
    (lambda url, params, headers: (url, params, signed(TURN_SIGNATURE, "1" + TURN_NONCE[1:])),
     "X-Plivo-Signature-V3 does not match this request"),
])
def test_unsigned_tampered_or_malformed_requests_are_refused_without_echo(change, reason):
    url, params, headers = change(VOICE_URL, TURN, signed())
    with pytest.raises(Refusal) as refused:
        verify(url, params, headers)
    assert (refused.value.code, refused.value.reason) == (403, reason)


def test_a_forged_header_of_other_bytes_is_refused():
    webhook = request(VOICE_URL, TURN, {})
    headers = {b"x-plivo-signature-v3": "é".encode(), b"x-plivo-signature-v3-nonce": b"1"}
    forged = WebhookRequest(webhook.method, webhook.url, webhook.content_type, webhook.raw,
                            webhook.query, headers.get)
    with pytest.raises(Refusal, match="is not a signature"):
        PlivoDialect().verify(TOKEN, forged, PlivoDialect().parse(forged))
    assert PlivoDialect().is_signed(headers.get) and not PlivoDialect().is_signed({}.get)


# --- Fields, events, notices ------------------------------------------------------


def form(**fields):
    return {name: [value] for name, value in fields.items()}


@pytest.mark.parametrize("fields, reason", [
    (form(Digits="1"), "missing CallUUID"),
    (form(CallUUID="CA" + "0" * 32), "CallUUID must be a UUID"),
    (form(CallUUID=UUID, Digits="12a"), "Digits must be keys (0-9, * and #)"),
    (form(CallUUID=UUID, Speech="a\x00b"), "Speech holds a control character"),
    (form(CallUUID=UUID, Duration="99999999999"), "Duration must be at most 9999999"),
    (form(CallUUID=UUID, Other="x" * 20000), "Other longer than 16384 characters"),
])
def test_fields_are_checked_before_anything_reads_them(fields, reason):
    with pytest.raises(Refusal) as refused:
        PlivoDialect().check(fields, PlivoDialect().voice_fields)
    assert (refused.value.code, refused.value.reason) == (400, reason)


def test_the_call_and_its_numbers():
    dialect = PlivoDialect()
    params = dialect.check(form(**TURN), dialect.voice_fields)
    assert dialect.call_facts(params) == (dialect.call_facts(params).__class__(
        UUID, "+33612345678", "+33100000000"))
    assert dialect.is_call_id(UUID) and not dialect.is_call_id("CA" + "0" * 32)
    assert isinstance(dialect, Dialect)


@pytest.mark.parametrize("params, state, event", [
    ({"InputType": "dtmf", "Digits": "12", "Speech": ""}, {"waiting": "gather"},
     {"type": "digits", "digits": "12"}),
    ({"InputType": "speech", "Digits": "", "Speech": "mon colis", "SpeechConfidenceScore": "0.82"},
     {"waiting": "gather"}, {"type": "speech", "text": "mon colis", "confidence": 0.82}),
    ({"InputType": "speech", "Speech": "oui", "SpeechConfidenceScore": "7"}, {"waiting": "gather"},
     {"type": "speech", "text": "oui", "confidence": None}),
    ({"InputType": "dtmf", "Digits": "", "Speech": ""}, {"waiting": "gather"}, {"type": "silence"}),
    ({}, {"waiting": "gather"}, {"type": "silence"}),  # the Redirect after a GetInput
    ({"DialStatus": "completed"}, {"waiting": "dial"}, {"type": "dial_result", "status": "completed"}),
    ({"DialStatus": "busy"}, {"waiting": "dial"}, {"type": "dial_result", "status": "busy"}),
    ({"DialStatus": "timeout"}, {"waiting": "dial"}, {"type": "dial_result", "status": "no-answer"}),
    ({"DialStatus": "no-answer"}, {"waiting": "dial"}, {"type": "dial_result", "status": "no-answer"}),
    ({"DialStatus": "cancel"}, {"waiting": "dial"}, {"type": "dial_result", "status": "canceled"}),
    ({"DialStatus": "strange"}, {"waiting": "dial"}, {"type": "dial_result", "status": "failed"}),
    ({"DialStatus": "cancel"}, {"waiting": "dial", "handoff": {"kind": "queue"}},
     {"type": "dial_result", "status": "completed", "queue_result": "hangup", "queue_seconds": None}),
    ({"DialStatus": "completed"}, {"waiting": "dial", "handoff": {"kind": "queue"}},
     {"type": "dial_result", "status": "completed", "queue_result": "bridged", "queue_seconds": None}),
    ({"DialStatus": "busy"}, {"waiting": "dial", "handoff": {"kind": "queue"}},
     {"type": "dial_result", "status": "busy", "queue_result": "error", "queue_seconds": None}),
    ({"RecordUrl": "https://media.plivo.com/r.mp3", "RecordingDuration": "14"},
     {"waiting": "record"}, {"type": "recorded", "url": "https://media.plivo.com/r.mp3", "duration": "14"}),
])
def test_callbacks_become_the_engines_events(params, state, event):
    assert PlivoDialect().event_from({"CallUUID": UUID, **params}, state) == event


def test_the_hangup_url_is_the_end_of_call_notice():
    notice = PlivoDialect().status_from(HANGUP)
    assert (notice.call_id, notice.status, notice.final, notice.duration) == (UUID, "completed", True, 42)
    assert (notice.sequence, notice.timestamp) == (None, None)
    ringing = PlivoDialect().status_from({"CallUUID": UUID, "CallStatus": "ringing"})
    assert (ringing.final, ringing.duration) == (False, None)


# --- Rendering, read back by the fake -------------------------------------------------


def played(actions, next_url=NEXT):
    """The document for ``actions``, as the fake Plivo reads it back."""
    document = PlivoDialect().render(actions, next_url)
    return document, [step_of(element) for element in parse_document(document, next_url)]


def test_says_plays_and_pauses():
    document, steps = played([
        act.Say('Bonjour <break time="1s"/> &amp; bienvenue', voice="Polly.Lea-Neural", language="fr-FR"),
        act.Say("Hello", voice="man", language="en-US", loop=2),
        act.Play("https://cdn.example.com/music.mp3"), act.Pause(3), act.Hangup()])
    assert [s.action for s in steps] == [
        act.Say('Bonjour <break time="1s" /> &amp; bienvenue', voice="Polly.Lea", language="fr-FR"),
        act.Say("Hello", voice="MAN", language="en-US", loop=2),
        act.Play("https://cdn.example.com/music.mp3"), act.Pause(3), act.Hangup()]
    assert document.startswith(b'<?xml version="1.0" encoding="UTF-8"?><Response><Speak ')


def test_ssml_without_a_polly_voice_is_spoken_as_plain_text():
    _document, steps = played([act.Say('Un <emphasis>grand</emphasis> merci')])
    assert steps[0].action == act.Say("Un grand merci")


def test_a_gather_is_a_get_input_then_a_redirect_for_a_silent_caller():
    gather = act.Gather(prompts=(act.Say("Menu"), act.Pause(1)), input="dtmf speech", num_digits=1,
                        finish_on_key="", timeout=3, speech_timeout="auto", hints=("agent", "colis"),
                        language="fr-FR")
    document, steps = played([gather])
    assert [s.wait for s in steps] == ["gather", "redirect"] and steps[0].url == NEXT == steps[1].url
    assert steps[0].action == act.Gather(
        prompts=(act.Say("Menu"), act.Pause(1)), input="dtmf speech", num_digits=1, finish_on_key="",
        timeout=5, speech_timeout="auto", hints=("agent", "colis"), language="fr-FR")
    assert b'digitEndTimeout="3"' in document and b'finishOnKey="none"' in document
    _document, steps = played([act.Gather(input="dtmf", timeout=90, num_digits=50, finish_on_key="#")])
    assert (steps[0].action.timeout, steps[0].action.num_digits) == (60, 32)
    assert steps[0].action.finish_on_key == "#" and steps[0].action.language is None


def test_hints_are_kept_within_plivos_limits():
    hints = ("colis", "x" * 101, "a,b") + tuple(f"mot{i}" for i in range(600))
    _document, steps = played([act.Gather(input="speech", hints=hints)])
    kept = steps[0].action.hints
    assert kept[:2] == ("colis", "mot0") and len(kept) == 500


def test_a_dial_carries_the_reason_to_the_agent_in_its_confirm_sound():
    params = (("X-IVR-Reason", "return_request"), ("X-IVR-Call", UUID), ("X-IVR-Order", "100234"))
    _document, steps = played([act.Dial(act.DialTarget("number", "+33100000001"), timeout=20,
                                        caller_id="+33100000000", params=params,
                                        whisper_url="https://ivr.example.com/plivo/whisper")])
    dial = steps[0].action
    assert (steps[0].wait, steps[0].url, dial.target, dial.timeout, dial.caller_id) == (
        "dial", NEXT, act.DialTarget("number", "+33100000001"), 20, "+33100000000")
    sound = urlsplit(dial.whisper_url)
    assert sound.path == "/plivo/whisper" and parse_qs(sound.query) == {
        "X-IVR-Reason": ["return_request"], "X-IVR-Call": [UUID], "X-IVR-Order": ["100234"]}
    _document, steps = played([act.Dial(act.DialTarget("sip", "agent@pbx.example.com"))])
    assert steps[0].action.target == act.DialTarget("sip", "sip:agent@pbx.example.com")
    assert steps[0].action.timeout == 30  # TwiML's default: Plivo's Dial has none
    assert steps[0].action.whisper_url == "https://ivr.example.com/plivo/whisper"


def test_a_queue_is_dialled_as_a_sip_user_and_said_once_in_the_log(monkeypatch):
    logged = []
    monkeypatch.setattr(render, "_log", Logger(observer=logged.append))
    monkeypatch.setattr(render, "_logged", set())
    queue = act.Enqueue("post-sale", params=(("X-IVR-Reason", "order_change"),))
    for _ in range(2):
        _document, steps = played([queue])
    assert steps[0].action.target == act.DialTarget("sip", "sip:post-sale@phone.plivo.com")
    assert parse_qs(urlsplit(steps[0].action.whisper_url).query) == {"X-IVR-Reason": ["order_change"]}
    assert [e["message"] for e in logged] == [
        "Plivo XML has no queue: queue transfers ring the SIP user sip:<queue>@phone.plivo.com instead"]


def test_record_redirect_and_hangup():
    _document, steps = played([act.Record(max_length=120, timeout=5, finish_on_key="#")])
    assert (steps[0].wait, steps[0].url, steps[0].action) == (
        "record", NEXT, act.Record(max_length=120, timeout=5, finish_on_key="#", play_beep=True))
    hold = "https://ivr.example.com/plivo/voice/post_sale?turn=2&poll=1"
    _document, steps = played([act.Say("Un instant."), act.Pause(2), act.Redirect(hold)])
    assert [s.wait for s in steps] == ["next", "next", "redirect"] and steps[2].url == hold


@pytest.mark.parametrize("actions, message", [
    ([act.Lookup("r1", "orders_by_phone")], "effect for the runner"),
    ([act.Hangup(), act.Say("late")], "would never be reached"),
    ([act.Say("<speak>x</speak>")], "not an SSML element"),
    ([act.Say("a < b")], "not a well-formed XML fragment"),
    ([act.Say("x" * 200_000)], "Plivo takes at most"),
    ([act.Dial(act.DialTarget("client", "bob"))], "unknown dial target kind"),
])
def test_what_plivo_could_not_play_is_refused(actions, message):
    with pytest.raises(ValueError, match=message):
        PlivoDialect().render(actions, NEXT)


def response(body: str) -> bytes:
    return f'<?xml version="1.0" encoding="UTF-8"?><Response>{body}</Response>'.encode()


@pytest.mark.parametrize("body, message", [
    ("<Say>Twilio's</Say>", "<Say> is not a Plivo XML element"),
    ("<Conference>room</Conference>", "does not play <Conference>"),
    ('<Speak voce="MAN">x</Speak>', "has no attribute 'voce'"),
    ('<Speak voice="alice">x</Speak>', "voice must be WOMAN, MAN or Polly"),
    ('<Speak><break time="1s"/></Speak>', "needs a Polly voice"),
    (f'<GetInput action="{NEXT}" inputType="dtmf" executionTimeout="4" />', "executionTimeout must be 5 to 60"),
    (f'<GetInput action="{NEXT}" inputType="dtmf" digitEndTimeout="11" />', "digitEndTimeout must be 2 to 10"),
    (f'<GetInput action="{NEXT}" inputType="dtmf" numDigits="33" />', "numDigits must be 1 to 32"),
    (f'<GetInput action="{NEXT}" inputType="dtmf" finishOnKey="##" />', "finishOnKey must be one of"),
    (f'<GetInput action="{NEXT}" inputType="voice" />', "inputType must be dtmf, speech"),
    ('<GetInput inputType="dtmf" />', "needs an action URL"),
    ('<GetInput action="/voice/f" inputType="dtmf" />', "fully qualified URL"),
    (f'<GetInput action="{NEXT}" inputType="speech" hints="{"x" * 101}" />', "hints must be"),
    (f'<GetInput action="{NEXT}" inputType="dtmf"><Hangup /></GetInput>', "may not appear inside"),
    (f'<Dial action="{NEXT}" />', "needs a Number or User"),
    ("<Dial><User>agent@pbx</User></Dial>", "not a sip: URI"),
    ("<Dial><Number /></Dial>", "empty <Number>"),
    ("<Redirect>/voice/f</Redirect>", "must hold a fully qualified URL"),
    ('<Wait length="0" />', "length must be at least 1"),
])
def test_the_fake_refuses_what_plivo_documents_as_wrong(body, message):
    with pytest.raises(MarkupError, match=message):
        parse_document(response(body), NEXT)


def test_the_fake_refuses_what_is_not_a_response():
    with pytest.raises(MarkupError, match="not XML"):
        parse_document(b"<Response>", NEXT)
    with pytest.raises(MarkupError, match="not <Response>"):
        parse_document(b"<Document />", NEXT)


# --- Gaps and the registry ---------------------------------------------------------


def test_gaps_name_the_queue_transfers_and_out_of_range_timeouts():
    flow = load_flow(ROOT / "flows" / "post_sale.yaml", ROOT / "prompts")
    gaps = PlivoDialect().gaps(flow)
    queues = [gap for gap in gaps if gap.code == "provider-no-queue"]
    assert queues and {gap.field for gap in queues} == {"to"}
    assert "agent" in {gap.node for gap in queues}
    assert all(flow.nodes[gap.node].opts["to"][0] == "queue" for gap in queues)
    assert "sip:post-sale@phone.plivo.com" in next(g for g in queues if g.node == "agent").message
    assert [gap for gap in gaps if gap.code == "provider-timeout-range"] == []


def test_a_listening_timeout_outside_plivos_range_is_a_gap(tmp_path):
    text = (ROOT / "flows" / "post_sale.yaml").read_text(encoding="utf-8")
    changed = tmp_path / "post_sale.yaml"
    changed.write_text(text.replace("  timeout: 5\n", "  timeout: 90\n", 1), encoding="utf-8")
    flow = load_flow(changed, ROOT / "prompts")
    timeouts = [gap for gap in PlivoDialect().gaps(flow) if gap.code == "provider-timeout-range"]
    assert timeouts and all("a timeout of 90 s becomes 60 s" in gap.message for gap in timeouts)


def test_the_provider_entry():
    assert "plivo" in PROVIDER_PACKAGES
    assert (PROVIDER.name, PROVIDER.prefix, PROVIDER.secret_option, PROVIDER.secret_env) == (
        "plivo", "plivo/", "plivo-auth-token", "PLIVO_AUTH_TOKEN")
    assert isinstance(PROVIDER.dialect(), PlivoDialect) and PROVIDER.dialect().name == PROVIDER.name
