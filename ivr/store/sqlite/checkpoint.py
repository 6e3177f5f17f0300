"""WAL checkpoints off the reactor's thread.

In WAL mode every commit appends pages to the write-ahead log, and a
checkpoint copies them back into the database file, then syncs it.  By
default SQLite runs that checkpoint inside the commit that crosses 1,000
pages: once every few hundred turns, one turn's commit also copied and
synced megabytes, and the reactor waited for the disk with every other
call.  :class:`Checkpointer` instead checkpoints from the reactor's thread
pool, on a connection of its own, twice a second; a ``PASSIVE`` checkpoint
never waits for the server's writes nor makes them wait (SQLite does the
copying and syncing without Python's lock).  The server's connection keeps
an automatic checkpoint only as a safety net (:data:`SAFETY_NET_PAGES`),
should the thread ever fall far behind.

A long reader (a report, a dashboard view) holds the log: no checkpoint
may copy what was committed after the reader began, so the log grows for
as long as the reader reads.  Once the reader is gone the next checkpoint
catches up, and SQLite starts the log over at the next commit, but the
file keeps its largest size unless :data:`JOURNAL_SIZE_LIMIT` is set on
the writing connection (:func:`bound_the_log`): it is then cut back to the
limit each time the log starts over.
"""

from __future__ import annotations

import sqlite3
from typing import Callable

from twisted.application import service
from twisted.internet import defer, task, threads
from twisted.logger import Logger

__all__ = ["Checkpointer", "JOURNAL_SIZE_LIMIT", "SAFETY_NET_PAGES", "bound_the_log",
           "checkpoint"]

#: Seconds between checkpoints: at a thousand turns a second, a few
#: megabytes of log.
CHECKPOINT_INTERVAL = 0.5

#: Pages the server's own connection lets the log grow to before it
#: checkpoints in a commit anyway (40 MB with 4 kB pages).
SAFETY_NET_PAGES = 10_000

#: Bytes the log file is cut back to when the log starts over: what the
#: safety net lets it hold, so that steady traffic never regrows it.
JOURNAL_SIZE_LIMIT = SAFETY_NET_PAGES * 4096


def bound_the_log(conn: sqlite3.Connection, *, safety_net_pages: int = SAFETY_NET_PAGES,
                  size_limit: int = JOURNAL_SIZE_LIMIT) -> None:
    """Settings of the server's (writing) connection: checkpoints in its
    commits only past ``safety_net_pages``, and the log file cut back to
    ``size_limit`` bytes whenever the log starts over (a setting of the
    connection that starts it over: the writer's)."""
    conn.execute(f"PRAGMA wal_autocheckpoint = {int(safety_net_pages)}")
    conn.execute(f"PRAGMA journal_size_limit = {int(size_limit)}")


def checkpoint(path: str, passes: int = 8) -> tuple[int, int]:
    """Copy what the log of the database at ``path`` holds into the file,
    as far as no reader still needs it; (pages in the log, pages copied).

    The server commits while a pass copies, so one pass never catches up,
    and SQLite starts the log over (rather than let it grow) only when a
    commit finds every page of it copied.  Each further pass copies what
    was committed during the last one, far less: a few passes catch up."""
    conn = sqlite3.connect(path, timeout=5)
    try:
        for _ in range(passes):
            _busy, logged, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            if copied >= logged:
                break
    finally:
        conn.close()
    return logged, copied


class Checkpointer(service.Service):
    """Checkpoint the database at ``path`` every ``interval`` seconds, in
    a thread (``run_in_thread`` runs a function there and returns a
    Deferred; the reactor's pool by default).  A checkpoint still running
    when the next is due makes that one skip its turn, and so does one
    that ``may_run`` refuses (another process sharing the file holds the
    checkpoints' lease)."""

    log = Logger()

    def __init__(self, path: str, reactor, interval: float = CHECKPOINT_INTERVAL,
                 run_in_thread: Callable[..., defer.Deferred] | None = None,
                 may_run: Callable[[], bool] = lambda: True):
        self.path, self.reactor, self.interval = path, reactor, interval
        self.may_run = may_run
        self.run_in_thread = run_in_thread or (
            lambda f, *args: threads.deferToThreadPool(reactor, reactor.getThreadPool(), f, *args))
        self._loop = task.LoopingCall(self.run_once)
        self._loop.clock = reactor
        self._running: defer.Deferred | None = None

    def startService(self):
        super().startService()
        self._loop.start(self.interval, now=False)

    def stopService(self):
        if self._loop.running:
            self._loop.stop()
        super().stopService()
        # The server's connection checkpoints what is left when it closes.
        return self._running

    def run_once(self) -> defer.Deferred | None:
        """Start a checkpoint unless one is running; its Deferred."""
        if self._running is not None or not self.may_run():
            return None
        self._running = self.run_in_thread(checkpoint, self.path)
        self._running.addErrback(self._failed).addBoth(self._done)
        return self._running

    def _failed(self, failure):
        # The safety net in the server's own commits keeps the log bounded.
        self.log.failure("WAL checkpoint of {path} failed", failure, path=self.path)

    def _done(self, _result):
        self._running = None
