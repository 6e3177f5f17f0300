"""ivr.store.postgres: what the PostgreSQL backend adds to the protocol's
behaviours (tests/test_call_store_protocol.py runs those on it): its
migrations, its group commit off the reactor's thread, leases, faults."""

import threading
from datetime import datetime, timedelta, timezone

import psycopg
import pytest
from twisted.internet import defer, task

from ivr.engine.state import call_summary
from ivr.store.postgres.connection import is_postgres_url, psycopg_sql
from ivr.store.postgres.faults import StoreTimeout, postgres_fault_cause
from ivr.store.postgres.group_commit import PooledGroupCommit
from ivr.store.postgres.migrations import MIGRATIONS, pending_migrations
from ivr.store.postgres.store import PostgresCallStore
from ivr.store.sqlite.migrations import MIGRATIONS as SQLITE_MIGRATIONS
from ivr.store.sqlite.storage_health import fault_cause

KEY = b"k" * 32
NOW = datetime(2026, 11, 24, 9, 0, tzinfo=timezone.utc)


@pytest.fixture
def store(postgres_dsn):
    made = PostgresCallStore.connect(postgres_dsn, caller_key=KEY)
    yield made
    made.close()


def state(call_id="CA1", **changes):
    made = {"call_id": call_id, "flow": "shop", "version": "v1", "caller": "+33612345678",
            "called": "+33100000000", "country": "FR", "lang": "fr-FR",
            "started_at": "2026-11-24T09:00:00+00:00", "now": "2026-11-24T09:00:10+00:00",
            "ended_at": None, "node": "menu", "waiting": "gather", "reason": None,
            "confirmed": False, "cause": None, "handoff": None, "outcome": None,
            "ended": False, "steps": 1, "vars": {"phone": "+33612345678"}}
    made.update(changes)
    return made


def saver(store, call_id, turn=1):
    made = state(call_id)
    return lambda: store.save_turn(call_id, turn, made, b"<Response/>", [], call_summary(made),
                                   made["caller"]) or call_id


# -- placeholders and URLs ----------------------------------------------------------
def test_sqlite_placeholders_become_psycopgs_numbered_ones_reordered():
    assert psycopg_sql("SELECT ?2, ?1, ?2 WHERE x LIKE '5%'") == (
        "SELECT %s, %s, %s WHERE x LIKE '5%%'", (1, 0, 1))
    assert psycopg_sql("SELECT ? + ?") == ("SELECT %s + %s", None)


@pytest.mark.parametrize("value, expected", [
    ("postgresql://ivr@db.example.com/ivr", True), ("postgres://ivr@localhost/ivr", True),
    ("ivr.db", False), ("/var/lib/ivr/postgresql.db", False)])
def test_only_a_postgresql_url_names_a_postgresql_database(value, expected):
    assert is_postgres_url(value) is expected


# -- migrations ---------------------------------------------------------------------
def test_the_migrations_are_sqlites_by_name_in_order_then_the_leases():
    names = [name for name, _statements in MIGRATIONS]
    sqlite_names = [migration.name for migration in SQLITE_MIGRATIONS._migrations]
    assert [name for name in names if name in sqlite_names] == sqlite_names
    assert "0010_leases" in names


def test_a_new_database_is_migrated_once_and_a_second_store_finds_nothing_to_do(postgres_dsn):
    first = PostgresCallStore.connect(postgres_dsn, caller_key=KEY)
    second = PostgresCallStore.connect(postgres_dsn, caller_key=KEY)
    try:
        with psycopg.connect(postgres_dsn) as conn:
            assert pending_migrations(conn) == []
            assert conn.execute("SELECT count(*) FROM ivr_migrations").fetchone()[0] == len(MIGRATIONS)
    finally:
        first.close()
        second.close()


