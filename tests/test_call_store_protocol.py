"""ivr.store.protocol: the behaviours every call store has, run against
the SQLite backend and the in-memory one alike."""

from datetime import date, datetime
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import pytest
import sqlite_utils
from treq.testing import StubTreq
from twisted.internet import task

from ivr.engine.state import call_summary
from ivr.lookups.demo_orders import create_demo_db
from ivr.lookups.embedded import EmbeddedOrderLookups
from ivr.server.calls import CallHandler
from ivr.server.registry import FlowRegistry
from ivr.server.web import build_root
from ivr.store.memory import MemoryCallStore
from ivr.store.postgres.store import PostgresCallStore
from ivr.store.protocol import CallStore as CallStoreProtocol
from ivr.store.sqlite.store import CallStore as SQLiteCallStore

CALLER = "+33612345678"
KEY = b"k" * 32


@pytest.fixture(params=["sqlite", "memory", "postgresql"])
def store(request):
    if request.param == "sqlite":
        made = SQLiteCallStore(sqlite_utils.Database(memory=True), caller_key=KEY)
    elif request.param == "postgresql":
        made = PostgresCallStore.connect(request.getfixturevalue("postgres_dsn"), caller_key=KEY)
    else:
        made = MemoryCallStore(caller_key=KEY)
    yield made
    made.close()


def make_state(call_id="CA1", now="2026-11-24T09:00:10+00:00", ended=False, **changes):
    state = {
        "call_id": call_id, "flow": "shop", "version": "abc123", "caller": CALLER,
        "called": "+33100000000", "country": "FR", "lang": "fr-FR",
        "started_at": "2026-11-24T09:00:00+00:00", "now": now,
        "ended_at": now if ended else None, "node": "menu", "waiting": "gather",
        "request": None, "vars": {"phone": CALLER}, "digits": "1", "speech": "",
        "no_input": 0, "no_match": 0, "visits": {"menu": 1}, "steps": 2, "seq": 2,
        "reason": "order_status", "resolved": False, "confirmed": False, "cause": None,
        "handoff": None, "outcome": "self_served" if ended else None, "ended": ended,
    }
    state.update(changes)
    return state


def make_events(call_id="CA1", seqs=(1, 2)):
    return [{"call_id": call_id, "seq": seq, "flow": "shop", "version": "abc123",
             "node": f"node{seq}", "kind": "say", "input": None, "branch": "next",
             "detail": None, "at": f"2026-11-24T09:00:0{seq}+00:00"} for seq in seqs]


def save(store, state, turn=1, events=(), response=b"<Response/>", **kwargs):
    store.save_turn(state["call_id"], turn, state, response, list(events),
                    call_summary(state), state["caller"], **kwargs)


def with_callback(call_id="CA1", number="0699887766", requested_at="2026-11-24T09:00:30+00:00",
                  **changes):
    request = {"number": number, "requested_at": requested_at,
               "lang": "fr-FR", "reason": "carrier_delay", "order_number": 1234, "slot": "morning"}
    return make_state(call_id, callback=request, **changes)


def test_both_backends_satisfy_the_protocol(store):
    assert isinstance(store, CallStoreProtocol)


def test_a_turn_writer_writes_when_called_and_raises_what_save_turn_would(store):
    state = make_state()
    write = store.turn_writer("CA1", 1, state, b"<Response/>", make_events(),
                              call_summary(state), CALLER)
    assert store.load_call("CA1") is None  # nothing written until it is called
    write()
    assert store.load_call("CA1").turn == 1
    assert [event["seq"] for event in store.node_events("CA1")] == [1, 2]
    foreign = store.turn_writer("CA1", 2, make_state(steps=3), b"<Response/>",
                                make_events(call_id="CA2", seqs=(3,)), call_summary(state), CALLER)
    with pytest.raises(ValueError, match="CA2"):
        foreign()
    assert store.load_call("CA1").turn == 1
    assert [event["seq"] for event in store.node_events("CA1")] == [1, 2]


