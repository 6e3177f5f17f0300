"""``ivr-fake-shop``: a shop API serving the demo orders, to try the shop
back-end without a shop, and to test it.

It answers the requests of one of the presets (``--shape shopify``,
``woocommerce`` or ``prestashop``) with the demo orders
(:mod:`ivr.lookups.demo_orders`) written the way that platform writes them,
checks the auth header the preset sends, and can misbehave on demand:
answer late (``--delay``), fail (``--fail-rate``, ``--status``) or send
broken JSON (``--garble-rate``).  On start it prints the back-end
configuration that talks to it.

Each platform has fewer order states than we do, so some demo orders
come back less precise than the embedded store tells them (WooCommerce
has no "in transit": a shipped order is ``completed``).  That is what a
real shop of that kind would answer too.
"""

from __future__ import annotations

import base64
import json
import random
import sys
from dataclasses import dataclass
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

import click
import phonenumbers
from twisted.internet import defer
from twisted.logger import Logger
from twisted.web import server
from twisted.web.resource import Resource

from ivr.lookups.demo_orders import DEMO_CALLERS, demo_orders
from ivr.lookups.orders import Order
from ivr.lookups.shops.presets import SHOPIFY_API

SHAPES = ("shopify", "woocommerce", "prestashop")
DEFAULT_TOKEN = "demo-shop-token"
SECRET_ENV = "IVR_SHOP_SECRET"
PARIS = ZoneInfo("Europe/Paris")

#: The carrier ids of the fake PrestaShop (each shop numbers its own).
PRESTASHOP_CARRIERS = {"colissimo": 3, "chronopost": 4, "dpd": 5, "ups": 6, "mondial_relay": 7}

_SHOPIFY_CARRIERS = {"colissimo": "Colissimo", "chronopost": "Chronopost", "dpd": "DPD",
                     "ups": "UPS", "mondial_relay": "Mondial Relay"}
_SHOPIFY_SHIPMENT = {"shipped": "confirmed", "in_transit": "in_transit",
                     "out_for_delivery": "out_for_delivery", "delivered": "delivered",
                     "delayed_carrier": "attempted_delivery", "lost": "failure",
                     "returned": "delivered"}
_WOO_STATUS = {"preparing": "processing", "delayed_warehouse": "on-hold", "cancelled": "cancelled",
               "returned": "refunded"}
_PRESTASHOP_STATE = {"preparing": 3, "shipped": 4, "in_transit": 4, "out_for_delivery": 4,
                     "delayed_carrier": 4, "lost": 4, "delivered": 5, "cancelled": 6,
                     "returned": 7, "delayed_warehouse": 9}

log = Logger()


# --- The demo orders in each platform's shape -----------------------------------------


def _customer_id(phone: str) -> int:
    return 7_001_000 + sorted(DEMO_CALLERS.values()).index(phone)


def _moment(day: date | None, hour: int, minute: int = 0) -> datetime | None:
    return datetime.combine(day, time(hour, minute), PARIS) if day else None


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _national(phone: str) -> str:
    number = phonenumbers.parse(phone, None)
    return "".join(c for c in phonenumbers.format_number(
        number, phonenumbers.PhoneNumberFormat.NATIONAL) if c.isdigit())


def _line_items(order: Order, first_id: int) -> list[dict]:
    each = order.total / order.items
    return [{"id": first_id, "title": "Article de démonstration", "name": "Article de démonstration",
             "sku": f"DEMO-{order.number}", "quantity": order.items, "price": f"{each:.2f}"}]


