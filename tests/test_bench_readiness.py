"""The benchmarks measure servers that serve: ready means answering HTTP,
every worker included, not a socket accepting (ivr-serve binds its socket
before it builds the server)."""

import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import bench_turns  # noqa: E402


class Healthy(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


@pytest.fixture
def running():
    """A process that lives until the test ends (what wait_ready watches)."""
    process = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                               stdin=subprocess.PIPE)
    yield process
    process.stdin.close()
    process.wait(timeout=10)


def test_a_server_answering_http_is_ready(running):
    server = ThreadingHTTPServer(("127.0.0.1", 0), Healthy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        bench_turns.wait_ready(server.server_address[1], running, seconds=10)
    finally:
        server.shutdown()


def test_a_socket_that_accepts_but_never_answers_is_not_ready(running):
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen(16)  # the kernel accepts; nobody answers
        with pytest.raises(SystemExit, match="did not start"):
            bench_turns.wait_ready(listening.getsockname()[1], running, seconds=1.5)


def test_a_server_that_exits_is_reported_at_once():
    process = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    process.wait(timeout=10)
    with pytest.raises(SystemExit, match="exited with 3"):
        bench_turns.wait_ready(bench_turns.free_port(), process, seconds=30)


def test_several_workers_serve_once_each_logged_its_site(tmp_path):
    log = tmp_path / "ivr.log"
    log.write_text(
        "2026-12-07T01:25:02+0000 [-] Factory starting on 18555\n"
        "2026-12-07T01:25:10+0000 [worker-1/-] WebhookSite starting on 18555\n")
    serving = bench_turns.workers_serving(log, 2)
    assert not serving()
    with log.open("a") as out:  # the first worker's site again (a restart) is not the second's
        out.write("2026-12-07T01:25:12+0000 [worker-1/-] WebhookSite starting on 18555\n")
    assert not serving()
    with log.open("a") as out:
        out.write("2026-12-07T01:25:13+0000 [worker-2/-] WebhookSite starting on 18555\n")
    assert serving()
    assert bench_turns.workers_serving(log, 1)()  # one process: its answer says so


@pytest.mark.parametrize("installs", [True, False])
def test_wrk_is_installed_from_debian_s_packages_when_missing(monkeypatch, installs):
    ran = []
    found = {"wrk": None, "sudo": "/usr/bin/sudo"}

    def run(command, **kwargs):
        ran.append(command)
        if installs and command[-1] == "wrk":
            found["wrk"] = "/usr/bin/wrk"
        return subprocess.CompletedProcess(command, 0)
    monkeypatch.setattr(bench_turns.shutil, "which", found.get)
    monkeypatch.setattr(bench_turns.os, "geteuid", lambda: 1000)
    if installs:
        bench_turns.ensure_wrk(run)
    else:
        with pytest.raises(SystemExit, match="apt-get install -y wrk"):
            bench_turns.ensure_wrk(run)
    assert ran == [["sudo", "apt-get", "update", "-qq"],
                   ["sudo", "apt-get", "install", "-y", "-qq", "--no-install-recommends", "wrk"]]
    ran.clear()
    found["wrk"] = "/usr/bin/wrk"
    bench_turns.ensure_wrk(run)  # there: nothing to do
    assert ran == []
