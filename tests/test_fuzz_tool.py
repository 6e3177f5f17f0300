"""tools/fuzz_webhooks.py: hostile requests at a running server, counted."""

import re
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import golden_support
import pytest
from test_remote import start_server, stop

ROOT = Path(__file__).parent.parent
TOOL = ROOT / "tools" / "fuzz_webhooks.py"


def load_tool():
    return golden_support.load_tool("fuzz_webhooks")


def fuzz(url, *args):
    return subprocess.run([sys.executable, str(TOOL), url, *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)


def test_a_small_run_against_ivr_serve_gets_no_5xx_and_counts_every_answer(tmp_path):
    process, url, _db = start_server(tmp_path)
    try:
        done = fuzz(url, "--requests", "600", "--seed", "3", "--concurrency", "20")
    finally:
        stop(process)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith(f"600 requests to {url} in ")
    assert "\n5xx: 0\n" in done.stdout
    counted = sum(int(n) for n in re.findall(r"^  status \d+: (\d+)$", done.stdout, re.M))
    answered = int(re.search(r"no answer \(time-out or connection closed\): (\d+)", done.stdout)[1])
    assert counted + answered == 600 and answered == 0
    for kind in ("bad_sid", "unicode_digits", "control_chars", "valid_turn", "broken_http"):
        assert f"\n  {kind}: " in done.stdout
    assert "Traceback" not in (tmp_path / "server.log").read_text()


class AlwaysBroken(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _fail(self):
        length = int(self.headers.get("content-length") or 0)
        self.rfile.read(length)
        self.send_response(500)
        self.send_header("content-length", "0")
        self.end_headers()

    do_GET = do_POST = do_HEAD = do_PUT = do_DELETE = do_OPTIONS = do_PATCH = _fail

    def log_message(self, *args):
        pass


def test_a_server_that_answers_500_fails_the_run():
    server = ThreadingHTTPServer(("127.0.0.1", 0), AlwaysBroken)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        done = fuzz(f"http://127.0.0.1:{server.server_port}", "--requests", "50", "--concurrency", "5",
                    "--max-seconds", "60")
    finally:
        server.shutdown()
        server.server_close()
    assert done.returncode == 1
    fives = int(re.search(r"^5xx: (\d+)$", done.stdout, re.M)[1])
    assert fives > 0 and "5xx for: " in done.stdout


@pytest.mark.parametrize("url", ["http://192.0.2.1:8080", "http://example.com", "https://127.0.0.1",
                                 "http://10.0.0.1"])
def test_only_a_loopback_server_is_fuzzed(url):
    done = fuzz(url, "--requests", "1")
    assert done.returncode == 2 and "fuzz_webhooks: " in done.stderr
    assert "requests to" not in done.stdout


def test_the_same_seed_draws_the_same_requests():
    tool = load_tool()
    first, second = (tool.Requests("127.0.0.1", 8080, seed=5) for _ in range(2))
    assert [first.next() for _ in range(300)] == [second.next() for _ in range(300)]
    kinds = {first.next()[0] for _ in range(2000)}
    assert kinds == {kind.__name__ for kind, _weight in first.kinds}


def test_signed_requests_carry_the_providers_signature():
    from ivr.providers.twilio.signature import is_valid_twilio_request

    tool = load_tool()
    params = {"CallSid": "CA" + "0" * 32, "Digits": "1"}
    url = "http://127.0.0.1:8080/voice/post_sale?turn=1"
    assert is_valid_twilio_request("secret", url, params, tool.sign("secret", url, params))
