"""jambonz (JSON verbs) as a :class:`ivr.providers.dialect.Dialect`: its
JSON hooks, ``Jambonz-Signature`` and verbs, from the modules beside this one."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from ivr.engine.actions import Action
from ivr.providers.bodies import json_object
from ivr.providers.dialect import CallFacts, Gap, HeaderFn, StatusNotice, WebhookRequest
from ivr.providers.jambonz import signature, webhook
from ivr.providers.jambonz.gaps import flow_gaps
from ivr.providers.jambonz.verbs import CONTENT_TYPE, render_verbs


class JambonzDialect:
    """jambonz's webhooks and verbs.  ``clock`` (seconds since the epoch)
    dates the signatures; tests pass their own."""

    name = "jambonz"
    content_type = CONTENT_TYPE
    voice_methods = ("POST",)
    #: Absolute hooks: a relative one would resolve against the application's
    #: call hook, which need not be this server.
    absolute_urls = True
    voice_fields = ("call_sid",)
    status_fields = ("call_sid", "call_status")

    def __init__(self, clock: Callable[[], float] = time.time):
        self.clock = clock

    def parse(self, request: WebhookRequest) -> dict:
        """jambonz POSTs JSON objects."""
        return json_object(request)

    def verify(self, secret: str, request: WebhookRequest, fields: dict) -> None:
        """See :func:`ivr.providers.jambonz.signature.verify`."""
        signature.verify(secret, request.header(signature.HEADER), request.raw, self.clock)

    def is_signed(self, header: HeaderFn) -> bool:
        return bool(header(signature.HEADER))

    def check(self, fields: dict, required: tuple[str, ...] = ()) -> dict:
        """See :func:`ivr.providers.jambonz.webhook.check`."""
        return webhook.check(fields, required)

    def is_call_id(self, value: str) -> bool:
        return webhook.is_call_id(value)

    def call_facts(self, params: dict) -> CallFacts:
        return CallFacts(params["call_sid"], params.get("from") or "", params.get("to") or "")

    def event_from(self, params: dict, state: dict) -> dict:
        """See :func:`ivr.providers.jambonz.webhook.event_from`."""
        return webhook.event_from(params, state)

    def status_from(self, params: dict) -> StatusNotice:
        """See :func:`ivr.providers.jambonz.webhook.status_from`."""
        return webhook.status_from(params)

    def render(self, actions: Iterable[Action], next_url: str) -> bytes:
        """Verbs: see :func:`ivr.providers.jambonz.verbs.render_verbs`."""
        return render_verbs(actions, next_url)

    def gaps(self, flow) -> list[Gap]:
        """See :func:`ivr.providers.jambonz.gaps.flow_gaps`."""
        return flow_gaps(flow)
