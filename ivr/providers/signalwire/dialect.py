"""SignalWire (cXML, also called LaML) as a
:class:`ivr.providers.dialect.Dialect`.

cXML is TwiML-compatible, so this dialect is Twilio's
(:class:`ivr.providers.twilio.dialect.TwilioDialect`: its events, status
callbacks and TwiML renderer) with what SignalWire does differently:

- the signature: ``X-SignalWire-Signature`` keyed with the project's
  signing key (:mod:`ivr.providers.signalwire.signature`);
- identifiers are UUIDs (:mod:`ivr.providers.signalwire.webhook_fields`);
- Google voices are spelled ``gcloud.…`` (:mod:`ivr.providers.signalwire.render`).

What SignalWire adds and the renderer does not use: Gather's
``actionOnEmptyResult`` (a silent caller posts to ``action``) and
``enhanced``.  Without ``actionOnEmptyResult`` a Gather with no input runs
the next verb (https://developer.signalwire.com/compatibility-api/xml/voice/gather),
which is Twilio's behaviour, so the ``<Redirect>`` Twilio's renderer puts
after each Gather brings a silent caller back to the engine the same way.
Polly voices (``Polly.Joanna-Neural``…) are sent as the flow names them.
"""

from __future__ import annotations

from collections.abc import Iterable

from ivr.engine.actions import Action
from ivr.providers.dialect import Gap, HeaderFn, Refusal, WebhookRequest
from ivr.providers.signalwire import webhook_fields
from ivr.providers.signalwire.render import render_cxml
from ivr.providers.signalwire.signature import HEADERS, is_valid_signalwire_request
from ivr.providers.twilio.dialect import MAX_SIGNATURE, TwilioDialect
from ivr.providers.twiml_compat import checked_params


def _signature(header: HeaderFn) -> bytes | None:
    """The first signature header present: SignalWire's, else Twilio's alias."""
    for name in HEADERS:
        value = header(name)
        if value:
            return value
    return None


class SignalWireDialect(TwilioDialect):
    """SignalWire's webhooks and cXML."""

    name = "signalwire"

    def verify(self, secret: str, request: WebhookRequest, fields: dict) -> None:
        """Refuse (403) a request whose ``X-SignalWire-Signature`` (or
        ``X-Twilio-Signature``) is missing, malformed or not made with the
        signing key ``secret`` for its URL and body."""
        signature = _signature(request.header)
        if not signature:
            raise Refusal(403, "missing X-SignalWire-Signature")
        # A forged header may be any bytes: only a short ASCII one is compared.
        if len(signature) > MAX_SIGNATURE or not signature.isascii():
            raise Refusal(403, "X-SignalWire-Signature is not a signature")
        if not is_valid_signalwire_request(secret, request.url, fields, signature, request.raw):
            raise Refusal(403, "X-SignalWire-Signature does not match this request")

    def is_signed(self, header: HeaderFn) -> bool:
        return _signature(header) is not None

    def check(self, fields: dict, required: tuple[str, ...] = ()) -> dict[str, str]:
        """Twilio's field rules, with SignalWire's UUID identifiers."""
        return checked_params(fields, required, webhook_fields.ID_FIELDS)

    def is_call_id(self, value: str) -> bool:
        return webhook_fields.is_call_id(value)

    def render(self, actions: Iterable[Action], next_url: str) -> bytes:
        """cXML: see :func:`ivr.providers.signalwire.render.render_cxml`."""
        return render_cxml(actions, next_url)

    def gaps(self, flow) -> list[Gap]:
        """cXML does all a flow can ask, as TwiML does."""
        return []
