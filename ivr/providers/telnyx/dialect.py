"""Telnyx (TeXML) as a :class:`ivr.providers.dialect.Dialect`.

TeXML is TwiML-compatible: Telnyx posts Twilio's form fields to the
URLs the document names, and the engine events are Twilio's reading of
them.  What differs: the Ed25519 signature over the timestamp and the raw
body (:mod:`ivr.providers.telnyx.signature`), the ``v3:…`` call ids
(:mod:`ivr.providers.telnyx.webhook_fields`), ISO 8601 timestamps
(:mod:`ivr.providers.telnyx.events`) and Gather's attributes
(:mod:`ivr.providers.telnyx.render`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from ivr.engine.actions import Action
from ivr.providers.bodies import form_fields
from ivr.providers.dialect import CallFacts, Gap, HeaderFn, Refusal, StatusNotice, WebhookRequest
from ivr.providers.telnyx import events, gaps, webhook_fields
from ivr.providers.telnyx.render import render_texml
from ivr.providers.telnyx.signature import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    SignatureProblem,
    verify_signature,
)
from ivr.providers.twiml_compat import checked_params

_SIGNATURE = SIGNATURE_HEADER.encode("ascii")
_TIMESTAMP = TIMESTAMP_HEADER.encode("ascii")


class TelnyxDialect:
    """Telnyx's TeXML webhooks and documents.  ``now`` gives the current
    Unix time the signature's timestamp is checked against (a fixed clock
    in tests)."""

    name = "telnyx"
    content_type = b"text/xml; charset=utf-8"
    voice_methods = ("POST",)
    absolute_urls = False
    voice_fields = ("CallSid",)
    status_fields = ("CallSid", "CallStatus")

    def __init__(self, now: Callable[[], float] = time.time):
        self.now = now

    def parse(self, request: WebhookRequest) -> dict[str, list[str]]:
        """TeXML posts forms (``application/x-www-form-urlencoded``)."""
        return form_fields(request)

    def verify(self, secret: str, request: WebhookRequest, fields: dict) -> None:
        """Refuse (403) a request not signed by the holder of the public
        key ``secret`` within five minutes of now."""
        try:
            verify_signature(secret, request.header(_SIGNATURE), request.header(_TIMESTAMP),
                             request.raw, self.now())
        except SignatureProblem as problem:
            raise Refusal(403, str(problem)) from None

    def is_signed(self, header: HeaderFn) -> bool:
        return bool(header(_SIGNATURE))

    def check(self, fields: dict, required: tuple[str, ...] = ()) -> dict[str, str]:
        """Twilio's field rules, with Telnyx's identifiers."""
        return checked_params(fields, required, webhook_fields.ID_FIELDS)

    def is_call_id(self, value: str) -> bool:
        return webhook_fields.is_call_id(value)

    def call_facts(self, params: dict) -> CallFacts:
        return CallFacts(params["CallSid"], params.get("From", ""), params.get("To", ""))

    def event_from(self, params: dict, state: dict) -> dict:
        """See :func:`ivr.providers.twilio.events.event_from`."""
        return events.event_from(params, state)

    def status_from(self, params: dict) -> StatusNotice:
        return events.status_from(params)

    def render(self, actions: Iterable[Action], next_url: str) -> bytes:
        """TeXML: see :func:`ivr.providers.telnyx.render.render_texml`."""
        return render_texml(actions, next_url)

    def gaps(self, flow) -> list[Gap]:
        """See :func:`ivr.providers.telnyx.gaps.gaps`."""
        return gaps.gaps(flow)
