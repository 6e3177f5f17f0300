"""The helpdesk webhook: callback requests POSTed after their turn is
committed, retried on the injected clock, resent after a restart; against
a fake helpdesk served in memory (StubTreq)."""

import json
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlite_utils
from treq.testing import StubTreq
from twisted.internet import defer, task
from twisted.internet import error as net
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import formatEvent, globalLogPublisher
from twisted.python.usage import UsageError
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from ivr.engine.state import call_summary
from ivr.engine.turn import play_turn
from ivr.flow.loader import load_flow
from ivr.lookups.demo_orders import DEMO_CALLERS, DEMO_ORDERS, create_demo_db
from ivr.lookups.embedded import EmbeddedOrderLookups
from ivr.server import tap
from ivr.server.calls import CallHandler
from ivr.server.helpdesk import Helpdesk, HelpdeskService, NoHelpdesk
from ivr.server.registry import FlowRegistry
from ivr.sim.scenarios import demo_lookups
from ivr.store.sqlite.group_commit import GroupCommit
from ivr.store.sqlite.store import CallStore

ROOT = Path(__file__).parent.parent
PARIS = ZoneInfo("Europe/Paris")
EVENING = datetime(2026, 11, 24, 20, 0, tzinfo=PARIS)
URL = "https://helpdesk.test/callbacks"
TOKEN = "hd-s3cret"
LOST = DEMO_CALLERS["lost"]


@pytest.fixture(scope="module")
def registry():
    flows = FlowRegistry(ROOT / "flows", ROOT / "prompts")
    flows.reload()
    return flows


class FakeHelpdesk(Resource):
    """Answers each POST with the next of ``answers``: a status code, a
    (code, body) pair, or "hang" (never answers); then 201."""

    isLeaf = True

    def __init__(self, answers=()):
        super().__init__()
        self.answers, self.requests = list(answers), []

    def render_POST(self, request):
        self.requests.append({"headers": {k.decode().lower(): v[0].decode() for k, v in
                                          request.requestHeaders.getAllRawHeaders()},
                              "path": request.path.decode(), "json": json.loads(request.content.read())})
        answer = self.answers.pop(0) if self.answers else 201
        if answer == "hang":
            return NOT_DONE_YET
        code, body = answer if isinstance(answer, tuple) else (answer, b'{"id": "T-1"}')
        request.setResponseCode(code)
        return body


class ScriptedHttp:
    """treq's ``post``: the scripted failures first, then the fake helpdesk."""

    def __init__(self, stub, failures=()):
        self.stub, self.failures = stub, list(failures)

    def post(self, url, **kwargs):
        if self.failures:
            return defer.fail(self.failures.pop(0))
        return self.stub.post(url, **kwargs)


def requested_store(caller=LOST, status="pending", attempts=0, call_id="CA1"):
    """A store holding one callback request, as the server writes it: a
    lost parcel, closed hours, a morning callback on the caller's number."""
    flow = load_flow(ROOT / "flows" / "post_sale.yaml", ROOT / "prompts")
    store = CallStore(sqlite_utils.Database(memory=True))
    perform, state, at = demo_lookups(EVENING), None, EVENING
    events = [{"type": "start", "call_id": call_id, "caller": caller}] + [
        {"type": "digits", "digits": "1"}] * 5
    for number, event in enumerate(events):
        turn = play_turn(flow, state, {**event, "now": at}, perform)
        state, at = turn.state, at + timedelta(seconds=10)
        store.save_turn(call_id, number, state, b"<Response/>", turn.node_events,
                        call_summary(state), caller, callback_status=status)
    assert state["callback"], "the script no longer reaches the callback"
    if attempts:
        store.update_callback(call_id, status, attempts, last_error="HTTP 503")
    return store


def helpdesk(store, answers=(), failures=(), clock=None, registry=None, token=TOKEN):
    clock = clock or task.Clock()
    clock.advance(EVENING.timestamp() + 60)
    fake = FakeHelpdesk(answers)
    stub = StubTreq(fake)
    sender = Helpdesk(URL, store, clock, token=token, registry=registry,
                      http=ScriptedHttp(stub, failures))
    return sender, clock, stub, fake


