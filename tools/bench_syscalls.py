"""Where a request's CPU goes outside Python: user and system time and the
system calls of ``ivr-serve`` under wrk, per request.

    python tools/bench_syscalls.py [--workers 1] [--seconds 4] [--rate R]
                                   [--connections 20]

Starts ``ivr-serve`` on 127.0.0.1 on a fresh SQLite database (as
``tools/bench_turns.py`` does), warms it up for a second, then plays the
demo call with wrk for ``--seconds``: at saturation, or paced at ``--rate``
requests a second.  Meanwhile ``perf stat`` counts, on the server's
processes, the kernel's tracepoints of the system calls a turn makes
(``perf`` from Debian's ``linux-perf``; tracepoints barely slow the
process, unlike ``strace``).  It prints per request: user and system CPU
time (from /proc), context switches, every system call counted, and all
system calls together.  Everything is bounded in time.
"""

from __future__ import annotations

import argparse
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_turns  # noqa: E402

#: The system calls counted one by one: the store's (WAL frames, reads
#: after another process's commits, the writers' lock, SQLite's locks,
#: checkpoints' syncs), the network's and the reactor's.
SYSCALLS = ("pwrite64", "pread64", "fdatasync", "flock", "fcntl", "futex", "recvfrom",
            "sendto", "write", "epoll_wait", "getrandom", "clock_gettime")
#: Every system call entered, whatever it is.
ALL_SYSCALLS = "raw_syscalls:sys_enter"


def perf_events() -> list[str]:
    """The events ``perf stat`` counts."""
    return (["context-switches", ALL_SYSCALLS]
            + [f"syscalls:sys_enter_{name}" for name in SYSCALLS])


def parse_perf_csv(text: str) -> dict[str, float]:
    """``perf stat -x ,`` output: {event: count}.  Events perf could not
    count are left out; comment lines are skipped."""
    counts: dict[str, float] = {}
    for line in text.splitlines():
        fields = line.split(",")
        if len(fields) < 3 or line.startswith("#"):
            continue
        value, event = fields[0], fields[2]
        try:
            counts[event] = float(value)
        except ValueError:  # "<not counted>" or "<not supported>"
            continue
    return counts


def per_request(counts: dict[str, float], requests: int) -> list[tuple[str, float]]:
    """(name, count a request) for each counted event, named as the system
    call (``pwrite64``) or the event (``context-switches``, ``all system
    calls``), in the order of :func:`perf_events`."""
    rows = []
    for event in perf_events():
        if event in counts:
            name = ("all system calls" if event == ALL_SYSCALLS
                    else event.removeprefix("syscalls:sys_enter_"))
            rows.append((name, counts[event] / max(1, requests)))
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=1, help="ivr-serve's workers (default 1)")
    parser.add_argument("--seconds", type=int, default=4, help="seconds measured (default 4)")
    parser.add_argument("--rate", type=float, default=None,
                        help="requests a second, paced (default: as fast as the server answers)")
    parser.add_argument("--connections", type=int, default=20,
                        help="connections, each one call at a time (default 20)")
    args = parser.parse_args(argv)
    if not 1 <= args.workers <= 64 or not 1 <= args.seconds <= 60 \
            or not 1 <= args.connections <= 200 or (args.rate is not None and args.rate <= 0):
        raise SystemExit("--workers must be 1..64, --seconds 1..60, --connections 1..200 "
                         "and --rate above 0")
    for program, package in (("wrk", "wrk"), ("perf", "linux-perf")):
        if shutil.which(program) is None:
            raise SystemExit(f"{program} is not installed: apt-get install -y {package}")
    steps = bench_turns.call_steps()
    with tempfile.TemporaryDirectory() as tmp:
        script = bench_turns.LUA
        extra = []
        if args.rate is not None:
            script = Path(tmp) / "paced.lua"
            script.write_text(bench_turns.LUA.read_text() + bench_turns.PACED_LUA)
            extra = [f"period={1000 * args.connections / args.rate:.3f}"]
        server = bench_turns.start_ivr("ivr", Path(tmp), None, args.workers)
        try:
            bench_turns.run_wrk(server.port, bench_turns.LUA, 1, args.connections,
                                [f"nonce={secrets.token_hex(4)}", *steps])
            pids = bench_turns.process_tree(server.process.pid)
            row, counts, (user, system) = _measure(server.port, pids, script, args,
                                                   [f"nonce={secrets.token_hex(4)}", *steps,
                                                    *extra])
        finally:
            bench_turns.stop(server)
    requests = row["requests"]
    load = f"paced at {args.rate:g} req/s" if args.rate else "saturation"
    print(f"ivr-serve, {args.workers} worker(s), {load}: {requests} requests in "
          f"{row['seconds']:.1f} s ({row['per_second']:.0f} req/s, {row['errors']} errors)")
    print(f"{'CPU ms a request':<24}{1000 * (user + system) / requests:>9.3f}")
    print(f"{'  user':<24}{1000 * user / requests:>9.3f}")
    print(f"{'  system':<24}{1000 * system / requests:>9.3f}")
    for name, value in per_request(counts, requests):
        print(f"{name:<24}{value:>9.2f}")


def _measure(port: int, pids: list[int], script: Path, args, wrk_args: list[str]):
    """One wrk run under ``perf stat``: wrk's row, perf's counts, and the
    server's user and system CPU seconds over the run."""
    perf = subprocess.Popen(
        ["perf", "stat", "-x", ",", "-e", ",".join(perf_events()),
         "-p", ",".join(map(str, pids))],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(0.2)  # perf attaches before the load starts
        if perf.poll() is not None:
            raise SystemExit(f"perf stat failed: {perf.stderr.read().strip()}")
        before = bench_turns.cpu_times(pids)
        row = bench_turns.run_wrk(port, script, args.seconds, args.connections, wrk_args)
        after = bench_turns.cpu_times(pids)
    finally:
        if perf.poll() is None:
            perf.send_signal(signal.SIGINT)
        _, stderr = perf.communicate(timeout=30)
    return row, parse_perf_csv(stderr), (after[0] - before[0], after[1] - before[1])


if __name__ == "__main__":
    main()
