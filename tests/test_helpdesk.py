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
from ivr.server.helpdesk import (
    RESEND_INTERVAL,
    Helpdesk,
    HelpdeskService,
    NoHelpdesk,
    orphaned_after,
)
from ivr.server.leases import HELPDESK_LEASE, Leases
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
ORPHANED = orphaned_after()
#: The last attempt of a request a stopping server gave up.
GIVEN_UP = "1970-01-01T00:00:00.000000+00:00"


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


def requested_store(caller=LOST, status="pending", attempts=0, call_id="CA1", store=None):
    """A store (``store``, else a new one in memory) holding one callback
    request, as the server writes it: a lost parcel, closed hours, a
    morning callback on the caller's number."""
    flow = load_flow(ROOT / "flows" / "post_sale.yaml", ROOT / "prompts")
    store = store or CallStore(sqlite_utils.Database(memory=True))
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


def claimed_by_a_process_that_died(store, clock, call_id="CA1"):
    """``call_id``'s request attempted now by another process, which then
    dies (nothing more is written)."""
    seen = store.callback_request(call_id)["last_attempt_at"]
    assert store.claim_callback(call_id, seen, datetime.fromtimestamp(clock.seconds(), timezone.utc))


def test_on_start_requests_left_by_a_process_that_died_are_sent_again():
    store = requested_store(attempts=2)  # the last run tried twice, then was killed
    sender, clock, stub, fake = helpdesk(store)
    claimed_by_a_process_that_died(store, clock)
    clock.advance(ORPHANED + 1)
    service = HelpdeskService(sender)
    service.startService()
    stub.flush()
    assert len(fake.requests) == 1
    assert row(store)[:3] == ("sent", 3, None)
    service.stopService()
    assert clock.getDelayedCalls() == []


def test_the_bound_follows_the_retry_schedule():
    # 1 + 5 + 30 + 120 s of waits, five attempts of 10 s: twice that.
    assert orphaned_after((1, 5, 30, 120), 10.0) == ORPHANED == 412
    assert orphaned_after((2,), 3.0) == 2 * (2 + 2 * 3)
    assert Helpdesk(URL, CallStore(sqlite_utils.Database(memory=True)), task.Clock(), http=object(),
                    delays=(2,), timeout=3.0).orphaned_after == 16


def test_stopping_gives_up_what_is_in_flight_or_waiting_and_the_next_start_sends_it():
    store = requested_store()
    sender, clock, stub, fake = helpdesk(store, answers=["hang"])
    service = HelpdeskService(sender)
    service.startService()  # nothing orphaned yet
    sender.requested("CA1")
    stub.flush()
    assert len(fake.requests) == 1
    service.stopService()  # the request in flight is cancelled, and given up
    stub.flush()
    assert row(store) == ("pending", 0, None, None)
    assert store.callback_request("CA1")["last_attempt_at"] == GIVEN_UP
    assert clock.getDelayedCalls() == []

    sender, clock, stub, fake = helpdesk(store, answers=[503])
    service = HelpdeskService(sender)
    service.startService()  # a new run, seconds later: sent at once
    stub.flush()
    assert len(fake.requests) == 1 and row(store)[:2] == ("pending", 1)
    service.stopService()  # the retry waiting is cancelled, and given up
    assert clock.getDelayedCalls() == []
    assert row(store)[:2] == ("pending", 1)
    assert store.callback_request("CA1")["last_attempt_at"] == GIVEN_UP


def test_requests_not_configured_or_failed_are_not_resent():
    store = requested_store(status="not_configured")
    sender, clock, stub, fake = helpdesk(store)
    clock.advance(ORPHANED + 1)
    assert sender.resend_orphaned().result == 0
    sender.requested("CA1")
    stub.flush()
    assert fake.requests == [] and row(store)[0] == "not_configured"
    assert clock.getDelayedCalls() == []


# --- orphans: requests whose sender died -------------------------------------------------