def shopify_order(order: Order) -> dict:
    """``order`` as the Shopify Admin REST API writes it."""
    n = int(order.number)
    ordered = _moment(order.ordered_on, 10, 15)
    fulfillments = []
    if order.shipped_on:
        fulfillments.append({
            "id": 4_100_000_000 + n, "order_id": 5_100_000_000 + n, "status": "success",
            "created_at": _iso(_moment(order.shipped_on, 16, 30)), "service": "manual",
            "updated_at": _iso(_moment(order.delivered_on or order.shipped_on, 18)),
            "tracking_company": _SHOPIFY_CARRIERS[order.carrier],
            "tracking_number": order.tracking_number, "tracking_numbers": [order.tracking_number],
            "tracking_url": order.tracking_url, "tracking_urls": [order.tracking_url],
            "shipment_status": _SHOPIFY_SHIPMENT.get(order.status), "location_id": 655441491,
            "name": f"#{order.number}.1",
        })
    cancelled = order.status == "cancelled"
    return {
        "id": 5_100_000_000 + n, "admin_graphql_api_id": f"gid://shopify/Order/{5_100_000_000 + n}",
        "name": f"#{order.number}", "order_number": n, "number": n - 1000,
        "email": f"client{order.number}@example.com", "phone": order.phone,
        "created_at": _iso(ordered), "updated_at": _iso(ordered), "processed_at": _iso(ordered),
        "cancelled_at": _iso(_moment(order.ordered_on, 11)) if cancelled else None,
        "cancel_reason": "customer" if cancelled else None, "closed_at": None,
        "currency": order.currency, "presentment_currency": order.currency,
        "financial_status": "refunded" if order.status == "returned" else (
            "voided" if cancelled else "paid"),
        "fulfillment_status": "fulfilled" if order.shipped_on else None,
        "total_price": str(order.total), "subtotal_price": str(order.total), "total_tax": "0.00",
        "line_items": _line_items(order, 1_200_000_000 + n),
        "customer": {"id": _customer_id(order.phone), "email": f"client{order.number}@example.com",
                     "phone": order.phone, "first_name": "Camille", "last_name": "Martin"},
        "billing_address": {"first_name": "Camille", "last_name": "Martin", "phone": None,
                            "city": "Lyon", "country_code": "FR"},
        "fulfillments": fulfillments,
    }


def woocommerce_order(order: Order) -> dict:
    """``order`` as the WooCommerce REST API v3 writes it, with the
    Shipment Tracking extension's order meta."""
    n = int(order.number)
    ordered = _moment(order.ordered_on, 10, 15)
    meta = []
    if order.shipped_on:
        provider = order.carrier.replace("_", "-")
        meta.append({"id": 9_000 + n % 1000, "key": "_wc_shipment_tracking_items", "value": [{
            "tracking_provider": provider, "custom_tracking_provider": "",
            "custom_tracking_link": "", "tracking_number": order.tracking_number,
            "date_shipped": str(int(_moment(order.shipped_on, 0).timestamp())),
            "tracking_id": f"{n:032x}",
        }]})
    completed = order.shipped_on if order.status not in _WOO_STATUS else None
    return {
        "id": n, "parent_id": 0, "number": order.number, "order_key": f"wc_order_{n:x}",
        "created_via": "checkout", "version": "9.4.2",
        "status": _WOO_STATUS.get(order.status, "completed"), "currency": order.currency,
        "date_created": ordered.replace(tzinfo=None).isoformat(),
        "date_created_gmt": ordered.astimezone(ZoneInfo("UTC")).replace(tzinfo=None).isoformat(),
        "date_completed": _moment(completed, 17).replace(tzinfo=None).isoformat() if completed else None,
        "total": str(order.total), "total_tax": "0.00", "customer_id": _customer_id(order.phone),
        "billing": {"first_name": "Camille", "last_name": "Martin", "city": "Lyon", "country": "FR",
                    "email": f"client{order.number}@example.com", "phone": order.phone},
        "shipping": {"first_name": "Camille", "last_name": "Martin", "city": "Lyon", "country": "FR",
                     "phone": ""},
        "payment_method": "stripe", "payment_method_title": "Carte bancaire",
        "line_items": _line_items(order, 700 + n % 1000),
        "meta_data": meta,
    }


