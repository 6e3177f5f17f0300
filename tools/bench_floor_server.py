"""The floor under a durable turn: a twisted.web resource that writes what a
turn of the demo call writes, in the same way, and answers fixed TwiML.

    python tools/bench_floor_server.py PORT DATABASE

``tools/bench_turns.py --floor`` runs it beside ``ivr-serve``.  Each POST
reads its call's state row, writes it back (2 kB of sealed-size random
bytes, compare-and-swap), updates the call's row and inserts four node
events, as a turn does on average; the requests of one reactor iteration
share one SQLite transaction (WAL, ``synchronous=NORMAL``, as ivr-serve),
each answered once it is committed.  No flow, no engine, no templates, no
webhook checks, no log: what is left of a request's cost once all of those
are free.  It listens on 127.0.0.1 only and runs until it is stopped.
"""

from __future__ import annotations

import os
import sqlite3
import sys
from urllib.parse import parse_qs

from twisted.internet import reactor
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site

TWIML = (b'<?xml version="1.0" encoding="UTF-8"?><Response><Gather action="/voice/x?turn=1" '
         b'input="dtmf speech" language="fr-FR" numDigits="1" timeout="5"><Say language="fr-FR">'
         b'Bonjour et bienvenue. Pour suivre votre commande, tapez 1.</Say></Gather>'
         b'<Redirect method="POST">/voice/x?turn=1</Redirect></Response>')
EVENTS_PER_TURN = 4
STATE_BYTES = 2048
AT = "2026-12-06T12:00:00.000Z"

SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (call_id TEXT PRIMARY KEY, flow TEXT NOT NULL,
    started_at TEXT NOT NULL, steps INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS idx_calls_started_at ON calls (started_at);
CREATE TABLE IF NOT EXISTS call_state (call_id TEXT PRIMARY KEY, turn INTEGER NOT NULL,
    state BLOB NOT NULL, updated_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS node_events (call_id TEXT NOT NULL, seq INTEGER NOT NULL,
    node TEXT NOT NULL, at TEXT NOT NULL, PRIMARY KEY (call_id, seq));
"""


class FloorStore:
    """The writes of a turn, grouped into one transaction per iteration."""

    def __init__(self, path: str):
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode = WAL")
        self.db.execute("PRAGMA synchronous = NORMAL")
        self.db.executescript(SCHEMA)
        self.pending: list = []

    def turn(self, call_id: str, request) -> None:
        if not self.pending:
            reactor.callLater(0, self.commit)
        self.pending.append((call_id, request))

    def commit(self) -> None:
        group, self.pending = self.pending, []
        self.db.execute("BEGIN IMMEDIATE")
        for call_id, _request in group:
            self._write(call_id)
        self.db.execute("COMMIT")
        for _call_id, request in group:
            request.setHeader(b"content-type", b"text/xml; charset=utf-8")
            request.setHeader(b"content-length", b"%d" % len(TWIML))
            request.write(TWIML)
            request.finish()

    def _write(self, call_id: str) -> None:
        row = self.db.execute("SELECT turn, state FROM call_state WHERE call_id = ?",
                              (call_id,)).fetchone()
        state = os.urandom(STATE_BYTES)
        if row is None:
            turn = 0
            self.db.execute("INSERT INTO calls (call_id, flow, started_at) VALUES (?, ?, ?)",
                            (call_id, "post_sale", AT))
            self.db.execute("INSERT INTO call_state VALUES (?, 0, ?, ?)", (call_id, state, AT))
        else:
            turn = row[0] + 1
            self.db.execute("UPDATE call_state SET turn = ?, state = ?, updated_at = ? "
                            "WHERE call_id = ? AND state = ?", (turn, state, AT, call_id, row[1]))
        self.db.executemany("INSERT INTO node_events VALUES (?, ?, ?, ?)",
                            [(call_id, EVENTS_PER_TURN * turn + n, f"node{n}", AT)
                             for n in range(EVENTS_PER_TURN)])
        self.db.execute("UPDATE calls SET steps = ? WHERE call_id = ?",
                        (EVENTS_PER_TURN * (turn + 1), call_id))


class Floor(Resource):
    isLeaf = True

    def __init__(self, store: FloorStore):
        super().__init__()
        self.store = store

    def render_POST(self, request):
        form = parse_qs(request.content.read().decode("ascii", "replace"))
        self.store.turn(form.get("CallSid", ["unknown"])[0], request)
        return NOT_DONE_YET

    def render_GET(self, request):
        return b"ok"


def main() -> None:
    port, path = int(sys.argv[1]), sys.argv[2]
    reactor.listenTCP(port, Site(Floor(FloorStore(path))), interface="127.0.0.1")
    reactor.run()


if __name__ == "__main__":
    main()
