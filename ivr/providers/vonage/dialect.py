"""Vonage (NCCO) as a :class:`ivr.providers.dialect.Dialect`: its answer
webhook (a GET by default, or a JSON POST), its JSON event webhooks, its
signed-webhook JWT and NCCO, from the modules beside this one."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from ivr.engine.actions import Action
from ivr.providers.bodies import json_object
from ivr.providers.dialect import CallFacts, Gap, HeaderFn, StatusNotice, WebhookRequest
from ivr.providers.json_fields import e164
from ivr.providers.vonage import signature, webhook
from ivr.providers.vonage.gaps import flow_gaps
from ivr.providers.vonage.ncco import CONTENT_TYPE, render_ncco


class VonageDialect:
    """Vonage's webhooks and NCCO.  ``clock`` (seconds since the epoch)
    dates the signed tokens; tests pass their own."""

    name = "vonage"
    content_type = CONTENT_TYPE
    # The answer webhook is a GET unless the application says POST; every
    # later request (input, notify, connect events) is a JSON POST.
    voice_methods = ("GET", "POST")
    #: an NCCO's eventUrl is an array of absolute URLs.
    absolute_urls = True
    voice_fields = ("conversation_uuid",)
    status_fields = ("conversation_uuid", "status")

    def __init__(self, clock: Callable[[], float] = time.time):
        self.clock = clock

    def parse(self, request: WebhookRequest) -> dict:
        """A GET's query fields, or a POST's JSON object."""
        return json_object(request)

    def verify(self, secret: str, request: WebhookRequest, fields: dict) -> None:
        """See :func:`ivr.providers.vonage.signature.verify`."""
        signature.verify(secret, request, self.clock)

    def is_signed(self, header: HeaderFn) -> bool:
        value = header(b"authorization") or b""
        return value[:7].lower() == b"bearer "

    def check(self, fields: dict, required: tuple[str, ...] = ()) -> dict:
        """See :func:`ivr.providers.vonage.webhook.check`."""
        return webhook.check(fields, required, self.voice_fields)

    def is_call_id(self, value: str) -> bool:
        return webhook.is_call_id(value)

    def call_facts(self, params: dict) -> CallFacts:
        """The conversation, and the numbers with their ``+`` (Vonage sends
        international numbers without it)."""
        return CallFacts(params["conversation_uuid"], e164(params.get("from") or ""),
                         e164(params.get("to") or ""))

    def event_from(self, params: dict, state: dict) -> dict:
        """See :func:`ivr.providers.vonage.webhook.event_from`."""
        return webhook.event_from(params, state)

    def status_from(self, params: dict) -> StatusNotice:
        """See :func:`ivr.providers.vonage.webhook.status_from`."""
        return webhook.status_from(params)

    def render(self, actions: Iterable[Action], next_url: str) -> bytes:
        """NCCO: see :func:`ivr.providers.vonage.ncco.render_ncco`."""
        return render_ncco(actions, next_url)

    def gaps(self, flow) -> list[Gap]:
        """See :func:`ivr.providers.vonage.gaps.flow_gaps`."""
        return flow_gaps(flow)