def test_requests_kept_before_the_last_attempt_column_get_none(postgres_dsn):
    names = [name for name, _statements in MIGRATIONS]
    before = MIGRATIONS[:names.index("0014_callback_last_attempt")]
    with psycopg.connect(postgres_dsn) as conn:
        assert len(pending_migrations(conn)) == len(MIGRATIONS)  # makes ivr_migrations
        for name, statements in before:
            for statement in statements:
                conn.execute(statement)
            conn.execute("INSERT INTO ivr_migrations (name, applied_at) VALUES (%s, 'then')", [name])
        conn.execute(  # pending (its sender stopped), asked at 09:00:30 UTC
            "INSERT INTO callback_requests (call_id, flow, version, requested_at, number_sealed, "
            "number_hash, reason, status) VALUES ('OLD', 'shop', 'v1', "
            "'2026-11-24T10:00:30+01:00', 'sealed:v1:x', 'h', 'parcel_lost', 'pending')")
        conn.commit()
    store = PostgresCallStore.connect(postgres_dsn, caller_key=KEY)
    try:
        assert store.db.execute("SELECT last_attempt_at FROM callback_requests").fetchall() == [(None,)]
        assert store.orphaned_callbacks(datetime(2026, 11, 24, 9, 1, tzinfo=timezone.utc)) == [
            ("OLD", None)]
        assert store.claim_callback("OLD", None, NOW) is True
        assert store.claim_callback("OLD", None, NOW) is False
    finally:
        store.close()


def test_servers_without_a_caller_key_share_the_one_kept_in_the_database(postgres_dsn):
    first = PostgresCallStore.connect(postgres_dsn)
    second = PostgresCallStore.connect(postgres_dsn)
    try:
        assert first.hash_caller("+33612345678") == second.hash_caller("+33 6 12 34 56 78") != ""
        first.save_turn("CA1", 1, state(), b"<Response/>", [], call_summary(state()), "+33612345678")
        assert second.load_call("CA1").state["caller"] == "+33612345678"
    finally:
        first.close()
        second.close()


def test_the_state_is_sealed_in_the_database(store):
    store.save_turn("CA1", 1, state(), b"<Response/>", [], call_summary(state()), "+33612345678")
    sealed = store.db.execute("SELECT state_json FROM call_state").fetchone()[0]
    assert b"33612345678" not in bytes(sealed) and bytes(sealed)[:1] == b"\x03"


def test_a_turn_saved_by_another_server_is_read_back_not_the_copy_in_memory(postgres_dsn):
    one = PostgresCallStore.connect(postgres_dsn, caller_key=KEY)
    other = PostgresCallStore.connect(postgres_dsn, caller_key=KEY)
    try:
        one.save_turn("CA1", 1, state(node="menu"), b"<one/>", [], call_summary(state()), "+33612345678")
        other.save_turn("CA1", 2, state(node="order"), b"<two/>", [], call_summary(state()), "+33612345678")
        record = one.load_call("CA1")
        assert (record.turn, record.state["node"], record.response) == (2, "order", b"<two/>")
        # A late retry of turn 1 on the first server does not roll the call back.
        one.save_turn("CA1", 1, state(node="menu"), b"<one/>", [], call_summary(state()), "+33612345678")
        assert other.load_call("CA1").turn == 2
    finally:
        one.close()
        other.close()


# -- leases -------------------------------------------------------------------------
def test_a_lease_is_held_by_one_holder_until_it_expires(store):
    ttl = timedelta(seconds=30)
    assert store.take_lease("sweep", "a", NOW, ttl)
    assert not store.take_lease("sweep", "b", NOW + timedelta(seconds=29), ttl)
    assert store.take_lease("sweep", "a", NOW + timedelta(seconds=29), ttl)  # renewed
    assert not store.take_lease("sweep", "b", NOW + timedelta(seconds=58), ttl)
    assert store.take_lease("sweep", "b", NOW + timedelta(seconds=59), ttl)  # a's expired
    assert store.take_lease("helpdesk", "a", NOW, ttl)  # another lease is free


