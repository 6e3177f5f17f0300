"""Call turns under wrk: ours against a bare twisted.web resource, in one run.

    python tools/bench_turns.py [--seconds 5] [--connections 20] [--rounds 3]
                                [--workers N] [--postgres postgresql://...]

Starts, on 127.0.0.1, each in its own processes:

- ``bare``: a twisted.web resource answering every POST with a fixed TwiML
  document (no engine, no database), one process;
- ``ivr 1 worker``: ``ivr-serve`` on a fresh SQLite database (WAL, every
  node event logged), with ``--workers 1`` when ivr-serve has that option;
- ``ivr N workers``: the same with ``--workers N`` (n/a without the option);
- ``ivr postgresql``: ``ivr-serve --db DSN`` when a DSN is given by
  ``--postgres`` or ``$IVR_BENCH_POSTGRES`` (n/a otherwise);
- ``floor`` with ``--floor``: ``tools/bench_floor_server.py``, the bare
  resource plus the SQLite writes of a turn, group-committed as ivr-serve
  does: what a durable turn costs with no engine, templates, checks or log.

wrk (installed from Debian's packages when missing) plays whole demo calls with
``tools/bench_turns.lua``: one thread per connection, each playing one call
at a time, its turns in order (incoming call, "1", "1", "2", then the
status callback), a fresh CallSid a call.  Each round measures every
server, in an order that alternates between rounds, twice: at saturation
(``--seconds``), then paced at half the rate it just reached (wrk's
``delay()`` hook on a clock: :data:`PACED_LUA`).  The same wrk, with a
fixed POST and no script logic, measures the bare resource too: the client
is not the limit when the scripted calls reach that rate.  Server CPU time
is read from /proc for the server's processes and their children.

It prints every measurement, then for each server the median of the rounds
(lowest and highest in brackets) and its ratios to the bare resource, and
which of the targets are met.  Everything is bounded in time.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import resource
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
LUA = Path(__file__).resolve().parent / "bench_turns.lua"

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
#: Its status callback, the last request of a call.
STATUS = ("/status", "CallStatus=completed&SequenceNumber=0")

#: A fixed POST, without per-call logic: what wrk reaches on its own.
PLAIN_LUA = """
wrk.method = "POST"
wrk.body = "CallSid=CA00000000000000000000000000000000&Digits=1"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format('BENCH {"requests": %d, "seconds": %.6f, "calls": 0, "p50_ms": %.3f, '
      .. '"p99_ms": %.3f, "max_ms": %.3f, "errors": %d}\\n', summary.requests,
      summary.duration / 1e6, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
      latency.max / 1000, e.connect + e.read + e.write + e.status + e.timeout))
end
"""
#: Pacing: each connection sends a request every ``period_ms`` (given as
#: ``period=``), on a schedule read from the monotonic clock (LuaJIT's
#: ffi), so the rate does not depend on how long answers take; wrk waits
#: whole milliseconds, the schedule keeps the fractions.  A connection
#: behind its schedule sends at once but does not catch up in a burst.
PACED_LUA = """
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clock_id, bench_timespec *tp);
]]
local clock_now = ffi.new("bench_timespec")
local due = nil

local function now_ms()
   ffi.C.clock_gettime(1, clock_now)  -- CLOCK_MONOTONIC
   return tonumber(clock_now.tv_sec) * 1000 + tonumber(clock_now.tv_nsec) / 1e6
end

function delay()
   local now = now_ms()
   if due == nil then
      due = now + math.random() * period_ms  -- the connections spread over a period
   else
      due = math.max(due + period_ms, now)
   end
   return math.floor(due - now + 0.5)
end
"""

#: The targets for one worker, against the bare resource.
TARGETS = {"throughput": 0.6, "p99": 2.0, "cpu_ms": 0.2}


def call_steps() -> list[str]:
    """The demo call as the Lua script's ``step=PATH PARAMS`` arguments."""
    steps = []
    for turn, extra in CALL:
        path = f"/voice/post_sale?turn={turn}" if turn else "/voice/post_sale"
        steps.append(f"step={path} " + "&".join(f"{k}={v}" for k, v in extra.items()))
    return steps + [f"step={STATUS[0]} {STATUS[1]}"]


