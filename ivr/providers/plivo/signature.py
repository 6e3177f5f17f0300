"""Plivo's V3 request signature (``X-Plivo-Signature-V3`` with
``X-Plivo-Signature-V3-Nonce``): compute and check it.

Plivo signs each callback with a base64 HMAC-SHA256, keyed with the
account's (or sub-account's) auth token, of ``"<base>.<nonce>"``, where
the base is built from the URL and the POST parameters exactly as the
official SDKs do (https://www.plivo.com/docs/voice/xml/request/validation;
plivo-python 4.63 ``plivo/utils/signature_v3.py``, plivo npm 4.79
``dist/utils/v3Security.js``, which agree line for line):

* the URL's scheme, host (with any port) and path, then its query string
  with the names sorted and each value decoded, written ``name=value`` and
  joined with ``&`` (several values of a name sorted);
* for a POST with parameters: ``?`` then that query (possibly empty),
  then ``.`` when the query is not empty, then every POST parameter as
  ``namevalue`` with the names sorted (several values sorted), no separator;
* for a GET, or a POST without parameters: ``?query`` only when there is one.

The header may carry several signatures separated by commas (one per auth
token while a token is being rotated); the request is Plivo's when any of
them matches.  V3 carries no timestamp, so a signature never expires.

Standard library only, so the fake and the tests can sign requests.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Mapping
from urllib.parse import parse_qs, urlsplit

__all__ = ["NONCE_HEADER", "SIGNATURE_HEADER", "is_valid_v3", "signature_base", "signed_headers",
           "v3_signature"]

SIGNATURE_HEADER = "X-Plivo-Signature-V3"
NONCE_HEADER = "X-Plivo-Signature-V3-Nonce"

#: A parameter's values: one string, or a list of them for a repeated name.
Params = Mapping[str, "str | list[str]"]


def _values(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _sorted_query(params: Mapping[str, list[str]]) -> str:
    return "&".join(f"{name}={value}" for name in sorted(params)
                    for value in sorted(params[name]))


def _sorted_params(params: Params) -> str:
    return "".join(f"{name}{value}" for name in sorted(params)
                   for value in sorted(_values(params[name])))


def signature_base(method: str, url: str, params: Params | None) -> str:
    """The string Plivo signs (before ``.<nonce>``) for a request to
    ``url``; ``params`` are the decoded POST parameters (ignored for GET)."""
    parts = urlsplit(url)
    base = f"{parts.scheme}://{parts.netloc}{parts.path}"
    query = _sorted_query(parse_qs(parts.query, keep_blank_values=True))
    post = dict(params or {}) if method.upper() == "POST" else {}
    if query or post:
        base += "?" + query
    if query and post:
        base += "."
    return base + _sorted_params(post)


def v3_signature(auth_token: str, method: str, url: str, params: Params | None, nonce: str) -> str:
    """The ``X-Plivo-Signature-V3`` Plivo would send for this request."""
    message = f"{signature_base(method, url, params)}.{nonce}".encode()
    digest = hmac.new(auth_token.encode(), message, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def is_valid_v3(auth_token: str, method: str, url: str, params: Params | None, nonce: str,
                header: str) -> bool:
    """Whether any of the comma-separated signatures in ``header`` is
    Plivo's for this request and ``nonce`` (compared in constant time)."""
    expected = v3_signature(auth_token, method, url, params, nonce).encode()
    matched = False
    for candidate in header.split(","):
        # No early exit: every candidate is compared, whichever matches.
        matched |= hmac.compare_digest(candidate.strip().encode(), expected)
    return matched


def signed_headers(auth_token: str, method: str, url: str, params: Params | None,
                   nonce: str | None = None) -> dict[str, str]:
    """The two signature headers of a request, with a fresh nonce unless given."""
    nonce = nonce or str(secrets.randbelow(10 ** 20)).zfill(20)
    return {SIGNATURE_HEADER: v3_signature(auth_token, method, url, params, nonce),
            NONCE_HEADER: nonce}
