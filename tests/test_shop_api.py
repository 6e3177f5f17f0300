"""The shop back-end: configuration, field mapping, HTTP failure modes and
the circuit breaker, in memory (StubTreq, scripted clients, Clock)."""

from __future__ import annotations

import json
import shutil
import textwrap
import xml.etree.ElementTree as ET
from datetime import datetime
from pathlib import Path
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import pytest
from treq.testing import StubTreq
from twisted.internet import defer, task
from twisted.internet import error as net
from twisted.logger import globalLogPublisher
from twisted.web.resource import Resource

from ivr.engine.actions import Lookup
from ivr.lookups.embedded import OrderLookups, order_dict
from ivr.lookups.fake_shop import DEFAULT_TOKEN, SECRET_ENV, FakeShop, Knobs, backend_config
from ivr.lookups.shops import HttpOrderLookups, ShopConfigError, load_config
from ivr.lookups.shops.config import config_from_text
from ivr.lookups.shops.mapping import MISSING, MappingError, PathError, parse_path, resolve
from ivr.phone import mask
from ivr.server.calls import CallHandler
from ivr.server.registry import FlowRegistry
from ivr.server.web import build_root
from ivr.store.sqlite.store import CallStore

ROOT = Path(__file__).parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "shops"
PARIS = ZoneInfo("Europe/Paris")
NOW = datetime(2026, 11, 24, 10, 0, tzinfo=PARIS)  # a Tuesday, the support line is open
ENV = {"SHOP_SECRET": "s3cret"}
CALLER = "+33612345678"
CA1, CA2 = "CA" + "0" * 31 + "1", "CA" + "0" * 31 + "2"  # Twilio-shaped CallSids


def config(text: str, env=ENV):
    return config_from_text("shop.yaml", textwrap.dedent(text), env)


def preset(name: str, extra: str = ""):
    head = f"preset: {name}\nbase_url: https://shop.example.com\nauth:\n  secret_env: SHOP_SECRET\n"
    return config(head + textwrap.dedent(extra))


def fixture(name: str):
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


class JsonShop(Resource):
    """Answers every GET with one fixed JSON body; remembers the requests."""

    isLeaf = True

    def __init__(self, body, code: int = 200, raw: bytes | None = None):
        super().__init__()
        self.body, self.code, self.raw = body, code, raw
        self.requests = []

    def render_GET(self, request):
        self.requests.append((request.uri.decode(), dict(request.requestHeaders.getAllRawHeaders())))
        request.setResponseCode(self.code)
        return self.raw if self.raw is not None else json.dumps(self.body).encode()


class Response:
    def __init__(self, code, body):
        self.code, self.body = code, body

    def content(self):
        return defer.succeed(self.body)


class ScriptedHttp:
    """A treq-like client whose answers are scripted: an exception to fail
    with, "hang" for a request that never answers, a Deferred to fire by
    hand, or (code, body)."""

    def __init__(self, *outcomes):
        self.outcomes, self.urls = list(outcomes), []

    def get(self, url, headers=None):
        self.urls.append(url)
        outcome = self.outcomes.pop(0) if self.outcomes else "hang"
        if isinstance(outcome, Exception):
            return defer.fail(outcome)
        if outcome == "hang":
            return defer.Deferred()
        if isinstance(outcome, defer.Deferred):
            return outcome
        code, body = outcome
        return defer.succeed(Response(code, body if isinstance(body, bytes) else json.dumps(body).encode()))


def fired(d: defer.Deferred, *stubs):
    """The result ``d`` fired with (after flushing ``stubs``)."""
    for stub in stubs:
        stub.flush()
    results = []
    d.addBoth(results.append)
    assert results, "the look-up did not answer"
    return results[0]


def by_number(number) -> Lookup:
    return Lookup("CA1:3", "order_by_number", {"number": number})


def by_phone(phone=CALLER) -> Lookup:
    return Lookup("CA1:3", "orders_by_phone", {"phone": phone})


def fake_shop_lookups(shape="shopify", knobs=None, token=DEFAULT_TOKEN, clock=None, extra=""):
    """HttpOrderLookups over the fake shop in memory: (lookups, stub, shop, clock)."""
    clock = clock or task.Clock()
    shop = FakeShop(shape, NOW.date(), token=DEFAULT_TOKEN if token is None else token,
                    knobs=knobs, clock=task.Clock())
    stub = StubTreq(shop)
    cfg = config_from_text("shop.yaml", backend_config(shape, "http://shop.test") + extra,
                           {SECRET_ENV: token})
    return HttpOrderLookups(cfg, clock, http=stub), stub, shop, clock


# --- Configuration --------------------------------------------------------------------


