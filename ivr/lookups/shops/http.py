"""Order look-ups against a shop's HTTP JSON API, without blocking the reactor.

:class:`HttpOrderLookups` is an ``ivr.lookups.embedded.OrderLookups`` whose
``perform`` returns a Deferred of the usual answer
(``{"status": ..., "data": ..., "error": ...}``), with orders built by
``ivr.lookups.embedded.order_dict`` so prompts and delivery estimates are the same
as with the embedded store.  Requests go through treq.

What can go wrong, and what the flow sees (``status: error`` with the
cause in ``error``, which the node event keeps):

==============================  ==========================================
connection refused, DNS, reset  retried once at once, then the cause
no answer within ``timeout``    ``timeout after 3 s`` (never retried)
HTTP 401 / 403                  ``HTTP 401: the shop refused our credentials``
HTTP 404 on order_by_number     ``not_found``: not an error
other HTTP 4xx / 5xx            ``HTTP 503`` (never retried)
not JSON, or not the shape      ``malformed JSON ...`` / ``unexpected answer ...``
expected
an order the mapping cannot     ``missing field ordered_on (created_at)``,
read                            ``unknown status 'x' (status)``
too many failures in a row      ``circuit open``, at once (see ``breaker``)
==============================  ==========================================

Failures to reach the shop (all but the last two rows) count towards
opening the circuit; an answer the mapping cannot read does not, since
the shop itself is up.  Caller numbers never reach the logs in clear.
"""

from __future__ import annotations

import base64
import json
import re
from datetime import datetime, timedelta
from urllib.parse import quote

import phonenumbers
from twisted.application import service
from twisted.internet import defer
from twisted.logger import Logger

from ivr.engine.actions import Lookup
from ivr.http_errors import CONNECTION_ERRORS, TIMEOUTS, cancelled, connection_cause
from ivr.lookups.delivery import DEFAULT_POLICY, DeliveryPolicy
from ivr.lookups.embedded import FOUND, MANY, NOT_FOUND, error, order_dict, result
from ivr.lookups.orders import normalise_number, normalise_phone
from ivr.lookups.shops.breaker import CircuitBreaker
from ivr.lookups.shops.config import ShopConfig
from ivr.lookups.shops.mapping import MISSING, MappingError, present, resolve
from ivr.phone import is_withheld, mask

log = Logger()

#: The most ids a phone look-up's first request may pass on.
MAX_FOUND = 10
_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")


class ShopError(Exception):
    """A look-up failed; ``cause`` is what the node event carries.
    ``down`` says whether it counts as the shop failing (for the breaker)."""

    def __init__(self, cause: str, down: bool = True):
        super().__init__(cause)
        self.cause, self.down = cause, down


class _NotFound(Exception):
    """HTTP 404 where it means "no such order"."""