def prestashop_order(order: Order) -> dict:
    """``order`` as the PrestaShop webservice writes it (``display=full``)."""
    n = int(order.number)
    customer = _customer_id(order.phone)
    return {
        "id": n, "id_address_delivery": str(customer + 1000), "id_address_invoice": str(customer + 1000),
        "id_cart": str(n + 17), "id_currency": "1", "id_lang": "1", "id_customer": str(customer),
        "id_carrier": str(PRESTASHOP_CARRIERS.get(order.carrier, 0)),
        "current_state": str(_PRESTASHOP_STATE[order.status]), "module": "ps_checkpayment",
        "invoice_number": "0", "invoice_date": "0000-00-00 00:00:00",
        "delivery_number": "0", "delivery_date": "0000-00-00 00:00:00", "valid": "1",
        "date_add": _moment(order.ordered_on, 10, 15).strftime("%Y-%m-%d %H:%M:%S"),
        "date_upd": _moment(order.ordered_on, 10, 15).strftime("%Y-%m-%d %H:%M:%S"),
        "shipping_number": order.tracking_number or "", "id_shop_group": "1", "id_shop": "1",
        "payment": "Payer par chèque", "total_discounts": "0.000000",
        "total_paid": f"{order.total:.6f}", "total_paid_tax_incl": f"{order.total:.6f}",
        "total_paid_real": f"{order.total:.6f}", "total_products": f"{order.total:.6f}",
        "total_shipping": "0.000000", "conversion_rate": "1.000000", "reference": f"DEMO{n:05d}",
        "associations": {"order_rows": [{
            "id": str(n % 1000), "product_id": "1", "product_attribute_id": "0",
            "product_quantity": str(order.items), "product_name": "Article de démonstration",
            "product_reference": f"DEMO-{order.number}",
            "unit_price_tax_incl": f"{order.total / order.items:.6f}"}]},
    }


# --- The web resource ---------------------------------------------------------------


@dataclass
class Knobs:
    """How the fake shop misbehaves."""

    delay: float = 0.0        # seconds before each answer
    fail_rate: float = 0.0    # share of requests answered with ``status``
    status: int = 500
    garble_rate: float = 0.0  # share of answers cut in the middle of the JSON
    seed: int | None = None


