"""Keeping the call log from growing forever, and erasing a caller:
ended calls' states dropped after the retry window, calls older than the
retention erased daily, a caller's calls erased on request."""

import sqlite3

import pytest
from test_storage_faults import call_sid
from test_web import ROOT, TUESDAY_10AM, Server, says
from twisted.internet import defer
from twisted.internet.testing import MemoryReactorClock

from ivr.server import tap
from ivr.store.postgres.store import PostgresCallStore
from ivr.store.sqlite.store import CallStore

CALLER = "+33612345678"
OTHER = "+33698765432"


def call(server, sid, number=CALLER, end=True):
    """A short call from ``number``: greeting, the menu's "1", and (when
    ``end``) its status callback."""
    server.post("/voice/post_sale", CallSid=sid, From=number, To="+33100000000")
    server.post("/voice/post_sale?turn=1", CallSid=sid, From=number, Digits="1")
    if end:
        server.post("/status", CallSid=sid, CallStatus="completed", SequenceNumber="9")


def counts(store, call_id):
    return {table: store.db.execute(f"SELECT count(*) FROM {table} WHERE call_id = ?",
                                    [call_id]).fetchone()[0]
            for table in ("calls", "node_events", "status_events", "call_state",
                          "callback_requests")}


# -- the state of ended calls ------------------------------------------------------------

def test_an_ended_calls_state_is_kept_for_the_retry_window_then_dropped(tmp_path):
    server = Server(tmp_path)
    call(server, call_sid("CAEND"))
    call(server, call_sid("CAOPEN"), end=False)
    _code, last = server.turn(1, sid=call_sid("CAEND"), Digits="1")  # a retry within the window
    server.clock.advance(599)
    server.handler.sweep()
    assert server.turn(1, sid=call_sid("CAEND"), Digits="1") == (200, last)
    assert counts(server.store, call_sid("CAEND"))["call_state"] == 1
    server.clock.advance(2)
    server.handler.sweep()
    kept = counts(server.store, call_sid("CAEND"))
    assert kept["call_state"] == 0 and kept["calls"] == 1 and kept["node_events"] > 0
    assert counts(server.store, call_sid("CAOPEN"))["call_state"] == 1  # not ended: kept


def test_a_request_for_a_call_whose_state_was_dropped_hangs_up_and_changes_nothing(tmp_path):
    server = Server(tmp_path)
    call(server, call_sid("CAEND"))
    before = server.store.call(call_sid("CAEND"))
    server.clock.advance(601)
    server.handler.sweep()
    code, body = server.turn(2, sid=call_sid("CAEND"), Digits="1")
    assert code == 200 and b"<Hangup" in body and says(body) == ""
    assert server.store.call(call_sid("CAEND")) == before
    assert counts(server.store, call_sid("CAEND"))["call_state"] == 0


def test_the_retry_window_is_configurable(tmp_path):
    server = Server(tmp_path)
    call(server, call_sid("CAEND"))
    server.clock.advance(61)
    server.handler.sweep(state_kept=60)
    assert counts(server.store, call_sid("CAEND"))["call_state"] == 0


# -- retention -----------------------------------------------------------------------------

def test_purge_erases_the_calls_started_before_the_cutoff_with_all_their_rows(tmp_path):
    server = Server(tmp_path)
    call(server, call_sid("CAOLD"))
    server.clock.advance(10 * 86400)
    call(server, call_sid("CANEW"))
    erased = server.handler.purge(days=5)
    assert erased["calls"] == 1 and erased["node_events"] > 0 and erased["status_events"] == 1
    assert set(counts(server.store, call_sid("CAOLD")).values()) == {0}
    assert counts(server.store, call_sid("CANEW"))["calls"] == 1
    assert server.handler.purge(days=5) == dict.fromkeys(erased, 0)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_purge_compares_times_across_utc_offsets(backend, request):
    if backend == "sqlite":
        store = CallStore(__import__("sqlite_utils").Database(memory=True))
    else:
        store = PostgresCallStore.connect(request.getfixturevalue("postgres_dsn"))
        request.addfinalizer(store.close)
    for sid, started in [("A", "2026-11-01T00:30:00+01:00"), ("B", "2026-11-01T01:30:00+01:00")]:
        store.db.execute("INSERT INTO calls (call_id, flow, version, started_at) "
                         "VALUES (?, 'f', 'v', ?)", [sid, started])
    assert store.purge_before("2026-11-01T00:00:00+00:00")["calls"] == 1  # A is 23:30 UTC
    assert [r["call_id"] for r in store.db.query("SELECT call_id FROM calls")] == ["B"]


