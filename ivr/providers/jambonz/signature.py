"""jambonz request signatures: ``Jambonz-Signature: t=<unix>,v1=<hex>``,
the hex HMAC-SHA256, keyed with the account's webhook secret, of
``"<t>.<JSON body>"``.

Sources: https://docs.jambonz.org/guides/features/securing-http-endpoints
(the header, checked by @jambonz/node-client's middleware);
jambonz-feature-server ``lib/utils/base-requestor.js`` (``_computeSignature``:
``${timestamp}.${JSON.stringify(payload)}``, the body it POSTs being that
same ``JSON.stringify(payload)``) and @jambonz/node-client
``lib/jambonz/webhook-response.js`` (``verifyJambonzSignature``: the
header split on ``,`` then ``=``, every ``v1`` tried, and a request refused
when its ``t`` is more than 300 seconds old).  A ``t`` more than 300 seconds
ahead of our clock is refused too (node-client takes it): a signature
cannot come from the future.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable

from ivr.providers.dialect import Refusal

#: node-client's DEFAULT_TOLERANCE, in seconds.
TOLERANCE = 300
#: The longest header looked at (a few v1 signatures of 64 hex digits).
MAX_HEADER = 512
HEADER = b"jambonz-signature"


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The ``v1`` value jambonz sends for ``body`` at ``timestamp``."""
    signed = f"{timestamp}.".encode("ascii") + body
    return hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()


def header_value(secret: str, timestamp: int, body: bytes) -> str:
    """The whole ``Jambonz-Signature`` header (for the fake jambonz)."""
    return f"t={timestamp},v1={signature(secret, timestamp, body)}"


def verify(secret: str, header: bytes | None, body: bytes,
           now: Callable[[], float] = time.time) -> None:
    """Raise :class:`Refusal` (403) unless ``header`` signs ``body`` with
    ``secret`` within the tolerance.  Reasons never echo a value."""
    if not header:
        raise Refusal(403, "missing Jambonz-Signature")
    if len(header) > MAX_HEADER or not header.isascii():
        raise Refusal(403, "Jambonz-Signature is not a signature")
    timestamp, candidates = _parse(header.decode("ascii"))
    if timestamp is None or not candidates:
        raise Refusal(403, "Jambonz-Signature has no timestamp or no v1 signature")
    expected = signature(secret, timestamp, body).encode("ascii")
    if not any(hmac.compare_digest(expected, candidate.encode("ascii")) for candidate in candidates):
        raise Refusal(403, "Jambonz-Signature does not match this request")
    if abs(now() - timestamp) > TOLERANCE:
        raise Refusal(403, "Jambonz-Signature timestamp is outside the tolerance")


def _parse(header: str) -> tuple[int | None, list[str]]:
    timestamp, candidates = None, []
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t" and value.isdigit() and len(value) <= 12:
            timestamp = int(value)
        elif key == "v1" and value:
            candidates.append(value)
    return timestamp, candidates
