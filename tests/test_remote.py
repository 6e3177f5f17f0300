"""``ivr-sim test --url`` and ``ivr-sim call --url``: scenarios played against
a real server in a subprocess, as the provider would play them."""

from __future__ import annotations

import json
import re
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

import pytest
import yaml
from click.testing import CliRunner

from ivr.flow.loader import load_flow
from ivr.phone import mask
from ivr.providers.twilio.signature import twilio_signature
from ivr.sim.call import SimCall
from ivr.sim.cli import main
from ivr.sim.remote import RemoteCall, RemoteError, parse_twiml
from ivr.sim.scenarios import (
    INPUTS,
    _play,
    cannot_run_remotely,
    demo_lookups,
    local_time,
    scenario_files,
)

ROOT = Path(__file__).parent.parent
SCENARIOS = ROOT / "flows" / "tests"
TOKEN = "secret"
DASHBOARD_TOKEN = "dashboard-token-for-tests"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(workdir: Path, *extra: str):
    """``ivr-serve`` on a free loopback port, its database holding the demo
    orders dated to the scenarios' day; returns (process, base URL, db path)."""
    db = workdir / "ivr.db"
    subprocess.run([sys.executable, "-c", "from ivr.sim.cli import main; main()", "demo-orders",
                    "--db", str(db), "--today", "2026-11-24"],
                   check=True, capture_output=True, cwd=ROOT, timeout=60)
    port = free_port()
    log = open(workdir / "server.log", "wb")
    process = subprocess.Popen(
        [sys.executable, "-c", "from ivr.server.tap import main; main()",
         "--listen", f"tcp:{port}:interface=127.0.0.1", "--db", str(db),
         "--flows", str(ROOT / "flows"), "--prompts", str(ROOT / "prompts"),
         "--simulated-clock", "--dashboard-token", DASHBOARD_TOKEN, *extra],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):  # readiness of the subprocess, bounded to about 10 s
        if process.poll() is not None:
            break
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1) as response:
                if json.load(response)["flows"]:
                    return process, url, db
        except OSError:
            time.sleep(0.1)
    stop(process)
    pytest.fail(f"the server did not start:\n{(workdir / 'server.log').read_text()}")


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    process, url, db = start_server(tmp_path_factory.mktemp("server"))
    yield url, db
    stop(process)


@pytest.fixture(scope="module")
def signed_server(tmp_path_factory):
    process, url, _db = start_server(tmp_path_factory.mktemp("signed"), "--twilio-auth-token", TOKEN)
    yield url
    stop(process)


def invoke(*args, input=None, env=None):
    env = {"IVR_DASHBOARD_TOKEN": DASHBOARD_TOKEN, **(env or {})}
    return CliRunner().invoke(main, [str(a) for a in args], input=input, env=env)


def lookups_scenarios() -> int:
    count = 0
    for path in scenario_files([SCENARIOS]):
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
        count += sum(1 for s in spec["scenarios"] if cannot_run_remotely({**(spec.get("defaults") or {}), **s}))
    return count


# --- ivr-sim test --url ------------------------------------------------------------


def test_demo_scenarios_pass_against_a_live_server(server):
    url, _db = server
    result = invoke("test", "--url", url, SCENARIOS, env={"TWILIO_AUTH_TOKEN": None})
    assert result.exit_code == 0, result.output
    skipped = lookups_scenarios()
    assert skipped > 0
    assert re.search(rf"^\d+ passed, 0 failed, {skipped} skipped$", result.output, re.M), result.output
    assert result.output.count("SKIP ") == skipped
    assert "forces look-up answers (lookups:)" in result.output
    assert "coverage post_sale.yaml:" in result.output


