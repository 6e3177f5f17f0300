"""Vonage's signed webhooks: a JWT (HS256) in ``Authorization: Bearer``,
keyed with the account's signature secret, whose ``payload_hash`` claim is
the SHA-256 (hex) of the payload.

Sources: https://developer.vonage.com/en/getting-started/concepts/webhooks#decoding-signed-webhooks
(the JWT and its claims ``iat``, ``jti``, ``iss``, ``payload_hash``,
``api_key``, ``application_id``); the Vonage support article "How do I
verify that the Voice API Webhook request and its payload has not been
tampered during transit?" (the payload of a POST is its body; of a GET, the
query's fields as a JSON object in their order, without whitespace); the
SDKs check the token with a JWT library, HS256 only (``vonage-jwt``
``verify_jwt.verify_signature``: ``jwt.decode(token, secret, algorithms='HS256')``;
``@vonage/jwt`` ``verifySignature``).  A few lines of ``hmac`` do the same
here without a dependency; the tests check them against PyJWT.

Not documented, so chosen: a token must carry ``iat`` and be at most
:data:`MAX_AGE` old (or that far ahead: clock skew), which refuses a
replayed request; ``exp`` is honoured when present.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Callable

from ivr.providers.dialect import Refusal, WebhookRequest

#: How old (or how far in the future) a token's ``iat`` may be, in seconds.
MAX_AGE = 300
#: The longest Authorization header looked at.
MAX_HEADER = 4096

_AUTHORIZATION = b"authorization"


def _b64url_decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def payload_hash(request: WebhookRequest) -> str:
    """The SHA-256 (hex) Vonage signs of a request's payload: a POST's body
    as sent; a GET's query fields as a compact JSON object, in order."""
    if request.method == "GET":
        fields = {name: values[-1] for name, values in request.query.items()}
        data = json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    else:
        data = request.raw
    return hashlib.sha256(data).hexdigest()


def sign(secret: str, claims: dict) -> str:
    """An HS256 JWT of ``claims`` keyed with ``secret`` (for the fake Vonage)."""
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    body = _b64url(json.dumps(claims, separators=(",", ":")).encode())
    digest = hmac.new(secret.encode("utf-8"), f"{header}.{body}".encode("ascii"), hashlib.sha256)
    return f"{header}.{body}.{_b64url(digest.digest())}"


def verify(secret: str, request: WebhookRequest, now: Callable[[], float] = time.time) -> None:
    """Raise :class:`Refusal` (403) unless ``request`` carries a Bearer JWT
    signed with ``secret`` (HS256), fresh, whose ``payload_hash`` is the
    request's.  Reasons never echo a value."""
    claims = _claims(secret, request.header(_AUTHORIZATION))
    issued = claims.get("iat")
    if not isinstance(issued, (int, float)) or isinstance(issued, bool):
        raise Refusal(403, "the Vonage token has no issue time")
    moment = now()
    if abs(moment - issued) > MAX_AGE:
        raise Refusal(403, "the Vonage token is stale")
    expires = claims.get("exp")
    if isinstance(expires, (int, float)) and not isinstance(expires, bool) and moment >= expires:
        raise Refusal(403, "the Vonage token has expired")
    expected = claims.get("payload_hash")
    if not isinstance(expected, str) or not hmac.compare_digest(
            expected.lower().encode("ascii", "replace"), payload_hash(request).encode("ascii")):
        raise Refusal(403, "the Vonage token's payload_hash does not match the body")


def _claims(secret: str, header: bytes | None) -> dict:
    """The claims of a correctly signed HS256 token in ``Authorization``."""
    if not header:
        raise Refusal(403, "missing Authorization")
    if len(header) > MAX_HEADER or not header.isascii():
        raise Refusal(403, "Authorization is not a Vonage token")
    scheme, _, token = header.decode("ascii").partition(" ")
    parts = token.strip().split(".")
    if scheme.lower() != "bearer" or len(parts) != 3:
        raise Refusal(403, "Authorization is not a Bearer JWT")
    try:
        head = json.loads(_b64url_decode(parts[0]))
        claims = json.loads(_b64url_decode(parts[1]))
        signature = _b64url_decode(parts[2])
    except (binascii.Error, ValueError):
        raise Refusal(403, "Authorization is not a Bearer JWT") from None
    if not isinstance(head, dict) or head.get("alg") != "HS256" or not isinstance(claims, dict):
        raise Refusal(403, "the Vonage token is not HS256")
    signed = f"{parts[0]}.{parts[1]}".encode("ascii")
    digest = hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).digest()
    if not hmac.compare_digest(digest, signature):
        raise Refusal(403, "the Vonage token's signature does not match")
    return claims