def row(store):
    found = store.callback_request("CA1")
    return found["status"], found["attempts"], found["last_error"], found["delivered_at"]


# --- delivery ---------------------------------------------------------------------------


def test_a_request_is_posted_as_json_with_the_bearer_token(registry):
    store = requested_store()
    sender, clock, stub, fake = helpdesk(store, registry=registry)
    sender.requested("CA1")
    stub.flush()
    [request] = fake.requests
    assert request["json"] == {
        "call_id": "CA1", "number": LOST, "reason": "parcel_lost",
        "reason_text": "Colis perdu par le transporteur", "order": DEMO_ORDERS["lost"],
        "slot": "morning", "lang": "fr-FR", "requested_at": "2026-11-24T20:00:50+01:00",
        "flow": "post_sale"}
    assert request["headers"]["authorization"] == f"Bearer {TOKEN}"
    assert request["headers"]["content-type"] == "application/json"
    assert request["path"] == "/callbacks"
    sent_at = datetime.fromtimestamp(clock.seconds(), timezone.utc).isoformat(timespec="seconds")
    assert row(store) == ("sent", 1, None, sent_at)
    assert clock.getDelayedCalls() == []


def test_without_a_token_no_authorization_is_sent():
    store = requested_store()
    sender, clock, stub, fake = helpdesk(store, token=None)
    sender.requested("CA1")
    stub.flush()
    assert "authorization" not in fake.requests[0]["headers"]
    assert fake.requests[0]["json"]["reason_text"] is None  # no registry: no description
    assert clock.getDelayedCalls() == []


def test_a_failed_attempt_is_retried_until_it_succeeds():
    store = requested_store()
    sender, clock, stub, fake = helpdesk(store, answers=[(503, b"down for maintenance")])
    sender.requested("CA1")
    stub.flush()
    assert row(store)[:3] == ("pending", 1, "HTTP 503: down for maintenance")
    sender.http.failures.append(net.ConnectionRefusedError())
    clock.advance(0.9)
    assert len(fake.requests) == 1
    clock.advance(0.1)  # 1 s after the first attempt: refused
    stub.flush()
    assert row(store)[:3] == ("pending", 2, "connection refused")
    clock.advance(4.9)
    stub.flush()
    assert len(fake.requests) == 1
    clock.advance(0.1)  # 5 s later: the helpdesk answers
    stub.flush()
    assert len(fake.requests) == 2
    status, attempts, last_error, delivered_at = row(store)
    assert (status, attempts, last_error) == ("sent", 3, None)  # the error is history
    assert delivered_at is not None
    assert clock.getDelayedCalls() == []


@pytest.mark.parametrize("answer, error", [
    ((422, b'{"error": "unknown number +33639980013"}'),
     'HTTP 422: {"error": "unknown number +*********13"}'),
    ((401, b""), "HTTP 401"),
    ((302, b""), "HTTP 302"),
])
def test_a_refusal_is_not_retried_and_numbers_in_it_are_masked(answer, error):
    store = requested_store()
    sender, clock, stub, fake = helpdesk(store, answers=[answer])
    sender.requested("CA1")
    stub.flush()
    assert row(store) == ("failed", 1, error, None)
    assert clock.getDelayedCalls() == []
    clock.advance(300)
    assert len(fake.requests) == 1


def test_it_gives_up_after_the_fifth_attempt():
    store = requested_store()
    sender, clock, stub, fake = helpdesk(store, answers=[500] * 4 + ["hang"])
    sender.requested("CA1")
    stub.flush()
    for delay, attempts in [(1, 2), (5, 3), (30, 4), (120, 5)]:
        clock.advance(delay - 0.5)
        stub.flush()
        assert len(fake.requests) == attempts - 1
        clock.advance(0.5)
        stub.flush()
        assert len(fake.requests) == attempts
    assert row(store)[:2] == ("pending", 4)
    clock.advance(9.9)  # the fifth attempt hangs: 10 s to answer
    assert row(store)[0] == "pending"
    clock.advance(0.1)
    stub.flush()
    assert row(store) == ("failed", 5, "timeout after 10 s", None)
    clock.advance(600)
    assert len(fake.requests) == 5
    assert clock.getDelayedCalls() == []


