"""The fake Twilio: request shapes, signatures and how it plays TwiML,
checked against Twilio's documented behaviour and our own dialect."""

from datetime import datetime
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest

from ivr.providers.bodies import parse_form
from ivr.providers.dialect import Refusal, WebhookRequest
from ivr.providers.fake_call import FakeCall, HttpRequest, MarkupError
from ivr.providers.twilio.dialect import TwilioDialect
from ivr.providers.twilio.fake import MAX_REDIRECTS, FakeTwilioCall, TwimlError

BASE = "http://ivr.test"


def twiml(body: str) -> bytes:
    return f'<?xml version="1.0" encoding="UTF-8"?><Response>{body}</Response>'.encode()


class Scripted:
    """Answers each request with the next document, and keeps the requests."""

    def __init__(self, *documents: bytes):
        self.documents = list(documents)
        self.sent: list[tuple[str, dict]] = []
        self.requests: list[HttpRequest] = []

    def __call__(self, request: HttpRequest) -> bytes:
        assert request.method == "POST"
        assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
        form = parse_form(request.body.decode("utf-8"))
        self.sent.append((request.url, {name: values[-1] for name, values in form.items()}))
        self.requests.append(request)
        return self.documents.pop(0)


def call_with(*documents: bytes, **options) -> tuple[FakeTwilioCall, Scripted]:
    server = Scripted(*documents)
    return FakeTwilioCall(server, "+33612345678", "+33100000000", **options), server


def test_a_document_that_only_redirects_is_followed_with_the_calls_own_fields():
    call, server = call_with(
        twiml('<Say>Un instant.</Say><Pause length="2" /><Redirect>/voice/f?turn=1&amp;hold=1</Redirect>'),
        twiml('<Gather action="/voice/f?turn=2" numDigits="1"><Say>Menu.</Say></Gather>'
              '<Redirect>/voice/f?turn=2</Redirect>'))
    documents, actions = call.request(BASE + "/voice/f?turn=1", call.keys("1"))
    assert len(documents) == 2 and [type(a).__name__ for a in actions] == [
        "Say", "Pause", "Redirect", "Gather"]
    (first_url, first), (poll_url, poll) = server.sent
    assert first["Digits"] == "1" and "Digits" not in poll
    assert parse_qs(urlsplit(poll_url).query) == {"turn": ["1"], "hold": ["1"]}
    assert poll["CallStatus"] == "in-progress" and poll["CallSid"] == call.call_id
    assert (call.next.wait, call.next.action, call.next.after) == (
        "gather", BASE + "/voice/f?turn=2", BASE + "/voice/f?turn=2")
    assert call.keys("12") == {"Digits": "1"}  # numDigits="1": Twilio stops after one key


def test_keys_stop_at_the_finish_key_which_is_not_sent():
    call, _server = call_with(twiml('<Gather action="/voice/f?turn=1" />'))
    call.request(BASE + "/voice/f", {}, status="ringing")
    assert call.keys("42#7") == {"Digits": "42"}


def test_an_endless_redirect_is_given_up():
    loop = twiml("<Redirect>/voice/f?turn=1</Redirect>")
    call, server = call_with(*[loop] * (MAX_REDIRECTS + 1))
    with pytest.raises(TwimlError, match=f"more than {MAX_REDIRECTS} redirects"):
        call.request(BASE + "/voice/f", {})
    assert len(server.sent) == MAX_REDIRECTS + 1


def test_transfer_results_follow_the_verb_the_call_waits_at():
    call, _server = call_with(twiml('<Enqueue action="/voice/f?turn=1">post-sale</Enqueue>'),
                              twiml('<Dial action="/voice/f?turn=2"><Number>+33100000001</Number></Dial>'))
    call.request(BASE + "/voice/f", {})
    assert call.transfer_result("canceled", 12) == {
        "QueueResult": "hangup", "QueueSid": "QU" + "0" * 32, "QueueTime": "12"}
    call.request(BASE + "/voice/f?turn=1", {})
    dialled = call.transfer_result("completed", 12)
    assert dialled["DialCallStatus"] == "completed" and dialled["DialBridged"] == "true"
    assert TwilioDialect().check({k: [v] for k, v in dialled.items()}) == dialled


