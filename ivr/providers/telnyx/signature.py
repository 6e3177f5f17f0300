"""Telnyx request signatures: ``telnyx-signature-ed25519``.

Telnyx signs each webhook with Ed25519: the signed message is
``"{telnyx-timestamp}|{raw body}"``, the signature is sent base64-encoded
in ``telnyx-signature-ed25519`` and the Unix time in ``telnyx-timestamp``;
it is verified with the account's public key (base64 of its 32 bytes,
from the Mission Control portal).  A request more than five minutes away
from our clock, either way, is refused as a replay.  Sources: the TeXML
callback pages (https://developers.telnyx.com/api-reference/callbacks/texml-call-answered,
"Headers") and telnyx-python's ``telnyx/lib/webhook_verification.py``
(``telnyx`` 4.189.0 on PyPI: ``TIMESTAMP_TOLERANCE_SECONDS = 300``,
``abs(now - timestamp)``, 32-byte key, 64-byte signature).

Ed25519 comes from ``cryptography`` (the SDK uses PyNaCl; the test suite
runs the SDK's verifier against signatures made here).
"""

from __future__ import annotations

import base64
import binascii
import re

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

__all__ = ["SIGNATURE_HEADER", "TIMESTAMP_HEADER", "TOLERANCE_SECONDS", "SignatureProblem",
           "public_key_of", "sign", "signed_headers", "test_key_pair", "verify_signature"]

SIGNATURE_HEADER = "telnyx-signature-ed25519"
TIMESTAMP_HEADER = "telnyx-timestamp"
#: How far a request's timestamp may be from our clock.
TOLERANCE_SECONDS = 300

_TIMESTAMP = re.compile(rb"[0-9]{1,12}")


class SignatureProblem(ValueError):
    """Why a request's signature is refused, in one line without its values."""


def _private_key(private_key: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(base64.b64decode(private_key, validate=True))


def public_key_of(private_key: str) -> str:
    """The base64 public key (what Telnyx shows) of a base64 private key."""
    raw = _private_key(private_key).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")


def test_key_pair() -> tuple[str, str]:
    """(public key, private key) of a fixed, well-known key pair, for tests
    and ``ivr-sim`` against a local server: the server is given the public
    key, the fake Telnyx signs with the private one.  Never for a real
    account: anyone can sign with it."""
    private = base64.b64encode(bytes(range(32))).decode("ascii")
    return public_key_of(private), private


def sign(private_key: str, timestamp: int, raw_body: bytes) -> str:
    """The base64 Ed25519 signature Telnyx sends for ``raw_body`` at ``timestamp``."""
    message = str(timestamp).encode("ascii") + b"|" + raw_body
    return base64.b64encode(_private_key(private_key).sign(message)).decode("ascii")


def signed_headers(private_key: str, timestamp: int, raw_body: bytes) -> dict[str, str]:
    """The two headers of a request signed as Telnyx signs it."""
    return {SIGNATURE_HEADER: sign(private_key, timestamp, raw_body), TIMESTAMP_HEADER: str(timestamp)}


def _decoded(value: bytes | str, size: int, what: str) -> bytes:
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise SignatureProblem(f"{what} is not base64") from None
    if len(raw) != size:
        raise SignatureProblem(f"{what} is not {size} bytes")
    return raw


def verify_signature(public_key: str, signature: bytes | None, timestamp: bytes | None,
                     raw_body: bytes, now: float) -> None:
    """Raise :class:`SignatureProblem` unless ``signature`` is the Ed25519
    signature of ``timestamp|raw_body`` by ``public_key``'s holder, with
    ``timestamp`` within :data:`TOLERANCE_SECONDS` of ``now``."""
    if not signature:
        raise SignatureProblem(f"missing {SIGNATURE_HEADER}")
    if not timestamp:
        raise SignatureProblem(f"missing {TIMESTAMP_HEADER}")
    if not _TIMESTAMP.fullmatch(timestamp):
        raise SignatureProblem(f"{TIMESTAMP_HEADER} is not a Unix time")
    if abs(now - int(timestamp)) > TOLERANCE_SECONDS:
        raise SignatureProblem(f"{TIMESTAMP_HEADER} is more than {TOLERANCE_SECONDS // 60} minutes away")
    # Bounded before decoding: a 64-byte signature is 88 base64 characters.
    if len(signature) > 128:
        raise SignatureProblem(f"{SIGNATURE_HEADER} is not a signature")
    raw_signature = _decoded(signature, 64, SIGNATURE_HEADER)
    try:
        key = Ed25519PublicKey.from_public_bytes(_decoded(public_key, 32, "the public key"))
        key.verify(raw_signature, timestamp + b"|" + raw_body)
    except InvalidSignature:
        raise SignatureProblem(f"{SIGNATURE_HEADER} does not match this request") from None