@pytest.mark.parametrize("name", ["shopify", "woocommerce", "prestashop"])
def test_each_preset_needs_only_the_base_url_and_the_secrets_variable(name):
    cfg = preset(name)
    assert cfg.base_url == "https://shop.example.com" and cfg.preset == name
    assert cfg.secret == "s3cret" and cfg.timeout == 3.0
    assert (cfg.failures, cfg.cooldown, cfg.recent_days) == (5, 30.0, 60)


def test_a_field_set_in_the_file_replaces_the_presets_field_and_keeps_the_others():
    cfg = preset("shopify", """\
        fields:
          tracking_number: fulfillments.0.tracking_number
        timeout: 2
        """)
    assert str(cfg.mapping.fields["tracking_number"].paths[0]) == "fulfillments.0.tracking_number"
    assert str(cfg.mapping.fields["carrier"].paths[0]) == "fulfillments.-1.tracking_company"
    assert cfg.timeout == 2.0


def test_every_problem_is_reported_with_file_line_and_column():
    with pytest.raises(ShopConfigError) as caught:
        config("""\
            base_url: shop.example.com
            token: abc123
            timeout: 12
            auth:
              secret_env: NOT_SET
            order_by_number:
              path: /orders/{id}
            orders_by_phone:
              path: /orders?phone={phone}
            fields:
              number: id
              ordered_on: created_at
              total: total
              status:
                path: state
                map: {shipped: shiped}
            """)
    assert str(caught.value).splitlines() == [
        "shop.yaml:1:11: error: base_url: expected an http:// or https:// URL, found "
        "'shop.example.com' [wrong-value]",
        "shop.yaml:2:1: error: token: unknown field 'token'; expected one of auth, base_url, breaker, "
        "fields, order_by_number, orders_by_phone, preset, recent_days, timeout; never put a secret in "
        "this file: export it in an environment variable and name that variable in auth.secret_env "
        "[unknown-field]",
        "shop.yaml:3:10: error: timeout: 12 s is too long: a look-up must answer well before the "
        "telephony provider gives up (15 s); use at most a few seconds [wrong-value]",
        "shop.yaml:5:15: error: auth.secret_env: the environment variable NOT_SET is not set (or "
        "empty): export it before starting the server [missing-secret]",
        "shop.yaml:7:9: error: order_by_number.path: unknown placeholder {id}; expected {number} "
        "[bad-template]",
        "shop.yaml:8:1: error: orders_by_phone: check_phone needs fields.phone to compare the orders' "
        "numbers with the caller's; map it, or set check_phone: false if this path only ever answers "
        "the caller's own orders [missing-field]",
        "shop.yaml:16:20: error: fields.status.map.shipped: unknown status 'shiped'; expected one of "
        "preparing, shipped, in_transit, out_for_delivery, delivered, delayed_carrier, "
        "delayed_warehouse, lost, cancelled, returned (or null to try the next rule) [unknown-status]",
    ]


def test_a_yaml_syntax_error_says_where():
    with pytest.raises(ShopConfigError, match=r"^shop.yaml:2:9: error: the list opened with '\[' here "
                                              r"is never closed"):
        config("base_url: https://x\nfields: [a\n")


def test_an_unknown_preset_and_a_bad_path_are_refused():
    with pytest.raises(ShopConfigError) as caught:
        config("""\
            preset: magento
            base_url: https://shop.example.com
            fields:
              tracking_number: fulfillments..tracking_number
            """)
    assert sorted(p.code for p in caught.value.problems) == ["bad-path"] + ["missing-field"] * 6 + [
        "unknown-preset"]
    assert "unknown preset 'magento'; expected one of prestashop, shopify, woocommerce" in str(caught.value)
    assert ("shop.yaml:4:20: error: fields.tracking_number.path: empty step in path "
            "'fulfillments..tracking_number'") in str(caught.value)


def test_load_config_reads_the_file_and_the_secret_from_the_environment(tmp_path, monkeypatch):
    path = tmp_path / "shop.yaml"
    path.write_text("preset: woocommerce\nbase_url: https://shop.example.com/\n"
                    "auth: {secret_env: WOO_KEYS}\n")
    monkeypatch.setenv("WOO_KEYS", "ck_1:cs_2")
    cfg = load_config(path)
    assert (cfg.base_url, cfg.secret, cfg.auth_scheme) == ("https://shop.example.com", "ck_1:cs_2", "basic")
    assert "ck_1" not in repr(cfg)


def test_a_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ShopConfigError, match=r"nope.yaml:1:1: error: cannot read the file"):
        load_config(tmp_path / "nope.yaml")


# --- Paths --------------------------------------------------------------------------------


