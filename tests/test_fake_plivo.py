"""The fake Plivo: the requests it sends (form POSTs with the standard
parameters, signed with V3) and how it plays Plivo XML, checked against
Plivo's documented behaviour and against the Plivo dialect."""

from datetime import datetime
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest

from ivr.engine import actions as act
from ivr.providers.dialect import WebhookRequest
from ivr.providers.fake_call import FakeCall, HttpRequest, MarkupError
from ivr.providers.plivo.dialect import PlivoDialect
from ivr.providers.plivo.fake import MAX_REDIRECTS, FakePlivoCall, fake_call
from ivr.providers.plivo.fields import is_call_uuid

BASE = "https://ivr.test"
VOICE = f"{BASE}/plivo/voice/f"
TOKEN = "a-plivo-auth-token"


def xml(body: str) -> bytes:
    return f'<?xml version="1.0" encoding="UTF-8"?><Response>{body}</Response>'.encode()


def get_input(turn: int, attributes: str = 'inputType="dtmf speech"', inner="<Speak>Menu</Speak>") -> str:
    url = f"{VOICE}?turn={turn}"
    return f'<GetInput action="{url}" {attributes}>{inner}</GetInput><Redirect>{url}</Redirect>'


class Scripted:
    """Answers each request with the next document, and keeps the requests."""

    def __init__(self, *documents: bytes):
        self.documents = list(documents)
        self.sent: list[HttpRequest] = []

    def __call__(self, request: HttpRequest) -> bytes:
        self.sent.append(request)
        return self.documents.pop(0)

    def form(self, index: int) -> dict[str, str]:
        return {k: v[-1] for k, v in parse_qs(self.sent[index].body.decode(), keep_blank_values=True).items()}


def call_with(*documents: bytes, secret=None) -> tuple[FakePlivoCall, Scripted]:
    server = Scripted(*documents)
    return fake_call(server, "+33612345678", "+33100000000", BASE, secret), server


def test_the_answer_url_gets_a_signed_form_post_with_the_standard_parameters():
    call, server = call_with(xml(get_input(1)), secret=TOKEN)
    assert isinstance(call, FakeCall) and is_call_uuid(call.call_id)
    played = call.answer(VOICE)
    sent = server.sent[0]
    assert (sent.method, sent.url, sent.headers["Content-Type"]) == (
        "POST", VOICE, "application/x-www-form-urlencoded")
    assert server.form(0) == {"CallUUID": call.call_id, "From": "+33612345678", "To": "+33100000000",
                              "CallStatus": "ringing", "Direction": "inbound"}
    lower = {k.lower().encode(): v.encode() for k, v in sent.headers.items()}
    webhook = WebhookRequest("POST", VOICE, "application/x-www-form-urlencoded", sent.body, {}, lower.get)
    PlivoDialect().verify(TOKEN, webhook, PlivoDialect().parse(webhook))
    assert [type(a) for a in played.actions] == [act.Gather]
    assert (call.next.wait, call.next.action, call.next.after) == (
        "gather", f"{VOICE}?turn=1", f"{VOICE}?turn=1")


def test_keys_go_to_the_action_up_to_the_finish_key_and_at_most_num_digits():
    call, server = call_with(xml(get_input(1, 'inputType="dtmf" numDigits="3"')),
                             xml(get_input(2, 'inputType="dtmf" finishOnKey="none" numDigits="2"')),
                             xml("<Hangup />"))
    call.answer(VOICE)
    call.press("42#7")
    assert server.sent[1].url == f"{VOICE}?turn=1"
    assert server.form(1) == {**server.form(0), "CallStatus": "in-progress", "InputType": "dtmf",
                                   "Digits": "42", "Speech": ""}
    played = call.press("7#9")
    assert server.form(2)["Digits"] == "7#" and played.actions == [act.Hangup()]
    assert call.next.wait == "over"


def test_words_carry_the_confidence_and_only_reach_a_get_input_that_listens_for_speech():
    call, server = call_with(xml(get_input(1, 'inputType="speech"')), xml(get_input(2, 'inputType="dtmf"')))
    call.answer(VOICE)
    call.say("mon colis", confidence=0.82)
    assert {k: server.form(1)[k] for k in ("InputType", "Speech", "SpeechConfidenceScore", "Digits")} == {
        "InputType": "speech", "Speech": "mon colis", "SpeechConfidenceScore": "0.82", "Digits": ""}
    with pytest.raises(MarkupError, match="does not listen for speech"):
        call.say("encore")


def test_a_silent_caller_goes_on_with_the_next_element():
    call, server = call_with(
        xml(get_input(1) + ""),
        xml(f'<GetInput action="{VOICE}?turn=2" inputType="dtmf" /><Speak>Au revoir</Speak><Hangup />'))
    call.answer(VOICE)
    call.silence()  # the Redirect after the GetInput: the call's own fields only
    assert server.sent[1].url == f"{VOICE}?turn=1" and "Digits" not in server.form(1)
    played = call.silence()
    assert played.documents == [] and played.actions == [act.Say("Au revoir"), act.Hangup()]
    assert call.next.wait == "over" and len(server.sent) == 2


