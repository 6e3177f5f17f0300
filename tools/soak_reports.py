"""Reports while serving: turn latency and the WAL's size with and without them.

    python tools/soak_reports.py [--calls 200000] [--window 10] [--rounds 2]

Builds (once; reused by the next run with the same ``--calls``) a large
synthetic call log with ``tools/bench_report.py``'s generator, starts
``ivr-serve`` on it (127.0.0.1, a dashboard token set), finds the rate
wrk's whole demo calls reach (``tools/bench_turns.lua``, 5 s after a
warm-up that lasts until calls are answered, then 3 s more), then plays
them paced at half that rate in windows of ``--window`` seconds, in turn:

- ``quiet``: nothing else;
- ``summary``: ``ivr-report summary`` on the live database, again and
  again for the whole window;
- ``dashboard``: ``GET /dashboard`` over the log's 90 days, again and again.

For each window it prints the turns' p50, p99 and maximum latency and how
many reports ran; every half second it notes the size of the database's
``-wal`` file, and prints the largest size in each window and the size at
the end.  Then the medians of the rounds and the ratios of p99 to the
quiet windows'.  Everything is bounded: the windows, and the reports
stop with them.
"""

from __future__ import annotations

import argparse
import base64
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_report  # noqa: E402
import bench_turns  # noqa: E402

ROOT = bench_turns.ROOT
PHASES = ("quiet", "summary", "dashboard")


class WalWatch(threading.Thread):
    """The size of ``path``-wal every ``interval`` seconds, until stopped."""

    def __init__(self, path: Path, interval: float = 0.5):
        super().__init__(daemon=True)
        self.path, self.interval = Path(f"{path}-wal"), interval
        self.samples: list[tuple[float, int]] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            self.samples.append((time.monotonic(), self.size()))
            self.stopping.wait(self.interval)

    def size(self) -> int:
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def largest(self, since: float, until: float) -> int:
        return max((size for at, size in self.samples if since <= at <= until), default=0)


class Repeat(threading.Thread):
    """``action`` again and again until stopped; how many times it ran."""

    def __init__(self, action):
        super().__init__(daemon=True)
        self.action, self.runs, self.failures = action, 0, []
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                self.action()
                self.runs += 1
            except Exception as error:  # noqa: BLE001 - counted and shown, the soak goes on
                self.failures.append(repr(error))
                self.stopping.wait(1)


def summary_report(db: Path) -> None:
    """One ``ivr-report summary`` on the live database, as an operator runs it
    (through its console script's entry point)."""
    subprocess.run([sys.executable, "-c", "from ivr.reports.launch import main; main()", "summary",
                    "--db", str(db)], check=True, capture_output=True, cwd=ROOT, timeout=600)


def dashboard_view(port: int, token: str) -> None:
    """One dashboard page, as a browser asks for it."""
    first = bench_report.FIRST_DAY
    last = first + timedelta(days=bench_report.DAYS - 1)
    credentials = base64.b64encode(f"ops:{token}".encode()).decode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/dashboard?since={first}&until={last}",
                                     headers={"Authorization": f"Basic {credentials}"})
    with urllib.request.urlopen(request, timeout=600) as answer:
        answer.read()


def window(server: bench_turns.Server, scripts: dict, args, rate: float, phase: str,
           db: Path, token: str, wal: WalWatch) -> dict:
    """A paced window of ``phase``; its latencies, reports run, WAL peak."""
    background = None
    if phase == "summary":
        background = Repeat(lambda: summary_report(db))
    elif phase == "dashboard":
        background = Repeat(lambda: dashboard_view(server.port, token))
    started = time.monotonic()
    if background:
        background.start()
    try:
        row = bench_turns.measure_paced(server, scripts, args.window, args.connections,
                                        [f"nonce={secrets.token_hex(4)}",
                                         *bench_turns.call_steps()], rate)
    finally:
        if background:
            background.stopping.set()
            background.join(timeout=600)
    row["phase"] = phase
    row["reports"] = background.runs if background else 0
    row["report_failures"] = background.failures if background else []
    row["wal_peak"] = wal.largest(started, time.monotonic())
    return row