def test_paths_follow_keys_indexes_the_last_element_stars_and_selectors():
    data = {"a": [{"k": "x", "v": 1}, {"k": "y", "v": 2}], "n": None}
    assert resolve(data, parse_path("a.-1.v")) == 2
    assert resolve(data, parse_path("a.*.v")) == [1, 2]
    assert resolve(data, parse_path("a[k=y].v")) == 2
    assert resolve(data, parse_path("n")) is None
    assert resolve(data, parse_path("a.5.v")) is MISSING
    assert resolve(data, parse_path("a[k=z].v")) is MISSING


@pytest.mark.parametrize("text", ["", "a..b", "a[k].b", "a.*.b.*"])
def test_malformed_paths_are_refused(text):
    with pytest.raises(PathError):
        parse_path(text)


# --- Each preset against a realistic answer of that platform --------------------------------

SHOPIFY_EXPECTED = [
    # number, status, carrier, tracking number, ordered_on, shipped_on, items
    ("1001", "preparing", None, None, "2026-11-23", None, 1),
    ("1002", "shipped", "colissimo", "6A12345678901", "2026-11-22", "2026-11-23", 3),
    # created 23:30 in New York is the next morning in Paris
    ("1003", "in_transit", "chronopost", "XY123456789FR", "2026-11-21", "2026-11-22", 2),
    ("1004", "out_for_delivery", "ups", "1Z999AA10123456784", "2026-11-19", "2026-11-21", 1),
    ("1005", "delivered", "dpd", "15501234567890", "2026-11-10", "2026-11-12", 1),
    ("1006", "delayed_carrier", "mondial_relay", "30553221", "2026-11-15", "2026-11-18", 2),
    ("1007", "lost", "GLS", "ZX0012345", "2026-11-04", "2026-11-06", 2),
    ("1008", "cancelled", None, None, "2026-11-18", None, 1),
    ("1009", "returned", "colissimo", "6A99887766554", "2026-10-25", "2026-10-27", 1),
    # two parcels: the last one speaks for the order
    ("1010", "in_transit", "chronopost", "XY222222222FR", "2026-11-16", "2026-11-21", 4),
    ("1011", "cancelled", None, None, "2026-11-14", None, 1),
]

WOOCOMMERCE_EXPECTED = [
    ("5001", "preparing", None, None, "2026-11-23", None, 1),
    ("5002", "preparing", None, None, "2026-11-23", None, 2),
    ("5003", "preparing", None, None, "2026-11-21", None, 2),
    ("5004", "shipped", "colissimo", "6A12345678901", "2026-11-20", "2026-11-22", 1),
    ("5005", "shipped", "Colis Privé", "CP123456789", "2026-11-19", "2026-11-20", 1),
    ("5006", "cancelled", None, None, "2026-11-18", None, 1),
    ("5007", "returned", None, None, "2026-10-25", None, 1),
    ("5008", "cancelled", None, None, "2026-11-22", None, 1),
]

PRESTASHOP_CARRIERS = """\
    fields:
      carrier:
        path: id_carrier
        map: {7: colissimo, 8: chronopost}
        unmapped: drop
    """

PRESTASHOP_EXPECTED = [
    ("21", "preparing", None, None, "2026-11-23", None, 2),
    ("22", "preparing", None, None, "2026-11-23", None, 2),
    ("23", "preparing", "colissimo", None, "2026-11-22", None, 3),
    ("24", "shipped", "colissimo", "6A12345678901", "2026-11-20", None, 2),
    ("25", "delivered", "chronopost", "XY123456789FR", "2026-11-10", None, 2),
    ("26", "cancelled", None, None, "2026-11-18", None, 2),
    ("27", "returned", "colissimo", "6A99887766554", "2026-10-25", None, 2),
    ("28", "cancelled", None, None, "2026-11-22", None, 2),
]


def _entries(name):
    data = fixture(name)
    return data["orders"] if isinstance(data, dict) else data


@pytest.mark.parametrize("name, file, extra, expected", [
    ("shopify", "shopify_orders.json", "", SHOPIFY_EXPECTED),
    ("woocommerce", "woocommerce_orders.json", "", WOOCOMMERCE_EXPECTED),
    ("prestashop", "prestashop_orders.json", PRESTASHOP_CARRIERS, PRESTASHOP_EXPECTED),
])
def test_each_preset_reads_its_platforms_orders_with_our_statuses(name, file, extra, expected):
    mapping = preset(name, extra).mapping
    got = []
    for entry in _entries(file):
        order = order_dict(mapping.order(entry, NOW), NOW)
        got.append((order["number"], order["status"], order["carrier"], order["tracking_number"],
                    order["ordered_on"], order["shipped_on"], order["items"]))
    assert got == expected


