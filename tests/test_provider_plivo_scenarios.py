"""The demo flow's scenarios played through the fake Plivo against the real
handler and web resources, speaking the Plivo dialect and checking its V3
signature: the same paths, words, reasons and outcomes as through Twilio."""

import shutil
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlencode

import pytest
import yaml
from treq.testing import StubTreq
from twisted.internet import task

from ivr.engine import actions as act
from ivr.lookups.demo_orders import create_demo_db
from ivr.lookups.embedded import EmbeddedOrderLookups
from ivr.providers.fake_call import FakeCall, HttpRequest
from ivr.providers.plivo.dialect import PlivoDialect
from ivr.providers.plivo.fake import FakePlivoCall
from ivr.providers.plivo.signature import signed_headers
from ivr.server.calls import CallHandler
from ivr.server.registry import FlowRegistry
from ivr.server.web import build_root
from ivr.sim.call import SimTurn
from ivr.sim.scenarios import cannot_run_remotely, check_end, check_turn, local_time
from ivr.sim.scenarios_check import INPUTS
from ivr.store.sqlite.store import CallStore

ROOT = Path(__file__).parent.parent
BASE = "https://ivr.test"
TOKEN = "MAXXXXXXXXXXXXXXXXXX-token"
SECONDS_PER_TURN = 5


def demo_scenarios():
    """(id, scenario) for every scenario of the demo flow a live server can play."""
    found = []
    for path in sorted((ROOT / "flows" / "tests").glob("*.yaml")):
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
        for index, scenario in enumerate(spec["scenarios"]):
            scenario = {**(spec.get("defaults") or {}), **scenario}
            if not cannot_run_remotely(scenario):
                found.append(pytest.param(scenario, id=f"{path.stem}-{index}"))
    return found


class PlivoServer:
    """The real handler and web resources, speaking Plivo, at ``at``."""

    def __init__(self, tmp_path, at):
        self.clock = task.Clock()
        self.clock.advance(at.timestamp())
        flows = tmp_path / "flows"
        flows.mkdir()
        shutil.copy(ROOT / "flows" / "post_sale.yaml", flows)
        self.store = CallStore.open(tmp_path / "ivr.db")
        orders = EmbeddedOrderLookups(create_demo_db(self.store.db, at.date()))
        registry = FlowRegistry(flows, ROOT / "prompts", self.store)
        registry.reload_if_changed()
        self.handler = CallHandler(registry, self.store, orders.perform, self.clock,
                                   dialect=PlivoDialect(), base_url=BASE)
        self.http = StubTreq(build_root(self.handler, registry, auth_token=TOKEN, public_url=BASE))
        self.requests: list[HttpRequest] = []

    def answer(self, request: HttpRequest) -> tuple[int, bytes]:
        """The status code and body the server answers to ``request``."""
        self.requests.append(request)
        d = self.http.request(request.method, request.url, data=request.body, headers=request.headers)
        self.http.flush()
        results = []
        d.addCallback(lambda response: response.content().addCallback(
            lambda content: (response.code, content))).addBoth(results.append)
        self.http.flush()
        return results[0]

    def send(self, request: HttpRequest) -> bytes:
        """What the server answers to a request of the fake Plivo (2xx only)."""
        code, content = self.answer(request)
        assert 200 <= code < 300, (request.url, code, content)
        self.clock.advance(SECONDS_PER_TURN)
        return content


def play(server: PlivoServer, call: FakePlivoCall, step) -> object:
    """Play one scenario step; the Played of the turn, or None."""
    kind, value = next((k, v) for k, v in step.items() if k != "expect")
    if kind == "press":
        return call.press(str(value))
    if kind == "say":
        return call.say(str(value))
    if kind == "silence":
        return call.silence()
    if kind == "dial":
        return call.transfer_ends(str(value))
    if kind == "record":
        return call.record(int(value) if value is not True else 20)
    if kind == "wait":
        server.clock.advance(int(value))
    return None


def check_step(played, described: dict, events: list, expect: dict) -> list[str]:
    """What in a turn differs from a step's ``expect``, checked by the
    scenario runner's own :func:`check_turn` (words heard, node, path).
    ``twiml:`` expectations name TwiML verbs: the paths and the end say
    the same of a Plivo call."""
    waiting = None if described["ended"] else described["node"]
    turn = SimTurn(0, "", played.actions if played else [], events, b"", waiting)
    call = SimpleNamespace(state=described)
    return check_turn(turn, call, {k: v for k, v in expect.items() if k != "twiml"})