class Queued:
    """An ``in_thread`` whose store calls wait until :meth:`run` (one
    process's calls reaching the store when the test says)."""

    def __init__(self):
        self.calls: list = []

    def __call__(self, function, *args):
        d = defer.Deferred()
        self.calls.append((function, args, d))
        return d

    def run(self):
        """The calls waiting now (not those they lead to)."""
        calls, self.calls = self.calls, []
        for function, args, d in calls:
            defer.maybeDeferred(function, *args).chainDeferred(d)


def logged(events, text):
    return [formatEvent(e) for e in events if text in formatEvent(e)]


@pytest.fixture
def events():
    seen: list = []
    globalLogPublisher.addObserver(seen.append)
    yield seen
    globalLogPublisher.removeObserver(seen.append)


def test_a_request_orphaned_while_the_server_runs_is_sent_by_its_periodic_run(events):
    store = requested_store(attempts=1)
    sender, clock, stub, fake = helpdesk(store)
    claimed_by_a_process_that_died(store, clock)  # its retry will never come
    service = HelpdeskService(sender)
    service.startService()
    stub.flush()
    runs = 0
    while not fake.requests:  # attempted recently: not sent until ORPHANED has passed
        assert runs * RESEND_INTERVAL <= ORPHANED
        clock.advance(RESEND_INTERVAL)
        stub.flush()
        runs += 1
    assert runs * RESEND_INTERVAL > ORPHANED
    assert row(store)[:2] == ("sent", 2)
    assert logged(events, "sending again 1 callback requests left pending")
    clock.advance(10 * RESEND_INTERVAL)
    stub.flush()
    assert len(fake.requests) == 1
    service.stopService()
    assert clock.getDelayedCalls() == []


def test_a_request_attempted_recently_by_another_process_is_not_sent():
    store = requested_store(attempts=3)
    sender, clock, stub, fake = helpdesk(store)
    clock.advance(ORPHANED + 1)  # requested long ago...
    claimed_by_a_process_that_died(store, clock)  # ...and attempted now elsewhere
    clock.advance(ORPHANED - 1)
    assert sender.resend_orphaned().result == 0
    stub.flush()
    assert fake.requests == [] and row(store)[:2] == ("pending", 3)
    clock.advance(2)
    assert sender.resend_orphaned().result == 1
    stub.flush()
    assert len(fake.requests) == 1 and row(store)[:2] == ("sent", 4)
    assert clock.getDelayedCalls() == []


def test_a_request_this_process_is_sending_is_not_sent_again():
    store = requested_store()
    sender, clock, stub, fake = helpdesk(store, answers=["hang"])
    sender.requested("CA1")
    stub.flush()
    # The store says no one has tried it for long (a clock gone back, say):
    # this process is sending it all the same.
    seen = store.callback_request("CA1")["last_attempt_at"]
    assert store.claim_callback("CA1", seen, datetime(2026, 1, 1, tzinfo=timezone.utc))
    clock.advance(5)
    assert sender.resend_orphaned().result == 0
    stub.flush()
    assert len(fake.requests) == 1
    sender.stop()
    assert clock.getDelayedCalls() == []


def test_of_two_processes_finding_the_same_orphan_one_only_sends_it():
    store = requested_store(attempts=1)
    clock = task.Clock()
    clock.advance(EVENING.timestamp() + 60)
    claimed_by_a_process_that_died(store, clock)
    clock.advance(ORPHANED + 1)
    fake = FakeHelpdesk()
    stub = StubTreq(fake)
    first, second = Queued(), Queued()
    senders = [Helpdesk(URL, store, clock, http=stub, in_thread=queued) for queued in (first, second)]
    found = [sender.resend_orphaned() for sender in senders]
    first.run()
    second.run()  # both found it orphaned, neither has claimed it yet
    assert [d.result for d in found] == [1, 1]
    first.run()
    second.run()  # both read it
    second.run()
    first.run()  # both claim it: the second first
    stub.flush()
    first.run()
    second.run()
    assert len(fake.requests) == 1 and row(store)[:2] == ("sent", 2)
    assert clock.getDelayedCalls() == []