def test_a_lease_asked_for_at_once_by_many_goes_to_one(store):
    results, start = {}, threading.Barrier(8)

    def ask(holder):
        start.wait(timeout=10)
        results[holder] = store.take_lease("checkpoint", holder, NOW, timedelta(seconds=30))

    threads = [threading.Thread(target=ask, args=(f"w{n}",)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert sorted(results.values()) == [False] * 7 + [True]


def test_a_lease_needs_an_aware_time(store):
    with pytest.raises(ValueError, match="aware"):
        store.take_lease("sweep", "a", NOW.replace(tzinfo=None), timedelta(seconds=30))


# -- group commit off the reactor's thread ------------------------------------------
def in_a_thread(threads_used):
    """Run each group in a thread of its own, as the pool does, and wait for it."""
    def run(function, *args):
        out = []
        worker = threading.Thread(target=lambda: out.append(function(*args)))
        worker.start()
        worker.join(timeout=30)
        threads_used.append(worker.ident)
        return defer.succeed(out[0])
    return run


def test_turns_answered_together_commit_together_outside_the_reactors_thread(store):
    clock, threads_used = task.Clock(), []
    group = PooledGroupCommit(store, clock, in_thread=in_a_thread(threads_used))
    done = [group.write(saver(store, f"CA{n}")) for n in range(3)]
    assert not any(d.called for d in done) and store.call("CA0") is None
    clock.advance(0)
    assert [d.result for d in done] == ["CA0", "CA1", "CA2"]
    assert (group.commits, group.writes) == (1, 3)
    assert threads_used and threading.get_ident() not in threads_used
    assert store.load_call("CA2").turn == 1
    assert clock.getDelayedCalls() == []


def test_writes_queued_while_a_group_commits_go_in_the_next_commit(store):
    clock, calls = task.Clock(), []

    def later_in_a_thread(function, *args):
        calls.append((function, args, defer.Deferred()))
        return calls[-1][2]

    def finish(call):
        function, args, done = call
        done.callback(function(*args))

    group = PooledGroupCommit(store, clock, in_thread=later_in_a_thread)
    first = group.write(saver(store, "CA1"))
    clock.advance(0)
    later = [group.write(saver(store, "CA2")), group.write(saver(store, "CA3"))]
    clock.advance(0)
    assert len(calls) == 1 and not first.called  # one commit at a time
    finish(calls[0])
    assert first.result == "CA1" and len(calls) == 2 and len(calls[1][1][0]) == 2
    finish(calls[1])
    assert [d.result for d in later] == ["CA2", "CA3"] and group.commits == 2
    assert clock.getDelayedCalls() == []


def test_a_failing_write_fails_alone_in_its_group(store):
    clock = task.Clock()
    group = PooledGroupCommit(store, clock, in_thread=in_a_thread([]))

    def broken():
        store.db.execute("INSERT INTO no_such_table VALUES (1)")

    done = [group.write(saver(store, "CA1")), group.write(broken), group.write(saver(store, "CA2"))]
    clock.advance(0)
    failures = []
    done[1].addErrback(failures.append)
    assert done[0].result == "CA1" and done[2].result == "CA2"
    assert failures and isinstance(failures[0].value, psycopg.errors.UndefinedTable)
    assert store.call("CA1") is not None and store.call("CA2") is not None


def test_then_hears_of_the_deadline_and_runs_when_its_wait_is_cancelled(store):
    clock, stuck = task.Clock(), []

    def hanging(function, *args):  # the database never answers
        stuck.append((function, args, defer.Deferred()))
        return stuck[-1][2]

    group = PooledGroupCommit(store, clock, in_thread=hanging, deadline=3.0)
    heard: list = []
    late = group.write(saver(store, "CA1"), lambda result: heard.append(result) or "from memory")
    gone = group.write(saver(store, "CA2"), lambda result: heard.append(result) or "unheard")
    gone.cancel()  # the provider hung up: then still runs, at the deadline here
    gone.addErrback(lambda failure: None)
    clock.advance(3)
    assert late.result == "from memory"
    assert [f.check(StoreTimeout) for f in heard] == [StoreTimeout, StoreTimeout]
    function, args, done = stuck[0]
    done.callback(function(*args))  # a late commit: then does not run again
    assert len(heard) == 2 and clock.getDelayedCalls() == []


def test_a_commit_the_database_does_not_answer_fails_at_its_deadline_as_a_storage_fault(store):
    clock, stuck = task.Clock(), []

    def hanging(function, *args):  # the database never answers
        stuck.append((function, args, defer.Deferred()))
        return stuck[-1][2]

    group = PooledGroupCommit(store, clock, in_thread=hanging, deadline=3.0)
    first = group.write(saver(store, "CA1"))
    clock.advance(0)
    behind = group.write(saver(store, "CA2"))  # queued behind the group that hangs
    failures: list = []
    first.addErrback(failures.append)
    behind.addErrback(failures.append)
    clock.advance(2.9)
    assert failures == []
    clock.advance(0.1)
    assert [f.check(StoreTimeout) for f in failures] == [StoreTimeout, StoreTimeout]
    assert fault_cause(failures[0].value) == "server_unreachable"
    # The database answers at last: the group in flight commits (its turn
    # was answered from memory meanwhile), the write behind it was dropped.
    function, args, done = stuck[0]
    done.callback(function(*args))
    assert store.call("CA1") is not None and store.call("CA2") is None
    assert len(stuck) == 1 and clock.getDelayedCalls() == []


def test_a_lease_asked_off_the_reactor_runs_the_work_only_when_taken(store):
    from ivr.server.leases import Leases

    clock = task.Clock()
    clock.advance(NOW.timestamp())
    ran = []
    in_thread = lambda function, *args: defer.maybeDeferred(function, *args)  # noqa: E731
    mine = Leases(store, clock, holder="a", in_thread=in_thread)
    theirs = Leases(store, clock, holder="b", in_thread=in_thread)
    assert mine.once("sweep", 30, lambda: ran.append("a") or 1)().result == 1
    assert theirs.once("sweep", 30, lambda: ran.append("b") or 2)().result is None
    broken = Leases(store, clock, holder="c", in_thread=lambda *_: defer.fail(StoreTimeout("x")))
    assert broken.once("retention", 30, lambda: ran.append("c"))().result is None
    assert ran == ["a"]


def test_of_two_servers_claiming_an_orphaned_callback_one_only_gets_it(postgres_dsn):
    one = PostgresCallStore.connect(postgres_dsn, caller_key=KEY)
    other = PostgresCallStore.connect(postgres_dsn, caller_key=KEY)
    try:
        asked = state(callback={"number": "0699887766", "requested_at": "2026-11-24T09:00:30+00:00",
                                "reason": "parcel_lost"})
        one.save_turn("CA1", 1, asked, b"<Response/>", [], call_summary(asked), asked["caller"],
                      callback_status="pending")
        later = NOW + timedelta(minutes=10)
        found = [store.orphaned_callbacks(later) for store in (one, other)]
        assert found == [[("CA1", None)], [("CA1", None)]]
        assert [store.claim_callback("CA1", None, later) for store in (other, one)] == [True, False]
        assert one.orphaned_callbacks(later) == []  # attempted just now, by the other
    finally:
        one.close()
        other.close()


def test_a_lease_given_up_off_the_reactor_passes_at_once(store):
    from ivr.server.leases import Leases

    clock = task.Clock()
    clock.advance(NOW.timestamp())
    in_thread = lambda function, *args: defer.maybeDeferred(function, *args)  # noqa: E731
    mine = Leases(store, clock, holder="a", in_thread=in_thread)
    theirs = Leases(store, clock, holder="b", in_thread=in_thread)
    assert mine.asked("helpdesk-resend", 600).result is True
    assert theirs.asked("helpdesk-resend", 600).result is False
    mine.release("helpdesk-resend")
    assert theirs.asked("helpdesk-resend", 600).result is True
    failing: list = []

    def flaky(function, *args):
        return defer.fail(StoreTimeout("x")) if failing else defer.maybeDeferred(function, *args)
    clock.advance(600)
    broken = Leases(store, clock, holder="c", in_thread=flaky)
    assert broken.asked("helpdesk-resend", 600).result is True
    failing.append(True)
    assert broken.release("helpdesk-resend").result is None  # logged, never a failure
    assert clock.getDelayedCalls() == []


# -- faults -------------------------------------------------------------------------
def test_a_lost_server_is_a_storage_fault_and_a_bad_statement_is_not():
    assert fault_cause(psycopg.OperationalError("connection refused")) == "server_unreachable"
    assert fault_cause(psycopg.errors.DiskFull("no space")) == "disk_full"
    assert fault_cause(psycopg.errors.AdminShutdown("terminating")) == "server_unreachable"
    assert fault_cause(psycopg.errors.DeadlockDetected("deadlock")) == "database_locked"
    assert fault_cause(psycopg.errors.UniqueViolation("duplicate")) is None
    assert postgres_fault_cause(ValueError("not psycopg's")) is None


def test_a_server_that_cannot_be_reached_fails_to_open_with_the_reason():
    with pytest.raises(psycopg.OperationalError):
        PostgresCallStore.connect("host=127.0.0.1 port=1 user=nobody dbname=none connect_timeout=1")


# -- ivr-serve --db postgresql://... --------------------------------------------------
def test_ivr_serve_keeps_calls_in_postgresql_given_its_url_and_commits_in_a_thread(postgres_dsn):
    from pathlib import Path

    from twisted.internet.testing import MemoryReactorClock

    from ivr.server import tap

    root = Path(__file__).parent.parent
    options = tap.Options()
    options.parseOptions(["--db", postgres_dsn, "--flows", str(root / "flows"),
                          "--prompts", str(root / "prompts"), "--listen", "tcp:0:interface=127.0.0.1"])
    top = tap.makeService(options, MemoryReactorClock())
    top.startService()
    try:
        writer, readers = [s.pool for s in top if isinstance(s, tap.ThreadPoolService)]
        assert writer.started and writer.max == 1 and readers.started and readers.max == 2
        reload_service = next(s for s in top if isinstance(s, tap.ReloadOnHangup))
        store = reload_service.registry.store
        assert isinstance(store, PostgresCallStore)
        assert store.flow_version("post_sale", reload_service.registry.current("post_sale").version)
        # Its funnel counts, a row per first visit, are folded every hour.
        assert top.getServiceNamed("reached-fold").step == tap.REACHED_FOLD_INTERVAL == 3600
    finally:
        top.stopService()
        store.close()


def test_ivr_serve_on_postgresql_lets_a_poll_wait_for_a_turn_another_server_plays(postgres_dsn):
    """Behind a load balancer a caller on hold may poll the other server:
    one process alone (--workers 1) waits for the turn's answer too,
    rather than playing the last question again."""
    from pathlib import Path

    from twisted.internet.testing import MemoryReactorClock

    from ivr.server import tap

    root = Path(__file__).parent.parent
    options = tap.Options()
    options.parseOptions(["--db", postgres_dsn, "--flows", str(root / "flows"), "--workers", "1",
                          "--prompts", str(root / "prompts"), "--listen", "tcp:0:interface=127.0.0.1"])
    handler = tap.makeService(options, MemoryReactorClock()).getServiceNamed("storage-probe").call[0].__self__
    try:
        assert handler.polls_elsewhere.most > 0
    finally:
        handler.store.close()


def test_ivr_serve_refuses_a_postgresql_it_cannot_reach_in_one_line():
    from twisted.internet.testing import MemoryReactorClock

    from ivr.server import tap

    options = tap.Options()
    options.parseOptions(["--db", "postgresql://nobody@127.0.0.1:1/none"])
    with pytest.raises(tap.usage.UsageError, match="cannot use the PostgreSQL database: .*refused"):
        tap.makeService(options, MemoryReactorClock())
