"""ivr.store: the funnel's count of calls per node (``node_reached``) stays
the count of first visits flagged in the log, however the events come and
go: turns in a group, retries, rolled-back writes, the retention purge, an
erasure, a log built in bulk, a log from before the counts."""

import pytest
import sqlite_utils

from ivr.engine.state import call_summary
from ivr.store.postgres.store import PostgresCallStore
from ivr.store.sqlite.migrations import MIGRATIONS, mark_first_visits
from ivr.store.sqlite.store import CallStore

CALLERS = {"CA1": "+33612345678", "CA2": "+33698765432"}


class Boom(Exception):
    pass


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    if request.param == "sqlite":
        opened = CallStore.open(tmp_path / "ivr.db", caller_key=b"k" * 32)
    else:
        opened = PostgresCallStore.connect(request.getfixturevalue("postgres_dsn"),
                                           caller_key=b"k" * 32)
    yield opened
    opened.close()


def state(call_id, turn, started_at="2026-11-24T09:00:00+00:00"):
    return {"call_id": call_id, "flow": "shop", "version": "v1", "caller": CALLERS[call_id],
            "called": "+33100000000", "country": "FR", "lang": "fr-FR", "started_at": started_at,
            "now": f"2026-11-24T09:00:{turn:02d}+00:00", "ended_at": None, "node": "menu",
            "waiting": "gather", "steps": turn, "seq": turn, "reason": None,
            "resolved": False, "confirmed": False, "cause": None, "handoff": None,
            "outcome": None, "ended": False}


def events(call_id, *seq_nodes):
    return [{"call_id": call_id, "seq": seq, "flow": "shop", "version": "v1", "node": node,
             "kind": "menu" if node == "menu" else "say", "input": None, "branch": None,
             "detail": None, "at": "2026-11-24T09:00:01+00:00"} for seq, node in seq_nodes]


def save(store, call_id, turn, logged, **changes):
    now = dict(state(call_id, turn), **changes)
    store.save_turn(call_id, turn, now, b"<Response/>", logged, call_summary(now),
                    CALLERS[call_id])


def counted(store):
    """{node: (kind, calls counted there)}, as the funnel reads them."""
    return {row["node"]: (row["kind"], row["n"]) for row in store.db.query(
        "SELECT node, min(kind) AS kind, CAST(sum(reached) AS BIGINT) AS n FROM node_reached "
        "WHERE flow = 'shop' AND version = 'v1' GROUP BY node HAVING sum(reached) <> 0")}


def flagged(store):
    """The same, counted from the log's flagged events."""
    return {row["node"]: (row["kind"], row["n"]) for row in store.db.query(
        "SELECT node, min(kind) AS kind, count(*) AS n FROM node_events "
        "WHERE flow = 'shop' AND version = 'v1' AND first_visit = 1 GROUP BY node")}


def test_turns_written_in_a_group_count_each_calls_first_visits(store):
    with store.group_transaction():
        save(store, "CA1", 1, events("CA1", (1, "welcome"), (2, "menu")))
        save(store, "CA2", 1, events("CA2", (1, "welcome"), (2, "menu")))
    with store.group_transaction():
        save(store, "CA1", 2, events("CA1", (3, "lookup"), (4, "menu")))
        save(store, "CA2", 2, events("CA2", (3, "menu")))
    assert counted(store) == flagged(store) == {
        "welcome": ("say", 2), "menu": ("menu", 2), "lookup": ("say", 1)}


def test_a_retried_turn_counts_once(store):
    save(store, "CA1", 1, events("CA1", (1, "welcome"), (2, "menu")))
    save(store, "CA1", 1, events("CA1", (1, "welcome"), (2, "menu")))
    with store.group_transaction():  # a retry in a group, with one more event
        save(store, "CA1", 1, events("CA1", (1, "welcome"), (2, "menu"), (3, "lookup")))
    save(store, "CA1", 1, events("CA1", (4, "agent")))  # a late retry of an older turn
    assert counted(store) == flagged(store) == {
        "welcome": ("say", 1), "menu": ("menu", 1), "lookup": ("say", 1), "agent": ("say", 1)}


def test_a_group_rolled_back_counts_nothing_and_its_turns_count_when_written_again(store):
    save(store, "CA1", 1, events("CA1", (1, "welcome")))
    with pytest.raises(Boom), store.group_transaction():
        save(store, "CA1", 2, events("CA1", (2, "menu")))
        save(store, "CA2", 1, events("CA2", (1, "welcome")))
        raise Boom
    assert counted(store) == {"welcome": ("say", 1)}
    save(store, "CA1", 2, events("CA1", (2, "menu")))
    save(store, "CA2", 1, events("CA2", (1, "welcome")))
    assert counted(store) == flagged(store) == {"welcome": ("say", 2), "menu": ("menu", 1)}