@pytest.mark.parametrize("scenario", demo_scenarios())
def test_each_demo_scenario_ends_as_through_twilio(tmp_path, scenario):
    at = local_time(scenario.get("at", "2026-11-24 10:00"), "Europe/Paris")
    server = PlivoServer(tmp_path, at)
    call = FakePlivoCall(server.send, str(scenario.get("caller", "+33612345678")), "+33100000000",
                         BASE, TOKEN)
    assert isinstance(call, FakeCall)
    started = server.clock.seconds()
    seen = 0
    problems = []
    steps = [{"answer": True, "expect": {}}] + [
        step if isinstance(step, dict) else {step: True} for step in scenario.get("steps") or []]
    # The first step's expectations are about the answer, as in the scenario runner.
    if steps[1:] and not any(k in steps[1] for k in INPUTS):
        steps[0]["expect"] = steps.pop(1).get("expect") or {}
    for step in steps:
        if "hangup" in step:
            break
        if call.next and call.next.wait == "over" and "wait" not in step:
            problems.append(f"{step}: the call already ended")
            break
        played = call.answer(f"{BASE}/voice/post_sale") if "answer" in step else play(server, call, step)
        described = server.handler.describe(call.call_id)
        events = described["node_events"][seen:]
        seen += len(events)
        problems += check_step(played, described, events, step.get("expect") or {})
    call.hang_up(int(server.clock.seconds() - started),
                 datetime.fromtimestamp(server.clock.seconds(), timezone.utc))
    summary = server.handler.describe(call.call_id)["summary"]
    problems += check_end(summary, scenario.get("end") or {})
    assert problems == []
    assert all(r.headers.get("X-Plivo-Signature-V3") for r in server.requests)
    assert server.store.call(call.call_id)["ended_at"] is not None
    assert server.clock.getDelayedCalls() == []


def test_unsigned_tampered_or_malformed_callbacks_are_refused_and_nothing_is_written(tmp_path):
    server = PlivoServer(tmp_path, local_time("2026-11-24 10:00", "Europe/Paris"))
    url = f"{BASE}/voice/post_sale"
    call = FakePlivoCall(server.send, "+33612345678", "+33100000000", BASE, TOKEN)
    params = call.params("ringing")
    body = urlencode(params).encode()
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    unsigned = HttpRequest("POST", url, form, body)
    assert server.answer(unsigned) == (403, b"missing X-Plivo-Signature-V3\n")
    tampered = HttpRequest("POST", url, {**form, **signed_headers(TOKEN, "POST", url, params)},
                           body.replace(b"%2B33612345678", b"%2B33699999999"))
    assert server.answer(tampered) == (403, b"X-Plivo-Signature-V3 does not match this request\n")
    bad = {**params, "CallUUID": "CA" + "0" * 32}
    malformed = HttpRequest("POST", url, {**form, **signed_headers(TOKEN, "POST", url, bad)},
                            urlencode(bad).encode())
    assert server.answer(malformed) == (400, b"CallUUID must be a UUID\n")
    assert server.store.call(call.call_id) is None
    assert server.clock.getDelayedCalls() == []


def test_the_agent_hears_the_reason_and_the_order_before_being_put_through(tmp_path):
    server = PlivoServer(tmp_path, local_time("2026-11-24 10:00", "Europe/Paris"))
    call = FakePlivoCall(server.send, "+33612345678", "+33100000000", BASE, TOKEN)
    call.answer(f"{BASE}/voice/post_sale")
    call.press("2")  # a return: to the agents' queue, which Plivo dials
    assert call.next.wait == "dial"
    played = call.transfer_ends("completed")
    whisper = played.documents[0].decode()
    assert whisper.startswith('<?xml version="1.0" encoding="UTF-8"?><Response><Speak')
    assert "Motif" in whisper and "Commande" in whisper
    assert played.actions == [act.Hangup()]
    assert server.handler.describe(call.call_id)["summary"]["outcome"] == "transferred"
    assert server.clock.getDelayedCalls() == []