def ensure_wrk(run: Callable = subprocess.run) -> None:
    """Install wrk from Debian's packages when it is missing, as ``.ci/run``
    does (through sudo unless root); exit saying how when that fails."""
    if shutil.which("wrk") is not None:
        return
    sudo = [] if os.geteuid() == 0 or shutil.which("sudo") is None else ["sudo"]
    print("wrk is missing: installing Debian's wrk package", file=sys.stderr, flush=True)
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"],
                    ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "wrk"]):
        try:
            if run([*sudo, *command], env=environment, capture_output=True, timeout=900).returncode:
                break
        except (OSError, subprocess.SubprocessError):  # no apt-get: not Debian
            break
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed and could not be installed: apt-get install -y wrk")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(port: int, process: subprocess.Popen,
               serving: Callable[[], bool] = lambda: True, seconds: float = 60) -> None:
    """Wait until the server on ``port`` answers ``GET /healthz`` (any HTTP
    answer: the bare and floor servers have no such page) and ``serving()``
    says every process of it serves.  The socket is bound before the
    server is built (``ivr-serve`` binds it first, to fail at once on a
    port in use), so a connection accepted says nothing yet."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server on port {port} exited with {process.returncode}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=0.5)
            try:
                connection.request("GET", "/healthz")
                connection.getresponse().read()
            finally:
                connection.close()
            if serving():
                return
        except (OSError, http.client.HTTPException):
            pass  # not answering yet
        time.sleep(0.1)
    raise SystemExit(f"server on port {port} did not start")


def workers_serving(log: Path, workers: int) -> Callable[[], bool]:
    """Whether each of ``ivr-serve``'s ``workers`` worker processes logged
    its site started (``--workers 1`` is one process: its answer says so)."""
    if workers <= 1:
        return lambda: True
    return lambda: len(set(re.findall(r"\[(worker-\d+)/-\] WebhookSite starting on",
                                      log.read_text(errors="replace")))) >= workers


def ivr_serve_options() -> str:
    """ivr-serve's --help, to see which options it has."""
    return subprocess.run([sys.executable, "-c", "from ivr.server.tap import main; main()",
                           "--help"], capture_output=True, text=True, cwd=ROOT).stdout


@dataclass
class Server:
    """A server under test: its process, its port, how it was started."""

    name: str
    process: subprocess.Popen
    port: int
    db: Path | None = None
    rows: list[dict] = field(default_factory=list)


def start_ivr(name: str, workdir: Path, db: str | None, workers: int | None,
              extra: list[str] | None = None, root: Path = ROOT) -> Server:
    """``ivr-serve`` on ``db`` (a fresh SQLite file in ``workdir`` when None),
    with ``extra`` options: the code, flows and prompts of the source tree
    ``root`` (this one by default)."""
    port = free_port()
    sqlite_path = None
    environment = {**os.environ, "PYTHONPATH": str(root)}
    if db is None:
        sqlite_path = workdir / f"{name.replace(' ', '-')}.db"
        subprocess.run([sys.executable, "-c", "from ivr.sim.cli import main; main()",
                        "demo-orders", "--db", str(sqlite_path)],
                       check=True, capture_output=True, cwd=root, env=environment)
        db = str(sqlite_path)
    command = [sys.executable, "-c", "from ivr.server.tap import main; main()",
               "--listen", f"tcp:{port}:interface=127.0.0.1", "--db", db,
               "--flows", str(root / "flows"), "--prompts", str(root / "prompts")]
    if workers is not None:
        command += ["--workers", str(workers)]
    command += extra or []
    log = workdir / f"{name.replace(' ', '-').replace('/', '_')}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=root, env=environment, stdout=out,
                                   stderr=subprocess.STDOUT)
    wait_ready(port, process, workers_serving(log, workers or 1))
    return Server(name, process, port, sqlite_path)


def start_ceiling() -> Server:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-c", CEILING_SERVER, str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_ready(port, process)
    return Server("bare", process, port)


