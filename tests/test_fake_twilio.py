"""The fake Twilio: request shapes, signatures and how it plays TwiML,
checked against Twilio's documented behaviour and our own dialect."""

from datetime import datetime
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest

from ivr.providers.dialect import Refusal, WebhookRequest
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

    def __call__(self, url: str, params: dict) -> bytes:
        self.sent.append((url, params))
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


def test_its_signature_is_the_one_the_twilio_dialect_accepts():
    call, _server = call_with(auth_token="12345")
    url, params = BASE + "/voice/f?turn=1", {**call.params(), "Digits": "1"}
    headers = {name.lower().encode(): value.encode() for name, value in
               call.headers(url, params).items()}
    form = {name: [value] for name, value in params.items()}
    form_type = "application/x-www-form-urlencoded"
    TwilioDialect().verify("12345", WebhookRequest("POST", url, form_type, b"", {}, headers.get), form)
    with pytest.raises(Refusal, match="does not match"):
        TwilioDialect().verify("12345", WebhookRequest("POST", url + "0", form_type, b"", {}, headers.get),
                               form)
    assert FakeTwilioCall(Scripted(), "a", "b").headers(url, params) == {}
