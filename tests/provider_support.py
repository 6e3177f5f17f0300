"""One server in memory serving every provider at once, for the tests that
play calls through each provider's fake (:mod:`ivr.providers.registry`)."""

from __future__ import annotations

import shutil
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from treq.testing import StubTreq
from twisted.internet import task

from ivr.lookups.demo_orders import create_demo_db
from ivr.lookups.embedded import EmbeddedOrderLookups
from ivr.providers.fake_call import HttpRequest
from ivr.providers.registry import Provider, providers
from ivr.server.calls import CallHandler
from ivr.server.registry import FlowRegistry
from ivr.server.served import Served, served_providers
from ivr.server.web import build_root
from ivr.sim.remote import RemoteError
from ivr.store.sqlite.store import CallStore

ROOT = Path(__file__).parent.parent
BASE = "http://ivr.test"
DASHBOARD_TOKEN = "dashboard-token-for-provider-tests"
TUESDAY_10AM = datetime(2026, 11, 24, 10, 0, tzinfo=ZoneInfo("Europe/Paris")).timestamp()


def keys_of(provider: Provider) -> tuple[str, str]:
    """(the server's secret, the fake's secret) of ``provider``: its own
    test pair, or one shared secret."""
    if provider.test_keys is not None:
        return provider.test_keys()
    secret = f"secret-of-{provider.name}"
    return secret, secret


def demo_parts(tmp_path: Path):
    """A clock at 10:00 on the demo day, a SQLite log holding the demo
    orders, their look-ups and the demo flow's registry."""
    clock = task.Clock()
    clock.advance(TUESDAY_10AM)
    flows = tmp_path / "flows"
    flows.mkdir()
    shutil.copy(ROOT / "flows" / "post_sale.yaml", flows)
    store = CallStore.open(tmp_path / "ivr.db")
    orders = EmbeddedOrderLookups(create_demo_db(store.db, date(2026, 11, 24)))
    registry = FlowRegistry(flows, ROOT / "prompts", store)
    registry.reload_if_changed()
    return clock, store, orders, registry


class MemoryServer:
    """The real handler and web resources over a SQLite log holding the
    demo orders, serving ``served`` (default: every registered provider,
    each with its test secret), driven without a socket."""

    def __init__(self, tmp_path: Path, served: list[Served] | None = None):
        self.clock, self.store, orders, registry = demo_parts(tmp_path)
        self.handler = CallHandler(registry, self.store, orders.perform, self.clock)
        self.served = served or served_providers(
            {p.name: keys_of(p)[0] for p in providers().values()})
        self.http = StubTreq(build_root(self.handler, registry, served=self.served,
                                        simulated_clock=True, dashboard_token=DASHBOARD_TOKEN))

    def request(self, request: HttpRequest) -> tuple[int, bytes]:
        """Send ``request``; its status code and body."""
        d = self.http.request(request.method, request.url, data=request.body or None,
                              headers=request.headers)
        self.http.flush()
        results: list = []
        d.addCallback(lambda response: response.content().addCallback(
            lambda content: (response.code, content))).addBoth(results.append)
        self.http.flush()
        assert results and isinstance(results[0], tuple), results
        return results[0]

    def send(self, request: HttpRequest) -> bytes:
        """A :data:`ivr.providers.fake_call.SendFn`: the answer's body, or
        :class:`RemoteError` for a refusal."""
        code, body = self.request(request)
        if not 200 <= code < 300:
            raise RemoteError(f"{request.method} {request.url}: HTTP {code}: "
                              f"{body.decode('utf-8', 'replace').strip()}")
        return body
