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

from twisted.logger import Logger

from ivr.store.sqlite.checkpoint import CHECKPOINT_INTERVAL

__all__ = ["Leases", "holder_id"]

log = Logger()

#: Seconds the server's leases are taken for (the sweep's: this many of
#: its intervals).  A holder renews its lease each time it runs, so
#: the sweep's and the checkpoints' outlast their interval: the holder
#: keeps them, and another process takes over within a few intervals of
#: its death.  The purge's is shorter than a day: the first process to
#: come to it each day runs it, and a restart does not wait a day more.
CHECKPOINT_LEASE = 10 * CHECKPOINT_INTERVAL
SWEEP_LEASE_INTERVALS = 2.5
HELPDESK_LEASE = 600.0
RETENTION_LEASE = 3600.0


def holder_id() -> str:
    """This process's name as a lease holder: unique across processes and
    hosts (a process id may be reused, and hosts share a PostgreSQL)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


class Leases:
    """This process's leases on ``store``, timed by ``clock`` (an
    ``IReactorTime``)."""

    def __init__(self, store, clock, holder: str | None = None):
        self.store, self.clock = store, clock
        self.holder = holder or holder_id()
        self._held: set[str] = set()

    def held(self, name: str, ttl: float) -> bool:
        """Take or renew the lease ``name`` for ``ttl`` seconds: whether this
        process holds it now.  A store that cannot answer holds nothing
        (the work waits for its next run); it never raises."""
        now = datetime.fromtimestamp(self.clock.seconds(), timezone.utc)
        try:
            taken = self.store.take_lease(name, self.holder, now, timedelta(seconds=ttl))
        except Exception:  # noqa: BLE001 - the next run asks again
            log.failure("lease {lease}: the store could not be asked", lease=name)
            taken = False
        self._note(name, taken)
        return taken

    def once(self, name: str, ttl: float, work: Callable) -> Callable:
        """``work`` run only while this process holds the lease ``name``
        (else the call returns None)."""
        def leased(*args, **kwargs):
            return work(*args, **kwargs) if self.held(name, ttl) else None
        leased.__name__ = f"leased_{getattr(work, '__name__', 'work')}"
        return leased

    def _note(self, name: str, taken: bool) -> None:
        """Log when this process starts or stops holding a lease."""
        if taken and name not in self._held:
            self._held.add(name)
            log.info("lease {lease} taken by {holder}", lease=name, holder=self.holder)
        elif not taken and name in self._held:
            self._held.discard(name)
            log.info("lease {lease} held by another process now", lease=name)
