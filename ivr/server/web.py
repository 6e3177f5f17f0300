"""The webhook server's HTTP resources (twisted.web).

For each provider served (:class:`ivr.server.served.Served`), under its
route prefix (none for Twilio, ``/<name>/`` for the others):
``POST /voice/<flow>`` (every turn of a call; also GET for a provider that
sends its turns as GETs), ``POST /status`` (call status callbacks) and
``POST /whisper``; then ``GET /calls/<id>``, and ``GET /healthz`` and
``GET /metrics`` (:mod:`ivr.server.monitoring`).  Requests are checked here, before anything reaches the
engine: size, content type, UTF-8, body syntax, then, by the route's
provider dialect (:class:`ivr.providers.dialect.Dialect`), the provider's
signature when its secret is configured and its fields.  Bad requests get a
4xx with a one-line reason, never a traceback.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import datetime
from urllib.parse import urlsplit

from twisted.internet import defer
from twisted.logger import Logger
from twisted.web.http import parse_qs
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from ivr.providers.bodies import parse_form
from ivr.providers.dialect import Refusal, WebhookRequest
from ivr.server.monitoring import HealthResource, MetricsResource
from ivr.server.plain_resources import PlainResource, Root
from ivr.server.registry import UnknownFlow
from ivr.server.requests import (
    MAX_BODY,
    BadRequest,
    finish_with,
    header_text,
    plain_text,
    when_lost,
)
from ivr.server.served import Served, served_providers
from ivr.store.sqlite.storage_health import fault_cause

#: A Host header the server may write into its documents' URLs.
_HOST = re.compile(r"[A-Za-z0-9.-]{1,253}(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]{2,45}\](:[0-9]{1,5})?")


#: The methods providers use, as text.
_METHOD_NAMES = {b"POST": "POST", b"GET": "GET"}

#: The media type of each Content-Type header seen (a bounded few short
#: ones: providers send one or two), so that it is not parsed every request.
_MEDIA_TYPES: dict[bytes | None, str] = {}
_MEDIA_TYPES_MAX = 64
_MEDIA_TYPE_LONGEST = 128


def _media_type(request) -> str:
    """The lower-case media type of the request's Content-Type, without
    its parameters ("" when absent); :class:`BadRequest` (400) when the
    header is not UTF-8."""
    value = request.getHeader(b"content-type")
    media_type = _MEDIA_TYPES.get(value)
    if media_type is None:
        media_type = (header_text(request, b"content-type") or "").split(";")[0].strip().lower()
        if len(_MEDIA_TYPES) < _MEDIA_TYPES_MAX and (value is None or len(value) <= _MEDIA_TYPE_LONGEST):
            _MEDIA_TYPES[value] = media_type
    return media_type


class WebhookResource(PlainResource):
    """Shared checks for the webhooks of one provider, ``served``."""

    log = Logger()

    def __init__(self, handler, served: Served, public_url: str | None,
                 simulated_clock: bool = False):
        super().__init__()
        self.handler, self.served, self.public_url = handler, served, public_url
        self.dialect = served.dialect
        #: The dialect's content type as Twisted's setHeader stores it.
        self.content_type = b" ".join(self.dialect.content_type.splitlines())
        self.simulated_clock = simulated_clock
        if "GET" in self.dialect.voice_methods and self.takes_get:
            # The provider sends this request as a GET (Vonage's answer webhook).
            self.render_GET = self.render_POST  # type: ignore[attr-defined]

    #: Whether the route takes a GET when its provider sends GETs.
    takes_get = False

    def check_signature(self, webhook: WebhookRequest, fields: dict,
                        served: Served | None = None) -> None:
        """Raise :class:`BadRequest` (403) unless the request is correctly
        signed; nothing to check when the provider has no secret configured."""
        served = served or self.served
        if not served.checks_signatures:
            return
        try:
            served.dialect.verify(served.secret or "", webhook, fields)
        except Refusal as refusal:
            raise BadRequest(refusal.code, refusal.reason) from None

    def required(self) -> tuple[str, ...]:
        """Fields a request to this resource must carry."""
        return self.dialect.voice_fields

    def webhook(self, request, signed: bool = True) -> WebhookRequest:
        """The request as the dialect reads it; its body bounded in size.
        Its URL only when its signature is ``signed`` (checked): nothing
        else reads it, and building it is a tenth of the request's checks."""
        if getattr(request, "too_large", False):
            raise BadRequest(413, f"body larger than {MAX_BODY} bytes")
        content_type = _media_type(request)
        request.content.seek(0)
        raw = request.content.read(MAX_BODY + 1)
        if len(raw) > MAX_BODY:
            raise BadRequest(413, f"body larger than {MAX_BODY} bytes")
        query: dict[str, list[str]] = {}
        query_text = request.uri.partition(b"?")[2]
        if query_text:
            try:
                query = parse_form(query_text.decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                raise BadRequest(400, "malformed query string") from None
        return WebhookRequest(_METHOD_NAMES.get(request.method) or request.method.decode("ascii"),
                              self.request_url(request) if signed else "",
                              content_type, raw, query, request.getHeader,
                              self.received_at(request))

    def received_at(self, request) -> float | None:
        """When the request arrived, for a signature's timestamp window: a
        test call's simulated time (``--simulated-clock`` only), else the
        handler's clock; None when the handler has none."""
        moment = self.simulated_time(request)
        if moment is not None:
            return moment.timestamp()
        clock = getattr(self.handler, "clock", None)
        return clock.seconds() if clock is not None else None

    def read_form(self, request) -> dict:
        """The webhook's parameters: parsed, signature checked, then checked
        by the dialect's field rules; raises :class:`BadRequest`."""
        signed = self.served.checks_signatures  # read once: a property of the provider's
        webhook = self.webhook(request, signed=signed)
        try:
            fields = self.dialect.parse(webhook)
        except Refusal as refusal:
            raise BadRequest(refusal.code, refusal.reason) from None
        if signed:
            self.check_signature(webhook, fields)
        try:
            return self.dialect.check(fields, self.required())
        except Refusal as refusal:
            raise BadRequest(refusal.code, refusal.reason) from None

    def simulated_time(self, request):
        """The turn's time from ``X-IVR-Simulated-Time``, honoured only by a
        server started with ``--simulated-clock`` (never in production)."""
        if not self.simulated_clock:
            return None
        value = header_text(request, b"x-ivr-simulated-time")
        if value is None:
            return None
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise BadRequest(400, "X-IVR-Simulated-Time is not an ISO 8601 time") from None
        if moment.tzinfo is None:
            raise BadRequest(400, "X-IVR-Simulated-Time needs a UTC offset")
        return moment

    def served_for(self, request) -> Served:
        """The provider this route serves, as this request reached it: with
        no public URL configured and a provider that needs absolute URLs,
        those written into its documents start from the request's own
        scheme and ``Host`` (a host name, address and
        port only; anything else leaves them relative to the request)."""
        if self.public_url or not self.served.dialect.absolute_urls:
            return self.served
        host = (request.getHeader(b"host") or b"").decode("ascii", "replace")
        if not host or not _HOST.fullmatch(host):
            return self.served
        scheme = "https" if request.isSecure() else "http"
        return replace(self.served, base=f"{scheme}://{host}")

    def request_url(self, request) -> str:
        """The URL the provider signed: the public base URL (behind a proxy)
        plus the path and query it requested."""
        uri = request.uri.decode("utf-8", "replace")
        if self.public_url:
            base = urlsplit(self.public_url)
            return f"{base.scheme}://{base.netloc}{base.path.rstrip('/')}{uri}"
        scheme = "https" if request.isSecure() else "http"
        host = (request.getHeader(b"host") or b"localhost").decode("utf-8", "replace")
        return f"{scheme}://{host}{uri}"

    def refuse(self, request, error: BadRequest) -> bytes:
        self.log.warn("{method} {path} refused: {code} {reason}", method=request.method.decode(),
                      path=request.path.decode("utf-8", "replace"), code=error.code, reason=error.reason)
        return plain_text(request, error.code, error.reason)


class VoiceResource(WebhookResource):
    """``POST /voice/<flow>[?turn=N]``: a turn of a call."""

    takes_get = True

    def render_POST(self, request):
        try:
            flow_name = self._flow_name(request)
            turn, polls = self._turn_and_poll(request)
            params = self.read_form(request)
        except BadRequest as error:
            return self.refuse(request, error)
        try:
            now = self.simulated_time(request)
        except BadRequest as error:
            return self.refuse(request, error)
        try:
            result = self.handler.answer(flow_name, turn, params, now, poll=polls,
                                         served=self.served_for(request))
        except Exception:  # noqa: BLE001 - answered below like a failed Deferred
            result = defer.fail()
        # Stored as Twisted's setHeader would store it: the name canonical,
        # the value's line breaks made spaces once (self.content_type).
        if not isinstance(result, defer.Deferred):  # answered at once
            request.responseHeaders._rawHeaders[b"Content-Type"] = [self.content_type]
            return result

        def answered(body):
            request.responseHeaders._rawHeaders[b"Content-Type"] = [self.content_type]
            finish_with(request, body)

        def failed(failure):
            if failure.check(defer.CancelledError):
                return None
            if failure.check(UnknownFlow):
                finish_with(request, self.refuse(request,
                                                 BadRequest(404, f"no flow named {flow_name!r}")))
            else:  # the handler has its own fail-safe; this is a bug in it
                self.log.failure("unhandled error in a voice turn", failure)
                request.setResponseCode(500)
                finish_with(request)

        result.addCallbacks(answered, failed)
        # A provider that gave up does not need the answer: stop waiting.
        when_lost(request, lambda _: result.cancel())
        return NOT_DONE_YET

    def _flow_name(self, request) -> str:
        parts = request.postpath
        if len(parts) != 1 or not parts[0]:  # not /voice/<flow> as we write it
            parts = [p for p in parts if p]
        if len(parts) != 1:
            raise BadRequest(404, "expected /voice/<flow>")
        try:
            return parts[0].decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequest(404, "flow name is not UTF-8") from None

    @classmethod
    def _turn_and_poll(cls, request) -> tuple[int, bool]:
        """The turn number and whether the caller comes back from a hold,
        from the query (see :meth:`_query`, :meth:`_turn` and :meth:`_polls`);
        raises :class:`BadRequest`.  Each query answered is kept in a bounded
        table: ours are few (``turn=N``, ``&hold=1``), and reading one again
        was a tenth of the route's own work."""
        raw = request.uri.partition(b"?")[2]
        known = _TURNS.get(raw)
        if known is None:
            query = cls._query_text(raw)
            known = cls._turn(query), cls._polls(query)
            if len(_TURNS) < _TURNS_MAX and len(raw) <= _TURN_QUERY_LONGEST:
                _TURNS[raw] = known
        return known

    @classmethod
    def _query(cls, request) -> dict[bytes, list[bytes]]:
        """The query of the request's URL, as :meth:`_query_text` reads it."""
        return cls._query_text(request.uri.partition(b"?")[2])

    @staticmethod
    def _query_text(raw: bytes) -> dict[bytes, list[bytes]]:
        """What Twisted's ``parse_qs`` gives (fields without ``=`` or a
        value dropped), unquoting only a query that needs it: ours
        (``turn=N``, ``hold=1``) never does."""
        # From the URL we wrote into the TwiML only, never from the body.
        if b"%" in raw or b"+" in raw:
            return parse_qs(raw)
        query: dict[bytes, list[bytes]] = {}
        for item in raw.replace(b";", b"&").split(b"&"):
            name, equals, value = item.partition(b"=")
            if equals and value:
                query.setdefault(name, []).append(value)
        return query

    @staticmethod
    def _polls(query) -> bool:
        """A caller coming back from a hold (``?hold=1``, from our own Redirect)."""
        return query.get(b"hold") == [b"1"]

    @staticmethod
    def _turn(query) -> int:
        values = query.get(b"turn")
        if not values:
            return 0
        # ASCII digits only: int() also takes " 1", "1_0" and "²".
        if not values[-1].isdigit() or not values[-1].isascii():
            raise BadRequest(400, "turn must be a whole number")
        if len(values[-1]) > 5:
            raise BadRequest(400, "turn out of range")
        return int(values[-1])


#: The turn number and hold flag of each voice query answered: a bounded
#: few short ones (see VoiceResource._turn_and_poll).
_TURNS: dict[bytes, tuple[int, bool]] = {}
_TURNS_MAX = 1024
_TURN_QUERY_LONGEST = 32


class StatusResource(WebhookResource):
    """``POST /status``: call status callbacks end the call record."""

    takes_get = True

    def required(self) -> tuple[str, ...]:
        return self.dialect.status_fields

    def render_POST(self, request):
        try:
            params = self.read_form(request)
            now = self.simulated_time(request)
        except BadRequest as error:
            return self.refuse(request, error)
        result = self.handler.status_committed(params, now, self.served_for(request))
        gone = []  # the provider hung up on us: the callback is still kept
        when_lost(request, gone.append)

        def taken(_new):
            if not gone:
                request.setResponseCode(204)
                request.finish()

        def failed(failure):
            # Logged; the provider gets no traceback.
            self.log.failure("status callback for {call} failed", failure,
                             call=self.dialect.call_facts(params).call_id)
            if gone:
                return
            if fault_cause(failure.value) is not None:  # nothing kept: the provider may retry
                finish_with(request, plain_text(request, 503, "cannot store the status now"))
            else:
                request.setResponseCode(500)
                finish_with(request, b"internal error\n")

        result.addCallbacks(taken, failed)
        return NOT_DONE_YET


class WhisperResource(WebhookResource):
    """``POST /whisper?X-IVR-Reason=…``: played to the agent who answers a
    transfer to a phone number, before the caller is put through."""

    takes_get = True

    def render_POST(self, request):
        try:
            self.read_form(request)
            query = self._query(request)
        except BadRequest as error:
            return self.refuse(request, error)
        answer = self.handler.whisper(query, self.served_for(request))
        request.setHeader(b"content-type", self.dialect.content_type)
        if not isinstance(answer, defer.Deferred):
            return answer
        return _finish_later(request, answer)

    def _query(self, request) -> dict[str, str]:
        """The query we wrote into the Dial (reason, call, order), checked
        by the route's own dialect: the call id in it is that provider's."""
        try:
            text = request.uri.partition(b"?")[2].decode("utf-8")
            return self.dialect.check(parse_form(text))
        except UnicodeDecodeError:
            raise BadRequest(400, "query is not UTF-8") from None
        except Refusal as refusal:
            raise BadRequest(refusal.code, refusal.reason) from None
        except ValueError:
            raise BadRequest(400, "malformed query") from None


class CallResource(WebhookResource):
    """``GET /calls/<call id>``: where a call is and what it logged, for
    ``ivr-sim test --url``.  One route for every provider served.  Private:
    only for a request carrying the dashboard token (``Authorization:
    Bearer``) or signed like a webhook by a provider whose secret is
    configured; the caller's number never shows."""

    def __init__(self, handler, served: list[Served], public_url,
                 dashboard_token: str | None = None):
        super().__init__(handler, served[0], public_url)
        self.all_served = served
        self.dashboard_token = dashboard_token.encode("utf-8") if dashboard_token else None

    def render_GET(self, request):
        try:
            self.check_credentials(request)
            parts = [p for p in request.postpath if p]
            if len(parts) != 1:
                raise BadRequest(404, "expected /calls/<CallSid>")
            call_id = parts[0].decode("ascii", "replace")
            if not any(s.dialect.is_call_id(call_id) for s in self.all_served):
                raise BadRequest(404, "no such call: not a call id of any provider served")
            described = self.handler.describe(call_id)
        except BadRequest as error:
            return self.refuse(request, error)
        except Exception as error:  # noqa: BLE001 - the store's, said in one line
            return self._unreadable(request, error)
        if not isinstance(described, defer.Deferred):
            return self._description(request, described)
        return _finish_later(request, described.addCallbacks(
            lambda found: self._description(request, found),
            lambda failure: self._unreadable(request, failure.value)))

    def _description(self, request, described: dict | None) -> bytes:
        if described is None:
            return self.refuse(request, BadRequest(404, "no such call"))
        request.setHeader(b"content-type", b"application/json")
        request.setHeader(b"cache-control", b"no-store")
        return json.dumps(described).encode("utf-8")

    def _unreadable(self, request, error: BaseException) -> bytes:
        self.log.error("call details not read: {error}", error=error)
        return plain_text(request, 503, "cannot read the call now")

    def check_credentials(self, request) -> None:
        """Raise :class:`BadRequest` unless the request carries the dashboard
        token or a valid provider signature: 403 when the server has
        neither configured, 401 when none was given, 403 when wrong."""
        from ivr.server.dashboard import is_authorized  # ivr.server.dashboard imports this module

        signing = [s for s in self.all_served if s.checks_signatures]
        if self.dashboard_token is None and not signing:
            raise BadRequest(403, "call details are private: start the server with "
                                  "--dashboard-token or a provider's signing secret "
                                  "(e.g. --twilio-auth-token) to read them")
        authorization = request.getHeader(b"authorization")
        if self.dashboard_token is not None and is_authorized(authorization, self.dashboard_token):
            return
        for served in signing:
            if served.dialect.is_signed(request.getHeader):
                self.check_signature(self.webhook(request), {}, served)
                return
        if authorization is None:
            raise BadRequest(401, "call details need the dashboard token (Bearer) "
                                  "or a provider signature")
        raise BadRequest(403, "wrong credentials for call details")


def _finish_later(request, answer: defer.Deferred) -> object:
    """``NOT_DONE_YET``, and ``request`` finished with ``answer``'s body
    once it comes, unless the client went away."""
    gone: list = []
    when_lost(request, gone.append)
    answer.addCallback(lambda body: None if gone else finish_with(request, body))
    answer.addErrback(lambda failure: WebhookResource.log.failure(
        "answer to {uri} failed", failure, uri=request.uri))
    return NOT_DONE_YET


def default_served(handler, auth_token: str | None = None,
                   secrets: dict | None = None) -> list[Served]:
    """What a server serves when not told: every registered provider, each
    with its secret from ``secrets`` (Twilio's is ``auth_token``); or, when
    the handler speaks another dialect than Twilio's (a test of one
    dialect), that dialect alone at the root, checked with ``auth_token``."""
    dialect = getattr(handler, "dialect", None)
    if dialect is not None and dialect.name != "twilio":
        return [Served(dialect, "", auth_token)]
    served = served_providers({**(secrets or {}), "twilio": auth_token},
                              getattr(dialect, "shared_key", None))
    if dialect is None:
        return served
    return [Served(dialect, s.prefix, s.secret) if s.name == "twilio" else s for s in served]


def build_root(handler, registry, *, auth_token=None, public_url=None,
               simulated_clock=False, dashboard: Resource | None = None,
               dashboard_token: str | None = None,
               served: list[Served] | None = None) -> Resource:
    """The server's resource tree.  ``/dashboard`` exists only when a
    ``dashboard`` resource is given (the server has a dashboard token);
    ``dashboard_token`` also opens ``/calls/<sid>``.  ``served`` are the
    providers whose routes are put (see :func:`default_served` when not
    given)."""
    root = Root()
    served = served or default_served(handler, auth_token)
    for one in served:
        add_provider_routes(root, one, handler, public_url=public_url,
                            simulated_clock=simulated_clock)
    root.putChild(b"calls", CallResource(handler, served, public_url, dashboard_token))
    root.putChild(b"healthz", HealthResource(registry, getattr(handler, "storage", None)))
    root.putChild(b"metrics", MetricsResource(handler, registry))
    if dashboard is not None:
        root.putChild(b"dashboard", dashboard)
    return root


def add_provider_routes(root: Resource, served: Served, handler, *, public_url=None,
                        simulated_clock=False) -> None:
    """Put the routes a provider calls (``voice/<flow>``, ``status``,
    ``whisper``) under ``root``, below its prefix, each checking requests
    with its dialect and secret."""
    parent = root
    for part in served.prefix.strip("/").split("/") if served.prefix else ():
        child = Root()  # its unknown paths are plain-text 404s too
        parent.putChild(part.encode("utf-8"), child)
        parent = child
    parent.putChild(b"voice", VoiceResource(handler, served, public_url, simulated_clock))
    parent.putChild(b"status", StatusResource(handler, served, public_url, simulated_clock))
    parent.putChild(b"whisper", WhisperResource(handler, served, public_url))