def test_shopify_orders_keep_their_totals_tracking_links_and_get_a_delivery_estimate():
    mapping = preset("shopify").mapping
    entry = _entries("shopify_orders.json")[2]
    order = order_dict(mapping.order(entry, NOW), NOW)
    assert order["total"] == "42.50" and order["currency"] == "EUR"
    assert order["carrier_name"] == "Chronopost"
    assert order["tracking_url"].endswith("XY123456789FR")
    # shipped Sunday 22, one business day with Chronopost: Monday 23 is past, so the next one
    assert order["expected_on"] == "2026-11-25"


def test_woocommerce_tracking_comes_from_the_shipment_tracking_meta():
    mapping = preset("woocommerce").mapping
    custom = order_dict(mapping.order(_entries("woocommerce_orders.json")[4], NOW), NOW)
    assert custom["tracking_url"].startswith("https://www.colisprive.com/")
    assert custom["carrier_name"] == "Colis Privé"


def test_an_unknown_status_is_a_mapping_error_naming_the_value_and_the_path():
    entry = dict(_entries("woocommerce_orders.json")[0], status="checkout-draft")
    with pytest.raises(MappingError, match=r"^unknown status 'checkout-draft' \(status\); expected one of "
                                            r"'cancelled', 'completed', 'failed', "):
        preset("woocommerce").mapping.order(entry, NOW)


def test_a_missing_required_field_is_a_mapping_error():
    entry = {k: v for k, v in _entries("shopify_orders.json")[0].items() if k != "created_at"}
    with pytest.raises(MappingError, match=r"^missing field ordered_on \(created_at\)$"):
        preset("shopify").mapping.order(entry, NOW)


def test_a_custom_mapping_needs_no_preset():
    cfg = config("""\
        base_url: http://orders.internal:8000
        order_by_number:
          path: /v1/orders/{number}
          orders: data
        orders_by_phone:
          path: /v1/orders?phone={phone_digits}&since={since}
          orders: data.items
        fields:
          number: ref
          phone: customer.tel
          status: {path: state, map: {NEW: preparing, SENT: in_transit, DONE: delivered}}
          ordered_on: {path: placed, date: "%d/%m/%Y"}
          delivered_on: {path: "events[type=delivered].at", date: timestamp}
          total: amount
          items: {path: lines.*.qty, sum: true}
        """)
    entry = {"ref": 777001, "state": "done", "placed": "20/11/2026", "amount": 12.5,
             "events": [{"type": "shipped", "at": 1795305600}, {"type": "delivered", "at": 1795478400}],
             "lines": [{"qty": 2}, {"qty": "3"}]}
    order = order_dict(cfg.mapping.order(entry, NOW), NOW)
    assert (order["number"], order["status"], order["ordered_on"], order["delivered_on"]) == \
        ("777001", "delivered", "2026-11-20", "2026-11-24")
    assert (order["items"], order["total"], order["currency"]) == (5, "12.50", "EUR")


# --- Over HTTP: answers ------------------------------------------------------------------------


def test_http_lookups_follow_the_protocol_and_send_the_auth_header():
    shop = JsonShop(fixture("shopify_orders.json"))
    lookups = HttpOrderLookups(preset("shopify"), task.Clock(), http=StubTreq(shop))
    assert isinstance(lookups, OrderLookups)
    answer = fired(lookups.perform(by_number("1003"), NOW), lookups.http)
    assert answer["status"] == "found" and answer["data"]["order"]["status"] == "in_transit"
    [(uri, headers)] = shop.requests
    assert uri == "/admin/api/2024-10/orders.json?name=%231003&status=any"
    assert headers[b"X-Shopify-Access-Token"] == [b"s3cret"]


def test_an_answer_listing_other_orders_is_not_found():
    # A fuzzy search must never read another customer's order out.
    shop = JsonShop(fixture("shopify_orders.json"))
    lookups = HttpOrderLookups(preset("shopify"), task.Clock(), http=StubTreq(shop))
    answer = fired(lookups.perform(by_number("100"), NOW), lookups.http)
    assert answer == {"status": "not_found", "data": {"number": "100"}, "error": None}


def test_a_404_on_the_order_path_is_not_found_not_an_error():
    shop = JsonShop({"code": "woocommerce_rest_shop_order_invalid_id", "message": "Invalid ID.",
                     "data": {"status": 404}}, code=404)
    lookups = HttpOrderLookups(preset("woocommerce"), task.Clock(), http=StubTreq(shop))
    answer = fired(lookups.perform(by_number("5999"), NOW), lookups.http)
    assert answer == {"status": "not_found", "data": {"number": "5999"}, "error": None}
    assert lookups.breaker.consecutive == 0
    [(uri, headers)] = shop.requests
    assert uri == "/wp-json/wc/v3/orders/5999"
    assert headers[b"Authorization"] == [b"Basic czNjcmV0Og=="]  # "s3cret:"


