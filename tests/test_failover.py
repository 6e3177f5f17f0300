"""Failover: two ``ivr-serve`` processes on two ports share one PostgreSQL;
the turns of each call alternate between them, as behind a load balancer
without sticky sessions; one is killed (SIGKILL) in the middle of the
calls, and every call completes on the other with its node events whole.

Real processes and sockets on 127.0.0.1, bounded in count (two servers,
four calls) and in time (every wait has a deadline)."""

import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlencode

import psycopg
import pytest
from postgres_support import free_port

ROOT = Path(__file__).parent.parent
CALLER = "+33612345678"  # a demo caller with an order on its way
#: The keys pressed after the welcome: order status, another question,
#: order status again, no more questions (the call then ends).
PRESSES = ("1", "1", "1", "2")
#: Every turn at a Tuesday 10:00 in Paris: the agents are on duty, the path is fixed.
MOMENT = "2026-11-24T10:00:{second:02d}+01:00"
#: Seconds a server may take to start, and a request to be answered.
START_TIMEOUT, REQUEST_TIMEOUT = 60.0, 20.0
CALLS = 4


class Serve:
    """One ``ivr-serve`` process on a free port of 127.0.0.1."""

    def __init__(self, db: str, tmp_path: Path, name: str):
        self.port = free_port()
        self.log = open(tmp_path / f"{name}.log", "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-c", "from ivr.server.tap import main; main()",
             "--listen", f"tcp:{self.port}:interface=127.0.0.1", "--db", db,
             "--flows", str(ROOT / "flows"), "--prompts", str(ROOT / "prompts"),
             "--simulated-clock", "--workers", "1"],
            stdout=self.log, stderr=subprocess.STDOUT, cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(ROOT)})

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=2):
                    return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"ivr-serve on {self.port} did not start: "
                                         f"{Path(self.log.name).read_text(errors='replace')}")
                time.sleep(0.1)

    def turn(self, call_sid: str, turn: int, digits: str | None) -> str:
        params = {"CallSid": call_sid, "From": CALLER, "To": "+33100000000"}
        if digits is not None:
            params["Digits"] = digits
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/voice/post_sale" + (f"?turn={turn}" if turn else ""),
            data=urlencode(params).encode(), method="POST",
            headers={"Content-Type": "application/x-www-form-urlencoded",
                     "X-IVR-Simulated-Time": MOMENT.format(second=turn)})
        with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT) as response:
            return response.read().decode("utf-8")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=START_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=START_TIMEOUT)
        self.log.close()


@pytest.fixture
def servers(postgres_dsn, tmp_path):
    pair = [Serve(postgres_dsn, tmp_path, "a"), Serve(postgres_dsn, tmp_path, "b")]
    try:
        for server in pair:
            server.wait_ready()
        yield pair
    finally:
        for server in pair:
            server.stop()


def call_sid(number: int) -> str:
    return f"CA{number:032x}"


def next_turn(twiml: str) -> int | None:
    """The turn the provider is told to send next; None once the call ends."""
    found = re.search(r'action="/voice/post_sale\?turn=(\d+)"', twiml)
    return int(found.group(1)) if found else None


def events_of(dsn: str, call: str) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT seq, node, kind, input, branch FROM node_events "
                            "WHERE call_id = %s ORDER BY seq", [call]).fetchall()


def test_every_call_completes_on_the_other_server_when_one_is_killed(servers, postgres_dsn):
    first, second = servers
    calls = [call_sid(n + 1) for n in range(CALLS)]
    reference = call_sid(0xFFFF)  # the same call on one server alone, for its events
    answers = {call: [first.turn(call, 0, None)] for call in calls + [reference]}
    for digits in PRESSES:
        turn = len(answers[reference])
        answers[reference].append(second.turn(reference, turn, digits))
    assert next_turn(answers[reference][-1]) is None, answers[reference][-1]

    # Turns alternate between the servers until the first is killed mid-call.
    for turn, digits in enumerate(PRESSES[:2], start=1):
        server = second if turn % 2 else first
        for call in calls:
            answers[call].append(server.turn(call, turn, digits))
            assert next_turn(answers[call][-1]) == turn + 1
    first.process.send_signal(signal.SIGKILL)
    first.process.wait(timeout=START_TIMEOUT)
    # A retry of the last turn reaches the survivor and gets the same answer.
    assert second.turn(calls[0], 2, PRESSES[1]) == answers[calls[0]][2]
    for turn, digits in enumerate(PRESSES[2:], start=3):
        for call in calls:
            answers[call].append(second.turn(call, turn, digits))

    expected = [event[1:] for event in events_of(postgres_dsn, reference)]
    for call in calls:
        assert next_turn(answers[call][-1]) is None, f"{call} did not end: {answers[call][-1]}"
        assert answers[call][1:] == answers[reference][1:]
        events = events_of(postgres_dsn, call)
        assert [event[0] for event in events] == list(range(1, len(events) + 1))  # none lost or doubled
        assert [event[1:] for event in events] == expected
    with psycopg.connect(postgres_dsn) as conn:
        outcomes = conn.execute("SELECT outcome, count(*) FROM calls GROUP BY outcome").fetchall()
    assert outcomes == [("self_served", CALLS + 1)]
