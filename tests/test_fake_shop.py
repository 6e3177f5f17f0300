"""``ivr-fake-shop``: the demo orders in each platform's shape, its knobs,
and the whole chain over real sockets (fake shop and server in subprocesses)."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from treq.testing import StubTreq
from twisted.internet import task

from ivr.engine.actions import Lookup
from ivr.lookups.demo_orders import DEMO_CALLERS, DEMO_ORDERS, UNKNOWN_ORDER
from ivr.lookups.fake_shop import DEFAULT_TOKEN, SECRET_ENV, FakeShop, Knobs, backend_config, main
from ivr.lookups.shops import HttpOrderLookups, load_config
from ivr.lookups.shops.config import config_from_text
from ivr.sim.remote import RemoteCall

ROOT = Path(__file__).parent.parent
NOW = datetime(2026, 11, 24, 10, 0, tzinfo=ZoneInfo("Europe/Paris"))

#: What each platform can tell of each demo order's status.
SEEN_AS = {
    "shopify": {"delayed_warehouse": "preparing"},
    "woocommerce": {"in_transit": "shipped", "out_for_delivery": "shipped", "delivered": "shipped",
                    "delayed_carrier": "shipped", "lost": "shipped", "delayed_warehouse": "preparing"},
    "prestashop": {"in_transit": "shipped", "out_for_delivery": "shipped", "delayed_carrier": "shipped",
                   "lost": "shipped", "delayed_warehouse": "preparing"},
}


def lookups_for(shape, knobs=None, token=DEFAULT_TOKEN, shop_clock=None):
    shop = FakeShop(shape, NOW.date(), knobs=knobs, clock=shop_clock or task.Clock())
    stub = StubTreq(shop)
    cfg = config_from_text("shop.yaml", backend_config(shape, "http://shop.test"), {SECRET_ENV: token})
    return HttpOrderLookups(cfg, task.Clock(), http=stub), stub, shop


def answer(lookups, stub, what, **args):
    results = []
    lookups.perform(Lookup("r", what, args), NOW).addBoth(results.append)
    stub.flush()
    assert results, "no answer"
    return results[0]


@pytest.mark.parametrize("shape", ["shopify", "woocommerce", "prestashop"])
def test_every_demo_order_comes_back_with_the_status_its_platform_can_tell(shape):
    lookups, stub, _shop = lookups_for(shape)
    for status, number in DEMO_ORDERS.items():
        got = answer(lookups, stub, "order_by_number", number=number)
        assert got["status"] == "found", (number, got)
        assert got["data"]["order"]["status"] == SEEN_AS[shape].get(status, status), number
    assert answer(lookups, stub, "order_by_number", number=UNKNOWN_ORDER)["status"] == "not_found"


@pytest.mark.parametrize("shape", ["shopify", "woocommerce", "prestashop"])
def test_every_demo_caller_finds_as_many_orders_as_in_the_embedded_store(shape):
    lookups, stub, _shop = lookups_for(shape)
    counts = {key: answer(lookups, stub, "orders_by_phone", phone=phone)["data"]["count"]
              for key, phone in DEMO_CALLERS.items()}
    assert counts == {"one_order": 1, "several_orders": 3, "no_order": 0, "only_old_orders": 0,
                      "delayed_carrier": 1, "delayed_warehouse": 1, "lost": 1, "cancelled": 1,
                      "english_one_order": 1, "english_several_orders": 2, "english_no_order": 0}


@pytest.mark.parametrize("shape", ["shopify", "woocommerce", "prestashop"])
def test_a_wrong_secret_gets_401(shape):
    lookups, stub, _shop = lookups_for(shape, token="not-the-token")
    got = answer(lookups, stub, "order_by_number", number="100234")
    assert got["error"] == f"HTTP 401: the shop refused our credentials (check {SECRET_ENV})"


def test_fail_rate_answers_with_the_chosen_status():
    lookups, stub, shop = lookups_for("shopify", Knobs(fail_rate=1.0, status=503))
    assert answer(lookups, stub, "order_by_number", number="100234")["error"] == "HTTP 503"
    assert shop.requests == 1


def test_a_fail_rate_fails_about_that_share_of_requests():
    shop = FakeShop("woocommerce", NOW.date(), knobs=Knobs(fail_rate=0.25, seed=7), clock=task.Clock())
    stub = StubTreq(shop)
    headers = {"Authorization": "Basic ZGVtby1zaG9wLXRva2VuOg=="}
    codes = []
    for _ in range(200):
        d = stub.get("http://shop.test/wp-json/wc/v3/orders/100234", headers=headers)
        stub.flush()
        d.addCallback(lambda r: codes.append(r.code))
    assert 30 <= codes.count(500) <= 70 and codes.count(200) == 200 - codes.count(500)


def test_garbled_answers_are_malformed_json():
    lookups, stub, _shop = lookups_for("prestashop", Knobs(garble_rate=1.0))
    assert answer(lookups, stub, "order_by_number", number="100234")["error"].startswith(
        "malformed JSON from the shop: ")


def test_a_delayed_answer_arrives_after_the_delay_on_the_shops_clock():
    shop_clock = task.Clock()
    lookups, stub, _shop = lookups_for("shopify", Knobs(delay=2), shop_clock=shop_clock)
    results = []
    lookups.perform(Lookup("r", "order_by_number", {"number": "100234"}), NOW).addBoth(results.append)
    stub.flush()
    assert results == []
    shop_clock.advance(2)
    stub.flush()
    assert results[0]["status"] == "found"
    assert shop_clock.getDelayedCalls() == [] and lookups.clock.getDelayedCalls() == []


def test_the_printed_configuration_loads(tmp_path):
    path = tmp_path / "shop.yaml"
    path.write_text(backend_config("prestashop", "http://127.0.0.1:8090"))
    cfg = load_config(path, {SECRET_ENV: "key"})
    assert (cfg.preset, cfg.base_url) == ("prestashop", "http://127.0.0.1:8090")
    assert cfg.mapping.fields["carrier"].map == {"3": "colissimo", "4": "chronopost", "5": "dpd",
                                                 "6": "ups", "7": "mondial_relay"}


def test_an_unknown_shape_is_refused():
    with pytest.raises(ValueError, match="unknown shape 'magento'"):
        FakeShop("magento", NOW.date(), clock=task.Clock())


def test_help_shows_an_example():
    result = CliRunner().invoke(main, ["--help"], catch_exceptions=False)
    assert result.exit_code == 0
    assert "Example: ivr-fake-shop --shape shopify" in result.output


def test_a_rate_outside_0_to_1_is_a_usage_error():
    result = CliRunner().invoke(main, ["--fail-rate", "2"])
    assert result.exit_code == 2 and "--fail-rate" in result.output


# --- Real sockets: the fake shop and the server in subprocesses ----------------------------------


def _stop(process):
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def _start_fake_shop(workdir: Path):
    config = workdir / "shop.yaml"
    out = open(workdir / "shop.log", "wb")
    process = subprocess.Popen(
        [sys.executable, "-c", "from ivr.lookups.fake_shop import main; main()", "--port", "0",
         "--today", "2026-11-24", "--write-config", str(config)],
        cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    out.close()
    for _ in range(100):  # readiness, bounded to about 10 s
        if config.exists() and config.read_text().endswith("\n"):
            return process, config
        if process.poll() is not None:
            break
        time.sleep(0.1)
    _stop(process)
    pytest.fail(f"the fake shop did not start:\n{(workdir / 'shop.log').read_text()}")


def test_the_server_tracks_an_order_through_the_fake_shop_over_real_sockets(tmp_path, monkeypatch):
    from test_remote import DASHBOARD_TOKEN, start_server, stop  # the ivr-serve of ivr-sim --url

    shop, config = _start_fake_shop(tmp_path)
    try:
        monkeypatch.setenv(SECRET_ENV, DEFAULT_TOKEN)
        server, url, _db = start_server(tmp_path, "--orders", str(config))
        try:
            call = RemoteCall(url, "post_sale", caller="+33612345678", at=NOW,
                              dashboard_token=DASHBOARD_TOKEN)
            turn = call.start()   # one order on its way: answered before the menu
            assert "votre colis est en route avec Colissimo" in turn.heard
            call.hangup()

            _stop(shop)   # the shop goes down: the menu, then the number is asked for
            call = RemoteCall(url, "post_sale", caller="+33612345678", at=NOW,
                              dashboard_token=DASHBOARD_TOKEN)
            turn = call.start()
            assert "Je peux vous renseigner" in turn.heard
            turn = call.press("1")
            assert "numéro de commande" in turn.heard
            [event] = [e for e in turn.node_events if e["node"] == "find_by_phone"]
            assert (event["input"], event["detail"]) == ("error", "connection refused")
            call.hangup()
        finally:
            stop(server)
    finally:
        if shop.poll() is None:
            _stop(shop)
