"""tools/bench_floor_server.py writes what a turn writes, committed before
its answer."""

import sqlite3
import sys
from pathlib import Path
from urllib.parse import urlencode

from twisted.internet import task
from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport
from twisted.web.server import Site

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import bench_floor_server as floor  # noqa: E402


def _post(site, clock, call_id):
    protocol = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 5000))
    transport = StringTransport()
    protocol.makeConnection(transport)
    body = urlencode({"CallSid": call_id, "Digits": "1"}).encode()
    protocol.dataReceived(b"POST /voice/post_sale HTTP/1.1\r\nHost: x\r\n"
                          b"Content-Type: application/x-www-form-urlencoded\r\n"
                          b"Content-Length: %d\r\n\r\n" % len(body) + body)
    return protocol, transport


def test_each_turn_is_committed_then_answered(tmp_path, monkeypatch):
    clock = task.Clock()
    monkeypatch.setattr(floor.reactor, "callLater", clock.callLater)
    store = floor.FloorStore(str(tmp_path / "floor.db"))
    site = Site(floor.Floor(store))
    for turn in range(3):
        posted = [_post(site, clock, call_id) for call_id in ("CA1", "CA2")]
        assert all(answer.value() == b"" for _, answer in posted)  # not before the commit
        clock.advance(0)
        assert all(answer.value().startswith(b"HTTP/1.1 200") and floor.TWIML in answer.value()
                   for _, answer in posted)
        for protocol, _ in posted:
            protocol.connectionLost(None)
    reader = sqlite3.connect(tmp_path / "floor.db")
    assert reader.execute("SELECT call_id, turn, length(state) FROM call_state ORDER BY 1"
                          ).fetchall() == [("CA1", 2, floor.STATE_BYTES),
                                           ("CA2", 2, floor.STATE_BYTES)]
    assert reader.execute("SELECT count(*) FROM node_events").fetchone() == (
        2 * 3 * floor.EVENTS_PER_TURN,)
    assert reader.execute("SELECT steps FROM calls WHERE call_id = 'CA1'").fetchone() == (
        3 * floor.EVENTS_PER_TURN,)
    assert clock.getDelayedCalls() == []
