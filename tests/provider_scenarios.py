"""The demo flow's scenarios played by a provider's fake call against the
real web resources and call handler, in memory, speaking that provider's
dialect under its route prefix (``/<prefix>voice/<flow>``,
``/<prefix>status``), as the server will serve every provider at once.

Used by the providers' end-to-end tests: each scenario's inputs become the
requests the fake provider sends (signed when given a secret), its
answers are played by the fake, and the call's end (outcome, reason,
cause, transfer) must be what the scenario expects, as through Twilio.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from functools import cache
from pathlib import Path

import yaml
from treq.testing import StubTreq
from twisted.internet import task
from twisted.web.resource import Resource

from ivr.flow.loader import load_flow
from ivr.lookups.demo_orders import create_demo_db
from ivr.lookups.embedded import EmbeddedOrderLookups
from ivr.providers.dialect import Dialect
from ivr.providers.fake_call import FakeCall, HttpRequest
from ivr.server.calls import CallHandler
from ivr.server.registry import FlowRegistry
from ivr.server.web import add_provider_routes
from ivr.sim.call import SECONDS_PER_TURN, SIMULATED_QUEUE_SECONDS
from ivr.sim.scenarios import cannot_run_remotely, check_end, local_time
from ivr.store.sqlite.store import CallStore

ROOT = Path(__file__).parent.parent
BASE = "http://ivr.test"
SCENARIOS = sorted((ROOT / "flows" / "tests").glob("*.yaml"))

#: Builds a fake call: (send, caller, base URL, clock) -> FakeCall.
FakeMaker = Callable[..., FakeCall]


@cache
def demo_flow():
    """The demo flow, loaded once for every scenario."""
    return load_flow(ROOT / "flows" / "post_sale.yaml", ROOT / "prompts")


class PreloadedRegistry(FlowRegistry):
    """The server's flow registry serving the demo flow already loaded
    (loading it is most of a scenario's time)."""

    def reload(self) -> None:
        self._add(demo_flow())


class ProviderServer:
    """The server's routes for one provider, under its prefix, with a
    task clock set to ``at`` and the demo orders as of that day."""

    def __init__(self, tmp_path: Path, make_dialect: Callable[[task.Clock], Dialect], prefix: str, at,
                 secret: str | None = None):
        self.clock = task.Clock()
        self.clock.advance(at.timestamp())
        dialect = make_dialect(self.clock)
        self.store = CallStore.open(tmp_path / "ivr.db")
        orders = EmbeddedOrderLookups(create_demo_db(self.store.db, at.date()))
        registry = PreloadedRegistry(tmp_path, ROOT / "prompts", self.store)
        registry.reload()
        self.base = f"{BASE}/{prefix.rstrip('/')}"
        self.handler = CallHandler(registry, self.store, orders.perform, self.clock,
                                   base_url=self.base, dialect=dialect)
        root, routes = Resource(), Resource()
        add_provider_routes(routes, dialect, self.handler, auth_token=secret)
        root.putChild(prefix.rstrip("/").encode(), routes)
        self.http = StubTreq(root)
        #: Every (request, status code) the fake sent.
        self.exchanges: list[tuple[HttpRequest, int]] = []

    def send(self, request: HttpRequest) -> bytes:
        """A :data:`ivr.providers.fake_call.SendFn`: the request through
        the resources; raises on a non-2xx answer."""
        d = self.http.request(request.method, request.url, data=request.body, headers=request.headers)
        self.http.flush()
        results: list = []
        d.addCallback(lambda response: response.content().addCallback(
            lambda content: (response.code, content))).addBoth(results.append)
        self.http.flush()
        assert results and isinstance(results[0], tuple), results
        code, content = results[0]
        self.exchanges.append((request, code))
        if not 200 <= code < 300:
            raise AssertionError(f"{request.method} {request.url}: {code} {content!r}")
        return content


def scenarios() -> list[tuple[Path, dict]]:
    """Every scenario of the demo flow a provider can play (those forcing
    look-up answers, a language or the texts' result need the simulator)."""
    found = []
    for path in SCENARIOS:
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
        for scenario in spec["scenarios"]:
            scenario = {**(spec.get("defaults") or {}), **scenario}
            if not cannot_run_remotely(scenario):
                found.append((path, scenario))
    return found


def play(tmp_path: Path, scenario: dict, make_dialect: Callable[[task.Clock], Dialect], prefix: str,
         make_fake: FakeMaker, secret: str | None = None) -> list[str]:
    """Play ``scenario`` through a fake made by ``make_fake(send, caller,
    base_url, clock)`` to a server speaking ``make_dialect(clock)``, both
    on the server's clock; the problems found (empty: it passed)."""
    at = local_time(scenario.get("at", "2026-11-24 10:00"), demo_flow().timezone)
    server = ProviderServer(tmp_path, make_dialect, prefix, at, secret)
    call = make_fake(server.send, str(scenario.get("caller", "+33612345678")), BASE, server.clock)
    started = server.clock.seconds()
    call.answer(f"{server.base}/voice/post_sale")
    problems: list[str] = []
    for index, step in enumerate(scenario.get("steps") or [], start=1):
        step = {step: True} if isinstance(step, str) else step
        kind = next((k for k in step if k != "expect"), None)
        if kind == "hangup":
            break
        if kind not in (None, "wait") and (call.next is None or call.next.wait == "over"):
            problems.append(f"step {index} ({kind}): the call is over")
            break
        if kind is not None:
            _input(call, server, kind, step.get(kind))
        wanted = (step.get("expect") or {}).get("node")
        described = server.handler.describe(call.call_id) or {}
        if wanted and described.get("node") != wanted:
            problems.append(f"step {index}: expected node {wanted!r}, found {described.get('node')!r}")
    duration = int(server.clock.seconds() - started)
    call.hang_up(duration, _moment(at, duration))
    summary = (server.handler.describe(call.call_id) or {}).get("summary") or {}
    if scenario.get("end"):
        problems += check_end(summary, scenario["end"])
    assert server.clock.getDelayedCalls() == []
    return problems


def _input(call: FakeCall, server: ProviderServer, kind: str | None, value) -> None:
    if kind == "press":
        call.press(str(value))
    elif kind == "say":
        call.say(str(value))
    elif kind == "silence":
        call.silence()
    elif kind == "dial":
        call.transfer_ends(str(value), SIMULATED_QUEUE_SECONDS)
    elif kind == "record":
        call.record(int(value) if value is not True else 20)
    elif kind == "wait":
        server.clock.advance(int(value))
        return
    server.clock.advance(SECONDS_PER_TURN)


def _moment(at, seconds: int):
    return at + timedelta(seconds=seconds)
