"""``ivr-serve --workers 2`` for real, on a loopback port: the turns of one
call served by different workers, and a worker killed with SIGKILL
under load while the other serves and the supervisor restarts it.
Every turn answered 200 must be in the database."""

from __future__ import annotations

import http.client
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlencode

import pytest

ROOT = Path(__file__).parent.parent
ACCOUNT = "AC" + "0" * 32
#: A whole call of the demo flow: it answers, tells where the order is,
#: then "1" (where is my order) and "2" (that is all) end it.
TURNS = ({}, {"Digits": "1"}, {"Digits": "2"})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _deadline(seconds: float, what: str, ready):
    """Poll ``ready`` until it returns something true, for at most ``seconds``."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        found = ready()
        if found:
            return found
        time.sleep(0.05)
    pytest.fail(f"no {what} within {seconds} s")


class Server:
    """``ivr-serve --workers 2`` and what its log says of its workers."""

    def __init__(self, workdir: Path):
        self.db, self.log = workdir / "ivr.db", workdir / "server.log"
        self.port = _free_port()
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-c", "from ivr.server.tap import main; main()",
                 "--workers", "2", "--listen", f"tcp:{self.port}:interface=127.0.0.1",
                 "--db", str(self.db), "--flows", str(ROOT / "flows"),
                 "--prompts", str(ROOT / "prompts")],
                cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONPATH": str(ROOT)})

    def workers(self) -> dict[int, int]:
        """Worker number -> pid of its latest process, from the log."""
        found = re.findall(r"worker (\d+) started: pid (\d+)", self.log.read_text())
        return {int(index): int(pid) for index, pid in found}

    def wait_ready(self):
        _deadline(60, "two workers", lambda: len(self.workers()) == 2)
        # Each worker answers once it listens; they start together, so wait
        # until both logged their site.
        _deadline(60, "two serving workers",
                  lambda: self.log.read_text().count("WebhookSite starting") >= 2)

    def post(self, call: str, turn: int, extra: dict) -> int:
        """One webhook of ``call`` on a new connection: the HTTP status."""
        body = urlencode({"CallSid": call, "AccountSid": ACCOUNT, "From": "+33612345678",
                          "To": "+33100000000",
                          "CallStatus": "ringing" if turn == 0 else "in-progress", **extra})
        path = "/voice/post_sale" + (f"?turn={turn}" if turn else "")
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            connection.request("POST", path, body,
                               {"Content-Type": "application/x-www-form-urlencoded"})
            response = connection.getresponse()
            response.read()
            return response.status
        finally:
            connection.close()

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _stopped(pid: int) -> bool:
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0] == "T"


def _stored(db: Path) -> dict[str, tuple[int, bool, int]]:
    """call -> (last turn kept, ended, node events), read from the file."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as conn:
        rows = conn.execute(
            "SELECT s.call_id, s.turn, c.ended_at IS NOT NULL, "
            "(SELECT count(*) FROM node_events e WHERE e.call_id = s.call_id) "
            "FROM call_state s JOIN calls c ON c.call_id = s.call_id").fetchall()
    return {call: (turn, bool(ended), events) for call, turn, ended, events in rows}


def _served_by(server, call: str, turns: int) -> list[tuple[str, str]] | None:
    """(worker, turn) of each turn of ``call`` logged, once ``turns`` are."""
    served = re.findall(rf"\[worker-(\d)/\S+\] turn {call} (\d) at", server.log.read_text())
    return served if len(served) >= turns else None


def _call_id(number: int) -> str:
    return f"CA{number:032x}"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = Server(tmp_path_factory.mktemp("workers"))
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()
    assert server.process.returncode == 0, server.log.read_text()[-3000:]
    assert not any(_alive(pid) for pid in server.workers().values())


def test_the_turns_of_one_call_are_served_by_different_workers(server):
    first, second = server.workers()[1], server.workers()[2]
    call = _call_id(0xA11CE)
    try:
        for turn, (extra, serving, paused) in enumerate(zip(
                TURNS, (first, second, first), (second, first, second))):
            # A stopped worker accepts nothing: the other one gets the turn.
            os.kill(paused, signal.SIGSTOP)
            _deadline(10, "a stopped worker", lambda pid=paused: _stopped(pid))
            assert server.post(call, turn, extra) == 200
            os.kill(paused, signal.SIGCONT)
    finally:
        for pid in (first, second):
            os.kill(pid, signal.SIGCONT)
    turn, ended, events = _stored(server.db)[call]
    assert (turn, ended) == (2, True) and events >= 3
    # Each worker's log names it: turns 0 and 2 in the first, 1 in the second.
    served = _deadline(10, "the three turns logged", lambda: _served_by(server, call, 3))
    assert sorted((turn, worker) for worker, turn in served) == [("0", "1"), ("1", "2"), ("2", "1")]


def _play(server, number: int, answered: list) -> None:
    """A whole call, each turn tried again (as a provider does) when its
    connection fails; each turn answered 200 noted in ``answered``."""
    call = _call_id(number)
    for turn, extra in enumerate(TURNS):
        for _attempt in range(5):
            try:
                status = server.post(call, turn, extra)
            except OSError:  # the worker was killed holding the connection
                continue
            if status == 200:
                answered.append((call, turn))
            break


def test_a_worker_killed_under_load_loses_no_answered_turn(server):
    victim = server.workers()[1]
    answered: list[tuple[str, int]] = []
    calls = range(0xB000, 0xB000 + 60)
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = [pool.submit(_play, server, number, answered) for number in calls]
        _deadline(60, "calls answered before the kill", lambda: len(answered) >= 30)
        os.kill(victim, signal.SIGKILL)
        for future in futures:
            future.result(timeout=120)
    restarted = _deadline(60, "a restarted worker",
                          lambda: server.workers()[1] != victim and server.workers()[1])
    assert _alive(restarted) and "worker 1 (pid %d) ended" % victim in server.log.read_text()
    stored = _stored(server.db)
    lost = [(call, turn) for call, turn in answered
            if call not in stored or stored[call][0] < turn]
    assert lost == []
    # The surviving worker served every call to its end.
    assert all(stored[_call_id(number)][:2] == (2, True) for number in calls)
    assert len(answered) == len(calls) * len(TURNS)
    # The restarted worker serves too: a whole call while the other is stopped.
    survivor = server.workers()[2]
    _deadline(60, "the restarted worker serving",
              lambda: server.log.read_text().count("WebhookSite starting") >= 3)
    os.kill(survivor, signal.SIGSTOP)
    try:
        for turn, extra in enumerate(TURNS):
            assert server.post(_call_id(0xC0FFEE), turn, extra) == 200
    finally:
        os.kill(survivor, signal.SIGCONT)
    assert _stored(server.db)[_call_id(0xC0FFEE)][:2] == (2, True)


def test_sighup_to_the_supervisor_reloads_the_flows_in_every_worker(server):
    os.kill(server.process.pid, signal.SIGHUP)

    def reloaded():
        return set(re.findall(r"\[worker-(\d)/\S+\] SIGHUP: reloading flows",
                              server.log.read_text())) == {"1", "2"}
    _deadline(30, "both workers reloading their flows", reloaded)
    assert server.process.poll() is None  # the supervisor itself goes on
