"""Same-run A/B: ivr-serve from two or more source trees, side by side.

What a change buys, measured against the code before it in the same
minutes of a shared, noisy machine, where runs minutes apart differ by
more than most changes.  Each tree's ``ivr-serve`` (its own code, flows
and prompts, on a fresh SQLite file, ``--workers N``) is started on
127.0.0.1 and warmed up; then each round measures every tree at
saturation with wrk playing the demo call, as ``tools/bench_turns.py``
does, the trees' order alternating from round to round.  Prints each
round, then per tree the medians of requests/s, CPU ms a request (the
server's processes) and p99, and its ratios to the first tree taken
round by round.

    git worktree add /tmp/before COMMIT     # the code before the change
    python tools/bench_ab.py --rounds 8 --workers 2 /tmp/before .
"""

from __future__ import annotations

import argparse
import secrets
import tempfile
from pathlib import Path

import bench_turns
from bench_turns import LUA, Server, call_steps, measure, median_spread, round_ratios, run_wrk, start_ivr, stop


def tree_names(trees: list[Path]) -> list[str]:
    """A short name for each tree (its folder's name, numbered when two
    folders share a name)."""
    names = [tree.resolve().name or str(tree) for tree in trees]
    return [f"{index + 1}:{name}" if names.count(name) > 1 else name
            for index, name in enumerate(names)]


def print_report(servers: list[Server]) -> None:
    print(f"{'tree':24} {'round':>5} {'req/s':>8} {'CPU ms/req':>11} {'p99 ms':>8}")
    for server in servers:
        for number, row in enumerate(server.rows, 1):
            print(f"{server.name:24} {number:>5} {row['per_second']:8.0f} "
                  f"{row['cpu_ms']:11.3f} {row['p99_ms']:8.2f}")
    print("\nmedian of the rounds (lowest-highest); ratios to the first tree, round by round")
    baseline = servers[0].rows
    for server in servers:
        rows = server.rows
        line = (f"{server.name:24} req/s {median_spread([r['per_second'] for r in rows], 0)}"
                f"  CPU ms/req {median_spread([r['cpu_ms'] for r in rows], 3)}"
                f"  p99 ms {median_spread([r['p99_ms'] for r in rows], 2)}")
        if server is not servers[0]:
            line += (f"  x req/s {median_spread(round_ratios(rows, baseline, 'per_second'), 3)}"
                     f"  x CPU {median_spread(round_ratios(rows, baseline, 'cpu_ms'), 3)}")
        print(line)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("trees", nargs="+", type=Path,
                        help="source trees (the first is the baseline)")
    parser.add_argument("--rounds", type=int, default=6, help="rounds (default 6)")
    parser.add_argument("--seconds", type=int, default=4,
                        help="seconds a measurement (default 4)")
    parser.add_argument("--connections", type=int, default=20,
                        help="connections, each one call at a time (default 20)")
    parser.add_argument("--workers", type=int, default=1, help="workers a server (default 1)")
    args = parser.parse_args(argv)
    if len(args.trees) < 2 or not 1 <= args.rounds <= 20 or not 1 <= args.seconds <= 60 \
            or not 1 <= args.connections <= 200 or not 1 <= args.workers <= 64:
        raise SystemExit("give two trees or more; --rounds 1..20, --seconds 1..60, "
                         "--connections 1..200, --workers 1..64")
    for tree in args.trees:
        if not (tree / "ivr" / "server" / "tap.py").is_file():
            raise SystemExit(f"{tree}: not a source tree of this project (no ivr/server/tap.py)")
    bench_turns.ensure_wrk()
    servers: list[Server] = []
    with tempfile.TemporaryDirectory() as tmp:
        try:
            for name, tree in zip(tree_names(args.trees), args.trees):
                servers.append(start_ivr(name, Path(tmp), None, args.workers,
                                         root=tree.resolve()))
            for server in servers:  # warm-up: flows compiled, caches filled
                run_wrk(server.port, LUA, 2, args.connections,
                        [f"nonce={secrets.token_hex(4)}", *call_steps()])
            for number in range(args.rounds):
                for server in servers if number % 2 == 0 else servers[::-1]:
                    server.rows.append(measure(server, LUA, args.seconds, args.connections,
                                               [f"nonce={secrets.token_hex(4)}", *call_steps()]))
        finally:
            for server in servers:
                stop(server)
    print_report(servers)


if __name__ == "__main__":
    main()
