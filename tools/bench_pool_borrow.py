"""What a borrow from the PostgreSQL store's pool costs, by how the
connection is checked before it is handed out.

Times ``--statements`` one-statement reads (``SELECT 1`` on a connection
borrowed for it, as the store's reads outside a transaction do) three
ways, in turn within each of ``--rounds`` rounds, and prints the median
microseconds a statement per way:

- ``unchecked``: psycopg_pool's ``connection()`` (the store before it
  dropped the connections a restart closed);
- ``polled``: ``PostgresDb.borrowed()``, which polls the socket first (no
  round trip to the server);
- ``pinged``: a pool given ``check=ConnectionPool.check_connection`` (an
  empty statement sent on every borrow: one round trip).

It also times ``closed_by_server`` alone.  Run it against a throwaway
cluster, never a production database::

    python tests/postgres_support.py &     # prints the cluster's URL
    python tools/bench_pool_borrow.py --postgres URL
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable, ContextManager

from psycopg_pool import ConnectionPool

from ivr.store.postgres.connection import PostgresDb, closed_by_server


def per_statement(borrow: Callable[[], ContextManager], statements: int) -> float:
    """Microseconds a ``SELECT 1`` takes, each on a connection borrowed for it."""
    started = time.perf_counter()
    for _ in range(statements):
        with borrow() as conn:
            conn.execute("SELECT 1").fetchall()
    return (time.perf_counter() - started) / statements * 1e6


def poll_alone(db: PostgresDb, times: int) -> float:
    """Microseconds one ``closed_by_server`` takes on an idle connection."""
    with db.borrowed() as conn:
        started = time.perf_counter()
        for _ in range(times):
            closed_by_server(conn)
        return (time.perf_counter() - started) / times * 1e6


def main(argv: list[str] | None = None) -> None:
    """Print the median cost of a statement per way of borrowing."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog="example: python tools/bench_pool_borrow.py "
                                            "--postgres postgresql://me@127.0.0.1:5432/postgres")
    parser.add_argument("--postgres", required=True, help="a throwaway database's URL")
    parser.add_argument("--statements", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    db = PostgresDb(args.postgres, size=1)
    pinged = ConnectionPool(args.postgres, min_size=1, max_size=1, open=True,
                            kwargs={"autocommit": True}, check=ConnectionPool.check_connection)
    ways = {"unchecked": db.pool.connection, "polled": db.borrowed, "pinged": pinged.connection}
    try:
        timings: dict[str, list[float]] = {name: [] for name in ways}
        for _round in range(args.rounds):
            for name, borrow in ways.items():
                timings[name].append(per_statement(borrow, args.statements))
        for name, values in timings.items():
            print(f"{name:10} {statistics.median(values):8.1f} us a statement "
                  f"(rounds: {', '.join(f'{value:.1f}' for value in values)})")
        print(f"{'poll':10} {poll_alone(db, 100_000):8.2f} us (closed_by_server alone)")
    finally:
        pinged.close()
        db.close()


if __name__ == "__main__":
    main()
