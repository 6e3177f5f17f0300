"""ivr.store.sqlite.writer_lock: the writers of every process on one SQLite
file take turns on a lock the kernel keeps, and wake as soon as it is free."""

from __future__ import annotations

import errno
import fcntl
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from ivr.store.sqlite import writer_lock
from ivr.store.sqlite.storage_health import fault_cause
from ivr.store.sqlite.store import CallStore
from ivr.store.sqlite.writer_lock import NO_WRITER_LOCK, WriterLock, writer_lock_beside

ROOT = Path(__file__).resolve().parent.parent


def _meta(path, key):
    with sqlite3.connect(path) as conn:
        row = conn.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
    return row and row[0]


def _write(store, key, value="1"):
    with store.transaction():
        store.db.execute("INSERT INTO meta (key, value) VALUES (?, ?) "
                         "ON CONFLICT (key) DO UPDATE SET value = excluded.value", [key, value])


def test_a_store_on_a_file_takes_the_lock_beside_it(tmp_path):
    store = CallStore.open(tmp_path / "ivr.db")
    assert isinstance(store.writer_lock, WriterLock)
    assert store.writer_lock.path == str(tmp_path / "ivr.db-writer")
    assert (tmp_path / "ivr.db-writer").exists()
    store.close()


def test_a_store_in_memory_has_no_lock():
    assert writer_lock_beside(":memory:", 5) is NO_WRITER_LOCK
    assert CallStore.open(":memory:").writer_lock is NO_WRITER_LOCK


def test_a_writer_that_finds_the_lock_taken_waits_for_it_not_for_sqlite(tmp_path):
    """With no busy timeout at all, a writer that reached BEGIN IMMEDIATE
    while the other holds SQLite's lock would fail at once: it succeeds,
    so it waited in the kernel for the other's commit."""
    path = tmp_path / "ivr.db"
    first = CallStore.open(path)
    opened, go, waiting, done = (threading.Event() for _ in range(4))
    seen: dict = {}

    def second_writer():
        second = CallStore.open(path)
        second.db.execute("PRAGMA busy_timeout = 0")
        lock = second.writer_lock
        wait = lock._wait
        lock._wait = lambda fd: (waiting.set(), wait(fd))[1]
        opened.set()
        go.wait(timeout=10)
        try:
            _write(second, "second")
        except Exception as error:  # noqa: BLE001 - the test reports it
            seen["error"] = error
        seen["waits"], seen["timeouts"] = lock.waits, lock.timeouts
        second.close()
        done.set()

    thread = threading.Thread(target=second_writer)
    thread.start()
    assert opened.wait(timeout=10)
    with first.transaction():
        first.db.execute("INSERT INTO meta (key, value) VALUES ('first', '1')")
        go.set()
        assert waiting.wait(timeout=10)
        assert not done.is_set()
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert seen == {"waits": 1, "timeouts": 0}
    assert _meta(path, "first") == "1" and _meta(path, "second") == "1"
    first.close()