def test_every_live_turn_is_what_the_offline_simulator_gives(server):
    """Same TwiML byte for byte, same words, path, node events and summary:
    the server and the simulator run the same engine on the same orders."""
    url, _db = server
    flow = load_flow(ROOT / "flows" / "post_sale.yaml", ROOT / "prompts")
    compared = 0
    for path in scenario_files([SCENARIOS]):
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
        for scenario in spec["scenarios"]:
            scenario = {**(spec.get("defaults") or {}), **scenario}
            if cannot_run_remotely(scenario):
                continue
            at = local_time(scenario.get("at", "2026-11-24 10:00"), flow.timezone)
            caller = str(scenario.get("caller", "+33612345678"))
            offline = SimCall(flow, demo_lookups(at), caller=caller, at=at)
            live = RemoteCall(url, "post_sale", caller=caller, at=at, dashboard_token=DASHBOARD_TOKEN)
            for call in (offline, live):
                call.start()
                for step in scenario.get("steps") or []:
                    step = {step: True} if isinstance(step, str) else step
                    for kind in [k for k in step if k in INPUTS]:
                        _play(call, kind, step[kind])
                if not call.ended:
                    call.hangup()
            assert len(offline.turns) == len(live.turns)
            for mine, theirs in zip(offline.turns, live.turns):
                where = f"{scenario['name']}, turn {mine.number} ({mine.input})"
                assert (theirs.input, theirs.heard, theirs.path) == (mine.input, mine.heard, mine.path), where
                if theirs.input != "hangup":  # a live hang-up is a status callback, not TwiML
                    assert theirs.twiml == mine.twiml, where
                strip = [{k: v for k, v in e.items() if k not in ("call_id", "at")}
                         for e in theirs.node_events]
                assert strip == [{k: v for k, v in e.items() if k not in ("call_id", "at")}
                                 for e in mine.node_events], where
                compared += 1
            skip = ("call_id", "caller", "ended_at")
            expected = {k: v for k, v in offline.summary.items() if k not in skip}
            if (expected["handoff"] or {}).get("kind") == "callback":  # the server masks it
                expected["handoff"] = {**expected["handoff"],
                                       "target": mask(expected["handoff"]["target"])}
            assert ({k: v for k, v in live.summary.items() if k not in skip}
                    == expected), scenario["name"]
    assert compared > 100


def test_a_live_call_gets_a_fresh_call_sid_and_one_status_callback(server):
    url, db = server
    at = local_time("2026-11-24 10:00", "Europe/Paris")
    calls = [RemoteCall(url, "post_sale", caller="+33612345678", at=at,
                        dashboard_token=DASHBOARD_TOKEN) for _ in range(2)]
    assert calls[0].call_id != calls[1].call_id
    assert re.fullmatch(r"CA[0-9a-f]{32}", calls[0].call_id)
    call = calls[0]
    call.start()  # the one order on its way is answered first
    call.press("1")
    turn = call.press("2")  # goodbye: <Hangup />, so the provider reports the end
    assert "<Hangup />" in turn.twiml.decode()
    assert call.ended and call.summary["outcome"] == "self_served"
    call.hangup()  # already over on the provider's side: nothing more is sent
    with sqlite3.connect(db) as connection:
        rows = connection.execute("SELECT sequence, status, duration_s FROM status_events "
                                  "WHERE call_id = ?", [call.call_id]).fetchall()
    assert rows == [(0, "completed", 16)]


def test_a_scenario_input_the_provider_cannot_send_fails_that_scenario(server, tmp_path):
    url, _db = server
    scenario = tmp_path / "dial_at_menu.yaml"
    scenario.write_text(f"flow: {ROOT / 'flows' / 'post_sale.yaml'}\n"
                        "scenarios:\n"
                        "  - name: a dial result at the menu\n"
                        "    steps: [{dial: busy}]\n")
    result = invoke("test", "--url", url, scenario, "--prompts", ROOT / "prompts")
    assert result.exit_code == 1
    assert "step 1 (dial): cannot send a dial result (busy): the call waits for keys or speech" \
        in result.output
    assert "0 passed, 1 failed, 0 skipped" in result.output


def test_an_unknown_flow_name_is_a_clean_error(server):
    url, _db = server
    result = invoke("test", "--url", url, "--flow", "nosuch", SCENARIOS / "routing.yaml")
    assert result.exit_code == 1
    assert "HTTP 404: no flow named 'nosuch'" in result.output
    assert "Traceback" not in result.output


def test_a_server_that_is_not_running_is_a_clean_error():
    result = invoke("test", "--url", f"http://127.0.0.1:{free_port()}", SCENARIOS / "routing.yaml")
    assert result.exit_code == 1
    assert "cannot reach the server" in result.output
    assert "Connection refused" in result.output
    assert isinstance(result.exception, SystemExit)


# --- signatures --------------------------------------------------------------------


def test_a_signing_server_refuses_unsigned_requests(signed_server):
    result = invoke("test", "--url", signed_server, SCENARIOS / "routing.yaml",
                    env={"TWILIO_AUTH_TOKEN": None})
    assert result.exit_code == 1
    assert "HTTP 403: missing X-Twilio-Signature" in result.output


def test_a_signing_server_refuses_a_wrong_token(signed_server):
    result = invoke("test", "--url", signed_server, "--auth-token", "wrong", SCENARIOS / "routing.yaml")
    assert result.exit_code == 1
    assert "HTTP 403: X-Twilio-Signature does not match this request" in result.output


