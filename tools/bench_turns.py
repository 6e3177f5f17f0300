"""Throughput and latency of call turns, against a ceiling measured in the same run.

    python tools/bench_turns.py [--calls 400] [--concurrency 20] [--rounds 3]

Starts two servers on 127.0.0.1, each in its own process:

- ``ivr-serve`` with a fresh database (WAL, node events logged), and
- the ceiling: a bare twisted.web resource answering every POST with a
  fixed TwiML document (no engine, no database).

Then plays the same load against each with a Twisted client: ``--calls``
calls, ``--concurrency`` at a time, each a whole demo call with a new
CallSid (incoming call, "1" for tracking, "1" to confirm the order, "2"
to hang up, then the status callback), and prints turns/s, p50 and p99
latency for both and the ratio.  Both are measured ``--rounds`` times,
taking turns, and the ratio given is the median of the rounds': on a
shared machine one measurement can fall in a slow moment of the other.
Everything is bounded by the call count and stops by itself; only
loopback is used.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from io import BytesIO
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent

CEILING_SERVER = """
import sys
from twisted.internet import reactor
from twisted.web.resource import Resource
from twisted.web.server import Site

TWIML = (b'<?xml version="1.0" encoding="UTF-8"?><Response><Gather action="/voice/x?turn=1" '
         b'input="dtmf speech" language="fr-FR" numDigits="1" timeout="5"><Say language="fr-FR">'
         b'Bonjour et bienvenue. Pour suivre votre commande, tapez 1.</Say></Gather>'
         b'<Redirect method="POST">/voice/x?turn=1</Redirect></Response>')

class Fixed(Resource):
    isLeaf = True
    def render_POST(self, request):
        request.setHeader(b"content-type", b"text/xml; charset=utf-8")
        return TWIML
    def render_GET(self, request):
        return b"ok"

