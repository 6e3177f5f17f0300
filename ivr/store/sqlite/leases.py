"""Leases in SQLite: one row per lease, taken or renewed by one statement,
so two processes asking at once cannot both get it."""

from __future__ import annotations

from datetime import datetime, timedelta

from ivr.store.protocol import lease_window


def _lease_time(moment: datetime) -> str:
    """``moment`` (UTC) as stored: fixed width, so times compare as strings."""
    return moment.isoformat(timespec="microseconds")


class _Leases:
    """Methods of the call store, :class:`ivr.store.sqlite.store.CallStore`."""

    def take_lease(self, name: str, holder: str, now: datetime, ttl: timedelta) -> bool:
        """Take or renew the lease ``name`` for ``holder`` until ``now + ttl``
        (see :meth:`ivr.store.protocol.CallStore.take_lease`).  The write
        lock (``BEGIN IMMEDIATE``) makes the check and the write one step
        for every process sharing the file."""
        moment, until = lease_window(name, holder, now, ttl)
        with self.transaction():
            cursor = self.db.conn.execute(
                "INSERT INTO leases (name, holder, expires_at) VALUES (?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, "
                "expires_at = excluded.expires_at "
                "WHERE leases.holder = excluded.holder OR leases.expires_at <= ?",
                [name, holder, _lease_time(until), _lease_time(moment)])
            return cursor.rowcount > 0