class HttpOrderLookups:
    """``OrderLookups`` over a shop's HTTP API, configured by a
    :class:`~ivr.lookups.shops.config.ShopConfig`.

    ``reactor`` provides the clock for timeouts and the circuit breaker,
    and the connections unless ``http`` (anything with treq's ``get``,
    e.g. ``treq.testing.StubTreq``) is given.
    """

    def __init__(self, config: ShopConfig, reactor, http=None,
                 policy: DeliveryPolicy = DEFAULT_POLICY):
        self.config, self.clock, self.policy = config, reactor, policy
        self.pool = None
        if http is None:
            http, self.pool = _treq_client(reactor)
        self.http = http
        self.breaker = CircuitBreaker(reactor, config.failures, config.cooldown,
                                      name=f"shop {config.base_url}")
        self.headers = _auth_headers(config)
        self._handlers = {"order_by_number": self._order_by_number,
                          "orders_by_phone": self._orders_by_phone}

    def perform(self, lookup: Lookup, now: datetime) -> defer.Deferred:
        """Answer ``lookup`` as of ``now``: a Deferred that never fails,
        except when the caller cancels it."""
        handler = self._handlers.get(lookup.what)
        if handler is None:
            return defer.succeed(error(f"unknown lookup {lookup.what!r}; expected one of "
                                       f"{sorted(self._handlers)}"))
        if not isinstance(lookup.args, dict):
            return defer.succeed(error(f"{lookup.what} args must be a mapping, got "
                                       f"{type(lookup.args).__name__}"))
        early, work = handler(lookup.args, now)
        if early is not None:
            return defer.succeed(early)
        who = _who(lookup)
        if not self.breaker.allow():
            log.warn("shop look-up {lookup} for {who}: circuit open", lookup=lookup.what, who=who)
            return defer.succeed(error("circuit open"))
        d = defer.Deferred.fromCoroutine(work())
        d.addTimeout(self.config.timeout, self.clock)
        d.addCallbacks(self._answered, self._failed, errbackArgs=(lookup.what, who))
        return d

    def close(self) -> defer.Deferred:
        """Close kept-alive connections (on server shutdown)."""
        return self.pool.closeCachedConnections() if self.pool else defer.succeed(None)

    # -- the two look-ups ------------------------------------------------------------
    def _order_by_number(self, args: dict, now: datetime):
        if args.get("number") is None:
            return error("order_by_number needs args['number']"), None
        number = normalise_number(args["number"])
        if not number.isdigit():
            return result(NOT_FOUND, {"number": number, "reason": "invalid_number"}), None

        async def work():
            endpoint = self.config.order_by_number
            try:
                answer = await self._get_json(self._url(endpoint.path, {"number": number}),
                                              not_found_ok=True)
            except _NotFound:
                return result(NOT_FOUND, {"number": number})
            mapping = self.config.mapping
            for entry in _orders_in(answer, endpoint.orders):
                if mapping.number(entry) == number:
                    return result(FOUND, {"order": self._dict(entry, now)})
            return result(NOT_FOUND, {"number": number})
        return None, work

    def _orders_by_phone(self, args: dict, now: datetime):
        phone = normalise_phone(str(args.get("phone") or ""))
        if is_withheld(phone):
            return result(NOT_FOUND, {"orders": [], "count": 0, "reason": "no_caller_id"}), None
        since = now.date() - timedelta(days=self.config.recent_days)

        async def work():
            endpoint = self.config.orders_by_phone
            values = _phone_values(phone) | {"since": since.isoformat()}
            if endpoint.find is not None:
                found = await self._find(endpoint.find, values)
                if not found:
                    return result(NOT_FOUND, {"orders": [], "count": 0})
                values["found"] = found
            answer = await self._get_json(self._url(endpoint.path, values))
            entries = _orders_in(answer, endpoint.orders)
            if endpoint.check_phone:
                entries = [e for e in entries if _same_caller(phone, self.config.mapping.phones(e))]
            orders = [self._dict(e, now) for e in entries]
            orders = sorted((o for o in orders if o["ordered_on"] >= since.isoformat()),
                            key=lambda o: (o["ordered_on"], o["number"]), reverse=True)
            if not orders:
                return result(NOT_FOUND, {"orders": [], "count": 0})
            if len(orders) == 1:
                return result(FOUND, {"order": orders[0], "orders": orders, "count": 1})
            return result(MANY, {"orders": orders, "count": len(orders)})
        return None, work

    async def _find(self, find, values: dict) -> str | None:
        """The first request of a two-step phone look-up: ids joined with
        ``find.join`` (the first id alone without it), or None."""
        answer = await self._get_json(self._url(find.path, values))
        items = _orders_in(answer, find.items)
        ids = [str(v) for v in (resolve(item, find.value) for item in items) if present(v)]
        ids = list(dict.fromkeys(ids))[:MAX_FOUND]
        if not ids:
            return None
        return find.join.join(ids) if find.join else ids[0]

    def _dict(self, entry, now: datetime) -> dict:
        return order_dict(self.config.mapping.order(entry, now), now, self.policy)

    # -- HTTP --------------------------------------------------------------------------
    def _url(self, template: str, values: dict) -> str:
        def fill(match):
            return quote(str(values[match[1]]), safe="|")
        return self.config.base_url + _PLACEHOLDER.sub(fill, template)

    async def _get_json(self, url: str, not_found_ok: bool = False):
        response = await self._get(url)
        try:
            body = await response.content()
        except Exception as failure:  # noqa: BLE001 - the body never arrived whole
            if cancelled(failure):
                raise defer.CancelledError() from None
            raise ShopError(f"connection lost while reading the answer ({_name(failure)})") from None
        code = response.code
        if code == 404 and not_found_ok:
            raise _NotFound()
        if code in (401, 403):
            raise ShopError(f"HTTP {code}: the shop refused our credentials "
                            f"(check {self.config.secret_env or 'auth'})")
        if code >= 400:
            raise ShopError(f"HTTP {code}")
        if not 200 <= code < 300:
            raise ShopError(f"unexpected HTTP {code}")
        try:
            return json.loads(body)
        except ValueError as failure:
            raise ShopError(f"malformed JSON from the shop: {failure}") from None

    async def _get(self, url: str):
        """GET ``url``; a connection error is retried once, at once.
        Timeouts and HTTP errors are not: the caller is waiting."""
        for attempt in (1, 2):
            try:
                return await self.http.get(url, headers=self.headers)
            except TIMEOUTS as failure:
                raise ShopError(f"connect timeout ({_name(failure)})") from None
            except CONNECTION_ERRORS as failure:
                if cancelled(failure):
                    # Our own timeout (or the caller's) stopped the request.
                    raise defer.CancelledError() from None
                cause = connection_cause(failure, "the shop")
                if attempt == 2:
                    raise ShopError(cause) from None
                log.info("shop {base}: {cause}; retrying once", base=self.config.base_url, cause=cause)

    # -- outcomes ----------------------------------------------------------------------
    def _answered(self, answer: dict) -> dict:
        self.breaker.record_success()
        return answer

    def _failed(self, failure, what: str, who: str):
        if failure.check(defer.CancelledError):
            # The caller gave up on us (its own timeout): the shop was too slow.
            self.breaker.record_failure()
            return failure
        if failure.check(defer.TimeoutError):
            cause, down = f"timeout after {self.config.timeout:g} s", True
        elif failure.check(ShopError):
            cause, down = failure.value.cause, failure.value.down
        elif failure.check(MappingError):
            cause, down = str(failure.value), False
        else:
            log.failure("shop look-up {lookup} for {who}: unexpected error", failure,
                        lookup=what, who=who)
            cause, down = f"{failure.type.__name__}: {failure.value}", False
        if down:
            self.breaker.record_failure()
        else:
            self.breaker.record_success()
        log.warn("shop look-up {lookup} for {who} failed: {cause}", lookup=what, who=who, cause=cause)
        return error(cause)


