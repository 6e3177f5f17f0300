"""A :class:`ivr.providers.dialect.Dialect` for tests: requests in plain
field names, a shared secret sent as is, and a JSON document that names
the actions; every rendering is kept in memory.

It is the protocol's second implementation, beside Twilio's: a test that
plays a call through it shows the call handler and the web resources
need nothing of Twilio.  Its fields: ``call`` (the call id), ``from``,
``to``, ``keys``, ``words``, ``transfer`` (a dial status), ``recording``
and ``seconds`` on a turn; ``call``, ``status`` (``ended`` is final),
``sequence`` and ``duration`` on a status notice.  Its signature: the
``x-test-secret`` header carries the secret itself.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from ivr.engine.actions import Action
from ivr.providers.bodies import form_fields
from ivr.providers.dialect import CallFacts, Gap, HeaderFn, Refusal, StatusNotice, WebhookRequest

#: The status that ends a call.
FINAL_STATUS = "ended"

_SECRET = b"x-test-secret"


def _number(value: str | None) -> int | None:
    return int(value) if value and value.isascii() and value.isdigit() else None


class RecordingDialect:
    """The in-memory dialect; :attr:`rendered` keeps each (actions, next URL)."""

    name = "memory"
    content_type = b"application/json"
    voice_methods = ("POST",)
    absolute_urls = False
    voice_fields = ("call",)
    status_fields = ("call", "status")

    def __init__(self) -> None:
        self.rendered: list[tuple[list[Action], str]] = []

    def parse(self, request: WebhookRequest) -> dict[str, list[str]]:
        return form_fields(request)

    def verify(self, secret: str, request: WebhookRequest, fields: dict) -> None:
        """Refuse (403) a request whose ``x-test-secret`` is not ``secret``."""
        if request.header(_SECRET) != secret.encode("utf-8"):
            raise Refusal(403, "wrong x-test-secret")

    def is_signed(self, header: HeaderFn) -> bool:
        return header(_SECRET) is not None

    def check(self, fields: dict, required: tuple[str, ...] = ()) -> dict[str, str]:
        """The last value of each field; refuses (400) a missing ``required`` one."""
        for name in required:
            if not fields.get(name) or not fields[name][-1]:
                raise Refusal(400, f"missing {name}")
        return {name: values[-1] for name, values in fields.items()}

    def is_call_id(self, value: str) -> bool:
        return bool(value) and value.isascii() and value.isalnum() and len(value) <= 64

    def call_facts(self, params: dict) -> CallFacts:
        return CallFacts(params["call"], params.get("from", ""), params.get("to", ""))

    def event_from(self, params: dict, state: dict) -> dict:
        """The engine event of a turn, by what the call waits for."""
        waiting = state.get("waiting")
        if waiting == "dial":
            return {"type": "dial_result", "status": params.get("transfer") or "failed"}
        if waiting == "record":
            return {"type": "recorded", "url": params.get("recording"),
                    "duration": params.get("seconds")}
        if params.get("keys"):
            return {"type": "digits", "digits": params["keys"]}
        if params.get("words"):
            return {"type": "speech", "text": params["words"], "confidence": None}
        return {"type": "silence"}

    def status_from(self, params: dict) -> StatusNotice:
        status = params.get("status", "")
        return StatusNotice(params["call"], status, status == FINAL_STATUS,
                            sequence=_number(params.get("sequence")),
                            duration=_number(params.get("duration")))

    def render(self, actions: Iterable[Action], next_url: str) -> bytes:
        """JSON: the actions' kinds and where the caller's answer goes."""
        kept = list(actions)
        self.rendered.append((kept, next_url))
        return json.dumps({"actions": [type(a).__name__ for a in kept],
                           "next": next_url}).encode("utf-8")

    def gaps(self, flow) -> list[Gap]:
        return []