def test_two_servers_on_one_file_send_an_orphan_once(tmp_path):
    path = tmp_path / "ivr.db"
    store = requested_store(attempts=1, store=CallStore.open(path))
    other_store = CallStore.open(path)
    clock = task.Clock()
    clock.advance(EVENING.timestamp() + 60)
    claimed_by_a_process_that_died(store, clock)
    fake = FakeHelpdesk()
    stub = StubTreq(fake)
    services = []
    for handle, holder in [(store, "worker-1"), (other_store, "worker-2")]:
        leases = Leases(handle, clock, holder=holder)
        services.append(HelpdeskService(
            Helpdesk(URL, handle, clock, http=stub),
            may_resend=lambda leases=leases: leases.held("helpdesk-resend", HELPDESK_LEASE),
            release=lambda leases=leases: leases.release("helpdesk-resend")))
    for service in services:
        service.startService()
    for _run in range(10):
        clock.advance(RESEND_INTERVAL)
        stub.flush()
    assert len(fake.requests) == 1
    assert other_store.callback_request("CA1")["status"] == "sent"
    # The holder stops: the other takes the lease over and sends the next orphan.
    requested_store(call_id="CA2", store=other_store)
    claimed_by_a_process_that_died(other_store, clock, "CA2")
    services[0].stopService()
    for _run in range(5):
        clock.advance(RESEND_INTERVAL)
        stub.flush()
    assert len(fake.requests) == 2 and store.callback_request("CA2")["status"] == "sent"
    services[1].stopService()
    assert clock.getDelayedCalls() == []
    store.close()
    other_store.close()


def test_a_store_failing_in_the_periodic_run_is_logged_and_the_next_run_sends(events, monkeypatch):
    store = requested_store()
    sender, clock, stub, fake = helpdesk(store)
    clock.advance(ORPHANED + 1)

    def broken(_cutoff):
        raise OSError("disk I/O error")

    monkeypatch.setattr(store, "orphaned_callbacks", broken)
    service = HelpdeskService(sender)
    service.startService()  # raises nothing
    assert logged(events, "could not be asked for the orphaned requests")
    assert fake.requests == []
    monkeypatch.undo()
    clock.advance(RESEND_INTERVAL)  # the loop goes on
    stub.flush()
    assert len(fake.requests) == 1 and row(store)[0] == "sent"
    service.stopService()
    assert clock.getDelayedCalls() == []


def test_a_store_off_the_reactor_failing_in_the_periodic_run_is_logged(events):
    store = requested_store()
    sender, clock, stub, fake = helpdesk(store)
    clock.advance(ORPHANED + 1)
    sender.in_thread = lambda function, *args: defer.fail(OSError("no answer"))
    service = HelpdeskService(sender, may_resend=lambda: defer.fail(OSError("lease")))
    service.startService()
    assert logged(events, "orphaned requests not sent again")
    service.may_resend = lambda: True
    clock.advance(RESEND_INTERVAL)
    assert logged(events, "could not be asked for the orphaned requests")
    service.stopService()
    assert fake.requests == [] and clock.getDelayedCalls() == []


def test_no_helpdesk_sends_nothing():
    nothing = NoHelpdesk()
    assert nothing.initial_status == "not_configured"
    assert nothing.resend_orphaned() == 0 and nothing.requested("CA1") is None


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
    clock.advance(ORPHANED + 1)
    assert sender.resend_orphaned().result == 1
    stub.flush()
    assert len(fake.requests) == 1 and row(store)[:2] == ("sent", 1)
    assert asked == ["orphaned_callbacks", "callback_request", "claim_callback", "update_callback"]
    assert clock.getDelayedCalls() == []


def test_a_store_that_cannot_be_asked_sends_nothing_and_raises_nothing():
    store = requested_store()
    sender, clock, stub, fake = helpdesk(store)
    sender.in_thread = lambda function, *args: defer.fail(OSError("no answer"))
    assert sender.resend_orphaned().result == 0
    sender.requested("CA1")
    stub.flush()
    assert fake.requests == [] and clock.getDelayedCalls() == []
    sender.in_thread = lambda function, *args: defer.maybeDeferred(function, *args)
    sender.requested("CA1")  # the store answers again: sent
    stub.flush()
    assert len(fake.requests) == 1 and row(store)[:2] == ("sent", 1)