def start_floor(workdir: Path) -> Server:
    port = free_port()
    process = subprocess.Popen([sys.executable, str(ROOT / "tools" / "bench_floor_server.py"),
                                str(port), str(workdir / "floor.db")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_ready(port, process)
    return Server("floor", process, port)


def stop(server: Server) -> None:
    family = process_tree(server.process.pid)
    server.process.terminate()
    try:
        server.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait(timeout=5)
    for pid in family:  # workers a supervisor left behind
        if pid != server.process.pid:
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass


def run_wrk(port: int, script: Path, seconds: int, connections: int,
            args: list[str]) -> dict:
    """One wrk run; its BENCH line, plus wrk's own CPU time in ms."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(
        ["wrk", "-t", str(connections), "-c", str(connections), "-d", f"{round(seconds)}s",
         "--timeout", "10s", "-s", str(script), f"http://127.0.0.1:{port}", "--", *args],
        capture_output=True, text=True, timeout=seconds + 60)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    lines = [line for line in done.stdout.splitlines() if line.startswith("BENCH ")]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    row = json.loads(lines[-1][len("BENCH "):])
    row["per_second"] = row["requests"] / row["seconds"]
    row["calls_per_second"] = row["calls"] / row["seconds"]
    row["client_cpu_ms"] = 1000 * (after.ru_utime + after.ru_stime
                                   - before.ru_utime - before.ru_stime)
    return row


def measure(server: Server, script: Path, seconds: int, connections: int,
            args: list[str]) -> dict:
    """:func:`run_wrk`, plus the server's CPU time per request."""
    before = _cpu_seconds(server.process.pid)
    row = run_wrk(server.port, script, seconds, connections, args)
    row["cpu_ms"] = 1000 * (_cpu_seconds(server.process.pid) - before) / max(1, row["requests"])
    return row


def measure_paced(server: Server, scripts: dict, seconds: int, connections: int,
                  args: list[str], rate: float) -> dict:
    """:func:`measure` paced at ``rate`` requests/s (see :data:`PACED_LUA`)."""
    period_ms = 1000 * connections / rate
    row = measure(server, scripts["paced"], seconds, connections,
                  args + [f"period={period_ms:.3f}"])
    row["target_per_second"] = rate
    return row


def median_spread(values: list[float], digits: int) -> str:
    """'median (lowest-highest)'."""
    if not values:
        return "n/a"
    text = f"{statistics.median(values):.{digits}f}"
    if len(values) > 1:
        text += f" ({min(values):.{digits}f}-{max(values):.{digits}f})"
    return text


def report(servers: list[Server], missing: dict[str, str], plain: list[dict], args) -> None:
    """Print every measurement, the medians and ratios, and the targets."""
    print(f"wrk, {args.connections} connections (one call at a time each), {args.seconds:g} s a "
          f"measurement, {args.rounds} rounds, {os.cpu_count()} cores, "
          f"{len(CALL) + 1} requests a call")
    print_rounds(servers, plain, args.rounds)
    print_medians(servers, missing)
    print_client_check(servers, plain)
    print_targets(servers)
    for server in servers:
        if server.db is not None:
            print(f"{server.name}: {_count_events(server.db)} node events logged")


def print_rounds(servers: list[Server], plain: list[dict], rounds: int) -> None:
    print(f"{'round':<6}{'server':<17}{'load':<6}{'req/s':>8}{'calls/s':>9}{'p50 ms':>8}"
          f"{'p99 ms':>8}{'errors':>7}{'CPU ms/req':>11}")
    for number in range(rounds):
        for server in servers:
            measured = server.rows[number]
            for load in ("sat", "50%"):
                row = measured[load]
                share = row["per_second"] / measured["sat"]["per_second"]
                label = "sat" if load == "sat" else f"{100 * share:.0f}%"
                print(f"{number + 1:<6}{server.name:<17}{label:<6}{row['per_second']:>8.0f}"
                      f"{row['calls_per_second']:>9.0f}{row['p50_ms']:>8.2f}{row['p99_ms']:>8.2f}"
                      f"{row['errors']:>7}{row['cpu_ms']:>11.3f}")
        print(f"{number + 1:<6}{'bare, plain wrk':<17}{'sat':<6}{plain[number]['per_second']:>8.0f}")


def print_medians(servers: list[Server], missing: dict[str, str]) -> None:
    bare = servers[0]
    print("\nmedian of the rounds (lowest-highest); ratios are taken round by round")
    columns = ["req/s", "calls/s", "p50 ms", "p99 ms", "CPU ms/req", "CPU ms/req @50%",
               "x bare req/s", "x bare p99"]
    print(f"{'server':<17}" + "".join(f"{c:>24}" for c in columns))
    for server in servers:
        sat = [r["sat"] for r in server.rows]
        cells = [
            median_spread([r["per_second"] for r in sat], 0),
            median_spread([r["calls_per_second"] for r in sat], 0),
            median_spread([r["p50_ms"] for r in sat], 2),
            median_spread([r["p99_ms"] for r in sat], 2),
            median_spread([r["cpu_ms"] for r in sat], 3),
            median_spread([r["50%"]["cpu_ms"] for r in server.rows], 3),
            median_spread(_ratios(server, bare, "per_second"), 2),
            median_spread(_ratios(server, bare, "p99_ms"), 2),
        ]
        print(f"{server.name:<17}" + "".join(f"{c:>24}" for c in cells))
    for name, why in missing.items():
        print(f"{name:<17}{why}")
    if any(server.name == "ivr postgresql" for server in servers):
        print("ivr postgresql's CPU ms/req counts ivr-serve's processes only, not PostgreSQL's")


def print_client_check(servers: list[Server], plain: list[dict]) -> None:
    """Is wrk the limit?  The bare resource under the call script against
    the same wrk posting a fixed body; wrk's CPU; paced runs on target."""
    bare = servers[0].rows
    scripted = [r["sat"]["per_second"] / p["per_second"] for r, p in zip(bare, plain)]
    client_cpu = [r["sat"]["client_cpu_ms"] / r["sat"]["requests"] for r in bare]
    on_target = [r["50%"]["per_second"] / r["50%"]["target_per_second"]
                 for server in servers for r in server.rows]
    print(f"\nclient: the bare resource under the call script reached "
          f"{median_spread(scripted, 2)} x its rate under a fixed POST; wrk used "
          f"{median_spread(client_cpu, 3)} ms of CPU a request; the paced runs reached "
          f"{median_spread(on_target, 2)} x their target rate")


def print_targets(servers: list[Server]) -> None:
    """Each target, met or not, with the median of what was measured
    (lowest and highest in brackets)."""
    bare, one = servers[0], servers[1]
    checks = [
        ("1 worker >= 0.6 x bare req/s", _ratios(one, bare, "per_second"),
         lambda value: value >= TARGETS["throughput"]),
        ("1 worker p99 <= 2 x bare p99", _ratios(one, bare, "p99_ms"),
         lambda value: value <= TARGETS["p99"]),
        ("1 worker CPU/request <= 0.2 ms at saturation",
         [r["sat"]["cpu_ms"] for r in one.rows], lambda value: value <= TARGETS["cpu_ms"]),
        ("1 worker CPU/request <= 0.2 ms at 50 %",
         [r["50%"]["cpu_ms"] for r in one.rows], lambda value: value <= TARGETS["cpu_ms"]),
    ]
    many = [s for s in servers if s.name.endswith("workers")]
    if many:
        checks.append(("N workers >= 1.5 x 1 worker req/s", _ratios(many[0], one, "per_second"),
                       lambda value: value >= 1.5))
    for label, values, meets in checks:
        verdict = "met" if meets(statistics.median(values)) else "NOT met"
        digits = 3 if "CPU" in label else 2
        print(f"target {label}: {verdict}, measured {median_spread(values, digits)}")


def round_ratios(rows: list[dict], baseline: list[dict], key: str) -> list[float]:
    """``key`` of each round over the baseline's in the same round."""
    return [mine[key] / theirs[key] for mine, theirs in zip(rows, baseline) if theirs[key]]


def _ratios(server: Server, baseline: Server, key: str) -> list[float]:
    return round_ratios([row["sat"] for row in server.rows],
                        [row["sat"] for row in baseline.rows], key)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=5,
                        help="seconds a measurement (default 5)")
    parser.add_argument("--connections", type=int, default=20,
                        help="connections, each one call at a time (default 20)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (default 3)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2,
                        help="workers of the N-workers server (default: the cores)")
    parser.add_argument("--postgres", default=os.environ.get("IVR_BENCH_POSTGRES"),
                        help="PostgreSQL DSN for the fourth server "
                             "(default $IVR_BENCH_POSTGRES; without one: n/a)")
    parser.add_argument("--floor", action="store_true",
                        help="also measure tools/bench_floor_server.py (the writes of a "
                             "turn, nothing else)")
    args = parser.parse_args(argv)
    if not 1 <= args.seconds <= 120 or not 1 <= args.connections <= 200 \
            or not 1 <= args.rounds <= 10 or not 2 <= args.workers <= 64:
        raise SystemExit("--seconds must be 1..120, --connections 1..200, --rounds 1..10 "
                         "and --workers 2..64")
    ensure_wrk()
    has_workers = "--workers" in ivr_serve_options()
    nonce = secrets.token_hex(4)
    with tempfile.TemporaryDirectory() as tmp:
        scripts = {"calls": LUA, "paced": Path(tmp) / "paced.lua", "plain": Path(tmp) / "plain.lua"}
        scripts["paced"].write_text(LUA.read_text() + PACED_LUA)
        scripts["plain"].write_text(PLAIN_LUA)
        servers: list[Server] = []
        missing: dict[str, str] = {}
        plain: list[dict] = []
        try:
            servers.append(start_ceiling())
            servers.append(start_ivr("ivr 1 worker", Path(tmp), None, 1 if has_workers else None))
            if has_workers:
                servers.append(start_ivr(f"ivr {args.workers} workers", Path(tmp), None,
                                         args.workers))
            else:
                missing[f"ivr {args.workers} workers"] = "n/a (ivr-serve has no --workers)"
            if args.postgres:
                servers.append(start_ivr("ivr postgresql", Path(tmp), args.postgres,
                                         1 if has_workers else None))
            else:
                missing["ivr postgresql"] = "n/a (no --postgres / $IVR_BENCH_POSTGRES DSN)"
            if args.floor:
                servers.append(start_floor(Path(tmp)))
            for server in servers:  # warm-up: flows compiled, caches filled
                run_wrk(server.port, LUA, 1, args.connections, [f"nonce={nonce}", *call_steps()])
            for number in range(args.rounds):
                # The order alternates: a machine that speeds up or slows
                # down during the run favours no server.
                order = servers if number % 2 == 0 else servers[::-1]
                for server in order:
                    # A nonce per round and load: call ids never repeat.
                    steps = call_steps()
                    sat = measure(server, LUA, args.seconds, args.connections,
                                  [f"nonce={secrets.token_hex(4)}", *steps])
                    half = measure_paced(server, scripts, args.seconds, args.connections,
                                         [f"nonce={secrets.token_hex(4)}", *steps],
                                         sat["per_second"] / 2)
                    server.rows.append({"sat": sat, "50%": half})
                plain.append(run_wrk(servers[0].port, scripts["plain"], args.seconds,
                                     args.connections, []))
        finally:
            for server in servers:
                stop(server)
        report(servers, missing, plain, args)


def process_tree(root: int) -> list[int]:
    """``root`` and its live descendants (Linux /proc)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            parents.setdefault(ppid, []).append(int(entry.name))
    family, todo = [], [root]
    while todo:
        pid = todo.pop()
        family.append(pid)
        todo.extend(parents.get(pid, []))
    return family


def cpu_times(pids: list[int]) -> tuple[float, float]:
    """User and system CPU seconds of ``pids``, each with the children it
    has reaped (Linux /proc)."""
    user = system = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        user += int(fields[11]) + int(fields[13])
        system += int(fields[12]) + int(fields[14])
    ticks = os.sysconf("SC_CLK_TCK")
    return user / ticks, system / ticks


def _cpu_seconds(root: int) -> float:
    """User plus system CPU time of ``root`` and its live descendants, with
    the children they have reaped."""
    return sum(cpu_times(process_tree(root)))


def _count_events(db_path: Path) -> int:
    import sqlite3
    with sqlite3.connect(db_path) as conn:
        return conn.execute("SELECT count(*) FROM node_events").fetchone()[0]


if __name__ == "__main__":
    main()