def test_a_saved_turn_loads_back(store):
    assert store.load_call("CA1") is None
    state = make_state()
    save(store, state, turn=3, events=make_events(), response=b"<Response><Hangup/></Response>")
    record = store.load_call("CA1")
    assert (record.state, record.turn, record.response, record.ended) == (
        state, 3, b"<Response><Hangup/></Response>", False)
    ended = make_state(now="2026-11-24T09:01:00+00:00", ended=True)
    save(store, ended, turn=4)
    assert store.load_call("CA1").ended is True


def test_a_retried_turn_counts_its_node_events_once(store):
    state = make_state()
    save(store, state, turn=1, events=make_events(seqs=(1, 2)))
    save(store, state, turn=1, events=make_events(seqs=(1, 2)))
    save(store, make_state(seq=3), turn=2, events=make_events(seqs=(2, 3)))
    assert [e["seq"] for e in store.node_events("CA1")] == [1, 2, 3]
    assert store.node_events("CA1")[0] == make_events()[0]


def test_a_late_retry_of_an_older_turn_does_not_roll_the_call_back(store):
    save(store, make_state(steps=5), turn=2, events=make_events(seqs=(1, 2)), response=b"2")
    save(store, make_state(steps=1), turn=1, events=make_events(seqs=(1,)), response=b"1")
    record = store.load_call("CA1")
    assert (record.turn, record.response, store.call("CA1")["steps"]) == (2, b"2", 5)


def test_events_of_another_call_are_refused_and_nothing_is_kept(store):
    with pytest.raises(ValueError):
        save(store, make_state(), events=make_events(call_id="CA2"))
    assert store.load_call("CA1") is None and store.call("CA1") is None


def test_a_failing_save_inside_a_transaction_keeps_nothing(store):
    with pytest.raises(KeyError):
        save(store, make_state(), events=make_events() + [{"call_id": "CA1", "seq": 3}])
    assert store.load_call("CA1") is None
    assert store.node_events("CA1") == []
    assert store.call("CA1") is None


def test_a_transaction_keeps_its_writes_together(store):
    with pytest.raises(RuntimeError):
        with store.transaction():
            save(store, make_state("CA1"))
            save(store, make_state("CA2"))
            raise RuntimeError("boom")
    assert store.load_call("CA1") is None and store.load_call("CA2") is None
    with store.transaction():
        save(store, make_state("CA1"))
        save(store, make_state("CA2"))
    assert store.load_call("CA1") and store.load_call("CA2")


def test_the_calls_row_holds_the_summary_and_only_a_hash_of_the_caller(store):
    save(store, make_state(ended=True, outcome="transferred", cause="caller_asked", confirmed=True))
    row = store.call("CA1")
    assert (row["flow"], row["outcome"], row["cause"], row["confirmed"]) == (
        "shop", "transferred", "caller_asked", 1)
    assert row["caller_hash"] == store.hash_caller(CALLER) != ""
    assert CALLER not in str(row.values())


def test_a_callback_target_is_hashed_like_a_caller(store):
    save(store, make_state(handoff={"kind": "callback", "target": "0699887766", "node": "cb"}))
    assert store.call("CA1")["handoff_target"] == store.hash_caller("06 99 88 77 66")


def test_hashes_are_normalised_and_empty_when_withheld(store):
    assert store.hash_caller("+33 6 12 34 56 78") == store.hash_caller(CALLER)
    assert store.hash_caller("anonymous") == store.hash_caller(None) == ""


def test_status_callbacks_dedupe_and_follow_the_highest_sequence(store):
    save(store, make_state(ended=True))
    assert store.record_status("CA1", 2, "completed", "2026-11-24T09:01:00Z", 61) is True
    assert store.record_status("CA1", 2, "completed", "2026-11-24T09:01:00Z", 61) is False
    assert store.record_status("CA1", 1, "in-progress", "2026-11-24T09:00:01Z", None) is True
    row = store.call("CA1")
    assert (row["provider_status"], row["duration_s"]) == ("completed", 61)


