"""Forgetting: call states dropped after the call, calls purged past their
time, and a caller's calls erased on request."""

from __future__ import annotations

from ivr.store.sqlite.sql import _utc_iso

#: The tables holding a call's data, erased together (the ``calls`` row last).
_CALL_TABLES = ("node_events", "status_events", "callback_requests", "call_state", "calls")


class _Retention:
    """Methods of the call store, :class:`ivr.store.sqlite.store.CallStore`."""

    def drop_ended_states(self, ended_before: str) -> int:
        """Delete the ``call_state`` rows of the calls that ended (their
        last state saved) before ``ended_before`` (ISO 8601): a provider no
        longer retries their turns, and the rows were most of the log's
        size.  Their node events and ``calls`` rows stay.  How many were
        deleted."""
        cutoff = _utc_iso(ended_before) or ended_before
        with self.transaction():
            dropped = [row[0] for row in self.db.conn.execute(
                "DELETE FROM call_state WHERE updated_at < ? AND EXISTS (SELECT 1 FROM calls c "
                "WHERE c.call_id = call_state.call_id AND c.ended_at IS NOT NULL) "
                "RETURNING call_id", [cutoff]).fetchall()]
        self._forget_kept(dropped)
        return len(dropped)

    def purge_before(self, started_before: str, batch: int = 1000) -> dict[str, int]:
        """Erase the calls that started before ``started_before`` (ISO 8601
        with an offset) and all that is kept of them: node events, status
        callbacks, callback requests and state.  Rows erased per table.
        Batches of ``batch`` calls, each its own transaction, so other
        writers wait for one batch at most."""
        totals = dict.fromkeys(_CALL_TABLES, 0)
        while True:
            ids = self._calls_started_before(started_before, batch)
            if not ids:
                return totals
            for table, count in self.erase_calls(ids).items():
                totals[table] += count

    def _calls_started_before(self, started_before: str, limit: int) -> list[str]:
        """At most ``limit`` calls that started before the instant ``started_before``."""
        return [row[0] for row in self.db.conn.execute(
            "SELECT call_id FROM calls WHERE julianday(started_at) < julianday(?) LIMIT ?",
            [started_before, limit]).fetchall()]

    def forget_caller(self, number: str) -> dict[str, int]:
        """Erase every call of the caller ``number`` (the caller, or the
        number given for a callback) with all that is kept of them: node
        events, status callbacks, callback requests and state.  Rows erased
        per table; nothing (all zeros) the second time.  Raises
        ``ValueError`` for a withheld or empty number."""
        digest = self.hash_caller(number)
        if not digest:
            raise ValueError(f"{number!r} is not a caller's number")
        ids = [row[0] for row in self.db.conn.execute(
            "SELECT call_id FROM calls WHERE caller_hash = ? "
            "UNION SELECT call_id FROM calls WHERE handoff_kind = 'callback' AND handoff_target = ? "
            "UNION SELECT call_id FROM callback_requests WHERE number_hash = ?",
            [digest, digest, digest]).fetchall()]
        return self.erase_calls(ids)

    def erase_calls(self, call_ids: list[str]) -> dict[str, int]:
        """Delete ``call_ids`` from every table that holds calls, in one
        transaction; rows deleted per table."""
        counts = dict.fromkeys(_CALL_TABLES, 0)
        # Erased means gone from the file too: the freed pages are zeroed.
        secure = self.db.conn.execute("PRAGMA secure_delete").fetchone()[0]
        self.db.conn.execute("PRAGMA secure_delete = ON")
        try:
            with self.transaction():
                for start in range(0, len(call_ids), 500):
                    chunk = call_ids[start:start + 500]
                    marks = ", ".join("?" for _ in chunk)
                    for table in _CALL_TABLES:
                        counts[table] += self.db.conn.execute(
                            f"DELETE FROM {table} WHERE call_id IN ({marks})", chunk).rowcount
        finally:
            self.db.conn.execute(f"PRAGMA secure_delete = {int(secure)}")
        self._forget_kept(call_ids)
        return counts

    def truncate_wal(self) -> bool:
        """Checkpoint and truncate the write-ahead log, which still holds
        pages as they were before an erasure; False when a busy server
        holds it (its next checkpoint then overwrites them)."""
        busy, _log, _done = self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        return not busy

    def vacuum(self) -> None:
        """Rebuild the file to give the pages freed by erasing back to the disk."""
        self.db.execute("VACUUM")

    def _forget_kept(self, call_ids) -> None:
        for call_id in call_ids:
            self._live.pop(call_id, None)