class FakeShop(Resource):
    """The shop's API: one resource for every path, routed by ``shape``."""

    isLeaf = True

    def __init__(self, shape: str, today: date, token: str = DEFAULT_TOKEN,
                 knobs: Knobs | None = None, clock=None):
        super().__init__()
        if shape not in SHAPES:
            raise ValueError(f"unknown shape {shape!r}; expected one of {', '.join(SHAPES)}")
        if clock is None:
            from twisted.internet import reactor as clock
        self.shape, self.token, self.clock = shape, token, clock
        self.knobs = knobs or Knobs()
        self.random = random.Random(self.knobs.seed)
        self.today = today
        self.orders = demo_orders(today)
        self.requests = 0

    # -- twisted.web ---------------------------------------------------------------------
    def render_GET(self, request):
        self.requests += 1
        code, payload = self.answer(request)
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        if code == 200 and self.random.random() < self.knobs.garble_rate:
            body = body[: max(1, len(body) // 2)]
        if not self.knobs.delay:
            return self._write(request, code, body)
        call = self.clock.callLater(self.knobs.delay, self._finish, request, code, body)
        request.notifyFinish().addErrback(lambda _: call.active() and call.cancel())
        return server.NOT_DONE_YET

    def _finish(self, request, code, body):
        request.write(self._write(request, code, body))
        request.finish()

    def _write(self, request, code: int, body: bytes) -> bytes:
        request.setResponseCode(code)
        request.setHeader(b"content-type", b"application/json; charset=utf-8")
        return body

    def answer(self, request) -> tuple[int, object]:
        """(HTTP code, JSON payload) for ``request``."""
        if not self._authorised(request):
            return 401, _UNAUTHORISED[self.shape]
        if self.random.random() < self.knobs.fail_rate:
            return self.knobs.status, {"errors": "the fake shop failed on purpose (--fail-rate)"}
        path = request.path.decode("utf-8", "replace")
        args = {k.decode(): v[0].decode() for k, v in request.args.items()}
        return getattr(self, f"_{self.shape}")(path, args)

    def _authorised(self, request) -> bool:
        if self.shape == "shopify":
            return request.getHeader("x-shopify-access-token") == self.token
        user_password = self.token if ":" in self.token else self.token + ":"
        expected = "Basic " + base64.b64encode(user_password.encode()).decode("ascii")
        return request.getHeader("authorization") == expected

    # -- one method per shape -------------------------------------------------------------
    def _shopify(self, path: str, args: dict):
        base = SHOPIFY_API
        if path == f"{base}/orders.json":
            name = args.get("name", "")
            return 200, {"orders": [shopify_order(o) for o in self.orders if f"#{o.number}" == name]}
        if path == f"{base}/customers/search.json":
            phone = args.get("query", "").removeprefix("phone:")
            return 200, {"customers": [
                {"id": _customer_id(p), "phone": p, "email": f"{_customer_id(p)}@example.com",
                 "first_name": "Camille", "last_name": "Martin", "orders_count": 1}
                for p in sorted(set(DEMO_CALLERS.values())) if p == phone]}
        prefix, suffix = f"{base}/customers/", "/orders.json"
        if path.startswith(prefix) and path.endswith(suffix):
            customer = path[len(prefix):-len(suffix)]
            return 200, {"orders": [shopify_order(o) for o in self._newest_first()
                                    if str(_customer_id(o.phone)) == customer]}
        return 404, {"errors": "Not Found"}

    def _woocommerce(self, path: str, args: dict):
        base = "/wp-json/wc/v3/orders"
        if path.startswith(base + "/"):
            number = path[len(base) + 1:]
            for order in self.orders:
                if str(int(order.number)) == number:
                    return 200, woocommerce_order(order)
            return 404, {"code": "woocommerce_rest_shop_order_invalid_id", "message": "Invalid ID.",
                         "data": {"status": 404}}
        if path == base:
            search, after = args.get("search", ""), args.get("after", "")[:10]
            return 200, [woocommerce_order(o) for o in self._newest_first()
                         if search and search in o.phone and o.ordered_on.isoformat() >= after]
        return 404, {"code": "rest_no_route", "message": "No route was found matching the URL and "
                     "request method.", "data": {"status": 404}}

    def _prestashop(self, path: str, args: dict):
        if path == "/api/orders":
            wanted = _filter(args, "filter[id]")
            customers = _filter(args, "filter[id_customer]")
            found = [prestashop_order(o) for o in self._newest_first()
                     if (wanted is None or o.number in wanted)
                     and (customers is None or str(_customer_id(o.phone)) in customers)]
            return 200, ({"orders": found} if found else [])
        if path == "/api/addresses":
            phones = _filter(args, "filter[phone_mobile]") or set()
            found = [{"id": _customer_id(p) + 1000, "id_customer": str(_customer_id(p))}
                     for p in sorted(set(DEMO_CALLERS.values())) if _national(p) in phones]
            return 200, ({"addresses": found} if found else [])
        return 404, {"errors": [{"code": 22, "message": "Resource of type \"x\" does not exists"}]}

    def _newest_first(self) -> list[Order]:
        return sorted(self.orders, key=lambda o: (o.ordered_on, o.number), reverse=True)


def _filter(args: dict, name: str) -> set[str] | None:
    """The values of a PrestaShop filter: ``[1|5]`` is {"1", "5"}."""
    if name not in args:
        return None
    return set(args[name].strip("[]").split("|"))


_UNAUTHORISED = {
    "shopify": {"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"},
    "woocommerce": {"code": "woocommerce_rest_cannot_view", "message": "Sorry, you cannot list "
                    "resources.", "data": {"status": 401}},
    "prestashop": {"errors": [{"code": 17, "message": "Authentication key is empty"}]},
}


def backend_config(shape: str, base_url: str, secret_env: str = SECRET_ENV) -> str:
    """The shop back-end configuration (YAML) that talks to a fake shop of
    ``shape`` at ``base_url``."""
    lines = [
        f"# Back-end for the fake {shape} shop: ivr-serve --orders THIS_FILE",
        f"preset: {shape}",
        f"base_url: {base_url}",
        "auth:",
        f"  secret_env: {secret_env}",
    ]
    if shape == "prestashop":
        lines += ["fields:", "  carrier:", "    path: id_carrier", "    map:"]
        lines += [f"      {number}: {code}" for code, number in PRESTASHOP_CARRIERS.items()]
        lines += ["    unmapped: drop"]
    return "\n".join(lines) + "\n"


@click.command(epilog="Example: ivr-fake-shop --shape shopify --port 8090 --delay 1")
@click.option("--shape", type=click.Choice(SHAPES), default="shopify", show_default=True,
              help="Which platform's API to imitate.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", type=int, default=8090, show_default=True, help="Port to listen on (0: any free port).")
@click.option("--today", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="Date the demo orders are relative to (default: today).")
@click.option("--token", default=DEFAULT_TOKEN, show_default=True,
              help="Secret the shop expects (Shopify token, WooCommerce 'ck:cs', PrestaShop key).")
@click.option("--delay", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Seconds before each answer.")
@click.option("--fail-rate", type=click.FloatRange(0, 1), default=None,
              help="Share of requests answered with --status (default 0, or 1 with --status).")
@click.option("--status", type=click.IntRange(400, 599), default=None,
              help="HTTP status of failed requests (default 500).")
@click.option("--garble-rate", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="Share of answers whose JSON is cut in half.")
@click.option("--seed", type=int, default=None, help="Seed for --fail-rate and --garble-rate.")
@click.option("--write-config", type=click.Path(dir_okay=False), default=None,
              help="Also write the matching back-end configuration to this file.")
def main(shape, host, port, today, token, delay, fail_rate, status, garble_rate, seed, write_config):
    """Serve the demo orders as a Shopify, WooCommerce or PrestaShop API
    would, and print the back-end configuration that talks to it."""
    from twisted.internet import endpoints, reactor
    from twisted.logger import globalLogBeginner, textFileLogObserver

    knobs = Knobs(delay=delay, fail_rate=fail_rate if fail_rate is not None else (1.0 if status else 0.0),
                  status=status or 500, garble_rate=garble_rate, seed=seed)
    shop = FakeShop(shape, (today.date() if today else date.today()), token, knobs, reactor)
    endpoint = endpoints.TCP4ServerEndpoint(reactor, port, interface=host)
    listening = defer.Deferred.fromCoroutine(_listen(endpoint, shop))

    def started(port_object):
        url = f"http://{host}:{port_object.getHost().port}"
        config = backend_config(shape, url)
        if write_config:
            with open(write_config, "w", encoding="utf-8") as f:
                f.write(config)
        click.echo(f"Fake {shape} shop on {url}, demo orders dated around {shop.today}. "
                   "Back-end configuration:\n")
        click.echo(config)
        click.echo(f"export {SECRET_ENV}={token}")
        sys.stdout.flush()

    def failed(failure):
        click.echo(f"ivr-fake-shop: cannot listen on {host}:{port}: {failure.value}", err=True)
        reactor.stop()

    listening.addCallbacks(started, failed)
    globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stderr)])
    reactor.run()


async def _listen(endpoint, shop):
    site = server.Site(shop)
    site.displayTracebacks = False
    return await endpoint.listen(site)