def test_a_request_already_on_its_way_or_delivered_is_not_sent_again():
    store = requested_store()
    sender, clock, stub, fake = helpdesk(store, answers=[503])
    sender.requested("CA1")
    stub.flush()
    sender.requested("CA1")  # a retry is waiting
    stub.flush()
    assert len(fake.requests) == 1
    clock.advance(1)
    stub.flush()
    assert row(store)[0] == "sent"
    sender.requested("CA1")
    stub.flush()
    assert len(fake.requests) == 2
    assert clock.getDelayedCalls() == []


def test_the_log_never_shows_the_number():
    events = []
    globalLogPublisher.addObserver(events.append)
    try:
        store = requested_store()
        sender, clock, stub, fake = helpdesk(store, answers=[(500, b"no route to +33639980013")])
        sender.requested("CA1")
        stub.flush()
        clock.advance(1)
        stub.flush()
    finally:
        globalLogPublisher.removeObserver(events.append)
    lines = [formatEvent(e) for e in events if "helpdesk" in (e.get("log_format") or "")]
    assert any("next in 1 s" in line for line in lines) and any("sent" in line for line in lines)
    assert not any("639980013" in line for line in lines)
    assert clock.getDelayedCalls() == []


# --- restarts ---------------------------------------------------------------------------


def test_on_start_requests_still_pending_are_sent_again():
    store = requested_store(attempts=2)  # the last run tried twice, then stopped
    sender, clock, stub, fake = helpdesk(store)
    service = HelpdeskService(sender)
    service.startService()
    stub.flush()
    assert len(fake.requests) == 1
    assert row(store)[:3] == ("sent", 3, None)
    service.stopService()
    assert clock.getDelayedCalls() == []


def test_stopping_keeps_what_is_in_flight_or_waiting_pending_for_the_next_start():
    store = requested_store()
    sender, clock, stub, fake = helpdesk(store, answers=["hang"])
    service = HelpdeskService(sender)
    service.startService()
    sender.requested("CA1")
    stub.flush()
    service.stopService()  # the request in flight is cancelled
    stub.flush()
    assert row(store) == ("pending", 0, None, None)
    assert clock.getDelayedCalls() == []

    sender, clock, stub, fake = helpdesk(store, answers=[503])
    HelpdeskService(sender).startService()  # a new run
    stub.flush()
    assert row(store)[:2] == ("pending", 1)
    HelpdeskService(sender).stopService()  # the retry waiting is cancelled
    assert clock.getDelayedCalls() == []
    assert row(store)[:2] == ("pending", 1)


def test_requests_not_configured_or_failed_are_not_resent():
    store = requested_store(status="not_configured")
    sender, clock, stub, fake = helpdesk(store)
    assert sender.resend_pending() == 0
    sender.requested("CA1")
    stub.flush()
    assert fake.requests == [] and row(store)[0] == "not_configured"
    assert clock.getDelayedCalls() == []


def test_no_helpdesk_sends_nothing():
    nothing = NoHelpdesk()
    assert nothing.initial_status == "not_configured"
    assert nothing.resend_pending() == 0 and nothing.requested("CA1") is None


# --- the server ---------------------------------------------------------------------------