def test_signed_scenarios_pass(signed_server):
    result = invoke("test", "--url", signed_server, "--auth-token", TOKEN, SCENARIOS)
    assert result.exit_code == 0, result.output
    assert re.search(r"^\d+ passed, 0 failed, \d+ skipped$", result.output, re.M)


def test_the_token_may_come_from_the_environment(signed_server):
    result = invoke("test", "--url", signed_server, SCENARIOS / "order_status.yaml",
                    env={"TWILIO_AUTH_TOKEN": TOKEN})
    assert result.exit_code == 0, result.output


# --- ivr-sim call --url --------------------------------------------------------------


def test_interactive_call_against_the_server(server):
    url, _db = server
    result = invoke("call", "--url", url, "post_sale", "--at", "2026-11-24 10:00+01:00",
                    input="1\ndial busy\n2\n")
    assert result.exit_code == 0, result.output
    assert "path: find_recent > on_its_way > proactive_answer > answer > status_in_transit" in result.output
    assert "votre colis est en route avec Colissimo" in result.output
    assert "path: main_menu > status_question > answer > status_reminder" in result.output
    assert "(cannot send a dial result (busy): the call waits for keys or speech)" in result.output
    assert "Call ended: outcome self_served, reason in_transit_on_time" in result.output


def test_interactive_call_with_a_flow_file_uses_its_timezone(server):
    url, _db = server
    result = invoke("call", "--url", url, ROOT / "flows" / "post_sale.yaml", "--caller", "+14155550123",
                    "--at", "2026-11-24 10:00", "--twiml", input="0\n")
    assert result.exit_code == 0, result.output
    assert 'twiml: <?xml version="1.0" encoding="UTF-8"?><Response><Gather' in result.output
    assert "[queue post-sale]" in result.output
    # Its one order was answered first: the reason is known, no question before the agent.
    assert "Call ended: outcome transferred, reason in_transit_on_time, cause caller_asked" in result.output


def test_interactive_call_by_name_needs_an_offset_in_at(server):
    url, _db = server
    result = invoke("call", "--url", url, "post_sale", "--at", "2026-11-24 10:00")
    assert result.exit_code == 2
    assert "give a UTC offset" in result.output


def test_interactive_call_to_a_dead_server_is_a_clean_error():
    result = invoke("call", "--url", f"http://127.0.0.1:{free_port()}", "post_sale", input="1\n")
    assert result.exit_code == 1
    assert "Error: POST" in result.output and "cannot reach the server" in result.output


# --- what the provider does with the TwiML: a scripted stand-in server ---------------


class Scripted:
    """A loopback HTTP server answering each POST with the next scripted
    document (GET /calls/… with a fixed description); keeps every request."""

    def __init__(self, documents: list[bytes]):
        self.documents = list(documents)
        self.requests: list[tuple[str, str, dict, dict]] = []
        scripted = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"])).decode()
                scripted.requests.append(("POST", self.path, {k: v[-1] for k, v in parse_qs(body).items()},
                                          self.headers))
                if self.path == "/status":
                    self.send_response(204)
                    self.end_headers()
                    return
                self._answer(scripted.documents.pop(0), "text/xml")

            def do_GET(self):
                scripted.requests.append(("GET", self.path, {}, self.headers))
                self._answer(json.dumps({"node": "n", "waiting": None, "ended": False, "summary": {},
                                         "node_events": []}).encode(), "application/json")

            def _answer(self, body, kind):
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)

    def posts(self):
        return [(path, form) for method, path, form, _ in self.requests if method == "POST"]


def twiml(body: str) -> bytes:
    return f'<?xml version="1.0" encoding="UTF-8"?><Response>{body}</Response>'.encode()


AT = local_time("2026-11-24 10:00", "Europe/Paris")


def test_redirects_are_followed_and_silence_takes_the_redirect_after_the_gather():
    with Scripted([
        twiml('<Say>Un instant.</Say><Redirect method="POST">/voice/f?turn=1</Redirect>'),
        twiml('<Gather action="next?turn=2" finishOnKey="#"><Say>Tapez.</Say></Gather>'
              '<Redirect method="POST">/voice/f?turn=2&amp;silent=1</Redirect>'),
        twiml('<Gather action="/voice/f?turn=3" finishOnKey="#"><Say>Encore.</Say></Gather>'),
        twiml('<Gather action="/voice/f?turn=4" finishOnKey=""><Say>Et encore.</Say></Gather>'),
    ]) as fake:
        call = RemoteCall(fake.url, "f", caller="+33612345678", at=AT)
        first = call.start()
        assert first.heard == "Un instant. Tapez."
        assert call.silence().heard == "Encore."
        assert call.press("12#").input == "press 12#"  # the finishing key is not sent
        call.silence()  # nothing after that Gather: the provider hangs up
        assert call.ended
        posts = fake.posts()
    assert [path for path, _ in posts] == ["/voice/f", "/voice/f?turn=1", "/voice/f?turn=2&silent=1",
                                           "/voice/f?turn=3", "/status"]
    assert "Digits" not in posts[2][1]
    assert posts[3][1]["Digits"] == "12"
    assert posts[3][1]["CallSid"] == call.call_id and posts[3][1]["CallStatus"] == "in-progress"
    assert posts[0][1]["CallStatus"] == "ringing"
    assert {"AccountSid", "From", "To", "Direction", "ApiVersion"} <= set(posts[0][1])


