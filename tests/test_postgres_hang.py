"""A PostgreSQL that hangs (every process of the cluster stopped with
SIGSTOP: connections stay open, nothing answers) must not drop callers:
``ivr-serve`` answers each turn within seconds, putting the caller through
to a human (and the agent's whisper, putting the agent through), reports
the storage failing, and serves normally again once
the database answers.

A throwaway cluster of its own (stopping the session's would stall the
other tests), one ``ivr-serve`` on 127.0.0.1; every wait has a deadline."""

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from urllib.parse import urlencode

import pytest
from postgres_support import PostgresUnavailable, ThrowawayCluster, binaries
from test_failover import Serve, call_sid, next_turn

#: Providers wait 10 s (jambonz) to 15 s (Twilio) for a webhook's answer.
ANSWERED_WITHIN = 9.0
#: The storage probe runs every 5 s: health is back well within this.
RECOVERED_WITHIN = 30.0


@pytest.fixture
def cluster():
    bin_dir = binaries()
    if bin_dir is None:
        pytest.skip("needs PostgreSQL's own binaries to stop a cluster of its own "
                    "(apt-get install postgresql)")
    made = ThrowawayCluster(bin_dir)
    try:
        made.start()
    except (PostgresUnavailable, OSError, subprocess.SubprocessError) as error:
        made.stop()
        pytest.skip(f"could not start a throwaway PostgreSQL: {error}")
    yield made
    made.stop()


def cluster_processes(cluster) -> list[int]:
    postmaster = int((cluster.data / "postmaster.pid").read_text().split()[0])
    children = subprocess.run(["pgrep", "-P", str(postmaster)], capture_output=True,
                              text=True, timeout=10).stdout.split()
    return [postmaster, *map(int, children)]


def signal_all(pids: list[int], number: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, number)
        except ProcessLookupError:
            pass


def health(server: Serve) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/healthz",
                                    timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def timed_turn(server: Serve, sid: str, turn: int, digits: str | None) -> tuple[float, str]:
    started = time.monotonic()
    answer = server.turn(sid, turn, digits)
    return time.monotonic() - started, answer


def test_a_database_that_hangs_puts_callers_through_to_a_human_within_seconds(cluster, tmp_path):
    server = Serve(cluster.dsn, tmp_path, "a")
    try:
        server.wait_ready()
        assert next_turn(server.turn(call_sid(1), 0, None)) == 1
        stopped = cluster_processes(cluster)
        signal_all(stopped, signal.SIGSTOP)
        try:
            for sid, turn, digits in ((call_sid(1), 1, "1"), (call_sid(2), 0, None)):
                took, answer = timed_turn(server, sid, turn, digits)
                assert took < ANSWERED_WITHIN, (sid, took)
                # The flow's apology, then the human: the caller is not dropped.
                assert "<Say" in answer and "<Enqueue" in answer, answer
            # The agent answering a transfer hears the whisper, or silence: put through.
            started = time.monotonic()
            request = urllib.request.Request(
                f"http://127.0.0.1:{server.port}/whisper?X-IVR-Call={call_sid(1)}"
                "&X-IVR-Reason=parcel_lost", data=urlencode({"CallSid": call_sid(9)}).encode())
            with urllib.request.urlopen(request, timeout=20) as response:
                assert response.status == 200 and b"<Response" in response.read()
            assert time.monotonic() - started < ANSWERED_WITHIN
            status, body = health(server)
            assert (status, body["storage"]) == (503, "server_unreachable")
        finally:
            signal_all(stopped, signal.SIGCONT)
        deadline = time.monotonic() + RECOVERED_WITHIN
        while health(server)[0] != 200:
            assert time.monotonic() < deadline, "health did not recover"
            time.sleep(0.2)
        took, answer = timed_turn(server, call_sid(3), 0, None)
        assert next_turn(answer) == 1 and "<Gather" in answer
    finally:
        server.stop()
