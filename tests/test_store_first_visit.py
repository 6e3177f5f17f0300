"""ivr.store: each call's first event at each node is flagged once, whoever
logged the call's earlier events (this store, a late retry, another process)."""

import pytest

from ivr.engine.state import call_summary
from ivr.store.postgres.store import PostgresCallStore
from ivr.store.sqlite.store import CallStore

CALLER = "+33612345678"


class Boom(Exception):
    pass


@pytest.fixture(params=["sqlite", "postgresql"])
def open_store(request, tmp_path):
    """Opens stores on one database (a file, or a PostgreSQL schema): two
    of them are two processes sharing the call log."""
    made = []

    def make():
        if request.param == "sqlite":
            made.append(CallStore.open(tmp_path / "ivr.db", caller_key=b"k" * 32))
        else:
            made.append(PostgresCallStore.connect(request.getfixturevalue("postgres_dsn"),
                                                  caller_key=b"k" * 32))
        return made[-1]

    yield make
    for store in made:
        store.close()


def state(turn):
    return {"call_id": "CA1", "flow": "shop", "version": "v1", "caller": CALLER,
            "called": "+33100000000", "country": "FR", "lang": "fr-FR", "started_at": "2026-11-24T09:00:00+00:00",
            "now": f"2026-11-24T09:00:{turn:02d}+00:00", "ended_at": None, "node": "menu",
            "waiting": "gather", "steps": turn, "seq": turn, "reason": None,
            "resolved": False, "confirmed": False, "cause": None, "handoff": None,
            "outcome": None, "ended": False}


def events(*seq_nodes):
    return [{"call_id": "CA1", "seq": seq, "flow": "shop", "version": "v1", "node": node,
             "kind": "say", "input": None, "branch": "next", "detail": None,
             "at": "2026-11-24T09:00:01+00:00"} for seq, node in seq_nodes]


def save(store, turn, logged):
    store.save_turn("CA1", turn, state(turn), b"<Response/>", logged,
                    call_summary(state(turn)), CALLER)


def flags(store):
    """The stored events' (seq, node, first-visit flag), once checked that
    the funnel's counts (``node_reached``) are the flagged events'."""
    assert reached_counts(store) == {row["node"]: row["n"] for row in store.db.query(
        "SELECT node, count(*) AS n FROM node_events WHERE first_visit = 1 GROUP BY node")}
    return [(row["seq"], row["node"], row["first_visit"]) for row in store.db.query(
        "SELECT seq, node, first_visit FROM node_events ORDER BY seq")]


def reached_counts(store):
    """{node: calls counted there} as the funnel reads them (PostgreSQL
    keeps rows to add up)."""
    return {row["node"]: row["n"] for row in store.db.query(
        "SELECT node, CAST(sum(reached) AS BIGINT) AS n FROM node_reached "
        "GROUP BY node HAVING sum(reached) <> 0")}


def test_turn_after_turn_only_the_first_event_at_each_node_is_flagged(open_store):
    store = open_store()
    save(store, 1, events((1, "a"), (2, "b"), (3, "a")))
    save(store, 2, events((4, "b"), (5, "c")))
    save(store, 3, events((6, "c"), (7, "a"), (8, "d")))
    assert [flag for _seq, _node, flag in flags(store)] == [1, 1, 0, 0, 1, 0, 0, 1]


def test_a_retried_turn_that_logs_one_more_event_flags_it_as_a_revisit(open_store):
    store = open_store()
    save(store, 1, events((1, "a"), (2, "b")))
    save(store, 1, events((1, "a"), (2, "b"), (3, "a")))  # seq 1 and 2 are stored already
    save(store, 2, events((4, "c")))
    assert flags(store) == [(1, "a", 1), (2, "b", 1), (3, "a", 0), (4, "c", 1)]


