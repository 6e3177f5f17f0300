"""ivr.store.sqlite.transactions: a group's transaction takes no savepoint per
write, any other nested transaction does, and each rolls back as it says."""

import pytest
import sqlite_utils
from test_store import make_events, make_state, save
from twisted.internet import task

from ivr.store.sqlite.group_commit import GroupCommit
from ivr.store.sqlite.store import CallStore


@pytest.fixture
def store():
    made = CallStore(sqlite_utils.Database(memory=True))
    made.db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
    yield made
    made.close()


@pytest.fixture
def statements(store):
    """The statements the store's connection runs from now on."""
    seen: list[str] = []
    store.db.conn.set_trace_callback(seen.append)
    yield seen
    store.db.conn.set_trace_callback(None)


def insert(store, value):
    with store.transaction():
        store.db.conn.execute("INSERT INTO t (v) VALUES (?)", [value])


def rows(store):
    return [row[0] for row in store.db.conn.execute("SELECT v FROM t ORDER BY id")]


def test_writes_nested_in_a_group_take_no_savepoint(store, statements):
    with store.group_transaction():
        insert(store, "a")
        insert(store, "b")
    assert rows(store) == ["a", "b"]
    assert not any(s.startswith(("SAVEPOINT", "RELEASE")) for s in statements)
    assert [s for s in statements if s in ("BEGIN IMMEDIATE", "COMMIT")] == [
        "BEGIN IMMEDIATE", "COMMIT"]


def test_a_failure_in_a_group_rolls_back_the_whole_group(store):
    with pytest.raises(Exception, match="NOT NULL"):
        with store.group_transaction():
            insert(store, "a")
            insert(store, None)
    assert rows(store) == [] and not store.db.conn.in_transaction
    insert(store, "c")  # the next transaction opens as usual
    assert rows(store) == ["c"]


def test_a_nested_write_elsewhere_still_rolls_back_alone(store, statements):
    with store.transaction():
        insert(store, "a")
        with pytest.raises(Exception, match="NOT NULL"):
            insert(store, None)
        insert(store, "c")
    assert rows(store) == ["a", "c"]
    assert "ROLLBACK TO ivr_write" in statements


def test_a_group_commit_of_turns_reads_data_version_once(store, statements):
    clock = task.Clock()
    group = GroupCommit(store, clock)
    for number in range(3):
        call_id = f"CA{number}"
        group.write(lambda call_id=call_id: save(
            store, make_state(call_id=call_id), events=make_events(call_id=call_id)))
    clock.advance(0)
    assert [s for s in statements if s == "PRAGMA data_version"] == ["PRAGMA data_version"]
    assert not any(s.startswith("SAVEPOINT") for s in statements)
    assert [store.load_call(f"CA{n}").turn for n in range(3)] == [1, 1, 1]
    assert clock.getDelayedCalls() == []


def test_data_version_is_read_again_in_the_next_transaction(store, statements):
    save(store, make_state(), turn=1, events=make_events(seqs=(1,)))
    save(store, make_state(), turn=2, events=make_events(seqs=(2,)))
    assert statements.count("PRAGMA data_version") == 2
