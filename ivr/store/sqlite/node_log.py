"""A turn's node events, written with each call's first event at each node
flagged (``first_visit``, what the funnel counts).

The flag says whether the call had an event at that node before.  Asking
the database once per event (a subquery scanning the call's events) was a
fifth of a turn's store work; the store knows the answer when the call's
logged nodes are known: what this connection saw at the call's last save,
while nobody else has written to the database since (``PRAGMA
data_version`` is unchanged) and the new events come after every stored
one.  When another connection has written (another server process on the
same file commits between any two of this one's turns), what was seen is
still the call's when the call's events are as many as then and end at
the same sequence number: one look at the primary key's index, where
reading the logged nodes again reads every event's row.  (That is enough
because the only write that adds a call's events without replacing its
state, which the caller has checked is still its own, is a late retry of
an older turn, and events are removed only with the call's state.)
Otherwise, the call's logged nodes are read in one statement first;
when a new event's sequence number may already be stored (a retried turn),
the call's stored events are read, and only those not stored are written,
so a retry flags nothing twice.

Each flagged event adds one to its node's count in ``node_reached`` (what
the funnel reads; migration ``0013_reached_counts``).  The counts a
transaction's turns add are kept until it commits and written then, one
row per node (:meth:`_NodeLog._write_reached`): a statement per commit
rather than one per turn, and the one page of the flow version's counts
rather than a page per node.  PostgreSQL, which asks per event, counts in
a trigger of its own (``ivr.store.postgres.migrations``).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import NamedTuple

import sqlite_utils

#: A turn's events when each one asks the database whether it is the call's first at its node.
_INSERT_ASKING = (
    "INSERT INTO node_events (call_id, seq, flow, version, node, kind, input, "
    "branch, detail, at, first_visit) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, "
    "CAST(NOT EXISTS (SELECT 1 FROM node_events WHERE call_id = ?1 AND node = ?5) "
    "AS INTEGER)) "
    "ON CONFLICT (call_id, seq) DO NOTHING")

#: A turn's events, their flags known (SQLite only: PostgreSQL has no
#: ``data_version``, so it always asks).  A missing input, branch or detail
#: is bound as the integer 0 and stored as NULL (``NULLIF``): Python's
#: sqlite3 binds ``None`` only after looking for an adapter, which builds
#: and drops an ``AttributeError`` for each value (about 3 thousand
#: instructions; a turn binds six or seven), where an ``int`` is bound at
#: once.  These columns only ever get texts (``_text``), and SQLite never
#: finds a text equal to an integer, so no text becomes NULL.
_INSERT_FLAGGED = (
    "INSERT INTO node_events (call_id, seq, flow, version, node, kind, input, "
    "branch, detail, at, first_visit) VALUES (?, ?, ?, ?, ?, ?, NULLIF(?, 0), "
    "NULLIF(?, 0), NULLIF(?, 0), ?, ?) "
    "ON CONFLICT (call_id, seq) DO NOTHING")

#: What :data:`_INSERT_FLAGGED` binds for a missing text.
_NO_TEXT = 0

#: A commit's first visits added to their nodes' counts.
_ADD_REACHED = (
    "INSERT INTO node_reached (flow, version, node, kind, reached) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (flow, version, node) DO UPDATE SET reached = reached + excluded.reached")


class LoggedNodes(NamedTuple):
    """A call's logged events as one connection knows them: the nodes
    reached, the highest sequence number stored, how many events are
    stored, and the database's ``data_version`` then (what another
    connection's commit changes).  A named tuple, as the store's
    ``_Kept``: a turn makes one."""

    nodes: frozenset
    last_seq: int
    data_version: int
    count: int


class _NodeLog:
    """Methods of the call store, :class:`ivr.store.sqlite.store.CallStore`."""

    db: sqlite_utils.Database
    _txn_open: bool
    _txn_version: int | None
    _live: OrderedDict
    #: First visits written in the open transaction, not yet counted:
    #: (flow, version, node, kind) -> how many.
    _reached: dict[tuple, int]

    def _data_version(self) -> int | None:
        """What changes when another connection commits (None: this
        database cannot tell, so nothing is known between statements).
        Read once per write transaction of this store: while it is open no
        other connection can commit."""
        version = self._txn_version
        if version is None:
            version = self.db.conn.execute("PRAGMA data_version").fetchone()[0]
            if self._txn_open:  # within this store's transaction
                self._txn_version = version
        return version

    def _log_events(self, call_id: str, rows: list[list],
                    known: LoggedNodes | None) -> LoggedNodes | None:
        """Insert a turn's events (``rows``: call id, seq, flow, version,
        node, kind, input, branch, detail, at), each stored once: the
        call's logged nodes after, when this connection knows them.
        ``known`` is what it knew at the call's last save, if that save is
        still the stored one."""
        if not rows:
            return known  # nothing written: still what it was then
        version = self._data_version()
        if version is None:
            self.db.conn.executemany(_INSERT_ASKING, rows)
            return None
        if known is None or (known.data_version != version
                             and not self._still_logged(call_id, known)):
            known = self._logged_nodes(call_id, version)
        seqs = [row[1] for row in rows]
        if min(seqs) <= known.last_seq or len(set(seqs)) != len(seqs):
            # A retried turn: some of its events may be stored already.
            self._log_new_events(call_id, rows)
            return None
        nodes = self._flag(rows, set(known.nodes))
        inserted = self.db.conn.executemany(_INSERT_FLAGGED, rows).rowcount
        if inserted != len(rows):
            # Cannot be (every event stored has a lower sequence number, and
            # no other connection writes in this transaction); were it so,
            # the counts would be off: the whole transaction is dropped, and
            # the call's events read again when the turn is written again.
            kept = self._live.get(call_id)
            if kept is not None:
                self._live[call_id] = kept._replace(logged=None)
            raise RuntimeError(f"node events of {call_id} were stored already")
        last_seq = max(seqs)
        return LoggedNodes(frozenset(nodes), last_seq, version, known.count + inserted)

    def _log_new_events(self, call_id: str, rows: list[list]) -> None:
        """Insert those of ``rows`` whose sequence numbers the call has not
        stored (the first of each), flagged and counted as when they came."""
        stored = self.db.conn.execute(
            "SELECT seq, node FROM node_events WHERE call_id = ?", [call_id]).fetchall()
        seen = {seq for seq, _node in stored}
        new = []
        for row in rows:
            if row[1] not in seen:
                seen.add(row[1])
                new.append(row)
        self._flag(new, {node for _seq, node in stored})
        if new:
            self.db.conn.executemany(_INSERT_FLAGGED, new)

    def _flag(self, rows: list[list], nodes: set) -> set:
        """Append to each row its first-visit flag (its node not in
        ``nodes``, the call's logged nodes, nor in a row before it), bind
        its missing texts as :data:`_NO_TEXT`, and count the first visits
        for the transaction's commit.  The nodes logged after."""
        reached = self._reached
        for row in rows:
            node = row[4]
            if node in nodes:
                row.append(0)
            else:
                row.append(1)
                nodes.add(node)
                key = (row[2], row[3], node, row[5])
                reached[key] = reached.get(key, 0) + 1
            for column in (6, 7, 8):  # input, branch, detail (see _INSERT_FLAGGED)
                if row[column] is None:
                    row[column] = _NO_TEXT
        return nodes

    def _write_reached(self) -> None:
        """Add the open transaction's first visits to their nodes' counts
        (just before it commits)."""
        reached = self._reached
        if reached:
            self.db.conn.executemany(_ADD_REACHED,
                                     [key + (count,) for key, count in reached.items()])
            reached.clear()

    def _still_logged(self, call_id: str, known: LoggedNodes) -> bool:
        """Whether the call's stored events are still those of ``known``:
        as many, and the last the same (events are only ever added, but
        with the call's state)."""
        count, last_seq = self.db.conn.execute(
            "SELECT count(*), max(seq) FROM node_events WHERE call_id = ?", [call_id]).fetchone()
        return count == known.count and (last_seq if count else -1) == known.last_seq

    def _logged_nodes(self, call_id: str, version: int) -> LoggedNodes:
        """The call's logged nodes and highest sequence number, as stored."""
        stored = self.db.conn.execute(
            "SELECT node, max(seq), count(*) FROM node_events WHERE call_id = ? GROUP BY node",
            [call_id]).fetchall()
        return LoggedNodes(frozenset(node for node, _seq, _count in stored),
                           max((seq for _node, seq, _count in stored), default=-1), version,
                           sum(count for _node, _seq, count in stored))