def test_a_dial_fetches_the_confirm_sound_for_the_agent_then_reports_to_its_action():
    sound = f"{BASE}/plivo/whisper?X-IVR-Reason=return_request"
    call, server = call_with(
        xml(f'<Dial action="{VOICE}?turn=1" confirmSound="{sound.replace("&", "&amp;")}">'
            "<Number>+33100000001</Number></Dial>"),
        xml("<Speak>Retour de la commande 100234</Speak>"), xml("<Hangup />"), secret=TOKEN)
    call.answer(VOICE)
    played = call.transfer_ends("completed")
    assert [r.url for r in server.sent[1:]] == [sound, f"{VOICE}?turn=1"]
    agent = server.form(1)
    assert agent["CallUUID"] != call.call_id and is_call_uuid(agent["CallUUID"])
    assert "X-Plivo-Signature-V3" in server.sent[1].headers
    result = server.form(2)
    assert {k: result[k] for k in ("DialStatus", "DialALegUUID", "DialBLegUUID")} == {
        "DialStatus": "completed", "DialALegUUID": call.call_id, "DialBLegUUID": agent["CallUUID"]}
    assert len(played.documents) == 2 and played.actions == [act.Hangup()]


@pytest.mark.parametrize("status, plivo", [("busy", "busy"), ("no-answer", "no-answer"),
                                           ("failed", "failed"), ("canceled", "cancel")])
def test_an_unanswered_dial_reports_plivos_status_without_a_b_leg(status, plivo):
    call, server = call_with(
        xml(f'<Dial action="{VOICE}?turn=1" confirmSound="{BASE}/plivo/whisper">'
            "<Number>+33100000001</Number></Dial>"), xml("<Hangup />"))
    call.answer(VOICE)
    call.transfer_ends(status)
    assert [r.url for r in server.sent] == [VOICE, f"{VOICE}?turn=1"]
    assert (server.form(1)["DialStatus"], server.form(1)["DialBLegUUID"]) == (plivo, "")
    assert PlivoDialect().event_from(server.form(1), {"waiting": "dial"})["status"] == status


def test_a_confirm_sound_may_only_speak_play_or_wait():
    call, _server = call_with(
        xml(f'<Dial action="{VOICE}?turn=1" confirmSound="{BASE}/plivo/whisper">'
            "<Number>+33100000001</Number></Dial>"), xml(get_input(2)))
    call.answer(VOICE)
    with pytest.raises(MarkupError, match="only Play, Wait and Speak"):
        call.transfer_ends("completed")


def test_a_dial_without_an_action_goes_on_with_the_document():
    call, server = call_with(xml("<Dial><Number>+33100000001</Number></Dial><Speak>Fin</Speak>"))
    call.answer(VOICE)
    assert (call.next.wait, call.next.action) == ("dial", None)
    played = call.transfer_ends("busy")
    assert played.actions == [act.Say("Fin")] and len(server.sent) == 1


def test_a_recording_reports_its_url_and_duration():
    call, server = call_with(xml(f'<Record action="{VOICE}?turn=1" maxLength="120" />'), xml("<Hangup />"))
    call.answer(VOICE)
    call.record(14)
    form = server.form(1)
    assert form["RecordingDuration"] == "14" and form["RecordUrl"].startswith("https://")
    event = PlivoDialect().event_from(form, {"waiting": "record"})
    assert event == {"type": "recorded", "url": form["RecordUrl"], "duration": "14"}


def test_the_hangup_url_beside_the_answer_url_hears_the_end():
    call, server = call_with(xml("<Hangup />"), b"")
    call.answer(VOICE)
    call.hang_up(40, datetime(2026, 11, 24, 10, 0, 40, tzinfo=ZoneInfo("Europe/Paris")))
    assert server.sent[1].url == f"{BASE}/plivo/status"
    form = server.form(1)
    assert {k: form[k] for k in ("CallStatus", "Duration", "HangupCause", "EndTime")} == {
        "CallStatus": "completed", "Duration": "40", "HangupCause": "NORMAL_CLEARING",
        "EndTime": "2026-11-24 09:00:40"}
    notice = PlivoDialect().status_from(PlivoDialect().check(parse_qs(server.sent[1].body.decode())))
    assert (notice.call_id, notice.final, notice.duration) == (call.call_id, True, 40)


def test_redirects_are_followed_and_an_endless_one_is_given_up():
    hold = f"{VOICE}?turn=1&amp;poll=1"
    call, server = call_with(xml(f"<Speak>Un instant</Speak><Wait length=\"2\" /><Redirect>{hold}</Redirect>"),
                             xml(get_input(2)))
    played = call.answer(VOICE)
    assert [type(a) for a in played.actions] == [act.Say, act.Pause, act.Redirect, act.Gather]
    assert parse_qs(urlsplit(server.sent[1].url).query) == {"turn": ["1"], "poll": ["1"]}
    assert server.form(1)["CallStatus"] == "in-progress" and len(played.documents) == 2
    loop = xml(f"<Redirect>{VOICE}?turn=1</Redirect>")
    call, server = call_with(*[loop] * (MAX_REDIRECTS + 1))
    with pytest.raises(MarkupError, match=f"more than {MAX_REDIRECTS} redirects"):
        call.answer(VOICE)
    assert len(server.sent) == MAX_REDIRECTS + 1


def test_input_the_call_does_not_wait_for_is_refused():
    call, _server = call_with(xml("<Dial><Number>+33100000001</Number></Dial>"))
    call.answer(VOICE)
    with pytest.raises(MarkupError, match="does not wait at a gather but at dial"):
        call.press("1")