def test_status_callbacks_are_numbered_and_dated():
    call, _server = call_with()
    at = datetime(2026, 11, 24, 10, 0, 40, tzinfo=ZoneInfo("Europe/Paris"))
    first, second = call.status_callback(40, at), call.status_callback(40, at)
    assert (first["SequenceNumber"], second["SequenceNumber"]) == ("0", "1")
    notice = TwilioDialect().status_from(first)
    assert (notice.status, notice.final, notice.duration) == ("completed", True, 40)
    assert first["Timestamp"] == "Tue, 24 Nov 2026 09:00:40 GMT"


def received(request: HttpRequest, url: str | None = None) -> tuple[WebhookRequest, dict]:
    """A request the fake sent, as the server's web layer hands it to the dialect."""
    headers = {name.lower().encode(): value.encode() for name, value in request.headers.items()}
    webhook = WebhookRequest(request.method, url or request.url, "application/x-www-form-urlencoded",
                             request.body, {}, headers.get)
    return webhook, TwilioDialect().parse(webhook)


def test_its_signature_is_the_one_the_twilio_dialect_accepts():
    call, server = call_with(twiml("<Hangup/>"), auth_token="12345")
    call.request(BASE + "/voice/f?turn=1", call.keys("1"))
    webhook, form = received(server.requests[0])
    TwilioDialect().verify("12345", webhook, form)
    with pytest.raises(Refusal, match="does not match"):
        TwilioDialect().verify("12345", *received(server.requests[0], BASE + "/voice/f?turn=10"))
    assert FakeTwilioCall(Scripted(), "a", "b").headers(BASE, {}) == {}


def test_its_shared_key_signature_is_the_one_the_twilio_dialect_accepts():
    call, server = call_with(twiml("<Hangup/>"), shared_key="shh")
    call.request(BASE + "/voice/f?turn=1", call.keys("1"))
    request = server.requests[0]
    assert request.headers["X-Twilio-Webhooks-Signature-Settings"] == (
        "key=webhooks_sharedkey_sim,algorithm=HMAC_SHA256")
    TwilioDialect(shared_key="shh").verify("", *received(request))
    with pytest.raises(Refusal, match="does not match"):
        TwilioDialect(shared_key="other").verify("", *received(request))
    with pytest.raises(Refusal, match="no --twilio-shared-key"):
        TwilioDialect().verify("12345", *received(request))


def test_it_is_a_fake_call_that_plays_inputs_where_the_twiml_sends_them():
    call, server = call_with(
        twiml('<Gather action="/voice/f?turn=1" input="dtmf speech"><Say>Menu.</Say></Gather>'
              '<Redirect>/voice/f?turn=1</Redirect>'),
        twiml('<Gather action="/voice/f?turn=2"><Say>Encore.</Say></Gather>'),
        twiml('<Record action="/voice/f?turn=3" maxLength="60" />'),
        twiml("<Hangup/>"), base_url=BASE)
    assert isinstance(call, FakeCall) and call.provider == "twilio"
    played = call.answer(BASE + "/voice/f")
    assert [type(a).__name__ for a in played.actions] == ["Gather"]
    call.silence()
    assert call.next.action == BASE + "/voice/f?turn=2"
    with pytest.raises(MarkupError, match="waits for gather, not record"):
        call.record(10)
    call.say("où est ma commande", confidence=0.5)
    call.record(12)
    assert call.next.wait == "over"
    at = datetime(2026, 11, 24, 10, 0, 40, tzinfo=ZoneInfo("UTC"))
    server.documents.append(b"")
    call.hang_up(40, at)
    urls = [url for url, _ in server.sent]
    assert urls == [BASE + "/voice/f", BASE + "/voice/f?turn=1", BASE + "/voice/f?turn=2",
                    BASE + "/voice/f?turn=3", BASE + "/status"]
    fields = [params for _, params in server.sent]
    assert fields[0]["CallStatus"] == "ringing" and "Digits" not in fields[1]
    assert (fields[2]["SpeechResult"], fields[2]["Confidence"]) == ("où est ma commande", "0.5")
    assert fields[3]["RecordingDuration"] == "12"
    assert (fields[4]["CallStatus"], fields[4]["CallDuration"]) == ("completed", "40")
