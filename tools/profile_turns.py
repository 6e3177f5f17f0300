"""Where a request's CPU goes: whole demo calls through the server's own
Site, in one process, with no network and no other process.

    python tools/profile_turns.py [--batches 20] [--repeat 3] [--profile]
    valgrind --tool=cachegrind --cache-sim=no python tools/profile_turns.py --batches 1 --repeat 1
    valgrind --tool=cachegrind --cache-sim=no python tools/profile_turns.py --batches 6 --repeat 1
    python tools/profile_turns.py --other-writer 5   # as one of two workers on the file

Each batch plays 20 demo calls at a time (incoming call, "1", "1", "2",
then the status callback) as raw HTTP requests into the ``WebhookSite``
that ``ivr-serve`` builds, over ``StringTransport``s, with group commit on
a ``task.Clock`` (one commit per step of the 20 calls) and log lines
formatted and written to ``/dev/null`` as ``ivr-serve`` writes them.  (Give valgrind the interpreter
itself, ``python -c 'import sys; print(sys.executable)'``: a pyenv shim is
a shell script, and valgrind would count the shell.)  Call ids come from a seeded
generator, and the calls' moment is fixed (``--at``, a Tuesday at 10:00
in Paris by default, with the demo orders dated that day), so two runs
do the same work: the demo flow's opening hours and its orders' dates
relative to the call's day change what a call does and says.

It prints the CPU time per request (best of ``--repeat`` runs, a guide
only on a shared machine) or, with ``--profile``, the cProfile table.  Under cachegrind the
instruction count is repeatable to a fraction of a percent: the
difference between a run of 6 batches and one of 1, divided by the 500
requests between them, is the cost of a request, to compare a change
against.  With ``--other-writer K``, a second connection to the file
commits a small write after every K requests, as the other process of
``ivr-serve --workers 2`` does between this one's reads and commits:
what SQLite does again when another connection has written (each read
transaction that follows drops the connection's page cache) is counted
too.  (Set ``OPENBLAS_NUM_THREADS=1`` if numpy is installed: its
threads spin under valgrind.)  It stops by itself after its batches.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime
import gc
import os
import pstats
import random
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from twisted.internet import task  # noqa: E402
from twisted.internet.address import IPv4Address  # noqa: E402
from twisted.internet.testing import StringTransport  # noqa: E402
from twisted.logger import globalLogBeginner  # noqa: E402

from ivr.lookups.demo_orders import create_demo_db  # noqa: E402
from ivr.lookups.embedded import EmbeddedOrderLookups  # noqa: E402
from ivr.server.calls import CallHandler  # noqa: E402
from ivr.server.logs import flush_log_lines, text_log_observer  # noqa: E402
from ivr.server.registry import FlowRegistry  # noqa: E402
from ivr.server.requests import LimitedRequest  # noqa: E402
from ivr.server.tap import (  # noqa: E402
    GC_YOUNG_THRESHOLD,
    PAGE_CACHE_KIB,
    WebhookSite,
    open_database,
)
from ivr.server.web import build_root  # noqa: E402
from ivr.store.sqlite.checkpoint import bound_the_log  # noqa: E402
from ivr.store.sqlite.group_commit import GroupCommit  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_turns import CALL  # noqa: E402

CALLS_AT_A_TIME = 20
#: The calls' moment unless ``--at`` says otherwise: a Tuesday morning in Paris.
DEFAULT_MOMENT = "2026-12-08T10:00:00+01:00"
#: The demo call of tools/bench_turns.py, then its status callback.
STEPS = [(f"/voice/post_sale?turn={turn}" if turn else "/voice/post_sale", extra)
         for turn, extra in CALL] + [("/status", {"CallStatus": "completed", "SequenceNumber": "0"})]


class Bench:
    """The server's Site over a fresh database, on a Clock."""

    def __init__(self, db_path: Path, at: datetime.datetime, other_writer: int = 0):
        create_demo_db(str(db_path), at.date())  # the orders dated the calls' day
        store, orders = open_database(str(db_path))
        store.db.execute(f"PRAGMA cache_size = -{PAGE_CACHE_KIB}")
        registry = FlowRegistry(ROOT / "flows", ROOT / "prompts", store)
        registry.reload_if_changed()
        self.clock = task.Clock()
        self.clock.advance(at.timestamp())
        group_commit = GroupCommit(store, self.clock)
        group_commit.after_delivery = flush_log_lines  # as ivr-serve does
        handler = CallHandler(registry, store, EmbeddedOrderLookups(orders).perform, self.clock,
                              group_commit=group_commit)
        self.site = WebhookSite(build_root(handler, registry), requestFactory=LimitedRequest,
                                logPath=None, parsePOSTFormSubmission=False)
        self.ids = random.Random(7)
        #: Another connection's commit after every this many requests (0: none).
        self.other_every, self.other = other_writer, None
        if other_writer:
            self.other = sqlite3.connect(str(db_path), isolation_level=None)
            self.other.execute("PRAGMA synchronous = NORMAL")  # as a worker's connection
            bound_the_log(self.other)
        self.requests = 0

    def _request_done(self) -> None:
        """Count a request; commit the other connection's write when due."""
        self.requests += 1
        if self.other is not None and self.requests % self.other_every == 0:
            self.other.execute("BEGIN IMMEDIATE")
            self.other.execute("INSERT INTO meta (key, value) VALUES ('other_writer', ?) "
                               "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                               [str(self.requests)])
            self.other.execute("COMMIT")

    def batch(self) -> None:
        """20 whole calls, each step of them answered by one commit."""
        connections = []
        for _ in range(CALLS_AT_A_TIME):
            protocol = self.site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 5000))
            protocol.callLater = self.clock.callLater
            transport = StringTransport()
            protocol.makeConnection(transport)
            connections.append((protocol, transport, f"CA{self.ids.getrandbits(128):032x}"))
        for path, extra in STEPS:
            for protocol, _transport, call_id in connections:
                protocol.dataReceived(_request(path, {"CallSid": call_id, "From": "+33612345678",
                                                      "To": "+33100000000", **extra}))
                self._request_done()
            self.clock.advance(0)  # the group commit, then the answers
            for _protocol, transport, _call_id in connections:
                answer = transport.value()
                if not answer.startswith((b"HTTP/1.1 200", b"HTTP/1.1 204")):
                    raise SystemExit(f"unexpected answer: {answer[:200]!r}")
                transport.clear()
        for protocol, _transport, _call_id in connections:
            protocol.connectionLost(None)


