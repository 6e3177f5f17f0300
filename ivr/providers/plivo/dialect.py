"""Plivo as a :class:`ivr.providers.dialect.Dialect`: its form callbacks
(``CallUUID``…), its V3 signature, its hangup URL and Plivo XML, from the
modules beside this one."""

from __future__ import annotations

from collections.abc import Iterable

from ivr.engine.actions import Action
from ivr.providers.bodies import form_fields
from ivr.providers.dialect import CallFacts, Gap, HeaderFn, Refusal, StatusNotice, WebhookRequest
from ivr.providers.plivo import events
from ivr.providers.plivo.fields import check_fields, is_call_uuid
from ivr.providers.plivo.gaps import plivo_gaps
from ivr.providers.plivo.render import render_plivo_xml
from ivr.providers.plivo.signature import is_valid_v3
from ivr.providers.twilio.webhook_fields import FieldError

_SIGNATURE = b"x-plivo-signature-v3"
#: The same signature keyed with the main account's auth token, sent beside
#: the (sub-)account's (https://docs.plivo.com/docs/voice/xml/request/validation).
_MAIN_SIGNATURE = b"x-plivo-signature-ma-v3"
_NONCE = b"x-plivo-signature-v3-nonce"
#: The longest headers looked at: a signature is 44 base64 characters,
#: and a few of them travel together while an auth token is rotated.
MAX_SIGNATURES = 512
MAX_NONCE = 128


class PlivoDialect:
    """Plivo's callbacks and Plivo XML."""

    name = "plivo"
    content_type = b"text/xml; charset=utf-8"
    # An application's answer and hangup URLs may be set to GET or POST.
    voice_methods = ("POST", "GET")
    #: Plivo XML wants fully qualified action URLs (the GetInput page).
    absolute_urls = True
    voice_fields = ("CallUUID",)
    status_fields = ("CallUUID", "CallStatus")

    def parse(self, request: WebhookRequest) -> dict[str, list[str]]:
        """Plivo posts forms, or sends the fields in the query of a GET."""
        return form_fields(request)

    def verify(self, secret: str, request: WebhookRequest, fields: dict) -> None:
        """Refuse (403) a request without Plivo's V3 signature for its URL,
        its POST fields and its nonce, keyed with the auth token ``secret``
        (the number's account's, or the main account's: either header may
        match)."""
        signature, nonce = request.header(_SIGNATURE), request.header(_NONCE)
        main = request.header(_MAIN_SIGNATURE)
        if signature and main:
            signature = signature + b"," + main
        if not signature:
            raise Refusal(403, "missing X-Plivo-Signature-V3")
        if not nonce:
            raise Refusal(403, "missing X-Plivo-Signature-V3-Nonce")
        # A forged header may be any bytes: only short ASCII ones are read.
        if len(signature) > MAX_SIGNATURES or not signature.isascii():
            raise Refusal(403, "X-Plivo-Signature-V3 is not a signature")
        if len(nonce) > MAX_NONCE or not nonce.isascii():
            raise Refusal(403, "X-Plivo-Signature-V3-Nonce is not a nonce")
        params = fields if request.method == "POST" else {}
        if not is_valid_v3(secret, request.method, request.url, params, nonce.decode("ascii"),
                           signature.decode("ascii")):
            raise Refusal(403, "X-Plivo-Signature-V3 does not match this request")

    def is_signed(self, header: HeaderFn) -> bool:
        return bool(header(_SIGNATURE))

    def check(self, fields: dict, required: tuple[str, ...] = ()) -> dict[str, str]:
        """See :func:`ivr.providers.plivo.fields.check_fields`."""
        try:
            return check_fields(fields, required)
        except FieldError as error:
            raise Refusal(400, str(error)) from None

    def is_call_id(self, value: str) -> bool:
        return is_call_uuid(value)

    def call_facts(self, params: dict) -> CallFacts:
        return CallFacts(params["CallUUID"], params.get("From", ""), params.get("To", ""))

    def event_from(self, params: dict, state: dict) -> dict:
        """See :func:`ivr.providers.plivo.events.event_from`."""
        return events.event_from(params, state)

    def status_from(self, params: dict) -> StatusNotice:
        """See :func:`ivr.providers.plivo.events.status_from`."""
        return events.status_from(params)

    def render(self, actions: Iterable[Action], next_url: str) -> bytes:
        """See :func:`ivr.providers.plivo.render.render_plivo_xml`."""
        return render_plivo_xml(actions, next_url)

    def gaps(self, flow) -> list[Gap]:
        """See :func:`ivr.providers.plivo.gaps.plivo_gaps`."""
        return plivo_gaps(flow)
