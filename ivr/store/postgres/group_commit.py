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

A database that hangs (a stopped server, a network dropping packets) must
not keep callers waiting: each write, and each read run by
:func:`within`, fails with :class:`ivr.store.postgres.faults.StoreTimeout`
after :data:`STORE_DEADLINE` seconds, a storage fault like any other (the
turn is answered from memory, its caller put through to a human).  A write
still queued then is dropped from the queue; one already in the
transaction the thread is stuck in may still commit once the database
answers again, and the turn answered from memory is then written over it.
"""

from __future__ import annotations

from typing import Callable

from twisted.internet import defer
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool

from ivr.store.postgres.faults import StoreTimeout
from ivr.store.sqlite.group_commit import MAX_GROUP, GroupCommit, fire, then_applied

__all__ = ["PooledGroupCommit", "READ_THREADS", "STORE_DEADLINE", "reader_pool", "within",
           "writer_pool"]

#: Seconds a turn waits for PostgreSQL to read or to commit.  A read and a
#: commit both at the limit still answer well within the 10 to 15 s
#: providers wait for a webhook.
STORE_DEADLINE = 3.0

#: Threads reading the store for turns (the store's pool has a connection
#: for each, and one for the writer).
READ_THREADS = 2


def writer_pool() -> ThreadPool:
    """The one thread the group commits run in (start and stop it with the server)."""
    return ThreadPool(minthreads=1, maxthreads=1, name="ivr-store-writer")


def reader_pool() -> ThreadPool:
    """The threads a turn's reads of the store run in (start and stop it with the server)."""
    return ThreadPool(minthreads=1, maxthreads=READ_THREADS, name="ivr-store-readers")


def within(deferred: defer.Deferred, seconds: float, clock, what: str,
           on_late: Callable[[], object] | None = None) -> defer.Deferred:
    """``deferred``, failed with :class:`StoreTimeout` if it has not fired
    after ``seconds`` on ``clock`` (its late result is then ignored), and
    then ``on_late`` called."""
    def timed_out(_result, _timeout):
        if on_late is not None:
            on_late()
        raise StoreTimeout(f"PostgreSQL did not answer the {what} within {seconds:g} s")
    return deferred.addTimeout(seconds, clock, onTimeoutCancel=timed_out)


def _then(written: defer.Deferred, then: Callable[[object], object]) -> defer.Deferred:
    """A Deferred of ``then`` applied to what ``written`` gives (the
    commit's result, its failure or the deadline's), which its holder may
    cancel without stopping ``then`` (see :meth:`GroupCommit.write`)."""
    answer: defer.Deferred = defer.Deferred()

    def settle(result):
        result = then_applied(then, result)
        if not answer.called:
            fire(answer, result)

    written.addBoth(settle)
    return answer


class PooledGroupCommit(GroupCommit):
    """Queue writes against ``store`` and commit each group in ``in_thread``
    (by default :func:`deferToThreadPool` on ``reactor`` and ``pool``)."""

    log = Logger()

    def __init__(self, store, clock, pool: ThreadPool | None = None, reactor=None,
                 max_group: int = MAX_GROUP,
                 in_thread: Callable[..., defer.Deferred] | None = None,
                 deadline: float = STORE_DEADLINE):
        super().__init__(store, clock, max_group)
        self.deadline = deadline
        if in_thread is None:
            if pool is None or reactor is None:
                raise TypeError("give the thread pool and the reactor, or in_thread")
            in_thread = lambda function, *args: deferToThreadPool(reactor, pool, function, *args)
        self._in_thread = in_thread
        self._committing = False

    def write(self, function: Callable[[], object],
              then: Callable[[object], object] | None = None) -> defer.Deferred:
        if then is not None:  # then also hears of the deadline, as a StoreTimeout
            return _then(self.write(function), then)
        if self._committing:  # gathered for the commit after the current one
            done: defer.Deferred = defer.Deferred()
            self._queue.append((function, done, None))
        else:
            done = super().write(function)
        return within(done, self.deadline, self.clock, "commit",
                      on_late=lambda: self._unqueue(function))

    def _unqueue(self, function) -> None:
        """A write whose deadline passed before its group started is
        dropped: its turn is answered from memory, and written from there."""
        self._queue = [item for item in self._queue if item[0] is not function]

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
            [(done, then, failure) for _function, done, then in group]))
        committed.addErrback(lambda failure: self.log.failure("group commit", failure))
        committed.addBoth(self._committed)

    def _committed(self, _result) -> None:
        self._committing = False
        self._flush()