def test_prestashop_answers_an_empty_list_when_nothing_matches():
    lookups = HttpOrderLookups(preset("prestashop"), task.Clock(), http=StubTreq(JsonShop([])))
    assert fired(lookups.perform(by_number("42"), NOW), lookups.http)["status"] == "not_found"


@pytest.mark.parametrize("shape", ["shopify", "woocommerce", "prestashop"])
def test_the_callers_orders_are_found_through_their_phone_newest_first(shape):
    lookups, stub, shop, _clock = fake_shop_lookups(shape)
    answer = fired(lookups.perform(by_phone("+33698765432"), NOW), stub)
    assert answer["status"] == "many" and answer["data"]["count"] == 3
    assert [o["number"] for o in answer["data"]["orders"]] == ["100310", "100311", "100312"]
    one = fired(lookups.perform(by_phone(), NOW), stub)
    assert one["status"] == "found" and one["data"]["order"]["number"] == "100234"


def test_orders_older_than_the_recent_window_are_not_read_out():
    lookups, stub, _shop, _clock = fake_shop_lookups("shopify")
    answer = fired(lookups.perform(by_phone("+33639980015"), NOW), stub)
    assert answer == {"status": "not_found", "data": {"orders": [], "count": 0}, "error": None}


def test_orders_carrying_another_phone_number_are_dropped():
    entries = _entries("woocommerce_orders.json")
    other = dict(entries[3], billing=dict(entries[3]["billing"], phone="06 98 76 54 32"))
    shop = JsonShop([entries[1], other])
    lookups = HttpOrderLookups(preset("woocommerce"), task.Clock(), http=StubTreq(shop))
    answer = fired(lookups.perform(by_phone(), NOW), lookups.http)
    assert answer["status"] == "found" and answer["data"]["order"]["number"] == "5002"
    assert shop.requests[0][0] == "/wp-json/wc/v3/orders?search=%2B33612345678&after=2026-09-25T00:00:00&per_page=20"


def test_a_withheld_number_asks_the_shop_nothing():
    lookups, stub, shop, _clock = fake_shop_lookups("shopify")
    answer = fired(lookups.perform(by_phone("anonymous"), NOW), stub)
    assert answer["data"]["reason"] == "no_caller_id" and shop.requests == 0


def test_an_unknown_status_in_the_answer_takes_the_error_branch_with_its_cause():
    entry = dict(_entries("woocommerce_orders.json")[0], status="wc-awaiting-pickup")
    lookups = HttpOrderLookups(preset("woocommerce"), task.Clock(), http=StubTreq(JsonShop(entry)))
    answer = fired(lookups.perform(by_number("5001"), NOW), lookups.http)
    assert answer["status"] == "error" and answer["data"] == {}
    assert answer["error"].startswith("unknown status 'wc-awaiting-pickup' (status)")
    # the shop is up: its data is odd, the circuit stays closed
    assert lookups.breaker.consecutive == 0


# --- Over HTTP: failures ----------------------------------------------------------------------


@pytest.mark.parametrize("code, body, cause", [
    (401, {"errors": "[API] Invalid API key"}, "HTTP 401: the shop refused our credentials (check SHOP_SECRET)"),
    (403, {"errors": "Forbidden"}, "HTTP 403: the shop refused our credentials (check SHOP_SECRET)"),
    (404, {"errors": "Not Found"}, "HTTP 404"),
    (429, {"errors": "Exceeded 2 calls per second"}, "HTTP 429"),
    (500, {"errors": "Internal Server Error"}, "HTTP 500"),
    (503, b"<html>Service Unavailable</html>", "HTTP 503"),
    (200, b"{\"orders\": [{\"id\": 1", "malformed JSON from the shop: Expecting ',' delimiter: "
                                        "line 1 column 21 (char 20)"),
    (200, {"customers": []}, "unexpected answer: no orders in it"),
])
def test_each_http_failure_is_the_error_branch_with_its_cause_and_is_not_retried(code, body, cause):
    http = ScriptedHttp((code, body))
    lookups = HttpOrderLookups(preset("shopify"), task.Clock(), http=http)
    # by phone: a 404 there is a broken path, not an unknown order
    lookups.config = preset("shopify", "orders_by_phone: {path: '/orders.json?phone={phone}', find: null}")
    answer = fired(lookups.perform(by_phone(), NOW))
    assert answer == {"status": "error", "data": {}, "error": cause}
    assert len(http.urls) == 1