def test_the_server_purges_at_start_then_daily_on_its_clock(tmp_path):
    db = tmp_path / "ivr.db"
    server = Server(tmp_path, db_path=db)
    call(server, call_sid("CAOLD"))  # Tuesday 24 November 2026
    server.clock.advance(9 * 86400 + 3600)
    call(server, call_sid("CALATER"))  # 9 days after
    server.store.close()
    reactor = MemoryReactorClock()
    reactor.advance(TUESDAY_10AM + 30 * 86400 + 7200)
    options = tap.Options()
    options.parseOptions(["--db", str(db), "--flows", str(ROOT / "flows"),
                          "--prompts", str(ROOT / "prompts"), "--listen", "tcp:0",
                          "--retention-days", "30"])
    top = tap.makeService(options, reactor)
    top.startService()
    try:
        assert top.getServiceNamed("retention").step == 86400
        store = CallStore.open(db)
        assert store.call(call_sid("CAOLD")) is None and store.call(call_sid("CALATER")) is not None
        reactor.advance(8 * 86400)
        assert store.call(call_sid("CALATER")) is not None  # 38 days after it, not 39: kept
        reactor.advance(86400)
        assert store.call(call_sid("CALATER")) is None
        store.close()
    finally:
        top.stopService()
    assert reactor.getDelayedCalls() == []


def test_without_retention_days_nothing_is_purged(tmp_path):
    options = tap.Options()
    options.parseOptions(["--db", str(tmp_path / "ivr.db"), "--flows", str(ROOT / "flows"),
                          "--prompts", str(ROOT / "prompts"), "--listen", "tcp:0"])
    assert options["retention-days"] is None
    top = tap.makeService(options, MemoryReactorClock())
    with pytest.raises(KeyError):
        top.getServiceNamed("retention")
    with pytest.raises(KeyError):  # SQLite's funnel counts are one row per node already
        top.getServiceNamed("reached-fold")


def test_a_fold_of_the_funnel_counts_that_fails_is_noted_and_raises_nothing(tmp_path):
    server = Server(tmp_path)

    def fails():
        raise sqlite3.OperationalError("disk I/O error")
    server.store.fold_reached_counts = fails
    assert server.handler.fold_counts() is None
    assert server.handler.storage.failures == {"io_error": 1}


def test_purge_and_fold_run_in_the_background_when_the_store_does(tmp_path):
    server = Server(tmp_path)
    call(server, call_sid("CAOLD"))
    server.clock.advance(10 * 86400)
    server.handler.in_background = lambda work, *args: defer.maybeDeferred(work, *args)
    purged = server.handler.purge(days=5)
    assert purged.result["calls"] == 1 and server.store.call(call_sid("CAOLD")) is None

    def fails():
        raise sqlite3.OperationalError("database or disk is full")
    server.store.fold_reached_counts = fails
    folded = server.handler.fold_counts()
    assert folded.called and folded.result is None  # the failure noted, not passed on
    assert server.handler.storage.failures == {"disk_full": 1}


@pytest.mark.parametrize("argv, message", [
    (["--retention-days", "0"], "--retention-days must be a positive number"),
    (["--retention-days", "a year"], "--retention-days must be a positive number"),
    (["--retry-window", "30"], "--retry-window under 60 s"),
    (["--log-files", "1.5"], "--log-files must be a positive whole number"),
])
def test_bad_retention_options_are_refused(argv, message):
    with pytest.raises(tap.usage.UsageError, match=message):
        tap.Options().parseOptions(argv)


