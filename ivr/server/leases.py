"""Work that must run once, however many server processes share the
store: each process asks the store for the work's lease before doing it
(:meth:`ivr.store.protocol.CallStore.take_lease`), and only the holder
goes on.  A holder renews its lease each time it runs; when it dies the
lease expires and the next process to ask takes it over."""

from __future__ import annotations

import os
import secrets
import socket
from datetime import datetime, timedelta, timezone
from typing import Callable

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from ivr.server.helpdesk import RESEND_INTERVAL
from ivr.store.sqlite.checkpoint import CHECKPOINT_INTERVAL

__all__ = ["Leases", "holder_id"]

log = Logger()

#: Seconds the server's leases are taken for (the sweep's: this many of
#: its intervals).  A holder renews its lease each time it runs, so
#: the sweep's and the checkpoints' outlast their interval: the holder
#: keeps them, and another process takes over within a few intervals of
#: its death.  The purge's is shorter than a day: the first process to
#: come to it each day runs it, and a restart does not wait a day more;
#: the fold of PostgreSQL's funnel counts' is shorter than its hour.  The
#: helpdesk re-sends' lasts 2.5 of their intervals, as the sweep's: its
#: holder keeps it, and orphaned callback requests wait at most a few
#: intervals more when the holder itself dies.
CHECKPOINT_LEASE = 10 * CHECKPOINT_INTERVAL
SWEEP_LEASE_INTERVALS = 2.5
HELPDESK_LEASE = 2.5 * RESEND_INTERVAL
RETENTION_LEASE = 3600.0
REACHED_FOLD_LEASE = 600.0

#: The end of a lease given up (see :meth:`Leases.release`).
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def holder_id() -> str:
    """This process's name as a lease holder: unique across processes and
    hosts (a process id may be reused, and hosts share a PostgreSQL)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


class Leases:
    """This process's leases on ``store``, timed by ``clock`` (an
    ``IReactorTime``).  With ``in_thread`` (a function running a store
    call off the reactor's thread and returning its Deferred: PostgreSQL's
    reads), :meth:`once` asks for the lease there."""

    def __init__(self, store, clock, holder: str | None = None,
                 in_thread: Callable[..., Deferred] | None = None):
        self.store, self.clock = store, clock
        self.holder = holder or holder_id()
        self.in_thread = in_thread
        self._held: set[str] = set()

    def held(self, name: str, ttl: float) -> bool:
        """Take or renew the lease ``name`` for ``ttl`` seconds: whether this
        process holds it now.  A store that cannot answer holds nothing
        (the work waits for its next run); it never raises."""
        try:
            taken = self.store.take_lease(*self._asking(name, ttl))
        except Exception:  # noqa: BLE001 - the next run asks again
            return self._not_asked(Failure(), name)
        self._note(name, taken)
        return taken

    def asked(self, name: str, ttl: float) -> bool | Deferred:
        """:meth:`held`, or with ``in_thread`` :meth:`held_later`."""
        return self.held(name, ttl) if self.in_thread is None else self.held_later(name, ttl)

    def held_later(self, name: str, ttl: float) -> Deferred:
        """:meth:`held`, asked in ``in_thread``: a Deferred of whether this
        process holds the lease; it never fails."""
        assert self.in_thread is not None, "held_later needs in_thread"
        asked = self.in_thread(self.store.take_lease, *self._asking(name, ttl))
        return asked.addCallbacks(lambda taken: self._note(name, taken) or taken,
                                  self._not_asked, errbackArgs=(name,))

    def once(self, name: str, ttl: float, work: Callable) -> Callable:
        """``work`` run only while this process holds the lease ``name``
        (else the call returns None, or with ``in_thread`` a Deferred of it)."""
        def leased(*args, **kwargs):
            taken = self.asked(name, ttl)
            if isinstance(taken, Deferred):
                return taken.addCallback(lambda taken: work(*args, **kwargs) if taken else None)
            return work(*args, **kwargs) if taken else None
        leased.__name__ = f"leased_{getattr(work, '__name__', 'work')}"
        return leased

    def release(self, name: str) -> Deferred | None:
        """Give up the lease ``name`` if this process holds it (when it
        stops), so that the next process to ask takes it at once rather
        than when it expires.  With ``in_thread``, asked there (a
        Deferred).  It never raises nor fails."""
        if name not in self._held:
            return None
        self._held.discard(name)
        # Renewed to end at the epoch, the lease has expired for everyone;
        # were it another holder's by now, nothing would change.
        asking = (name, self.holder, _EPOCH, timedelta(microseconds=1))
        if self.in_thread is None:
            try:
                self.store.take_lease(*asking)
            except Exception:  # noqa: BLE001 - it expires on its own
                log.failure("lease {lease}: not given up", Failure(), lease=name)
            return None
        return self.in_thread(self.store.take_lease, *asking).addErrback(
            lambda failure: log.failure("lease {lease}: not given up", failure, lease=name))

    def _asking(self, name: str, ttl: float) -> tuple:
        now = datetime.fromtimestamp(self.clock.seconds(), timezone.utc)
        return name, self.holder, now, timedelta(seconds=ttl)

    def _not_asked(self, failure: Failure, name: str) -> bool:
        log.failure("lease {lease}: the store could not be asked", failure, lease=name)
        self._note(name, False)
        return False

    def _note(self, name: str, taken: bool) -> None:
        """Log when this process starts or stops holding a lease."""
        if taken and name not in self._held:
            self._held.add(name)
            log.info("lease {lease} taken by {holder}", lease=name, holder=self.holder)
        elif not taken and name in self._held:
            self._held.discard(name)
            log.info("lease {lease} held by another process now", lease=name)
