"""SignalWire request signatures: ``X-SignalWire-Signature``, keyed with
the project's **signing key** (the dashboard's API page, not its API token).

SignalWire signs every webhook (https://developer.signalwire.com/guides/webhook-security)
in one of two ways, and its Python SDK's validator accepts either
(``signalwire`` 2.1.1 on PyPI, ``signalwire/request_validator.py``):

- the compatibility scheme of cXML callbacks: Twilio's, base64 HMAC-SHA1
  over the URL followed by the sorted form fields
  (:func:`ivr.providers.twilio.signature.is_valid_twilio_request`, reused
  as is: same URL variants with and without the port);
- for a raw body (JSON callbacks): the *hex* HMAC-SHA1 of the URL followed
  by the raw body, under the URL with and without its port.

The header is ``X-SignalWire-Signature``; SignalWire's server SDK also
accepts ``X-Twilio-Signature`` as an alias for compatibility callbacks
(https://signalwire.com/docs/server-sdks/reference/python/core/security),
so either is read, SignalWire's first.
"""

from __future__ import annotations

import hashlib
import hmac

from ivr.providers.twilio.signature import Params, is_valid_twilio_request, twilio_signature, url_variants

__all__ = ["HEADERS", "SIGNATURE_HEADER", "body_signature", "is_valid_signalwire_request",
           "signed_headers"]

#: The header SignalWire puts the signature in.
SIGNATURE_HEADER = "X-SignalWire-Signature"
#: Headers read, in order: SignalWire's own, then Twilio's alias.
HEADERS = (b"x-signalwire-signature", b"x-twilio-signature")


def body_signature(signing_key: str, url: str, raw_body: bytes) -> str:
    """The hex HMAC-SHA1 of ``url`` followed by the raw body (the SDK's
    ``build_signature(uri, body)``)."""
    return hmac.new(signing_key.encode("utf-8"), url.encode("utf-8") + raw_body, hashlib.sha1).hexdigest()


def is_valid_signalwire_request(signing_key: str, url: str, params: Params | None,
                                signature: bytes, raw_body: bytes) -> bool:
    """Whether ``signature`` is SignalWire's for this request, by either
    scheme; every candidate is computed and compared in constant time."""
    if not signing_key or not signature:
        return False
    matched = is_valid_twilio_request(signing_key, url, params, signature, raw_body)
    for candidate in url_variants(url):
        expected = body_signature(signing_key, candidate, raw_body)
        matched |= hmac.compare_digest(expected.encode("ascii"), signature)
    return matched


def signed_headers(signing_key: str, url: str, params: Params | None) -> dict[str, str]:
    """The header SignalWire sends with a cXML form POST to ``url``: the
    compatibility signature, under SignalWire's header name."""
    return {SIGNATURE_HEADER: twilio_signature(signing_key, url, params)}