reactor.listenTCP(int(sys.argv[1]), Site(Fixed()), interface="127.0.0.1")
reactor.run()
"""

#: The demo call each simulated caller makes: (query turn, extra parameters).
CALL = [(0, {}), (1, {"Digits": "1"}), (2, {"Digits": "1"}), (3, {"Digits": "2"})]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(port: int, process: subprocess.Popen) -> None:
    for _ in range(200):  # bounded: 20 s at most
        if process.poll() is not None:
            raise SystemExit(f"server on port {port} exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"server on port {port} did not start")


def start_ivr(workdir: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    db = workdir / "bench.db"
    subprocess.run([sys.executable, "-c", "from ivr.sim.cli import main; main()", "demo-orders",
                    "--db", str(db)], check=True, capture_output=True, cwd=ROOT)
    process = subprocess.Popen(
        [sys.executable, "-c", "from ivr.server.tap import main; main()",
         "--listen", f"tcp:{port}:interface=127.0.0.1", "--db", str(db),
         "--flows", str(ROOT / "flows"), "--prompts", str(ROOT / "prompts")],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ})
    wait_ready(port, process)
    return process, port


def start_ceiling() -> tuple[subprocess.Popen, int]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-c", CEILING_SERVER, str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_ready(port, process)
    return process, port


def run_load(port: int, calls: int, concurrency: int) -> dict:
    """Schedule ``calls`` demo calls against ``port`` on the global reactor
    (this runs in a child process of its own); the caller runs the reactor."""
    from twisted.internet import defer, reactor
    from twisted.web.client import Agent, FileBodyProducer, HTTPConnectionPool, readBody
    from twisted.web.http_headers import Headers

    pool = HTTPConnectionPool(reactor, persistent=True)
    pool.maxPersistentPerHost = concurrency
    agent = Agent(reactor, pool=pool)
    headers = Headers({b"content-type": [b"application/x-www-form-urlencoded"]})
    latencies: list[float] = []
    failures = []

    async def post(path: str, params: dict) -> None:
        body = urlencode(params).encode()
        started = time.perf_counter()
        response = await agent.request(b"POST", f"http://127.0.0.1:{port}{path}".encode(),
                                       headers, FileBodyProducer(BytesIO(body)))
        await readBody(response)
        latencies.append(time.perf_counter() - started)
        if response.code >= 300:
            failures.append(response.code)

    async def one_call() -> None:
        sid = "CA" + uuid.uuid4().hex
        base = {"CallSid": sid, "From": "+33612345678", "To": "+33100000000"}
        for turn, extra in CALL:
            query = f"?turn={turn}" if turn else ""
            await post(f"/voice/post_sale{query}", {**base, **extra})
        await post("/status", {**base, "CallStatus": "completed", "SequenceNumber": "0"})

    async def worker(remaining: list) -> None:
        while remaining:
            remaining.pop()
            await one_call()

    async def main() -> float:
        remaining = list(range(calls))
        started = time.perf_counter()
        await defer.gatherResults([defer.ensureDeferred(worker(remaining))
                                   for _ in range(concurrency)], consumeErrors=True)
        elapsed = time.perf_counter() - started
        await pool.closeCachedConnections()
        return elapsed

    result = {}

    def done(value):
        result["elapsed"] = value
        reactor.stop()

    def failed(failure):
        result["error"] = failure
        reactor.stop()

    reactor.callWhenRunning(lambda: defer.ensureDeferred(main()).addCallbacks(done, failed))
    return {"latencies": latencies, "failures": failures, "result": result, "reactor": reactor}


def figures(latencies: list[float], elapsed: float) -> dict:
    ordered = sorted(latencies)
    return {
        "requests": len(ordered),
        "per_second": len(ordered) / elapsed,
        "p50_ms": 1000 * statistics.median(ordered),
        "p99_ms": 1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))],
    }


def measure(port: int, calls: int, concurrency: int) -> dict:
    """Run the load in a child process so each run gets a fresh reactor."""
    code = (
        "import json, sys; sys.path.insert(0, %r)\n"
        "import bench_turns as b\n"
        "run = b.run_load(%d, %d, %d)\n"
        "run['reactor'].run()\n"
        "res = run['result']\n"
        "if 'error' in res: res['error'].raiseException()\n"
        "out = b.figures(run['latencies'], res['elapsed'])\n"
        "out['failures'] = len(run['failures'])\n"
        "print(json.dumps(out))\n"
    ) % (str(Path(__file__).parent), port, calls, concurrency)
    output = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                            text=True, timeout=600, cwd=ROOT).stdout
    return json.loads(output.strip().splitlines()[-1])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=400, help="calls per server (default 400)")
    parser.add_argument("--concurrency", type=int, default=20, help="calls at a time (default 20)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds, each measuring both servers (default 3)")
    args = parser.parse_args(argv)
    if not 1 <= args.calls <= 20_000 or not 1 <= args.concurrency <= 500 \
            or not 1 <= args.rounds <= 10:
        raise SystemExit("--calls must be 1..20000, --concurrency 1..500 and --rounds 1..10")
    rounds = []
    with tempfile.TemporaryDirectory() as tmp:
        servers = []
        try:
            ceiling, ceiling_port = start_ceiling()
            servers.append(ceiling)
            ivr, ivr_port = start_ivr(Path(tmp))
            servers.append(ivr)
            for number in range(args.rounds):
                # The servers take turns going first: a machine that speeds
                # up or slows down during the run favours neither.
                order = [("ceiling", ceiling, ceiling_port), ("ivr-serve", ivr, ivr_port)]
                measured = {name: measure_with_cpu(process, port, args.calls, args.concurrency)
                            for name, process, port in (order if number % 2 == 0 else order[::-1])}
                rounds.append(measured)
            logged = _count_events(Path(tmp) / "bench.db")
        finally:
            for process in servers:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
    print(f"{args.calls} calls x {len(CALL) + 1} requests, {args.concurrency} at a time, "
          f"on {os.cpu_count()} cores, {args.rounds} rounds")
    print(f"{'':16}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'errors':>8}{'server CPU ms/req':>19}")
    for number, measured in enumerate(rounds, 1):
        for name in ("ceiling", "ivr-serve"):
            row = measured[name]
            print(f"{name + ' #' + str(number):16}{row['per_second']:>10.0f}{row['p50_ms']:>10.1f}"
                  f"{row['p99_ms']:>10.1f}{row['failures']:>8}{row['cpu_ms']:>19.3f}")
    print(f"node events logged: {logged}")
    throughput = [m["ivr-serve"]["per_second"] / m["ceiling"]["per_second"] for m in rounds]
    cpu = [m["ceiling"]["cpu_ms"] / m["ivr-serve"]["cpu_ms"] for m in rounds]
    print(f"ratio (ivr-serve / ceiling throughput), median of the rounds: "
          f"{statistics.median(throughput):.2f}  ({', '.join(f'{r:.2f}' for r in throughput)})")
    # CPU time moves less than throughput with what else the machine runs.
    print(f"ratio (ceiling / ivr-serve server CPU per request), median: "
          f"{statistics.median(cpu):.2f}")


def measure_with_cpu(server: subprocess.Popen, port: int, calls: int, concurrency: int) -> dict:
    """:func:`measure`, plus the server process's CPU time per request."""
    before = _cpu_seconds(server.pid)
    row = measure(port, calls, concurrency)
    row["cpu_ms"] = 1000 * (_cpu_seconds(server.pid) - before) / row["requests"]
    return row


def _cpu_seconds(pid: int) -> float:
    """User plus system CPU time of process ``pid`` (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _count_events(db_path: Path) -> int:
    import sqlite3
    with sqlite3.connect(db_path) as conn:
        return conn.execute("SELECT count(*) FROM node_events").fetchone()[0]


if __name__ == "__main__":
    main()
