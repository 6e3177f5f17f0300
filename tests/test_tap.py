"""``twist ivr`` / ``ivr-serve``: the plugin, its options and the service tree."""

import collections
import gc
import tempfile
from pathlib import Path

import pytest
from twisted.application.service import IServiceMaker
from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.plugin import getPlugins
from twisted.python.usage import UsageError

from ivr.lookups.fake_shop import SECRET_ENV, backend_config
from ivr.server import tap

ROOT = Path(__file__).parent.parent


def test_the_twist_plugin_is_found():
    makers = {maker.tapname: maker for maker in getPlugins(IServiceMaker)}
    assert makers["ivr"].options is tap.Options


def test_defaults_listen_on_loopback_only(monkeypatch):
    monkeypatch.delenv("TWILIO_AUTH_TOKEN", raising=False)
    options = tap.Options()
    options.parseOptions([])
    assert options["listen"] == "tcp:8080:interface=127.0.0.1"
    assert options["db"] == "ivr.db" and options["twilio-auth-token"] is None


def test_the_auth_token_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "secret")
    options = tap.Options()
    options.parseOptions([])
    assert options["twilio-auth-token"] == "secret"


@pytest.mark.parametrize("option, value, message", [
    ("--lookup-timeout", "soon", "--lookup-timeout must be a number of seconds"),
    ("--lookup-timeout", "45", "--lookup-timeout over 30 s keeps callers on hold too long"),
    ("--hold-after", "12", "--hold-after must stay well under the provider's 15 s"),
    ("--sweep-after", "0", "--sweep-after must be positive"),
])
def test_waits_near_the_provider_limit_are_refused(option, value, message):
    with pytest.raises(UsageError, match=message):
        tap.Options().parseOptions([option, value])


def test_make_service_creates_the_database_with_demo_orders_and_loads_the_flows(tmp_path):
    reactor = MemoryReactorClock()
    options = tap.Options()
    options.parseOptions(["--db", str(tmp_path / "new.db"), "--flows", str(ROOT / "flows"),
                          "--prompts", str(ROOT / "prompts"), "--listen", "tcp:0:interface=127.0.0.1"])
    top = tap.makeService(options, reactor)
    top.startService()
    try:
        [(port, _factory, _backlog, interface)] = reactor.tcpServers
        assert (port, interface) == (0, "127.0.0.1")
        store, orders = tap.open_database(str(tmp_path / "new.db"))
        assert orders.find_by_number("100234").status == "in_transit"
        assert store.flow_version("post_sale", _current_version(top)) is not None
    finally:
        top.stopService()


def test_a_database_for_a_shops_api_gets_no_demo_orders(tmp_path, monkeypatch):
    monkeypatch.setenv(SECRET_ENV, "s3cret")
    shop = tmp_path / "shop.yaml"
    shop.write_text(backend_config("shopify", "https://shop.example.com"), encoding="utf-8")
    options = tap.Options()
    options.parseOptions(["--db", str(tmp_path / "new.db"), "--flows", str(ROOT / "flows"),
                          "--prompts", str(ROOT / "prompts"), "--orders", str(shop),
                          "--listen", "tcp:0:interface=127.0.0.1"])
    top = tap.makeService(options, MemoryReactorClock())
    top.startService()
    try:
        store, _orders = tap.open_database(str(tmp_path / "new.db"), demo_orders=False)
        assert "orders" not in store.db.table_names()
    finally:
        top.stopService()


def test_a_server_with_a_helpdesk_looks_for_orphaned_requests_under_a_lease_it_renews(tmp_path):
    from datetime import datetime, timezone

    from ivr.server.helpdesk import RESEND_INTERVAL, HelpdeskService
    from ivr.server.leases import HELPDESK_LEASE

    reactor = MemoryReactorClock()
    reactor.advance(datetime(2026, 11, 24, 9, 0, tzinfo=timezone.utc).timestamp())
    options = tap.Options()
    options.parseOptions(["--db", str(tmp_path / "new.db"), "--flows", str(ROOT / "flows"),
                          "--prompts", str(ROOT / "prompts"), "--listen", "tcp:0:interface=127.0.0.1",
                          "--helpdesk-url", "https://helpdesk.test/callbacks"])
    top = tap.makeService(options, reactor)
    service = next(s for s in top if isinstance(s, HelpdeskService))
    assert service.interval == RESEND_INTERVAL < HELPDESK_LEASE
    store, _orders = tap.open_database(str(tmp_path / "new.db"))

    def lease_ends():
        row = store.db.execute("SELECT expires_at FROM leases WHERE name = 'helpdesk-resend'").fetchone()
        return datetime.fromisoformat(row[0]).timestamp() if row else None

    top.startService()
    try:
        assert lease_ends() == reactor.seconds() + HELPDESK_LEASE  # taken at start
        reactor.advance(RESEND_INTERVAL)
        assert lease_ends() == reactor.seconds() + HELPDESK_LEASE  # renewed at the next run
    finally:
        top.stopService()
    assert lease_ends() < reactor.seconds()  # given up
    store.close()


def _current_version(top):
    reload_service = next(s for s in top if isinstance(s, tap.ReloadOnHangup))
    return reload_service.registry.current("post_sale").version


def test_the_server_collects_young_objects_less_often(monkeypatch):
    thresholds = []
    monkeypatch.setattr(gc, "get_threshold", lambda: (700, 10, 10))  # Python's defaults
    monkeypatch.setattr(gc, "set_threshold", lambda *values: thresholds.append(values))
    monkeypatch.setattr(gc, "freeze", lambda: None)
    tap.GarbageCollectorTuning().startService()
    assert thresholds == [(tap.GC_YOUNG_THRESHOLD, 10, 10)] and tap.GC_YOUNG_THRESHOLD > 700