def test_an_unnumbered_status_is_kept_once_and_an_empty_one_refused(store):
    save(store, make_state(ended=True))
    assert store.record_status("CA1", None, "Busy", "2026-11-24T09:01:00Z", 0) is True
    assert store.record_status("CA1", None, "busy", "2026-11-24T09:01:00Z", 0) is False
    assert store.call("CA1")["provider_status"] == "busy"
    with pytest.raises(ValueError):
        store.record_status("CA1", 3, "  ", "2026-11-24T09:01:00Z", 0)


def test_a_status_before_the_first_turn_applies_once_the_call_is_saved(store):
    assert store.record_status("CA1", 5, "completed", "2026-11-24T09:01:00Z", 42)
    assert store.call("CA1") is None
    save(store, make_state())
    row = store.call("CA1")
    assert (row["provider_status"], row["duration_s"]) == ("completed", 42)


def test_flow_versions_are_kept_once(store):
    prompts = SimpleNamespace(sources={("fr-FR", "hello"): "Bonjour."})
    flow = SimpleNamespace(name="shop", version="abc123", source="name: shop\n", prompts=prompts)
    assert store.save_flow_version(flow, first_seen="2026-11-24T09:00:00+00:00") is True
    assert store.save_flow_version(flow) is False
    stored = store.flow_version("shop", "abc123")
    assert stored["source"] == "name: shop\n" and stored["prompts"] == {"fr-FR/hello": "Bonjour."}
    assert stored["first_seen"] == "2026-11-24T09:00:00+00:00"
    assert store.flow_version("shop", "other") is None


def test_open_calls_are_the_unended_ones_last_saved_before_the_cutoff(store):
    save(store, make_state("OLD", now="2026-11-24T09:00:00+00:00"))
    save(store, make_state("NEW", now="2026-11-24T09:30:00+00:00"))
    save(store, make_state("DONE", now="2026-11-24T08:00:00+00:00", ended=True))
    save(store, make_state("PARIS", now="2026-11-24T10:05:00+01:00"))
    assert store.open_calls("2026-11-24T09:10:00+00:00") == ["OLD", "PARIS"]
    assert store.open_calls("2026-11-24T08:00:00+00:00") == []


def test_a_callback_request_is_kept_once_with_its_number(store):
    save(store, with_callback(), callback_status="pending")
    save(store, with_callback(number="0600000000"), turn=2, callback_status="pending")
    request = store.callback_request("CA1")
    assert (request["number"], request["reason"], request["order_number"], request["slot"],
            request["status"]) == ("0699887766", "carrier_delay", "1234", "morning", "pending")
    assert store.callback_request("CA2") is None


def test_pending_callbacks_and_their_updates(store):
    save(store, with_callback("CA1"), callback_status="pending")
    save(store, with_callback("CA2"), callback_status="not_configured")
    assert store.pending_callbacks() == ["CA1"]
    store.update_callback("CA1", "sent", 1, delivered_at="2026-11-24T09:02:00+00:00")
    assert store.pending_callbacks() == []
    request = store.callback_request("CA1")
    assert (request["status"], request["attempts"], request["delivered_at"]) == (
        "sent", 1, "2026-11-24T09:02:00+00:00")
    with pytest.raises(ValueError):
        store.update_callback("CA1", "lost", 2)


def test_orphaned_callbacks_are_the_pending_ones_not_attempted_since_the_cutoff(store):
    utc = ZoneInfo("UTC")
    save(store, with_callback("NEVER"), callback_status="pending")  # asked 09:00:30 UTC
    save(store, with_callback("PARIS", requested_at="2026-11-24T10:00:40+01:00"),
         callback_status="pending")  # asked 09:00:40 UTC, after NEVER in time, not as text
    save(store, with_callback("TRIED"), callback_status="pending")
    save(store, with_callback("SENT"), callback_status="pending")
    save(store, with_callback("OFF"), callback_status="not_configured")
    assert store.claim_callback("TRIED", None, datetime(2026, 11, 24, 9, 10, tzinfo=utc))
    store.update_callback("SENT", "sent", 1, delivered_at="2026-11-24T09:01:00+00:00")
    tried = store.callback_request("TRIED")["last_attempt_at"]
    assert tried == "2026-11-24T09:10:00.000000+00:00"
    assert store.orphaned_callbacks(datetime(2026, 11, 24, 9, 0, 35, tzinfo=utc)) == [("NEVER", None)]
    assert store.orphaned_callbacks(datetime(2026, 11, 24, 9, 5, tzinfo=utc)) == [
        ("NEVER", None), ("PARIS", None)]
    assert store.orphaned_callbacks(datetime(2026, 11, 24, 9, 10, 1, tzinfo=utc)) == [
        ("NEVER", None), ("TRIED", tried), ("PARIS", None)]  # oldest request first, as text