def test_a_relative_action_resolves_against_the_document_url():
    with Scripted([
        twiml('<Gather action="next?turn=1" finishOnKey=""><Say>Tapez.</Say></Gather>'),
        twiml('<Gather action="/voice/f?turn=2" finishOnKey="" numDigits="1"><Say>Menu.</Say></Gather>'),
        twiml("<Hangup />"),
    ]) as fake:
        call = RemoteCall(fake.url, "f", caller="+33612345678", at=AT)
        call.start()
        call.press("1#")  # finishOnKey="" makes # an ordinary key
        call.press("2#")  # but the provider stops listening after numDigits keys
        posts = fake.posts()
    assert posts[1][0] == "/voice/next?turn=1"
    assert posts[1][1]["Digits"] == "1#"
    assert posts[2][1]["Digits"] == "2"


def test_a_hangup_in_the_twiml_sends_the_status_callback_once():
    with Scripted([twiml("<Say>Au revoir.</Say><Hangup />")]) as fake:
        call = RemoteCall(fake.url, "f", caller="+33612345678", at=AT)
        call.start()
        assert call.ended
        call.hangup()
        posts = fake.posts()
    status = [form for path, form in posts if path == "/status"]
    assert len(status) == 1
    assert status[0]["CallStatus"] == "completed" and status[0]["SequenceNumber"] == "0"
    assert status[0]["Timestamp"] == "Tue, 24 Nov 2026 09:00:00 GMT"


def test_enqueue_and_dial_results_and_a_recording():
    with Scripted([
        twiml('<Enqueue action="/voice/f?turn=1" method="POST">post-sale</Enqueue>'),
        twiml('<Dial action="/voice/f?turn=2"><Sip>sip:agent@pbx.invalid?X-IVR-Reason=order_status</Sip></Dial>'),
        twiml('<Record action="/voice/f?turn=3" finishOnKey="#" maxLength="120" />'),
        twiml("<Hangup />"),
    ]) as fake:
        call = RemoteCall(fake.url, "f", caller="+33612345678", at=AT)
        assert call.start().heard == "[queue post-sale]"
        assert call.dial_result("no-answer").heard == "[transfer to sip sip:agent@pbx.invalid]"
        call.dial_result("busy")
        call.recorded(25)
        posts = fake.posts()
    assert posts[1][1]["QueueResult"] == "error"
    assert posts[2][1]["DialCallStatus"] == "busy"
    assert posts[3][1]["RecordingDuration"] == "25" and posts[3][1]["RecordingUrl"]
    assert posts[4][0] == "/status"


def test_requests_are_signed_over_the_exact_url():
    with Scripted([twiml('<Gather action="/voice/f?turn=1" />')]) as fake:
        call = RemoteCall(fake.url, "f", caller="+33612345678", at=AT, token=TOKEN)
        call.start()
        call.hangup()
        requests = list(fake.requests)
    for method, path, form, headers in requests:
        assert headers["X-Twilio-Signature"] == twilio_signature(TOKEN, fake.url + path, form), path
        assert headers["X-IVR-Simulated-Time"].startswith("2026-11-24T10:00")


def test_a_server_error_is_a_remote_error_with_the_body():
    with Scripted([b"not xml"]) as fake:
        call = RemoteCall(fake.url, "f", caller="+33612345678", at=AT)
        with pytest.raises(RemoteError, match="the answer is not TwiML"):
            call.start()


def test_say_keeps_its_ssml():
    actions, _next = parse_twiml(twiml(
        '<Say language="fr-FR">Tapez 9. <break time="300ms" /><lang xml:lang="en-US">For '
        'English &amp; more</lang></Say>'), "http://x/voice/f")
    assert actions[0].ssml == ('Tapez 9. <break time="300ms" /><lang xml:lang="en-US">For English '
                               '&amp; more</lang>')
    assert actions[0].language == "fr-FR"
    assert _next.wait == "over"