def test_the_server_posts_a_callback_request_once_its_turn_is_committed(tmp_path):
    clock = task.Clock()
    clock.advance(EVENING.timestamp())
    store = CallStore.open(tmp_path / "ivr.db")
    orders = EmbeddedOrderLookups(create_demo_db(store.db, date(2026, 11, 24)))
    flows = FlowRegistry(ROOT / "flows", ROOT / "prompts", store)
    flows.reload_if_changed()
    fake = FakeHelpdesk()
    stub = StubTreq(fake)
    sender = Helpdesk(URL, store, clock, token=TOKEN, registry=flows, http=stub)
    handler = CallHandler(flows, store, orders.perform, clock,
                          group_commit=GroupCommit(store, clock), helpdesk=sender)
    for number, digits in enumerate([None, "0", "1", "2", "2", "0699887766#"]):
        params = {"CallSid": "CA7", "From": "+33612345678", "To": "+33100000000"}
        if digits:
            params["Digits"] = digits.rstrip("#")
        d = defer.ensureDeferred(handler.voice("post_sale", number, params))
        clock.advance(0)
        stub.flush()
        assert d.called
    [request] = fake.requests
    assert request["json"]["number"] == "0699887766" and request["json"]["slot"] == "afternoon"
    # The one order answered before the menu is the reason and goes with the request.
    assert request["json"]["reason"] == "in_transit_on_time" and request["json"]["order"] == "100234"
    assert store.callback_request("CA7")["status"] == "sent"
    handler.status({"CallSid": "CA7", "CallStatus": "completed", "SequenceNumber": "2"})
    stub.flush()
    assert len(fake.requests) == 1
    assert store.call("CA7")["cause"] == "callback"
    assert clock.getDelayedCalls() == []


def test_helpdesk_url_and_token_options(monkeypatch):
    monkeypatch.setenv("IVR_HELPDESK_TOKEN", TOKEN)
    options = tap.Options()
    options.parseOptions(["--helpdesk-url", URL])
    assert (options["helpdesk-url"], options["helpdesk-token"]) == (URL, TOKEN)
    monkeypatch.delenv("IVR_HELPDESK_TOKEN")
    options = tap.Options()
    options.parseOptions([])
    assert options["helpdesk-url"] is None and options["helpdesk-token"] is None


@pytest.mark.parametrize("url", ["helpdesk.example.com/callbacks", "ftp://helpdesk.example.com/",
                                 "https:///callbacks"])
def test_a_helpdesk_url_that_is_not_http_is_a_usage_error(url):
    with pytest.raises(UsageError, match="--helpdesk-url must be an http:// or https:// URL"):
        tap.Options().parseOptions(["--helpdesk-url", url])


@pytest.mark.parametrize("args, kind", [([], NoHelpdesk), (["--helpdesk-url", URL], Helpdesk)])
def test_the_server_is_built_with_a_helpdesk_only_when_given_a_url(tmp_path, args, kind):
    reactor = MemoryReactorClock()
    options = tap.Options()
    options.parseOptions(["--db", str(tmp_path / "new.db"), "--flows", str(ROOT / "flows"),
                          "--prompts", str(ROOT / "prompts"), "--listen", "tcp:0:interface=127.0.0.1",
                          *args])
    top = tap.makeService(options, reactor)
    service = next(s for s in top if isinstance(s, HelpdeskService))
    assert isinstance(service.helpdesk, kind)
    top.startService()
    top.stopService()


def test_with_a_store_read_off_the_reactor_every_store_call_goes_there():
    store = requested_store()
    sender, clock, stub, fake = helpdesk(store)
    asked: list = []

    def in_thread(function, *args):
        asked.append(getattr(function, "func", function).__name__)
        return defer.maybeDeferred(function, *args)

    sender.in_thread = in_thread
    assert sender.resend_pending().result == 1
    stub.flush()
    assert len(fake.requests) == 1 and row(store)[:2] == ("sent", 1)
    assert asked == ["pending_callbacks", "callback_request", "update_callback"]
    assert clock.getDelayedCalls() == []


def test_a_store_that_cannot_be_asked_sends_nothing_and_raises_nothing():
    store = requested_store()
    sender, clock, stub, fake = helpdesk(store)
    sender.in_thread = lambda function, *args: defer.fail(OSError("no answer"))
    assert sender.resend_pending().result == 0
    sender.requested("CA1")
    stub.flush()
    assert fake.requests == [] and clock.getDelayedCalls() == []
    sender.in_thread = lambda function, *args: defer.maybeDeferred(function, *args)
    sender.requested("CA1")  # the store answers again: sent
    stub.flush()
    assert len(fake.requests) == 1 and row(store)[:2] == ("sent", 1)