def test_a_claim_holds_only_over_the_last_attempt_seen(store):
    utc = ZoneInfo("UTC")
    first, then = datetime(2026, 11, 24, 9, 1, tzinfo=utc), datetime(2026, 11, 24, 9, 2, tzinfo=utc)
    save(store, with_callback("CA1"), callback_status="pending")
    save(store, with_callback("CA2"), callback_status="not_configured")
    assert store.callback_request("CA1")["last_attempt_at"] is None
    assert store.claim_callback("CA1", None, first) is True
    assert store.claim_callback("CA1", None, then) is False  # another process claimed it first
    seen = store.callback_request("CA1")["last_attempt_at"]
    assert seen == "2026-11-24T09:01:00.000000+00:00"
    assert store.claim_callback("CA1", seen, then.astimezone(ZoneInfo("Europe/Paris"))) is True
    assert store.callback_request("CA1")["last_attempt_at"] == "2026-11-24T09:02:00.000000+00:00"
    assert store.claim_callback("CA1", seen, then) is False
    store.update_callback("CA1", "sent", 1)
    assert store.claim_callback("CA1", "2026-11-24T09:02:00.000000+00:00", then) is False
    assert store.claim_callback("CA2", None, first) is False  # not pending
    assert store.claim_callback("NONE", None, first) is False


def test_an_unknown_callback_status_is_refused(store):
    with pytest.raises(ValueError):
        save(store, with_callback(), callback_status="maybe")
    assert store.load_call("CA1") is None


def test_ended_states_are_dropped_and_their_calls_stay(store):
    save(store, make_state("ENDED", now="2026-11-24T09:00:00+00:00", ended=True))
    save(store, make_state("LIVE", now="2026-11-24T09:00:00+00:00"))
    assert store.drop_ended_states("2026-11-24T10:00:00+00:00") == 1
    assert store.load_call("ENDED") is None and store.call("ENDED") is not None
    assert store.load_call("LIVE") is not None


def test_forgetting_a_caller_erases_their_calls_and_only_theirs(store):
    save(store, make_state("MINE"), events=make_events("MINE"))
    save(store, make_state("OTHER", caller="+33700000000"))
    save(store, with_callback("ASKED", caller="+33700000001", number=CALLER),
         callback_status="pending")
    erased = store.forget_caller("tel:+33-6-12-34-56-78")
    assert erased["calls"] == 2 and erased["node_events"] == 2 and erased["callback_requests"] == 1
    assert store.call("MINE") is None and store.load_call("MINE") is None
    assert store.call("ASKED") is None and store.callback_request("ASKED") is None
    assert store.call("OTHER") is not None
    assert set(store.forget_caller(CALLER).values()) == {0}
    with pytest.raises(ValueError):
        store.forget_caller("anonymous")


def test_purging_erases_the_calls_started_before_the_cutoff_across_offsets(store):
    save(store, make_state("EARLY", started_at="2026-11-24T09:00:00+00:00"))
    save(store, make_state("LATE", started_at="2026-11-24T11:30:00+01:00"))
    erased = store.purge_before("2026-11-24T11:00:00+01:00")
    assert erased["calls"] == 1
    assert store.call("EARLY") is None and store.call("LATE") is not None


# --- the server on either backend ---------------------------------------------------