def _request(path: str, params: dict) -> bytes:
    body = urlencode(params).encode()
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=20,
                        help="batches of 20 calls measured (default 20)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs of the batches, the best one printed (default 3)")
    parser.add_argument("--profile", action="store_true", help="print the cProfile table")
    parser.add_argument("--other-writer", type=int, default=0, metavar="K",
                        help="another connection commits after every K requests (default 0: "
                             "none), as the other process of two workers does")
    parser.add_argument("--at", type=parse_moment, default=parse_moment(DEFAULT_MOMENT),
                        help="the calls' moment, ISO 8601 with its offset "
                             f"(default {DEFAULT_MOMENT}: inside the demo flow's hours)")
    args = parser.parse_args(argv)
    if not 1 <= args.batches <= 500 or not 1 <= args.repeat <= 10 \
            or not 0 <= args.other_writer <= 1000:
        raise SystemExit("--batches must be 1..500, --repeat 1..10 and --other-writer 0..1000")
    with tempfile.TemporaryDirectory() as tmp:
        bench = Bench(Path(tmp) / "profile.db", args.at, args.other_writer)
        # As ivr-serve logs: the lines of one pass of the reactor in one write.
        globalLogBeginner.beginLoggingTo(
            [text_log_observer(open(os.devnull, "w"), reactor=bench.clock)],
            redirectStandardIO=False)
        for _ in range(3):  # warm-up: the flow compiled, the caches filled
            bench.batch()
        # As ivr-serve does once started: what start-up and the warm-up made
        # is frozen, so the full collections that the batches' objects set
        # off no longer walk it at points that move from run to run.
        gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
        gc.collect()
        gc.freeze()
        requests = args.batches * CALLS_AT_A_TIME * len(STEPS)
        if args.profile:
            profiler = cProfile.Profile()
            profiler.runcall(lambda: [bench.batch() for _ in range(args.batches)])
            pstats.Stats(profiler).sort_stats("tottime").print_stats(40)
            return
        best = min(_cpu(lambda: [bench.batch() for _ in range(args.batches)])
                   for _ in range(args.repeat))
        print(f"{requests} requests: {1000 * best / requests:.3f} ms of CPU a request "
              f"(best of {args.repeat}; no network, no other process)")


def parse_moment(text: str) -> datetime.datetime:
    """An ISO 8601 moment with its UTC offset."""
    moment = datetime.datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no UTC offset (e.g. +01:00)")
    return moment


def _cpu(function) -> float:
    started = time.process_time()
    function()
    return time.process_time() - started


if __name__ == "__main__":
    main()