def test_what_the_server_built_at_start_is_kept_out_of_full_collections(monkeypatch):
    done = []
    monkeypatch.setattr(gc, "set_threshold", lambda *values: None)
    monkeypatch.setattr(gc, "collect", lambda: done.append("collect"))
    monkeypatch.setattr(gc, "freeze", lambda: done.append("freeze"))
    tap.GarbageCollectorTuning().startService()
    assert done == ["collect", "freeze"]  # start-up's garbage freed first, not kept


def test_a_flow_version_replaced_after_the_start_up_freeze_is_kept_not_stranded(tmp_path,
                                                                               monkeypatch):
    """The server freezes what it built at start, and a frozen object that
    becomes garbage in a cycle is never collected: the start-up version a
    reload replaces stays in the registry (calls in progress run on it),
    and nothing frozen becomes garbage."""
    monkeypatch.setattr(gc, "set_threshold", lambda *values: None)  # the test process's own
    flows = tmp_path / "flows"
    flows.mkdir()
    flow_file = flows / "post_sale.yaml"
    flow_file.write_text((ROOT / "flows" / "post_sale.yaml").read_text(encoding="utf-8"),
                         encoding="utf-8")
    options = tap.Options()
    options.parseOptions(["--db", str(tmp_path / "ivr.db"), "--flows", str(flows),
                          "--prompts", str(ROOT / "prompts"), "--listen", "tcp:0:interface=127.0.0.1"])
    top = tap.makeService(options, MemoryReactorClock())
    registry = next(s for s in top if isinstance(s, tap.ReloadOnHangup)).registry
    _forget_earlier_log_events(monkeypatch)
    gc.unfreeze()  # what other tests froze is not this server's
    top.startService()  # collects, then freezes
    try:
        first = registry.current("post_sale")
        flow_file.write_text(flow_file.read_text(encoding="utf-8") + "\n# edited\n",
                             encoding="utf-8")
        registry.reload()
        assert registry.current("post_sale").version != first.version
        assert registry.version("post_sale", first.version) is first
        del first
        gc.collect()
        gc.unfreeze()
        stranded = gc.collect()  # what was frozen and is now garbage
    finally:
        gc.unfreeze()
        top.stopService()
    assert stranded == 0


def _forget_earlier_log_events(monkeypatch):
    """Twisted keeps the last 65,536 log events until logging begins (never,
    in tests), some holding objects of earlier tests (a logger's source, a
    failure's frames): frozen with the server, they would become garbage
    as this test's own events push them out, whatever the server does."""
    from twisted.logger import globalLogBeginner

    kept = getattr(getattr(globalLogBeginner, "_initialBuffer", None), "_buffer", None)
    if kept is not None:
        monkeypatch.setattr(globalLogBeginner._initialBuffer, "_buffer",
                            collections.deque(maxlen=kept.maxlen))


def _site(tmp_path, flags=()):
    reactor = MemoryReactorClock()
    options = tap.Options()
    options.parseOptions(["--db", str(tmp_path / "ivr.db"), "--flows", str(ROOT / "flows"),
                          "--prompts", str(ROOT / "prompts"), *flags])
    tap.makeService(options, reactor).startService()
    [(_port, site, _backlog, _interface)] = reactor.tcpServers
    return site, reactor


def _exchange(site, raw: bytes) -> StringTransport:
    protocol = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 5000))
    transport = StringTransport()
    protocol.makeConnection(transport)
    protocol.dataReceived(raw)
    return transport


def test_a_chunked_body_past_the_limit_is_refused_without_a_temporary_file(tmp_path, monkeypatch):
    site, _reactor = _site(tmp_path)
    monkeypatch.setattr(tempfile, "TemporaryFile", lambda *a, **k: pytest.fail("body on disk"))
    chunk = b"x" * 40_000
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(2)) + b"0\r\n\r\n"
    answer = _exchange(site, b"POST /voice/post_sale HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                             b"Content-Type: application/x-www-form-urlencoded\r\n"
                             b"Transfer-Encoding: chunked\r\n\r\n" + body).value()
    assert answer.startswith(b"HTTP/1.1 413") and b"body larger than 65536 bytes" in answer


def test_the_site_answers_a_turn_with_its_length_not_in_chunks(tmp_path):
    site, reactor = _site(tmp_path)
    form = b"CallSid=CA" + b"0" * 31 + b"1&From=%2B33612345678"
    transport = _exchange(site, b"POST /voice/post_sale HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                b"Content-Type: application/x-www-form-urlencoded\r\n"
                                b"Content-Length: %d\r\n\r\n%s" % (len(form), form))
    assert transport.value() == b""  # answered once the turn is committed
    reactor.advance(0)
    head, _, body = transport.value().partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"chunked" not in head.lower()
    assert f"Content-Length: {len(body)}".encode() in head and body.endswith(b"</Response>")


@pytest.mark.parametrize("flags, expected", [([], 1), (["--sync-every-commit"], 2)])  # NORMAL, FULL
def test_the_disk_confirms_each_commit_only_when_asked(tmp_path, flags, expected):
    site, _reactor = _site(tmp_path, flags)
    store = site.resource.children[b"voice"].handler.store
    assert store.db.execute("PRAGMA synchronous").fetchone()[0] == expected