def test_a_refused_connection_is_retried_once_then_is_the_error_branch():
    http = ScriptedHttp(net.ConnectionRefusedError(), net.ConnectionRefusedError())
    lookups = HttpOrderLookups(preset("shopify"), task.Clock(), http=http)
    answer = fired(lookups.perform(by_number("1003"), NOW))
    assert answer["error"] == "connection refused" and len(http.urls) == 2


def test_a_connection_error_then_an_answer_finds_the_order():
    http = ScriptedHttp(net.DNSLookupError("shop.example.com"), (200, fixture("shopify_orders.json")))
    lookups = HttpOrderLookups(preset("shopify"), task.Clock(), http=http)
    answer = fired(lookups.perform(by_number("1003"), NOW))
    assert answer["status"] == "found" and len(http.urls) == 2


def test_a_connect_timeout_is_not_retried():
    http = ScriptedHttp(net.TCPTimedOutError())
    lookups = HttpOrderLookups(preset("shopify"), task.Clock(), http=http)
    answer = fired(lookups.perform(by_number("1003"), NOW))
    assert answer["error"] == "connect timeout (TCPTimedOutError)" and len(http.urls) == 1


def test_a_slow_shop_times_out_after_3_seconds_by_default_and_is_not_retried():
    clock = task.Clock()
    http = ScriptedHttp("hang")
    lookups = HttpOrderLookups(preset("shopify"), clock, http=http)
    d = lookups.perform(by_number("1003"), NOW)
    clock.advance(2.9)
    assert not d.called
    clock.advance(0.1)
    assert fired(d) == {"status": "error", "data": {}, "error": "timeout after 3 s"}
    assert len(http.urls) == 1
    assert clock.getDelayedCalls() == []


def test_a_slow_fake_shop_over_stub_treq_times_out_on_our_clock():
    lookups, stub, shop, clock = fake_shop_lookups("woocommerce", knobs=Knobs(delay=10))
    d = lookups.perform(by_number("100234"), NOW)
    stub.flush()
    clock.advance(3)
    assert fired(d, stub)["error"] == "timeout after 3 s"
    assert shop.requests == 1
    assert clock.getDelayedCalls() == []


def test_the_callers_own_timeout_cancels_the_request_and_counts_as_a_failure():
    clock = task.Clock()
    lookups = HttpOrderLookups(preset("shopify"), clock, http=ScriptedHttp("hang"))
    d = lookups.perform(by_number("1003"), NOW)
    d.cancel()
    assert isinstance(fired(d).value, defer.CancelledError)
    assert lookups.breaker.consecutive == 1
    assert clock.getDelayedCalls() == []


def test_a_look_up_the_shop_does_not_serve_is_an_error_without_a_request():
    http = ScriptedHttp()
    lookups = HttpOrderLookups(preset("shopify"), task.Clock(), http=http)
    answer = fired(lookups.perform(Lookup("r", "order_by_email", {}), NOW))
    assert answer["status"] == "error" and "order_by_email" in answer["error"] and http.urls == []


# --- The circuit breaker ---------------------------------------------------------------------------


def dead_shop(clock, failures=5):
    http = ScriptedHttp(*[net.ConnectionRefusedError()] * (2 * failures))
    cfg = preset("shopify", f"breaker: {{failures: {failures}, cooldown: 30}}")
    return HttpOrderLookups(cfg, clock, http=http), http


def test_the_circuit_opens_after_5_failures_and_then_answers_at_once_without_asking():
    clock = task.Clock()
    lookups, http = dead_shop(clock)
    for _ in range(5):
        assert fired(lookups.perform(by_number("1003"), NOW))["error"] == "connection refused"
    asked = len(http.urls)
    answer = fired(lookups.perform(by_number("1003"), NOW))
    assert answer == {"status": "error", "data": {}, "error": "circuit open"}
    assert len(http.urls) == asked == 10
    assert clock.getDelayedCalls() == []


def test_after_the_cooldown_one_trial_goes_through_and_success_closes_the_circuit():
    clock = task.Clock()
    lookups, http = dead_shop(clock)
    for _ in range(5):
        fired(lookups.perform(by_number("1003"), NOW))
    clock.advance(29)
    assert fired(lookups.perform(by_number("1003"), NOW))["error"] == "circuit open"
    clock.advance(1)
    pending = defer.Deferred()
    http.outcomes = [pending, (200, fixture("shopify_orders.json"))]
    trial = lookups.perform(by_number("1003"), NOW)
    # while the trial is out, everyone else still gets an answer at once
    assert fired(lookups.perform(by_number("1003"), NOW))["error"] == "circuit open"
    pending.callback(Response(200, json.dumps(fixture("shopify_orders.json")).encode()))
    assert fired(trial)["status"] == "found"
    assert lookups.breaker.state == "closed"
    assert fired(lookups.perform(by_number("1003"), NOW))["status"] == "found"
    assert len(http.urls) == 12
    assert clock.getDelayedCalls() == []


