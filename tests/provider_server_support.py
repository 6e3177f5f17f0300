"""The real handler and web resources speaking one provider's dialect, in
memory, and the demo flow's scenarios played through that provider's fake:
what each provider's end-to-end test shares.

Until the server serves every provider under its own prefix, the
provider's routes are the handler's (``/voice/<flow>``, ``/status``), and a
provider whose answer webhook is a GET gets it served like a POST."""

from __future__ import annotations

import shutil
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import yaml
from treq.testing import StubTreq
from twisted.internet import task

from ivr.lookups.demo_orders import create_demo_db
from ivr.lookups.embedded import EmbeddedOrderLookups
from ivr.providers.fake_call import HttpRequest
from ivr.server.calls import CallHandler
from ivr.server.registry import FlowRegistry
from ivr.server.web import VoiceResource, build_root
from ivr.sim.call import SECONDS_PER_TURN
from ivr.sim.scenarios import cannot_run_remotely, check_end
from ivr.store.sqlite.store import CallStore

ROOT = Path(__file__).parent.parent
BASE = "http://ivr.test"
TUESDAY_10AM = datetime(2026, 11, 24, 10, 0, tzinfo=ZoneInfo("Europe/Paris"))


class _AnyMethodVoice(VoiceResource):
    """The voice route, also for a provider's GET answer webhook."""

    def render_GET(self, request):
        return self.render_POST(request)


class ProviderServer:
    """The handler and resources with ``dialect``; requests signed with
    ``secret`` are checked when it is given."""

    def __init__(self, tmp_path: Path, dialect, secret: str | None = None):
        self.clock = task.Clock()
        self.clock.advance(TUESDAY_10AM.timestamp())
        flows = tmp_path / "flows"
        flows.mkdir()
        shutil.copy(ROOT / "flows" / "post_sale.yaml", flows)
        self.store = CallStore.open(tmp_path / "ivr.db")
        orders = EmbeddedOrderLookups(create_demo_db(self.store.db, date(2026, 11, 24)))
        registry = FlowRegistry(flows, ROOT / "prompts", self.store)
        registry.reload_if_changed()
        self.dialect = dialect
        self.handler = CallHandler(registry, self.store, orders.perform, self.clock,
                                   dialect=dialect, base_url=BASE)
        root = build_root(self.handler, registry, auth_token=secret, simulated_clock=True)
        root.putChild(b"voice", _AnyMethodVoice(self.handler, secret, None, True, dialect=dialect))
        self.http = StubTreq(root)
        self.at: datetime = TUESDAY_10AM
        self.codes: list[int] = []

    def send(self, request: HttpRequest) -> bytes:
        """The fake's transport: the request to the in-memory server, at the
        scenario's time; raises on a non-2xx answer, as :data:`SendFn` does."""
        code, body = self.request(request)
        if not 200 <= code < 300:
            raise AssertionError(f"{request.method} {request.url}: {code} {body!r}")
        return body

    def request(self, request: HttpRequest) -> tuple[int, bytes]:
        """The answer's code and body."""
        headers = {**request.headers, "X-IVR-Simulated-Time": self.at.isoformat()}
        d = self.http.request(request.method, request.url, data=request.body or None,
                              headers=headers)
        self.http.flush()
        results: list = []
        d.addCallback(lambda response: response.content().addCallback(
            lambda content: (response.code, content))).addBoth(results.append)
        self.http.flush()
        assert results and isinstance(results[0], tuple), results
        self.codes.append(results[0][0])
        return results[0]


def scenarios() -> list[tuple[str, dict]]:
    """The demo flow's scenarios a provider's fake can play: (id, scenario)."""
    found = []
    for path in sorted((ROOT / "flows" / "tests").glob("*.yaml")):
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
        defaults = spec.get("defaults") or {}
        for scenario in spec["scenarios"]:
            merged = {**defaults, **scenario}
            if cannot_run_remotely(merged) is None and merged.get("end"):
                found.append((f"{path.stem}: {merged['name']}", merged))
    return found


def play_scenario(tmp_path: Path, dialect, make_fake, scenario: dict,
                  skip: frozenset[str] = frozenset()) -> list[str]:
    """Play ``scenario`` through ``make_fake(send, caller, called)``
    against a fresh server; the problems with its end (empty when it ends
    as the scenario says).  Steps of a kind in ``skip`` (what the provider
    cannot do, one of its gaps) are left out."""
    server = ProviderServer(tmp_path, dialect)
    server.at = datetime.fromisoformat(scenario.get("at", "2026-11-24 10:00")).replace(
        tzinfo=ZoneInfo("Europe/Paris"))
    call = make_fake(server.send, str(scenario.get("caller", "+33612345678")), "+33100000000")
    call.answer(f"{BASE}/voice/post_sale")
    started = server.at
    for step in scenario.get("steps") or []:
        step = {step: True} if isinstance(step, str) else step
        kinds = [k for k in step if k != "expect"]
        if not kinds:  # only an expectation of the first turn
            continue
        kind, value = kinds[0], step[kinds[0]]
        if kind in skip:
            continue
        if kind == "wait":
            server.at += timedelta(seconds=int(value))
            continue
        server.at += timedelta(seconds=SECONDS_PER_TURN)
        if call.next is None or call.next.wait == "over" or kind == "hangup":
            break
        _play(call, kind, value)
    call.hang_up(int((server.at - started).total_seconds()), server.at)
    summary = server.handler.describe(call.call_id)["summary"]
    assert server.clock.getDelayedCalls() == []
    return check_end(summary, scenario["end"])


def _play(call, kind: str, value) -> None:
    if kind == "press":
        call.press(str(value))
    elif kind == "say":
        call.say(str(value))
    elif kind == "silence":
        call.silence()
    elif kind == "dial":
        call.transfer_ends(str(value), 30)
    elif kind == "record":
        call.record(int(value) if value is not True else 20)
    else:
        raise AssertionError(f"unknown step {kind!r}")