# -- forgetting a caller ----------------------------------------------------------------------

def test_forget_erases_every_call_of_the_caller_and_only_theirs(tmp_path):
    server = Server(tmp_path)
    call(server, call_sid("CAMINE1"))
    call(server, call_sid("CAMINE2"), number="+33 6 12 34 56 78")  # the same number, written otherwise
    call(server, call_sid("CAOTHER"), number=OTHER)
    erased = server.store.forget_caller(CALLER)
    assert erased["calls"] == 2 and erased["node_events"] > 0 and erased["status_events"] == 2
    for sid in (call_sid("CAMINE1"), call_sid("CAMINE2")):
        assert set(counts(server.store, sid).values()) == {0}
    assert counts(server.store, call_sid("CAOTHER"))["calls"] == 1
    assert set(server.store.forget_caller(CALLER).values()) == {0}  # idempotent


def test_forget_erases_a_callback_request_for_the_number_made_from_another_phone(tmp_path):
    server = Server(tmp_path)
    server.turn(0, sid=call_sid("CACB"))
    store = server.store
    store.db.execute(
        "INSERT INTO callback_requests (call_id, flow, version, requested_at, number_sealed, "
        "number_hash, reason, status) VALUES (?, 'post_sale', 'v', '2026-11-24T10:00:00', "
        "?, ?, 'billing', 'pending')", [call_sid("CACB"), store._seal(OTHER), store.hash_caller(OTHER)])
    store.db.conn.commit()
    erased = store.forget_caller(OTHER)
    assert erased["callback_requests"] == 1 and erased["calls"] == 1
    assert store.callback_request(call_sid("CACB")) is None


def test_forget_refuses_a_withheld_number(tmp_path):
    server = Server(tmp_path)
    with pytest.raises(ValueError, match="not a caller's number"):
        server.store.forget_caller("anonymous")


def test_the_state_of_a_purged_call_is_not_reused_from_memory(tmp_path):
    server = Server(tmp_path)
    call(server, call_sid("CAONE"), end=False)
    server.store.forget_caller(CALLER)
    code, body = server.turn(0, sid=call_sid("CAONE"))
    assert code == 200 and "Bonjour" in says(body)
    assert server.store.load_call(call_sid("CAONE")).turn == 0
    db = sqlite3.connect(server.db_path)
    try:
        assert db.execute("SELECT count(*) FROM calls WHERE call_id = ?", [call_sid("CAONE")]).fetchone() == (1,)
    finally:
        db.close()



def test_the_server_sweeps_with_its_retry_window_and_probes_a_failing_store(tmp_path):
    options = tap.Options()
    options.parseOptions(["--db", str(tmp_path / "ivr.db"), "--flows", str(ROOT / "flows"),
                          "--prompts", str(ROOT / "prompts"), "--listen", "tcp:0",
                          "--retry-window", "120"])
    top = tap.makeService(options, MemoryReactorClock())
    sweep, args, kwargs = top.getServiceNamed("sweep").call
    assert kwargs["state_kept"] == 120
    probe = top.getServiceNamed("storage-probe")
    assert probe.step == tap.STORAGE_PROBE_INTERVAL
    assert probe.call[0].__func__.__name__ == "probe_storage"


def test_traffic_of_a_seed_already_logged_is_refused_once_the_states_are_dropped(tmp_path):
    from ivr.sim.traffic import generate
    from ivr.sim.traffic_behaviours import TrafficError

    path = tmp_path / "log.db"
    generate(ROOT / "flows" / "post_sale.yaml", path, calls=5, seed=1)
    store = CallStore.open(path)
    assert store.drop_ended_states("2999-01-01T00:00:00+00:00") == 5
    store.close()
    with pytest.raises(TrafficError, match="already holds calls of this seed"):
        generate(ROOT / "flows" / "post_sale.yaml", path, calls=5, seed=1)
