"""tools/bench_turns.lua plays whole calls, each call's turns in order."""

import re
import shutil
import sys
import threading
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import bench_turns  # noqa: E402

pytestmark = pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")


class Recorder(BaseHTTPRequestHandler):
    """Answers every POST with 200, noting (CallSid, path, Digits)."""

    protocol_version = "HTTP/1.1"
    wbufsize = 1 << 16  # headers and body in one segment: no delayed-ACK stall
    seen: list = []
    lock = threading.Lock()

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        params = {k: v[0] for k, v in parse_qs(body).items()}
        with self.lock:
            self.seen.append((params["CallSid"], self.path, params.get("Digits"),
                              params.get("CallStatus")))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


class QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # wrk resets its connections when it stops


@pytest.fixture
def recorder():
    Recorder.seen = []
    server = QuietServer(("127.0.0.1", 0), Recorder)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


def expected_call():
    """(path, Digits, CallStatus) of each request of the demo call."""
    turns = [(f"/voice/post_sale?turn={t}" if t else "/voice/post_sale", extra.get("Digits"), None)
             for t, extra in bench_turns.CALL]
    return turns + [("/status", None, "completed")]


def test_each_call_plays_its_turns_in_order_with_a_fresh_twilio_shaped_call_sid(recorder):
    row = bench_turns.run_wrk(recorder.server_address[1], bench_turns.LUA, 1, 4,
                              ["nonce=0badcafe", *bench_turns.call_steps()])
    calls = defaultdict(list)
    for sid, path, digits, status in Recorder.seen:
        calls[sid].append((path, digits, status))
    whole = expected_call()
    assert all(re.fullmatch(r"CA0badcafe[0-9a-f]{24}", sid) for sid in calls)
    complete = [sid for sid, steps in calls.items() if steps == whole]
    # Each of the 4 connections may stop in the middle of its last call.
    unfinished = [steps for steps in calls.values() if steps != whole]
    assert len(unfinished) <= 4
    assert all(steps == whole[:len(steps)] for steps in unfinished)
    # A call is counted when the thread starts the next one.
    assert row["calls"] <= len(complete) <= row["calls"] + 4
    assert row["calls"] > 4
    # wrk does not count the requests still unanswered when it stops.
    assert row["requests"] <= len(Recorder.seen) <= row["requests"] + 4
    assert row["errors"] == 0


def test_a_paced_run_waits_between_requests(recorder, tmp_path):
    steps = bench_turns.call_steps()
    flat_out = bench_turns.run_wrk(recorder.server_address[1], bench_turns.LUA, 1, 2,
                                   ["nonce=00000001", *steps])
    paced_script = tmp_path / "paced.lua"
    paced_script.write_text(bench_turns.LUA.read_text() + bench_turns.PACED_LUA)
    # Two connections, each sending a request every 50 ms: 40 a second.
    paced = bench_turns.run_wrk(recorder.server_address[1], paced_script, 1, 2,
                                ["nonce=00000002", "period=50", *steps])
    assert 30 <= paced["per_second"] <= 45 < flat_out["per_second"]


def test_the_medians_say_what_postgresqls_cpu_leaves_out(capsys):
    def server(name, rate):
        row = {"per_second": rate, "calls_per_second": rate / 5, "p50_ms": 1.0, "p99_ms": 2.0,
               "cpu_ms": 1000 / rate}
        return bench_turns.Server(name, None, 0, rows=[{"sat": row, "50%": dict(row)}])

    bench_turns.print_medians([server("bare", 8000.0), server("ivr 1 worker", 4000.0)], {})
    assert "PostgreSQL's" not in capsys.readouterr().out
    bench_turns.print_medians([server("bare", 8000.0), server("ivr postgresql", 800.0)], {})
    out = capsys.readouterr().out
    assert "ivr postgresql's CPU ms/req counts ivr-serve's processes only, not PostgreSQL's" in out
    assert "0.10" in out  # its rate, 800 / 8000 of bare's