def test_a_failed_trial_opens_the_circuit_for_another_cooldown():
    clock = task.Clock()
    lookups, http = dead_shop(clock, failures=2)
    for _ in range(2):
        fired(lookups.perform(by_number("1003"), NOW))
    clock.advance(30)
    http.outcomes = [net.ConnectionRefusedError(), net.ConnectionRefusedError()]
    assert fired(lookups.perform(by_number("1003"), NOW))["error"] == "connection refused"
    assert lookups.breaker.state == "open"
    clock.advance(29)
    assert fired(lookups.perform(by_number("1003"), NOW))["error"] == "circuit open"
    assert clock.getDelayedCalls() == []


def test_timeouts_count_towards_opening_the_circuit():
    clock = task.Clock()
    cfg = preset("shopify", "breaker: {failures: 2}")
    lookups = HttpOrderLookups(cfg, clock, http=ScriptedHttp("hang", "hang", "hang"))
    for _ in range(2):
        d = lookups.perform(by_number("1003"), NOW)
        clock.advance(3)
        assert fired(d)["error"] == "timeout after 3 s"
    assert fired(lookups.perform(by_number("1003"), NOW))["error"] == "circuit open"
    assert clock.getDelayedCalls() == []


# --- Logs ------------------------------------------------------------------------------------------


def test_failures_are_logged_without_the_callers_number():
    events = []
    globalLogPublisher.addObserver(events.append)
    try:
        lookups, _http = dead_shop(task.Clock(), failures=1)
        fired(lookups.perform(by_phone(), NOW))
        fired(lookups.perform(by_phone(), NOW))
    finally:
        globalLogPublisher.removeObserver(events.append)
    from twisted.logger import formatEvent
    text = "\n".join(formatEvent(e) for e in events)
    assert "shop look-up orders_by_phone for caller +*********78 failed: connection refused" in text
    assert "circuit open after 1 failures in a row" in text
    assert "12345678" not in text and "612345678" not in text


def test_mask_keeps_the_last_two_digits():
    assert mask("+33612345678") == "+*********78"
    assert mask("") == ""


# --- The demo flow end to end, in memory -----------------------------------------------------------


class Ivr:
    """The webhook server over the demo flow, with the given look-ups."""

    def __init__(self, tmp_path, clock, lookups, *stubs):
        flows = tmp_path / "flows"
        flows.mkdir()
        shutil.copy(ROOT / "flows" / "post_sale.yaml", flows)
        self.store = CallStore.open(tmp_path / "ivr.db")
        registry = FlowRegistry(flows, ROOT / "prompts", self.store)
        registry.reload_if_changed()
        self.clock = clock
        self.handler = CallHandler(registry, self.store, lookups.perform, clock)
        self.web = StubTreq(build_root(self.handler, registry))
        self.stubs = (self.web,) + stubs

    def turn(self, sid, turn, **params) -> defer.Deferred:
        path = "/voice/post_sale" + (f"?turn={turn}" if turn else "")
        return self.post(path, sid, **params)

    def post(self, path, sid, **params) -> defer.Deferred:
        body = urlencode({"CallSid": sid, "From": CALLER, "To": "+33100000000", **params})
        d = self.web.request("POST", "http://ivr.test" + path, data=body.encode(),
                             headers={"Content-Type": "application/x-www-form-urlencoded"})
        self.settle()
        return d

    def settle(self):
        for _ in range(5):
            for stub in self.stubs:
                stub.flush()

    def heard(self, d, sid=CA1):
        """What the caller heard, and the last TwiML document: a document
        that only speaks and redirects (the caller on hold) is followed,
        as the provider would."""
        said = []
        while True:
            self.settle()
            response = fired(d)
            root = ET.fromstring(fired(response.content(), self.web))
            said += ["".join(e.itertext()) for e in root.iter("Say")]
            redirect = root.find("Redirect")
            if redirect is None or root.find("Gather") is not None:
                return " ".join(said), root
            d = self.post(redirect.text, sid)

    def detail(self, sid, node):
        return [(e["input"], e["detail"]) for e in self.store.node_events(sid) if e["node"] == node]