def test_a_late_retry_of_an_older_turn_counts_its_node_once(open_store):
    store = open_store()
    save(store, 2, events((1, "a"), (2, "b")))
    save(store, 1, events((3, "c")))  # older than the stored turn: its events only
    save(store, 3, events((4, "c"), (5, "d")))
    assert flags(store) == [(1, "a", 1), (2, "b", 1), (3, "c", 1), (4, "c", 0), (5, "d", 1)]


def test_events_another_process_logged_are_known_to_this_one(open_store):
    mine, other = open_store(), open_store()
    save(mine, 2, events((1, "a"), (2, "b")))
    # The other process logs a late retry's event; the call's state stays mine.
    save(other, 1, events((3, "c")))
    save(mine, 3, events((4, "c"), (5, "e")))
    assert flags(mine) == [(1, "a", 1), (2, "b", 1), (3, "c", 1), (4, "c", 0), (5, "e", 1)]


def test_events_of_a_rolled_back_turn_are_flagged_when_it_is_written_again(open_store):
    store = open_store()
    save(store, 1, events((1, "a")))
    with pytest.raises(Boom), store.transaction():
        save(store, 2, events((2, "b")))
        raise Boom
    save(store, 2, events((2, "b")))
    save(store, 3, events((3, "b")))
    assert flags(store) == [(1, "a", 1), (2, "b", 1), (3, "b", 0)]


def test_another_process_filling_a_gap_in_the_calls_events_is_seen(open_store):
    mine, other = open_store(), open_store()
    save(mine, 2, events((1, "a"), (3, "b")))
    # A late retry elsewhere logs the missing sequence number: the last
    # event stays the same, the call has one more.
    save(other, 1, events((2, "c")))
    save(mine, 3, events((4, "c"), (5, "d")))
    assert flags(mine) == [(1, "a", 1), (2, "c", 1), (3, "b", 1), (4, "c", 0), (5, "d", 1)]


def test_another_processs_commit_elsewhere_does_not_make_a_turn_read_the_calls_events(tmp_path):
    """With another process writing to the file between any two turns
    (``ivr-serve --workers 2``), a turn still flags its events from what
    its store saw at the call's last save, after one look at the call's
    events' count and last sequence number."""
    mine = CallStore.open(tmp_path / "ivr.db", caller_key=b"k" * 32)
    other = CallStore.open(tmp_path / "ivr.db", caller_key=b"k" * 32)
    try:
        save(mine, 1, events((1, "a"), (2, "b")))
        other.probe_write()  # another call's turn, say
        statements = []
        mine.db.conn.set_trace_callback(statements.append)
        save(mine, 2, events((3, "b"), (4, "c")))
        mine.db.conn.set_trace_callback(None)
        assert flags(mine) == [(1, "a", 1), (2, "b", 1), (3, "b", 0), (4, "c", 1)]
        reads = [s for s in statements if s.startswith("SELECT") and "node_events" in s]
        assert reads == ["SELECT count(*), max(seq) FROM node_events WHERE call_id = 'CA1'"]
    finally:
        mine.close()
        other.close()


def test_an_events_missing_texts_are_null_and_its_texts_are_kept_as_given(open_store):
    """The texts of an event (input, branch, detail) are stored as given,
    whatever they look like ("0", ""), and a missing one as NULL, whether
    the turn flags its events itself or asks the database."""
    store = open_store()
    texts = [("0", None, ""), (None, "0", None), ("", "", "0"), (None, None, None)]
    logged = [dict(event, input=given, branch=branch, detail=detail)
              for event, (given, branch, detail) in zip(events((1, "a"), (2, "b"), (3, "a"), (4, "c")),
                                                        texts)]
    save(store, 1, logged[:2])
    save(store, 2, logged[2:])
    save(store, 2, logged[2:])  # a retry: these events ask the database
    rows = [tuple(row.values()) for row in store.db.query(
        "SELECT input, branch, detail FROM node_events ORDER BY seq")]
    assert rows == texts
    assert flags(store) == [(1, "a", 1), (2, "b", 1), (3, "a", 0), (4, "c", 1)]