def test_two_writers_writing_at_once_never_meet_in_sqlite(tmp_path):
    """Two stores on one file write 50 times each at the same time with
    no busy timeout: any write that reached BEGIN IMMEDIATE while the
    other held SQLite's lock would fail; none does."""
    path = tmp_path / "ivr.db"
    CallStore.open(path).close()
    start = threading.Barrier(2, timeout=10)
    errors: list = []

    def writer(name):
        store = CallStore.open(path)
        store.db.execute("PRAGMA busy_timeout = 0")
        start.wait()
        try:
            for n in range(50):
                _write(store, f"{name}{n}")
        except Exception as error:  # noqa: BLE001 - the test reports it
            errors.append(error)
        store.close()

    threads = [threading.Thread(target=writer, args=(name,)) for name in "ab"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == [] and not any(thread.is_alive() for thread in threads)
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM meta WHERE key GLOB '[ab][0-9]*'").fetchone() == (100,)


def test_a_lock_held_past_the_busy_timeout_fails_the_write_as_locked_then_recovers(tmp_path):
    path = tmp_path / "ivr.db"
    holder, writer = CallStore.open(path), CallStore.open(path, busy_timeout_ms=50)
    with holder.transaction():
        with pytest.raises(sqlite3.OperationalError) as raised:
            _write(writer, "late")
    assert fault_cause(raised.value) == "database_locked"
    assert "ivr.db-writer" in str(raised.value)
    assert writer.writer_lock.timeouts == 1 and not writer.db.conn.in_transaction
    _write(writer, "late")  # the holder has committed: the next write goes through
    assert _meta(path, "late") == "1"
    holder.close()
    writer.close()


def test_a_failed_transaction_lets_the_lock_go(tmp_path):
    path = tmp_path / "ivr.db"
    first, second = CallStore.open(path), CallStore.open(path, busy_timeout_ms=50)
    with pytest.raises(ZeroDivisionError), first.transaction():
        first.db.execute("INSERT INTO meta (key, value) VALUES ('gone', '1')")
        1 / 0
    _write(second, "kept")
    assert _meta(path, "gone") is None and _meta(path, "kept") == "1"
    assert second.writer_lock.waits == 0
    first.close()
    second.close()


HOLD_AND_WAIT = """
import sys
from ivr.store.sqlite.store import CallStore
store = CallStore.open(sys.argv[1])
with store.transaction():
    store.db.execute("INSERT INTO meta (key, value) VALUES ('killed', '1')")
    print("holding", flush=True)
    sys.stdin.read()  # until killed
"""


def test_a_process_killed_while_writing_leaves_neither_lock_behind(tmp_path):
    path = tmp_path / "ivr.db"
    CallStore.open(path).close()
    child = subprocess.Popen([sys.executable, "-c", HOLD_AND_WAIT, str(path)], cwd=ROOT,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline() == "holding\n"
        store = CallStore.open(path, busy_timeout_ms=50)
        with pytest.raises(sqlite3.OperationalError):
            _write(store, "meanwhile")  # the child holds both locks
        child.kill()
        child.wait(timeout=10)
        store.writer_lock.timeout = 10  # from now on the lock is free: no wait at all
        _write(store, "after")
        assert store.writer_lock.timeouts == 1
        assert _meta(path, "after") == "1" and _meta(path, "killed") is None
        store.close()
    finally:
        child.kill()
        child.wait(timeout=10)
        child.stdout.close()
        child.stdin.close()


def test_where_the_filesystem_does_not_lock_writers_write_as_before(tmp_path, monkeypatch):
    def no_locks(fd, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    store = CallStore.open(tmp_path / "ivr.db")
    monkeypatch.setattr(writer_lock.fcntl, "flock", no_locks)
    _write(store, "written")
    assert not store.writer_lock.available
    _write(store, "again")
    assert _meta(tmp_path / "ivr.db", "again") == "1"
    store.close()


def test_where_no_lock_file_can_be_made_writers_write_as_before(tmp_path):
    (tmp_path / "ivr.db-writer").mkdir()  # the name is taken by a directory
    store = CallStore.open(tmp_path / "ivr.db")
    assert store.writer_lock is NO_WRITER_LOCK
    _write(store, "written")
    assert _meta(tmp_path / "ivr.db", "written") == "1"
    store.close()


def test_a_read_only_reader_reads_while_a_writer_holds_the_lock(tmp_path):
    path = tmp_path / "ivr.db"
    store = CallStore.open(path)
    _write(store, "before")
    reader = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    with store.transaction():
        _write(store, "during")
        assert reader.execute("SELECT value FROM meta WHERE key = 'before'").fetchone() == ("1",)
    reader.close()
    store.close()


def test_the_lock_excludes_another_holder_and_is_free_once_let_go(tmp_path):
    first, second = (WriterLock(str(tmp_path / "lock"), timeout=0.05) for _ in range(2))
    with first:
        with pytest.raises(sqlite3.OperationalError, match="database is locked"):
            second.acquire()
    with second as held:
        assert held is True
        with pytest.raises(BlockingIOError):  # taken, as another process sees it
            other = open(tmp_path / "lock")
            try:
                fcntl.flock(other.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            finally:
                other.close()
    first.close()
    second.close()
    assert not first.available and first.acquire() is False