def test_the_demo_flow_tracks_an_order_from_the_shop_api(tmp_path):
    clock = task.Clock()
    clock.advance(NOW.timestamp())
    lookups, shop_stub, _shop, _ = fake_shop_lookups("shopify", clock=clock)
    ivr = Ivr(tmp_path, clock, lookups, shop_stub)
    said, _ = ivr.heard(ivr.turn(CA1, 0))  # one order on its way: answered first
    assert "votre colis est en route avec Colissimo" in said
    assert "Il devrait vous être livré demain" in said  # the date the shop's dates give
    assert ivr.detail(CA1, "find_recent") == [("found", None)]
    assert clock.getDelayedCalls() == []


def test_a_dead_shop_sends_the_caller_to_a_human_within_the_timeout_and_opens_the_circuit(tmp_path):
    clock = task.Clock()
    clock.advance(NOW.timestamp())
    cfg = preset("shopify", "breaker: {failures: 2, cooldown: 30}")
    lookups = HttpOrderLookups(cfg, clock, http=ScriptedHttp())   # every request hangs
    ivr = Ivr(tmp_path, clock, lookups)
    pending = ivr.turn(CA1, 0)   # the greeting's look-up of the caller's orders
    clock.advance(3)   # under the server's own 4 s look-up timeout
    said, _ = ivr.heard(pending)
    assert "Je peux vous renseigner" in said  # no answer first: the welcome and the menu
    assert ivr.detail(CA1, "find_recent") == [("error", "timeout after 3 s")]
    pending = ivr.turn(CA1, 1, Digits="1")
    clock.advance(3)
    said, _ = ivr.heard(pending)
    assert "numéro de commande" in said
    assert ivr.detail(CA1, "find_by_phone") == [("error", "timeout after 3 s")]
    assert lookups.breaker.state == "open"
    said, _ = ivr.heard(ivr.turn(CA1, 2, Digits="100234"))
    assert "Vous avez tapé 1 0 0 2 3 4" in said
    said, root = ivr.heard(ivr.turn(CA1, 3, Digits="1"))   # "yes": the circuit answers at once
    assert root.find("Enqueue").text == "post-sale"
    assert ivr.detail(CA1, "find_by_number") == [("error", "circuit open")]
    # The next caller is not kept waiting: the look-up answers at once.
    ivr.heard(ivr.turn(CA2, 0), CA2)
    assert ivr.detail(CA2, "find_recent") == [("error", "circuit open")]
    assert clock.getDelayedCalls() == []


# --- ivr-serve --orders ----------------------------------------------------------------------------


def test_serve_refuses_an_orders_file_with_problems_listing_them_all(tmp_path):
    from twisted.python.usage import UsageError

    from ivr.server import tap

    path = tmp_path / "shop.yaml"
    path.write_text("preset: shopify\nbase_url: ftp://shop.example.com\n")
    with pytest.raises(UsageError) as caught:
        tap.Options().parseOptions(["--orders", str(path)])
    assert str(caught.value).splitlines() == [
        f"--orders {path} is not valid:",
        f"{path}:1:9: error: auth: missing field 'secret_env' (from preset 'shopify') [missing-field]",
        f"{path}:2:11: error: base_url: expected an http:// or https:// URL, found "
        "'ftp://shop.example.com' [wrong-value]",
    ]


def test_serve_with_orders_looks_orders_up_in_the_shop(tmp_path, monkeypatch):
    from twisted.internet.testing import MemoryReactorClock

    from ivr.lookups.shops import OrderLookupsService
    from ivr.server import tap

    path = tmp_path / "shop.yaml"
    path.write_text(backend_config("woocommerce", "http://127.0.0.1:8090"))
    monkeypatch.setenv(SECRET_ENV, "ck_1:cs_2")
    options = tap.Options()
    options.parseOptions(["--db", str(tmp_path / "ivr.db"), "--flows", str(ROOT / "flows"),
                          "--prompts", str(ROOT / "prompts"), "--orders", str(path),
                          "--listen", "tcp:0:interface=127.0.0.1"])
    top = tap.makeService(options, MemoryReactorClock())
    [service] = [s for s in top if isinstance(s, OrderLookupsService)]
    assert service.lookups.config.base_url == "http://127.0.0.1:8090"
    assert service.lookups.headers == {"Authorization": "Basic Y2tfMTpjc18y"}
    top.startService()
    top.stopService()


def test_checking_the_callers_phone_needs_the_phone_field():
    with pytest.raises(ShopConfigError, match=r"shop.yaml:4:1: error: orders_by_phone: check_phone "
                                              r"needs fields.phone"):
        config("""\
            base_url: https://orders.example.com
            order_by_number:
              path: /orders/{number}
            orders_by_phone:
              path: /orders?phone={phone}
            fields: {number: id, status: {path: s, map: {x: shipped}}, ordered_on: d, total: t}
            """)
