"""WAL checkpoints in a thread, off the reactor."""

import sqlite3

from twisted.internet import defer, task
from twisted.logger import Logger

from ivr.store.sqlite.checkpoint import Checkpointer, bound_the_log, checkpoint


def test_checkpoint_copies_the_log_into_the_database_file(tmp_path):
    path = str(tmp_path / "calls.db")
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    conn.execute("CREATE TABLE t (x)")
    with conn:
        conn.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(1000)])
    logged, copied = checkpoint(path)
    assert logged > 0 and copied == logged
    assert checkpoint(path) == (logged, logged)  # nothing new: the same log, all copied
    conn.close()


class FakeThread:
    """Runs nothing: records what would run in the thread, to finish it by hand."""

    def __init__(self):
        self.started = []

    def __call__(self, function, *args):
        self.started.append(defer.Deferred())
        return self.started[-1]


def started(log=None):
    """A running checkpointer on a Clock, every second, with a fake thread."""
    clock, thread = task.Clock(), FakeThread()
    checkpointer = Checkpointer("calls.db", clock, interval=1.0, run_in_thread=thread)
    if log is not None:
        checkpointer.log = Logger(observer=log.append)
    checkpointer.startService()
    return clock, thread, checkpointer


def test_a_checkpoint_runs_each_interval_and_never_two_at_once():
    clock, thread, checkpointer = started()
    assert thread.started == []
    clock.advance(1.0)
    assert len(thread.started) == 1
    clock.advance(1.0)  # the first is still running: this turn is skipped
    assert len(thread.started) == 1
    thread.started[0].callback((10, 10))
    clock.advance(1.0)
    assert len(thread.started) == 2
    checkpointer.stopService()


def test_a_failed_checkpoint_is_logged_and_the_next_one_still_runs():
    logged = []
    clock, thread, checkpointer = started(log=logged)
    clock.advance(1.0)
    thread.started[0].errback(sqlite3.OperationalError("disk I/O error"))
    assert any("WAL checkpoint" in e.get("log_format", "") for e in logged)
    clock.advance(1.0)
    assert len(thread.started) == 2
    checkpointer.stopService()


def test_stopping_waits_for_the_running_checkpoint():
    clock, thread, checkpointer = started()
    clock.advance(1.0)
    stopped = defer.maybeDeferred(checkpointer.stopService)
    assert not stopped.called
    thread.started[0].callback((1, 1))
    assert stopped.called
    clock.advance(5.0)
    assert len(thread.started) == 1


def test_the_log_file_shrinks_back_once_a_long_reader_is_gone(tmp_path):
    path = str(tmp_path / "calls.db")
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("PRAGMA journal_mode = WAL")
    bound_the_log(writer, size_limit=256 * 1024)
    writer.execute("CREATE TABLE t (x)")
    clock = task.Clock()
    checkpointer = Checkpointer(path, clock, interval=0.5,
                                run_in_thread=lambda f, *args: defer.maybeDeferred(f, *args))
    checkpointer.startService()
    wal = tmp_path / "calls.db-wal"
    reader = sqlite3.connect(path, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM t").fetchone()  # a report's snapshot, held
    for _ in range(10):  # 10 commits of 400 kB while the report reads
        writer.execute("INSERT INTO t WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 "
                       "FROM n WHERE i < 100) SELECT randomblob(4000) FROM n")
        clock.advance(0.5)
    held = wal.stat().st_size
    assert held > 4_000_000  # the checkpoints could not copy past the reader
    reader.execute("COMMIT")
    clock.advance(0.5)  # the next checkpoint catches up
    writer.execute("INSERT INTO t VALUES (1)")  # the log starts over, and is cut back
    assert wal.stat().st_size <= 256 * 1024
    checkpointer.stopService()
    assert clock.getDelayedCalls() == []
    reader.close()
    writer.close()

