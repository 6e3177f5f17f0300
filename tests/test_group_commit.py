"""ivr.group_commit: the turns of one reactor iteration share one commit."""

import sqlite_utils
from twisted.internet import task

from ivr.store.sqlite.group_commit import GroupCommit
from ivr.store.sqlite.store import CallStore


def make():
    store = CallStore(sqlite_utils.Database(memory=True))
    store.db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
    clock = task.Clock()
    return store, clock, GroupCommit(store, clock, max_group=3)


def insert(store, value):
    def write():
        store.db.execute("INSERT INTO t (v) VALUES (?)", [value])
        return value
    return write


def rows(store):
    return [r["v"] for r in store.db.query("SELECT v FROM t ORDER BY id")]


def test_writes_wait_for_the_next_iteration_then_commit_together():
    store, clock, group = make()
    done = [group.write(insert(store, "a")), group.write(insert(store, "b"))]
    assert not any(d.called for d in done) and rows(store) == []
    clock.advance(0)
    assert [d.result for d in done] == ["a", "b"]
    assert rows(store) == ["a", "b"] and not store.db.conn.in_transaction
    assert (group.commits, group.writes) == (1, 2)
    assert clock.getDelayedCalls() == []


def test_a_failing_write_fails_alone_and_the_others_are_kept():
    store, clock, group = make()
    good = group.write(insert(store, "a"))
    bad = group.write(insert(store, None))  # NOT NULL constraint
    also_good = group.write(insert(store, "c"))
    errors = []
    bad.addErrback(errors.append)
    clock.advance(0)
    assert good.result == "a" and also_good.result == "c"
    assert errors and "NOT NULL" in str(errors[0].value)
    assert rows(store) == ["a", "c"]


def test_a_long_queue_is_committed_in_groups_of_max_group():
    store, clock, group = make()
    done = [group.write(insert(store, str(n))) for n in range(7)]
    clock.advance(0)
    assert all(d.called for d in done) and rows(store) == [str(n) for n in range(7)]
    assert group.commits == 3


def test_flush_commits_at_once_and_cancels_the_pending_call():
    store, clock, group = make()
    done = group.write(insert(store, "a"))
    group.flush()
    assert done.result == "a" and rows(store) == ["a"]
    assert clock.getDelayedCalls() == []


def test_a_cancelled_wait_still_writes_and_the_others_are_answered():
    store, clock, group = make()
    gone = group.write(insert(store, "a"))
    kept = group.write(insert(store, "b"))
    gone.cancel()
    gone.addErrback(lambda failure: None)
    clock.advance(0)
    assert kept.result == "b" and rows(store) == ["a", "b"]


def test_then_runs_once_committed_and_its_result_is_the_answer():
    store, clock, group = make()
    seen = []
    done = group.write(insert(store, "a"),
                       lambda result: seen.append((result, rows(store))) or result.upper())
    assert seen == [] and not done.called
    clock.advance(0)
    assert seen == [("a", ["a"])] and done.result == "A"


def test_then_hears_of_a_failed_write_and_runs_even_for_a_cancelled_wait():
    store, clock, group = make()
    heard = []
    gone = group.write(insert(store, "a"), lambda result: heard.append(result) or result)
    bad = group.write(insert(store, None),
                      lambda failure: heard.append(failure) or "answered from memory")
    gone.cancel()  # the provider hung up: the write and its then still happen
    gone.addErrback(lambda failure: None)
    clock.advance(0)
    assert heard[0] == "a" and "NOT NULL" in str(heard[1].value)
    assert bad.result == "answered from memory" and rows(store) == ["a"]


def test_a_then_that_raises_fails_its_own_wait_only():
    store, clock, group = make()
    broken = group.write(insert(store, "a"), lambda result: 1 / 0)
    kept = group.write(insert(store, "b"))
    errors = []
    broken.addErrback(errors.append)
    clock.advance(0)
    assert errors[0].check(ZeroDivisionError) and kept.result == "b"


def test_after_delivery_runs_once_the_groups_answers_are_given():
    store, clock, group = make()
    order = []
    group.after_delivery = lambda: order.append("after")
    for value in "abcd":  # two groups of max_group 3
        group.write(insert(store, value)).addCallback(order.append)
    clock.advance(0)
    assert order == ["a", "b", "c", "after", "d", "after"]
