"""Group commit with the commits in a thread: the turns answered while one
group commits wait together for the next commit, and the reactor's thread
never waits on the database.

This is the shape of :class:`ivr.store.sqlite.group_commit.GroupCommit` (a
queue of writes, one transaction per group, a write that fails alone
retried alone) with each group's transaction run by
:func:`twisted.internet.threads.deferToThreadPool` in a pool of its own, as
large Twisted applications run their blocking database calls (Synapse's
``runInteraction``).  The pool has one thread: groups commit one after
the other, in the order their turns were answered, so a call's turns
reach the database in order; the next group gathers while one commits.
"""

from __future__ import annotations

from typing import Callable

from twisted.internet import defer
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool

from ivr.store.sqlite.group_commit import MAX_GROUP, GroupCommit

__all__ = ["PooledGroupCommit", "READ_THREADS", "reader_pool", "writer_pool"]

#: Threads reading the store for turns (the store's pool has a connection
#: for each, and one for the writer).
READ_THREADS = 2


def writer_pool() -> ThreadPool:
    """The one thread the group commits run in (start and stop it with the server)."""
    return ThreadPool(minthreads=1, maxthreads=1, name="ivr-store-writer")


def reader_pool() -> ThreadPool:
    """The threads a turn's reads of the store run in (start and stop it with the server)."""
    return ThreadPool(minthreads=1, maxthreads=READ_THREADS, name="ivr-store-readers")


class PooledGroupCommit(GroupCommit):
    """Queue writes against ``store`` and commit each group in ``in_thread``
    (by default :func:`deferToThreadPool` on ``reactor`` and ``pool``)."""

    log = Logger()

    def __init__(self, store, clock, pool: ThreadPool | None = None, reactor=None,
                 max_group: int = MAX_GROUP,
                 in_thread: Callable[..., defer.Deferred] | None = None):
        super().__init__(store, clock, max_group)
        if in_thread is None:
            if pool is None or reactor is None:
                raise TypeError("give the thread pool and the reactor, or in_thread")
            in_thread = lambda function, *args: deferToThreadPool(reactor, pool, function, *args)
        self._in_thread = in_thread
        self._committing = False

    def write(self, function: Callable[[], object]) -> defer.Deferred:
        if self._committing:  # gathered for the commit after the current one
            done: defer.Deferred = defer.Deferred()
            self._queue.append((function, done))
            return done
        return super().write(function)

    def flush(self) -> None:
        """Commit what is queued now, in this thread (on shutdown: the
        group in the pool, if any, still commits there)."""
        if self._scheduled is not None and self._scheduled.active():
            self._scheduled.cancel()
        super()._flush()

    def _flush(self) -> None:
        self._scheduled = None
        if self._committing or not self._queue:
            return
        self._committing = True
        group = self._next_group()
        committed = self._in_thread(self._commit, group)
        # Whatever happens in the thread, every write of the group hears of it.
        committed.addCallbacks(self._deliver, lambda failure: self._deliver(
            [(done, failure) for _function, done in group]))
        committed.addErrback(lambda failure: self.log.failure("group commit", failure))
        committed.addBoth(self._committed)

    def _committed(self, _result) -> None:
        self._committing = False
        self._flush()