class OrderLookupsService(service.Service):
    """Closes the shop's kept-alive connections when the server stops."""

    def __init__(self, lookups: HttpOrderLookups):
        self.lookups = lookups

    def stopService(self):
        super().stopService()
        return self.lookups.close()


def _name(failure: Exception) -> str:
    return type(failure).__name__


def _orders_in(answer, where):
    """The list of orders in an answer (one order becomes a list of one)."""
    value = answer if where is None else resolve(answer, where)
    if value is MISSING:
        if answer == [] or answer == {}:
            return []    # PHP back ends answer [] when nothing matches
        raise ShopError(f"unexpected answer: no {where} in it", down=False)
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list):
        return value
    raise ShopError(f"unexpected answer: expected orders at {where or 'the top'}, found "
                    f"{type(value).__name__}", down=False)


def _phone_values(phone: str) -> dict:
    """What a phone look-up's path may hold: ``{phone}`` (E.164),
    ``{phone_digits}`` (without the +) and ``{phone_national}`` (the
    national form, digits only: 0612345678)."""
    national = phone
    try:
        parsed = phonenumbers.parse(phone, None)
        national = re.sub(r"\D", "", phonenumbers.format_number(
            parsed, phonenumbers.PhoneNumberFormat.NATIONAL))
    except phonenumbers.NumberParseException:
        pass
    return {"phone": phone, "phone_digits": phone.lstrip("+"), "phone_national": national}


def _same_caller(caller: str, phones: list[str]) -> bool:
    """Whether one of the order's phone numbers is the caller's, however
    the shop wrote it (06 12 34 56 78, +33 6 12 34 56 78)."""
    try:
        region = phonenumbers.region_code_for_number(phonenumbers.parse(caller, None))
    except phonenumbers.NumberParseException:
        region = None
    for phone in phones:
        try:
            parsed = phonenumbers.parse(phone, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164) == caller:
            return True
    return False


def _auth_headers(config: ShopConfig) -> dict:
    if not (config.auth_header and config.secret):
        return {}
    secret = config.secret
    if config.auth_scheme == "bearer":
        value = f"Bearer {secret}"
    elif config.auth_scheme == "basic":
        # "key:secret" (WooCommerce) or a bare key with no password (PrestaShop).
        user_password = secret if ":" in secret else secret + ":"
        value = "Basic " + base64.b64encode(user_password.encode()).decode("ascii")
    else:
        value = secret
    return {config.auth_header: value}


def _who(lookup: Lookup) -> str:
    """Who a look-up is for, fit for a log line: an order number, or the
    caller's number masked but for its last two digits."""
    if lookup.what == "order_by_number":
        return f"order {normalise_number(lookup.args.get('number'))}"
    return f"caller {mask(normalise_phone(str(lookup.args.get('phone') or '')))}"


def _treq_client(reactor):
    from treq.client import HTTPClient
    from twisted.web.client import Agent, HTTPConnectionPool

    pool = HTTPConnectionPool(reactor, persistent=True)
    pool.maxPersistentPerHost = 4
    return HTTPClient(Agent(reactor, pool=pool)), pool