ROOT = Path(__file__).parent.parent
TUESDAY_10AM = datetime(2026, 11, 24, 10, 0, tzinfo=ZoneInfo("Europe/Paris")).timestamp()


def serve_a_call(store, digits=("1", "2"), **handler_options):
    """A whole call to the demo flow through the real web resources on
    ``store`` (a CallHandler given ``handler_options``): the TwiML of each turn."""
    clock = task.Clock()
    clock.advance(TUESDAY_10AM)
    registry = FlowRegistry(ROOT / "flows", ROOT / "prompts", store)
    registry.reload()
    orders = EmbeddedOrderLookups(create_demo_db(sqlite_utils.Database(memory=True), date(2026, 11, 24)))
    http = StubTreq(build_root(CallHandler(registry, store, orders.perform, clock, **handler_options),
                               registry))
    answers = []
    for turn, pressed in enumerate((None, *digits)):
        params = {"CallSid": "CA" + "0" * 31 + "1", "From": CALLER, "To": "+33100000000"}
        if pressed is not None:
            params["Digits"] = pressed
        path = "/voice/post_sale" + (f"?turn={turn}" if turn else "")
        done = []
        http.request("POST", "http://ivr.test" + path, data=urlencode(params).encode(),
                     headers={"Content-Type": "application/x-www-form-urlencoded"}
                     ).addCallback(lambda r: r.content()).addBoth(done.append)
        http.flush()
        assert isinstance(done[0], bytes), done
        answers.append(done[0])
    assert clock.getDelayedCalls() == []
    return answers


def test_the_server_answers_the_same_twiml_on_both_backends_and_logs_the_call_alike():
    sqlite_store = SQLiteCallStore(sqlite_utils.Database(memory=True), caller_key=KEY)
    memory_store = MemoryCallStore(caller_key=KEY)
    assert serve_a_call(sqlite_store) == serve_a_call(memory_store)
    call_id = "CA" + "0" * 31 + "1"
    on_disk, in_memory = sqlite_store.call(call_id), memory_store.call(call_id)
    assert on_disk["outcome"] == "self_served"
    assert {k: in_memory[k] for k in in_memory} == {k: on_disk[k] for k in in_memory}
    assert [e["node"] for e in memory_store.node_events(call_id)] == [
        e["node"] for e in sqlite_store.node_events(call_id)]


def test_the_server_logs_a_call_on_postgresql_exactly_as_on_sqlite(postgres_dsn):
    sqlite_store = SQLiteCallStore(sqlite_utils.Database(memory=True), caller_key=KEY)
    postgres_store = PostgresCallStore.connect(postgres_dsn, caller_key=KEY)
    try:
        assert serve_a_call(sqlite_store) == serve_a_call(postgres_store)
        call_id = "CA" + "0" * 31 + "1"
        assert postgres_store.call(call_id) == sqlite_store.call(call_id)
        assert postgres_store.node_events(call_id) == sqlite_store.node_events(call_id)
        assert postgres_store.load_call(call_id) == sqlite_store.load_call(call_id)
    finally:
        postgres_store.close()


def test_a_handler_with_a_reader_thread_reads_each_turn_through_it(postgres_dsn):
    import threading

    from twisted.internet import defer

    reads = []

    def in_a_thread(function, *args):
        out = []
        worker = threading.Thread(target=lambda: out.append(function(*args)))
        worker.start()
        worker.join(timeout=30)
        reads.append((function.__name__, worker.ident))
        return defer.succeed(out[0])

    postgres_store = PostgresCallStore.connect(postgres_dsn, caller_key=KEY)
    sqlite_store = SQLiteCallStore(sqlite_utils.Database(memory=True), caller_key=KEY)
    try:
        threaded = serve_a_call(postgres_store, read_in_thread=in_a_thread)
        assert threaded == serve_a_call(sqlite_store)
        assert [name for name, _thread in reads] == ["load_call"] * 3
        assert threading.get_ident() not in {thread for _name, thread in reads}
    finally:
        postgres_store.close()
