"""Group commit: the turns answered in one reactor iteration share one commit.

A commit is the dearest part of a turn (it writes the WAL), and under load
many calls' turns arrive together.  :class:`GroupCommit` queues each turn's
writes and commits them all once the reactor has handled the requests that
were ready, then fires each turn's Deferred: a request is answered only
once what it logged is committed, as before, but one commit serves them all.
A write may come with ``then``, the work its result needs once committed
(counting, logging, the answer's document): it runs before the Deferred
fires, even when the Deferred was cancelled, so the waiting request can
hold the group commit's own Deferred without another in between.

The writes must touch only the database: when one of them fails the
group is rolled back and each write is run again in a transaction of its
own, so only the turn that fails sees the error.  A failure of the
storage itself (disk full, I/O error, database locked) fails the whole
group at once: writing each turn alone would fail the same way, slower.
Either way the transaction is rolled back, so the connection is ready for
the next group.  As a failed write never stays in a committed group, the
writes take no savepoint of their own (``group_transaction``).
"""

from __future__ import annotations

from typing import Callable

from twisted.internet import defer
from twisted.python.failure import Failure

from ivr.store.sqlite.storage_health import fault_cause


def then_applied(then: Callable[[object], object], result: object) -> object:
    """``then(result)``, or the :class:`Failure` it raised, as a Deferred's
    callback would turn it."""
    try:
        return then(result)
    except BaseException:  # noqa: BLE001 - as a Deferred's callback would
        return Failure()


def fire(deferred: defer.Deferred, result: object) -> None:
    """Fire ``deferred`` with ``result``: its errback for a :class:`Failure`."""
    if isinstance(result, Failure):
        deferred.errback(result)
    else:
        deferred.callback(result)


#: Most writes committed together; a longer queue is committed in several goes.
MAX_GROUP = 200


class GroupCommit:
    """Queue writes against ``store`` and commit them together on ``clock``."""

    def __init__(self, store, clock, max_group: int = MAX_GROUP):
        self.store, self.clock, self.max_group = store, clock, max_group
        self._queue: list[tuple[Callable[[], object], defer.Deferred, Callable | None]] = []
        self._scheduled = None
        self.commits = 0
        self.writes = 0
        #: Called once each group's Deferreds have fired (``ivr-serve``
        #: writes the log lines of the answers then, before they are sent).
        self.after_delivery: Callable[[], object] | None = None

    def write(self, function: Callable[[], object],
              then: Callable[[object], object] | None = None) -> defer.Deferred:
        """Run ``function`` (store writes) in the next group; the Deferred
        fires with its result once the group is committed.  With ``then``,
        it fires with ``then(result)`` instead (``result`` a
        :class:`~twisted.python.failure.Failure` when the write failed),
        and ``then`` runs even when the Deferred was cancelled."""
        done: defer.Deferred = defer.Deferred()
        self._queue.append((function, done, then))
        if self._scheduled is None:
            self._scheduled = self.clock.callLater(0, self._flush)
        return done

    def flush(self) -> None:
        """Commit what is queued now (on shutdown, say)."""
        if self._scheduled is not None and self._scheduled.active():
            self._scheduled.cancel()
        self._flush()

    def _flush(self) -> None:
        self._scheduled = None
        while self._queue:
            self._deliver(self._commit(self._next_group()))

    def _next_group(self) -> list:
        if len(self._queue) <= self.max_group:  # usually: the whole queue, not a copy
            group, self._queue = self._queue, []
        else:
            group, self._queue = self._queue[:self.max_group], self._queue[self.max_group:]
        return group

    def _deliver(self, results) -> None:
        """Fire each write's Deferred with its result, once committed."""
        for done, then, result in results:
            if then is not None:
                result = then_applied(then, result)
            if not done.called:  # else its request was cancelled (the provider hung up)
                fire(done, result)
        if self.after_delivery is not None:
            self.after_delivery()

    def _commit(self, group):
        try:
            with self.store.group_transaction():
                results = [(done, then, function()) for function, done, then in group]
        except Exception as error:  # noqa: BLE001 - the whole group was rolled back
            if len(group) == 1 or fault_cause(error) is not None:
                failure = Failure()
                return [(done, then, failure) for _function, done, then in group]
            # Write each turn alone, so only the one that fails sees it.
            return [result for item in group for result in self._commit([item])]
        self.commits += 1
        self.writes += len(group)
        return results
