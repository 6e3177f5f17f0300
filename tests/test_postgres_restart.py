"""A PostgreSQL that restarts (an operator's ``pg_ctl restart -m fast``, a
managed database's failover: the server closes every connection, then
answers again on the same address) under a live ``ivr-serve``:

- while it is down, each turn is answered within seconds, putting the
  caller through to a human in the flow's voice, and ``/healthz`` says the
  storage fails;
- once it answers again, calls are played by their flow at once: the
  connections the restart closed are not handed to a turn, and the pool
  does not wait out a long reconnection back-off;
- what was acknowledged before the restart is still in the database.

A throwaway cluster of its own (restarting the session's would break the
other tests), one ``ivr-serve`` on 127.0.0.1; every wait has a deadline."""

import time
from concurrent.futures import ThreadPoolExecutor

import psycopg
from test_failover import Serve, call_sid, events_of, next_turn
from test_postgres_hang import ANSWERED_WITHIN, RECOVERED_WITHIN, cluster, health, timed_turn

__all__ = ["cluster"]  # a fixture of test_postgres_hang, used here by name

#: Seconds the database stays down, turns asked all along: long enough for
#: a reconnection back-off doubling from 1 s (psycopg_pool's) to outgrow it.
DOWN_FOR = 12.0

#: Calls started at once before the restart, so the pool holds several connections.
WARM_CALLS = 4


def put_through(answer: str) -> bool:
    """Whether the answer is the flow's apology, then the human."""
    return "<Say" in answer and "<Enqueue" in answer


def played_by_flow(answer: str, turn: int) -> bool:
    """Whether the answer is the flow's next question (not the transfer)."""
    return next_turn(answer) == turn + 1 and "<Gather" in answer and "<Enqueue" not in answer


def client_connections(dsn: str) -> int:
    """The connections the server holds to the cluster (this one excepted)."""
    with psycopg.connect(dsn, connect_timeout=5) as conn:
        return conn.execute("SELECT count(*) FROM pg_stat_activity WHERE "
                            "backend_type = 'client backend' AND pid <> pg_backend_pid()"
                            ).fetchone()[0]


def wait_healthy(server: Serve) -> None:
    deadline = time.monotonic() + RECOVERED_WITHIN
    while health(server)[0] != 200:
        assert time.monotonic() < deadline, "health did not recover"
        time.sleep(0.2)


def start_calls_at_once(server: Serve, numbers) -> list[str]:
    with ThreadPoolExecutor(max_workers=len(numbers)) as threads:
        return list(threads.map(lambda number: server.turn(call_sid(number), 0, None), numbers))


def test_a_restart_between_turns_costs_no_caller_a_turn(cluster, tmp_path):
    server = Serve(cluster.dsn, tmp_path, "a")
    try:
        server.wait_ready()
        warm = range(10, 10 + WARM_CALLS)
        assert all(played_by_flow(answer, 0) for answer in start_calls_at_once(server, warm))
        in_progress = call_sid(1)
        assert played_by_flow(server.turn(in_progress, 0, None), 0)
        assert played_by_flow(server.turn(in_progress, 1, "1"), 1)
        acknowledged = events_of(cluster.dsn, in_progress)
        assert acknowledged
        assert client_connections(cluster.dsn) >= 2, "the pool should hold several connections"

        cluster.restart()  # returns once the database answers again

        turns = [(in_progress, 2, "1")] + [(call_sid(number), 0, None) for number in (2, 3, 4)]
        turns += [(call_sid(number), 1, "1") for number in warm]
        answers = [timed_turn(server, *turn) for turn in turns]
        failed = [(sid[-2:], turn) for (sid, turn, _digits), (_took, answer) in zip(turns, answers)
                  if not played_by_flow(answer, turn)]
        assert failed == [], f"{len(failed)} of {len(turns)} turns after the restart failed"
        assert all(took < ANSWERED_WITHIN for took, _answer in answers)
        assert health(server)[0] == 200
        assert events_of(cluster.dsn, in_progress)[:len(acknowledged)] == acknowledged
    finally:
        server.stop()


def test_while_down_callers_are_put_through_and_once_back_calls_are_played(cluster, tmp_path):
    server = Serve(cluster.dsn, tmp_path, "a")
    try:
        server.wait_ready()
        in_progress = call_sid(1)
        assert played_by_flow(server.turn(in_progress, 0, None), 0)
        assert played_by_flow(server.turn(in_progress, 1, "1"), 1)
        acknowledged = events_of(cluster.dsn, in_progress)

        cluster.stop_fast()
        down_until = time.monotonic() + DOWN_FOR
        turns = [(in_progress, 2, "1")]
        while time.monotonic() < down_until or len(turns) < 3:  # each turn within its deadline
            sid, turn, digits = turns[-1]
            took, answer = timed_turn(server, sid, turn, digits)
            assert took < ANSWERED_WITHIN, (sid, took)
            assert put_through(answer), answer
            turns.append((call_sid(len(turns) + 1), 0, None))
        status, body = health(server)
        assert (status, body["storage"]) == (503, "server_unreachable")

        cluster.start_again()  # returns once the database answers again
        answers = [timed_turn(server, call_sid(number), 0, None) for number in (97, 98, 99)]
        failed = [answer for _took, answer in answers if not played_by_flow(answer, 0)]
        assert failed == [], f"{len(failed)} of {len(answers)} calls after the restart failed"
        assert all(took < ANSWERED_WITHIN for took, _answer in answers)
        wait_healthy(server)
        assert events_of(cluster.dsn, in_progress)[:len(acknowledged)] == acknowledged
    finally:
        server.stop()
