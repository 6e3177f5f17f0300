"""Twilio as a :class:`ivr.providers.dialect.Dialect`: its form fields,
its ``X-Twilio-Signature``, its status callbacks and TwiML, from the
modules beside this one."""

from __future__ import annotations

from collections.abc import Iterable

from ivr.engine.actions import Action
from ivr.providers.bodies import form_fields
from ivr.providers.dialect import CallFacts, Gap, HeaderFn, Refusal, StatusNotice, WebhookRequest
from ivr.providers.twilio import events
from ivr.providers.twilio.render import render_twiml
from ivr.providers.twilio.signature import (
    HMAC_SHA1,
    is_valid_twilio_request,
    settings_algorithm,
)
from ivr.providers.twilio.webhook_fields import FieldError, check_fields, is_call_sid

#: Twilio's call statuses after which it will not call us again.
TERMINAL_STATUSES = frozenset({"completed", "busy", "no-answer", "canceled", "failed"})

#: The longest X-Twilio-Signature looked at: a base64 HMAC-SHA1 is 28 characters.
MAX_SIGNATURE = 128

#: The longest X-Twilio-Webhooks-Signature-Settings looked at.
MAX_SETTINGS = 256

_SIGNATURE = b"x-twilio-signature"
_SETTINGS = b"x-twilio-webhooks-signature-settings"


class TwilioDialect:
    """Twilio's webhooks and TwiML."""

    name = "twilio"
    content_type = b"text/xml; charset=utf-8"
    voice_methods = ("POST",)
    absolute_urls = False
    voice_fields = ("CallSid",)
    status_fields = ("CallSid", "CallStatus")

    def __init__(self, shared_key: str | None = None) -> None:
        #: The secret of the shared key a Webhook Setting signs with
        #: (``--twilio-shared-key``); requests that name one are checked with it.
        self.shared_key = shared_key or None

    def parse(self, request: WebhookRequest) -> dict[str, list[str]]:
        """Twilio posts forms (``application/x-www-form-urlencoded``)."""
        return form_fields(request)

    def verify(self, secret: str, request: WebhookRequest, fields: dict) -> None:
        """Refuse (403) a request whose ``X-Twilio-Signature`` is missing,
        malformed or not Twilio's for its URL and ``fields``: HMAC-SHA1 with
        the auth token ``secret``, or, when the request carries
        ``X-Twilio-Webhooks-Signature-Settings``, the algorithm it names with
        the shared key (see :mod:`ivr.providers.twilio.signature`)."""
        signature = request.header(_SIGNATURE)
        if not signature:
            raise Refusal(403, "missing X-Twilio-Signature")
        # A forged header may be any bytes: only a short ASCII one is compared.
        if len(signature) > MAX_SIGNATURE or not signature.isascii():
            raise Refusal(403, "X-Twilio-Signature is not a signature")
        key, algorithm = self._key(secret, request.header(_SETTINGS))
        if not is_valid_twilio_request(key, request.url, fields, signature, request.raw,
                                       algorithm):
            raise Refusal(403, "X-Twilio-Signature does not match this request")

    def _key(self, secret: str, settings: bytes | None) -> tuple[str, str]:
        """The key and algorithm a request's signature settings call for."""
        if settings is None:
            if not secret:
                raise Refusal(403, "not signed with the shared key")
            return secret, HMAC_SHA1
        if len(settings) > MAX_SETTINGS or not settings.isascii():
            raise Refusal(403, "X-Twilio-Webhooks-Signature-Settings is malformed")
        algorithm = settings_algorithm(settings.decode("ascii"))
        if algorithm is None:
            raise Refusal(403, "X-Twilio-Webhooks-Signature-Settings names an unknown algorithm")
        if algorithm == HMAC_SHA1:
            return secret, algorithm
        if self.shared_key is None:
            raise Refusal(403, "signed with a shared key, but no --twilio-shared-key is configured")
        return self.shared_key, algorithm

    @property
    def verifies(self) -> bool:
        """Whether requests are checked even without an auth token (a
        shared key is configured)."""
        return self.shared_key is not None

    def is_signed(self, header: HeaderFn) -> bool:
        return bool(header(_SIGNATURE))

    def check(self, fields: dict, required: tuple[str, ...] = ()) -> dict[str, str]:
        """See :func:`ivr.providers.twilio.webhook_fields.check_fields`."""
        try:
            return check_fields(fields, required)
        except FieldError as error:
            raise Refusal(400, str(error)) from None

    def is_call_id(self, value: str) -> bool:
        return is_call_sid(value)

    def call_facts(self, params: dict) -> CallFacts:
        return CallFacts(params["CallSid"], params.get("From", ""), params.get("To", ""))

    def event_from(self, params: dict, state: dict) -> dict:
        """See :func:`ivr.providers.twilio.events.event_from`."""
        return events.event_from(params, state)

    def status_from(self, params: dict) -> StatusNotice:
        """A status callback: ``CallStatus``, ``SequenceNumber``,
        ``CallDuration`` and ``Timestamp`` (RFC 2822)."""
        status = params.get("CallStatus", "")
        return StatusNotice(params["CallSid"], status, status in TERMINAL_STATUSES,
                            sequence=events._count(params.get("SequenceNumber")),
                            duration=events._count(params.get("CallDuration")),
                            timestamp=events._rfc2822(params.get("Timestamp")))

    def render(self, actions: Iterable[Action], next_url: str) -> bytes:
        """TwiML: see :func:`ivr.providers.twilio.render.render_twiml`."""
        return render_twiml(actions, next_url)

    def gaps(self, flow) -> list[Gap]:
        """TwiML does all a flow can ask."""
        return []