def test_a_turn_writer_run_again_after_its_group_rolled_back_logs_and_counts_once(store):
    # How a group commit writes each turn alone after another turn failed.
    now = state("CA1", 1)
    write = store.turn_writer("CA1", 1, now, b"<Response/>",
                              events("CA1", (1, "welcome"), (2, "menu")), call_summary(now),
                              CALLERS["CA1"])
    with pytest.raises(Boom), store.group_transaction():
        write()
        raise Boom
    assert store.load_call("CA1") is None and counted(store) == {}
    write()
    assert [event["seq"] for event in store.node_events("CA1")] == [1, 2]
    assert counted(store) == flagged(store) == {"welcome": ("say", 1), "menu": ("menu", 1)}


def test_a_write_rolled_back_alone_in_a_callers_transaction_counts_nothing(store):
    with store.transaction():
        save(store, "CA1", 1, events("CA1", (1, "welcome")))
        with pytest.raises(Boom), store.transaction():
            save(store, "CA2", 1, events("CA2", (1, "welcome"), (2, "menu")))
            raise Boom
        save(store, "CA1", 2, events("CA1", (2, "lookup")))
    assert counted(store) == flagged(store) == {"welcome": ("say", 1), "lookup": ("say", 1)}


def test_the_purge_and_an_erasure_take_their_calls_first_visits_off(store):
    save(store, "CA1", 1, events("CA1", (1, "welcome"), (2, "menu"), (3, "menu")),
         started_at="2026-11-01T09:00:00+00:00")
    save(store, "CA2", 1, events("CA2", (1, "welcome"), (2, "lookup")))
    assert store.purge_before("2026-11-10T00:00:00+00:00")["node_events"] == 3
    assert counted(store) == flagged(store) == {"welcome": ("say", 1), "lookup": ("say", 1)}
    if isinstance(store, PostgresCallStore):  # its rows of +1 and -1, folded by the purge
        assert sorted(tuple(row.values()) for row in store.db.query(
            "SELECT node, reached FROM node_reached")) == [("lookup", 1), ("welcome", 1)]
    save(store, "CA1", 2, events("CA1", (4, "agent")))  # the purged call, called again
    store.forget_caller(CALLERS["CA2"])
    assert counted(store) == flagged(store) == {"agent": ("say", 1)}


def test_a_log_built_in_bulk_is_counted_when_its_first_visits_are_flagged():
    db = sqlite_utils.Database(memory=True)
    CallStore(db)
    paths = {"CA1": ["welcome", "menu", "menu", "lookup"], "CA2": ["welcome", "menu"]}
    for call_id, path in paths.items():
        db["node_events"].insert_all(
            {"call_id": call_id, "seq": seq, "flow": "shop", "version": "v1", "node": node,
             "kind": "say", "at": "2026-11-24T09:00:00+00:00"} for seq, node in enumerate(path, 1))
    mark_first_visits(db)
    assert dict(db.execute("SELECT node, reached FROM node_reached").fetchall()) == {
        "welcome": 2, "menu": 2, "lookup": 1}


def test_a_log_from_before_the_counts_is_counted_and_loses_the_flagged_events_index():
    db = sqlite_utils.Database(memory=True)
    MIGRATIONS.apply(db, stop_before="0013_reached_counts")
    for call_id, path in {"CA1": ["welcome", "menu", "welcome"], "CA2": ["welcome"]}.items():
        db["node_events"].insert_all(
            {"call_id": call_id, "seq": seq, "flow": "shop", "version": "v1", "node": node,
             "kind": "say", "at": "2026-11-24T09:00:00+00:00",
             "first_visit": int(node not in path[:seq - 1])} for seq, node in enumerate(path, 1))
    CallStore(db)  # applies 0013
    assert "idx_node_events_reached" not in {index.name for index in db["node_events"].indexes}
    assert dict(db.execute("SELECT node, reached FROM node_reached").fetchall()) == {
        "welcome": 2, "menu": 1}


def test_postgresql_folds_its_rows_of_first_visits_into_one_per_node(request):
    store = PostgresCallStore.connect(request.getfixturevalue("postgres_dsn"),
                                      caller_key=b"k" * 32)
    try:
        save(store, "CA1", 1, events("CA1", (1, "welcome"), (2, "menu")))
        save(store, "CA2", 1, events("CA2", (1, "welcome"), (2, "lookup")))
        before = counted(store)
        assert store.db.execute("SELECT count(*) FROM node_reached").fetchone()[0] == 4
        store.fold_reached_counts()
        assert counted(store) == before == {"welcome": ("say", 2), "menu": ("menu", 1),
                                            "lookup": ("say", 1)}
        assert store.db.execute("SELECT count(*) FROM node_reached").fetchone()[0] == 3
        save(store, "CA1", 2, events("CA1", (3, "lookup")))  # counted on top of the fold
        assert counted(store)["lookup"] == ("say", 2)
    finally:
        store.close()