def warm_up(server: bench_turns.Server, connections: int, most: int = 20) -> None:
    """Whole calls for 3 s at a time until some are answered (the server's
    workers start, and read the log's pages in, for several seconds on a
    loaded machine), then 3 s more; at most ``most`` tries."""
    for _ in range(most):
        steps = [f"nonce={secrets.token_hex(4)}", *bench_turns.call_steps()]
        if bench_turns.run_wrk(server.port, bench_turns.LUA, 3, connections, steps)["requests"]:
            break
    else:
        raise SystemExit(f"the server answered no call in {3 * most} s")
    steps = [f"nonce={secrets.token_hex(4)}", *bench_turns.call_steps()]
    bench_turns.run_wrk(server.port, bench_turns.LUA, 3, connections, steps)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=200_000,
                        help="calls in the synthetic log (default 200000)")
    parser.add_argument("--db", type=Path, default=None,
                        help="where the log is kept (default: ivr-soak-<calls>.db in the "
                             "temporary folder)")
    parser.add_argument("--window", type=int, default=10, help="seconds a window (default 10)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of the three windows")
    parser.add_argument("--connections", type=int, default=20, help="wrk connections")
    args = parser.parse_args(argv)
    if not 1_000 <= args.calls <= 5_000_000 or not 3 <= args.window <= 300 \
            or not 1 <= args.rounds <= 10 or not 1 <= args.connections <= 200:
        raise SystemExit("--calls must be 1000..5000000, --window 3..300, --rounds 1..10, "
                         "--connections 1..200")
    bench_turns.ensure_wrk()
    db = args.db or Path(tempfile.gettempdir()) / f"ivr-soak-{args.calls}.db"
    if not bench_report.is_cached(db, args.calls):
        bench_report.build(db, args.calls, time.monotonic() + 1800)
    token = secrets.token_hex(16)
    wal = WalWatch(db)
    with tempfile.TemporaryDirectory() as tmp:
        scripts = {"paced": Path(tmp) / "paced.lua"}
        scripts["paced"].write_text(bench_turns.LUA.read_text() + bench_turns.PACED_LUA)
        server = bench_turns.start_ivr("ivr", Path(tmp), str(db), None,
                                       extra=["--dashboard-token", token])
        wal.start()
        rows = []
        try:
            warm_up(server, args.connections)
            steps = [f"nonce={secrets.token_hex(4)}", *bench_turns.call_steps()]
            saturation = bench_turns.run_wrk(server.port, bench_turns.LUA, 5, args.connections,
                                             steps)["per_second"]
            for _ in range(args.rounds):
                for phase in PHASES:
                    rows.append(window(server, scripts, args, saturation / 2, phase, db, token,
                                       wal))
        finally:
            bench_turns.stop(server)
            wal.stopping.set()
            wal.join(timeout=5)
    print_soak(db, args, saturation, rows, wal)


def print_soak(db: Path, args, saturation: float, rows: list[dict], wal: WalWatch) -> None:
    print(f"{db}: {os.path.getsize(db) / 1e6:.0f} MB, {args.calls} synthetic calls; "
          f"saturation {saturation:.0f} req/s, paced at half; {args.window} s windows")
    print(f"{'phase':<11}{'req/s':>8}{'p50 ms':>8}{'p99 ms':>8}{'max ms':>8}{'errors':>7}"
          f"{'reports':>8}{'WAL peak MB':>12}")
    for row in rows:
        print(f"{row['phase']:<11}{row['per_second']:>8.0f}{row['p50_ms']:>8.2f}"
              f"{row['p99_ms']:>8.2f}{row['max_ms']:>8.1f}{row['errors']:>7}{row['reports']:>8}"
              f"{row['wal_peak'] / 1e6:>12.1f}")
        for failure in row["report_failures"][:3]:
            print(f"    report failed: {failure}")
    quiet = statistics.median(r["p99_ms"] for r in rows if r["phase"] == "quiet")
    for phase in PHASES[1:]:
        mine = [r["p99_ms"] for r in rows if r["phase"] == phase]
        print(f"{phase}: p99 median {statistics.median(mine):.2f} ms, "
              f"{statistics.median(mine) / quiet:.2f} x quiet ({quiet:.2f} ms)")
    sizes = [size for _, size in wal.samples]
    print(f"WAL: largest {max(sizes, default=0) / 1e6:.1f} MB, at the end "
          f"{(sizes[-1] if sizes else 0) / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
