"""Writers take turns across processes, and the next one wakes at once.

SQLite lets one connection write at a time.  A connection whose ``BEGIN
IMMEDIATE`` finds another writing sleeps in SQLite's busy handler, 1, 2,
5, 10 ... 100 ms between tries, however soon the other commits: with
several server processes on one file (``ivr-serve --workers N``) a group
commit that took a millisecond kept the next writer asleep for up to
several, and its core idle.

:class:`WriterLock` puts the writers of this package in a queue the kernel
keeps: an exclusive ``flock`` on a file beside the database
(``<database>-writer``), taken before ``BEGIN IMMEDIATE`` and released
after the ``COMMIT`` or ``ROLLBACK``.  A writer that finds it taken blocks
in the kernel, which wakes it as soon as the holder lets go.  The kernel
releases the lock of a process that dies, however it dies.

SQLite's own lock still guards the data: this one only orders the
writers that take it, so what does not take it (a read-only report, the
checkpoint thread, the ``sqlite3`` shell) is as safe as before.  When the
lock file cannot be created or opened, or its filesystem does not lock
(``flock`` fails with another error than "taken"), the lock is off and
writers wait in SQLite's busy handler as before.  A writer that finds the
lock taken for longer than the store's busy timeout (another process
stopped, or hung in its write) fails as one that finds SQLite's lock
taken that long: ``database is locked``.

A lock is one open file description: it excludes the other stores of the
same process as well as other processes.  It belongs to one thread at a
time, like the store's connection.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import time
from typing import Any

__all__ = ["NO_WRITER_LOCK", "NoWriterLock", "WriterLock", "writer_lock_beside"]

#: What the lock file's name adds to the database's.
SUFFIX = "-writer"


class WriterLock:
    """An exclusive lock on the file at ``path`` (created when missing),
    waited for at most ``timeout`` seconds.  Use it as a context manager
    around a write transaction; it counts how often writers found it
    taken (``waits``), the seconds they waited (``waited``) and how often
    they gave up waiting (``timeouts``)."""

    def __init__(self, path: str, timeout: float):
        self.path, self.timeout = path, timeout
        self.waits = self.timeouts = 0
        self.waited = 0.0
        self._held = False
        self._fd: int | None = _open(path)
        self._waiter: _Waiter | None = None

    @property
    def available(self) -> bool:
        """Whether writers take this lock (False: the file or its
        filesystem could not lock; writers go straight to SQLite's lock)."""
        return self._fd is not None

    def acquire(self) -> bool:
        """Take the lock: True once held, False when it is off (the caller
        writes under SQLite's lock alone).  Raises ``sqlite3.OperationalError``
        (database is locked) when it is still taken after ``timeout``."""
        fd = self._fd
        if fd is None:
            return False
        if self._waiter is None or self._waiter.idle():
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                pass
            except OSError:
                self.close()  # this filesystem does not lock: write as before
                return False
        return self._wait(fd)

    def release(self) -> None:
        """Let the next writer in."""
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        """Close the lock's file (the lock with it); writers then write
        under SQLite's lock alone."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        if self._waiter is not None:
            self._waiter.close(fd)  # it closes the file once out of flock
        else:
            os.close(fd)

    def __del__(self) -> None:
        if getattr(self, "_fd", None) is not None:
            self.close()  # a store dropped without close(), as its connection is

    def __enter__(self) -> bool:
        self._held = self.acquire()
        return self._held

    def __exit__(self, *exc_info: Any) -> None:
        if self._held:
            self._held = False
            self.release()

    def __repr__(self) -> str:
        return f"<WriterLock {self.path!r}{'' if self.available else ' (off)'}>"

    def _wait(self, fd: int) -> bool:
        """Wait in the kernel for the lock, in a thread, at most ``timeout`` s."""
        if self._waiter is None:
            self._waiter = _Waiter(fd)
        started = time.monotonic()
        held = self._waiter.take(self.timeout)
        self.waits += 1
        self.waited += time.monotonic() - started
        if held is None:
            self.close()  # this filesystem does not lock: write as before
            return False
        if not held:
            self.timeouts += 1
            raise sqlite3.OperationalError(
                f"database is locked: another process held {self.path} for {self.timeout:g} s")
        return True


class NoWriterLock:
    """No lock (a database in memory, a file beside which none can be
    made): writers go straight to SQLite's lock."""

    available = False
    path = None
    waits = timeouts = 0
    waited = 0.0

    def acquire(self) -> bool:
        return False

    def release(self) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> bool:
        return False

    def __exit__(self, *exc_info: Any) -> None:
        pass


#: The lock of a store that has none.
NO_WRITER_LOCK = NoWriterLock()


def writer_lock_beside(database, timeout: float) -> WriterLock | NoWriterLock:
    """The writers' lock of the SQLite file ``database`` (a path), kept in
    ``<database>-writer``; :data:`NO_WRITER_LOCK` for a database in memory
    or one beside which no lock file can be opened."""
    path = os.fspath(database) if isinstance(database, (str, os.PathLike)) else ""
    if not path or path == ":memory:" or path.startswith("file:"):
        return NO_WRITER_LOCK
    lock = WriterLock(path + SUFFIX, timeout)
    return lock if lock.available else NO_WRITER_LOCK


def _open(path: str) -> int | None:
    """The lock file, opened (read-only is enough for ``flock``); None when
    it cannot be."""
    try:
        return os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError:
        return None


class _Waiter:
    """A thread that waits for the lock in the kernel (``flock`` without a
    time limit), so that the writer can stop waiting after a time limit:
    the writer waits on a condition the thread signals once it holds the
    lock.  A writer that gave up is not handed the lock: the thread lets it
    go at once.  While the thread is in ``flock`` no other ``flock`` is
    made on the same file description (it would be granted at once and
    the thread's later release would undo it)."""

    def __init__(self, fd: int):
        self._fd = fd
        self._condition = threading.Condition(threading.Lock())
        self._go = threading.Semaphore(0)
        #: The thread is in ``flock`` (or about to be).
        self.blocked = False
        self._asking = self._granted = self._failed = self._closing = False
        threading.Thread(target=self._run, name="ivr-writer-lock", daemon=True).start()

    def idle(self) -> bool:
        """Whether the thread is out of ``flock`` (and has let go what it
        took for nobody): the writer may then ``flock`` the file itself."""
        with self._condition:
            return not self.blocked

    def take(self, timeout: float) -> bool | None:
        """Wait up to ``timeout`` s: True when the lock is held, False
        when it was not given in time, None when the filesystem refused."""
        with self._condition:
            self._asking, self._granted, self._failed = True, False, False
            if not self.blocked:
                self.blocked = True
                self._go.release()
            try:
                self._condition.wait_for(lambda: self._granted or self._failed, timeout)
            except BaseException:  # a signal's exception: the lock is not kept
                self._asking = False
                if self._granted:
                    self._granted = False
                    fcntl.flock(self._fd, fcntl.LOCK_UN)
                raise
            self._asking = False
            granted, self._granted = self._granted, False
            return None if self._failed else granted

    def close(self, fd: int) -> None:
        """Close ``fd`` (now, or once the thread is out of ``flock``) and end the thread."""
        with self._condition:
            self._closing = True
            if self.blocked:
                return  # the thread closes it
        os.close(fd)
        self._go.release()

    def _run(self) -> None:
        while True:
            self._go.acquire()
            with self._condition:
                if self._closing:
                    return
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX)
                refused = False
            except OSError:
                refused = True
            with self._condition:
                self.blocked = False
                if refused:
                    self._failed = True
                elif self._asking and not self._closing:
                    self._granted = True
                else:
                    fcntl.flock(self._fd, fcntl.LOCK_UN)  # the writer gave up waiting
                self._condition.notify_all()
                if self._closing:
                    os.close(self._fd)
                    return
