"""Twilio request signatures (``X-Twilio-Signature``): compute and check them.

Twilio signs each webhook with its HMAC-SHA1, keyed with the account's auth
token. The signed string is the full URL it requested, then, for form POSTs,
every parameter name directly followed by its value, with the names sorted
(docs/reference: telephony.md §3; twilio-python ``request_validator.py``,
twilio-node ``webhooks.ts``).

The caller must pass the URL exactly as Twilio built it. Behind a proxy, that
means the public scheme and host plus the *raw* path and query (Twisted's
``request.uri``), never a re-encoded or re-sorted query. Twilio signs its own
query string as it wrote it, and re-normalising the query breaks validation.
POST parameters, by contrast, are the *decoded* form values (``request.args``
decoded from UTF-8).

A Webhook Setting can make Twilio sign with a *shared key* instead: the
same signed string, hashed with HMAC-SHA256 keyed with the shared key's
secret, in the same ``X-Twilio-Signature`` header, and the request then
carries ``X-Twilio-Webhooks-Signature-Settings: key=<key id>,algorithm=HMAC_SHA256``
(https://www.twilio.com/docs/usage/webhooks/webhook-shared-keys; twilio-python
9.13 ``request_validator.py`` ``get_signature_algorithm`` and
``compute_signature(..., algorithm)``; twilio-node 6.3
``lib/webhooks/webhooks.js``).

Standard library only, so the simulator and tests can sign requests without
Twilio's SDK.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from functools import lru_cache
from urllib.parse import parse_qs, urlsplit

__all__ = [
    "HMAC_SHA1",
    "HMAC_SHA256",
    "SETTINGS_HEADER",
    "SIGNATURE_HEADER",
    "body_sha256",
    "is_valid_twilio_request",
    "settings_algorithm",
    "shared_key_headers",
    "signed_headers",
    "twilio_signature",
    "url_variants",
]

#: The header Twilio puts the signature in.
SIGNATURE_HEADER = "X-Twilio-Signature"

#: The header naming the shared key and algorithm of a shared-key signature.
SETTINGS_HEADER = "X-Twilio-Webhooks-Signature-Settings"

#: Algorithm names as the settings header writes them.
HMAC_SHA1 = "HMAC_SHA1"
HMAC_SHA256 = "HMAC_SHA256"
_HASHES = {HMAC_SHA1: hashlib.sha1, HMAC_SHA256: hashlib.sha256}

#: Query parameter Twilio adds when it sends a JSON body instead of a form.
_BODY_HASH_PARAM = "bodySHA256"

#: Ports Twilio's validators add when the URL has none. Other schemes get no
#: "added" variant because nothing says which port Twilio would use.
_DEFAULT_PORTS = {"https": "443", "http": "80"}

Params = Mapping[str, "str | list[str]"]


def _values(name: str, value: object) -> list[str]:
    """One parameter's values as a list of str, whatever shape it came in."""
    # A plain str is one value; iterating over it would sign its characters.
    if isinstance(value, str):
        return [value]
    if isinstance(value, (bytes, bytearray)):
        # Twisted's request.args holds bytes. Decoding is the caller's job,
        # because only the caller knows the charset.
        raise TypeError(f"parameter {name!r}: decode bytes to str (UTF-8) before signing")
    values = list(value)  # type: ignore[call-overload]
    for v in values:
        if not isinstance(v, str):
            raise TypeError(f"parameter {name!r}: values must be str, got {type(v).__name__}")
    return values


def twilio_signature(auth_token: str, url: str, params: Params | None,
                     algorithm: str = HMAC_SHA1) -> str:
    """The ``X-Twilio-Signature`` value Twilio would send for this request.

    ``url`` is the full URL Twilio requested: scheme, host, optional port,
    path and raw query string, signed exactly as given. ``params`` holds the
    decoded POST form parameters; pass ``{}`` for GET requests (their
    parameters are already in the URL) and for JSON bodies. A value can be a
    str or a list of str for a repeated name.

    The signed string is the URL, then each name directly followed by its
    value. Names are sorted by code point, which is the same as UTF-8 byte
    order and case-sensitive ASCII order. For a repeated name, its values
    are sorted and de-duplicated, as twilio-python (``sorted(set(values))``)
    and twilio-node do. The HMAC-SHA1 digest (HMAC-SHA256 for
    ``algorithm=HMAC_SHA256``, keyed with a shared key) is returned
    base64-encoded, with the standard alphabet and padding.
    """
    if not isinstance(url, str):
        raise TypeError("url must be str")
    return _mac(auth_token, url, _signed_params(params), algorithm)


def _signed_params(params: Params | None) -> str:
    """What follows the URL in the signed string: each name directly
    followed by its value, names sorted, a repeated name's values sorted
    and de-duplicated (see :func:`twilio_signature`)."""
    parts = []
    for name in sorted(params or {}):
        if not isinstance(name, str):
            raise TypeError(f"parameter names must be str, got {type(name).__name__}")
        values = params[name]
        if type(values) is list and len(values) == 1 and type(values[0]) is str:
            parts += (name, values[0])  # a form field sent once: nothing to sort
            continue
        # Repeated names are signed as a sorted set, so a value that Twilio
        # sent twice counts once and the values' order does not matter.
        for value in sorted(set(_values(name, values))):
            parts.append(name)
            parts.append(value)
    return "".join(parts)


def _mac(auth_token: str, url: str, signed_params: str, algorithm: str) -> str:
    """The base64 HMAC of ``url`` then ``signed_params``, keyed with ``auth_token``."""
    # hmac.digest: OpenSSL's one-shot HMAC, without an hmac.HMAC object.
    mac = hmac.digest(auth_token.encode("utf-8"), (url + signed_params).encode("utf-8"),
                      _HASHES[algorithm])
    return base64.b64encode(mac).decode("ascii")


def _split_netloc(netloc: str) -> tuple[str, str, str | None]:
    """(userinfo including its '@' or '', host, port or None) of an authority."""
    userinfo, at, hostport = netloc.rpartition("@")
    userinfo = userinfo + at
    if hostport.startswith("["):  # IPv6 literal: its colons are not a port
        end = hostport.find("]")
        if end == -1:
            return userinfo, hostport, None
        host, rest = hostport[: end + 1], hostport[end + 1 :]
        return userinfo, host, rest[1:] if rest.startswith(":") else None
    host, colon, port = hostport.partition(":")
    return userinfo, host, port if colon else None


def url_variants(url: str) -> list[str]:
    """The URLs under which Twilio may have signed a request for ``url``.

    Twilio does not sign ports consistently. For HTTPS it drops the port,
    while plain HTTP keeps it, and its SDKs accept either form
    (telephony.md §3.1). So the list holds:

    * the URL as given (always first);
    * when it has no port, the URL with the scheme's default port added
      (``:443`` for https, ``:80`` for http);
    * when it has a port, the URL with the port removed. Like
      twilio-python's ``remove_port``, this applies to any port, not only the
      default one, because Twilio strips e.g. ``:8443`` from HTTPS URLs
      before signing;
    * when the URL embeds ``user:pass@``, each of the above without it.
      The Twilio docs say HTTPS signing drops credentials, but twilio-node's
      tests sign with them kept, so both are tried.

    Only the authority part changes. The scheme, path, query and fragment
    stay character for character as given, because any re-encoding would
    change the signed string. Duplicates are dropped and the order is
    stable.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return [url]
    start = len(parts.scheme) + 3  # "scheme://"
    end = start + len(parts.netloc)
    # urlsplit strips some characters (whitespace, tabs, newlines). Splice
    # only when its netloc is literally where we expect it in the original
    # string; otherwise the URL is odd and we sign it only as given.
    if not parts.netloc or url[start - 3 : start] != "://" or url[start:end] != parts.netloc:
        return [url]
    prefix, suffix = url[:start], url[end:]
    userinfo, host, port = _split_netloc(parts.netloc)

    hostports = [host + (":" + port if port is not None else "")]
    if port:
        hostports.append(host)
    else:
        default = _DEFAULT_PORTS.get(parts.scheme.lower())
        if default:
            hostports.append(host + ":" + default)
        if port == "":  # "host:" with an empty port: also try it bare
            hostports.append(host)

    candidates = [prefix + userinfo + hp + suffix for hp in hostports]
    if userinfo:
        candidates += [prefix + hp + suffix for hp in hostports]

    # The first entry must be the URL exactly as given, even where our
    # splice rebuilt it identically; dict.fromkeys keeps order, drops repeats.
    return list(dict.fromkeys([url, *candidates]))


@lru_cache(maxsize=256)
def _kept_url_variants(url: str) -> tuple[str, ...]:
    """:func:`url_variants`, kept for the URLs seen most (a server's few
    routes and turn numbers): splitting the URL was a fifth of a check."""
    return tuple(url_variants(url))


def body_sha256(raw_body: bytes) -> str:
    """Lowercase hex SHA-256 of a request body, as Twilio puts in ``bodySHA256``."""
    return hashlib.sha256(raw_body).hexdigest()


def _as_bytes(value: str | bytes) -> bytes:
    # compare_digest refuses non-ASCII str, and a forged header may be
    # anything, so compare bytes to get False instead of a TypeError.
    return value if isinstance(value, bytes) else value.encode("utf-8")


def settings_algorithm(settings: str | None) -> str | None:
    """The algorithm an ``X-Twilio-Webhooks-Signature-Settings`` value names
    (``key=…,algorithm=HMAC_SHA256``), upper-cased; :data:`HMAC_SHA1` when
    the header is absent or names none (as the SDKs read it); None for an
    algorithm we do not know."""
    for part in (settings or "").split(","):
        name, separator, value = part.partition("=")
        if separator and name.strip() == "algorithm" and value.strip():
            algorithm = value.strip().upper()
            return algorithm if algorithm in _HASHES else None
    return HMAC_SHA1


def is_valid_twilio_request(
    auth_token: str,
    url: str,
    params: Params | None,
    signature: str | bytes | None,
    raw_body: bytes | None = None,
    algorithm: str = HMAC_SHA1,
) -> bool:
    """Whether ``signature`` (the ``X-Twilio-Signature`` header) is Twilio's for this request.

    ``url`` is the full public URL as Twilio requested it, including the raw
    query string (see the module docstring). ``params`` holds the decoded
    form parameters, or ``{}`` for GET. Every :func:`url_variants` candidate
    is tried, each compared in constant time.

    When the URL's query carries ``bodySHA256``, the request has a JSON body
    (telephony.md §3.1/§3.3). The signature then covers the URL alone, with
    no parameters, and ``raw_body`` must be given and must hash to that
    value, or the request is rejected. Without ``bodySHA256``, ``raw_body``
    is ignored, so a handler may always pass it.

    ``algorithm`` is :data:`HMAC_SHA256` for a shared-key signature
    (``auth_token`` is then the shared key's secret).

    A missing or empty signature, or an empty auth token, gives False.
    """
    if not signature or not auth_token:
        return False
    header = _as_bytes(signature)

    # The query is parsed only when it may name bodySHA256, spelt out or
    # percent-encoded: ours (turn=N) never does.
    query = (parse_qs(urlsplit(url).query, keep_blank_values=True)
             if "%" in url or _BODY_HASH_PARAM in url else {})
    if _BODY_HASH_PARAM in query:
        if raw_body is None:
            return False
        # The body is not a form, so it is bound through its hash, which is
        # itself inside the signed URL. twilio-python and twilio-node both
        # read the first value.
        claimed = query[_BODY_HASH_PARAM][0]
        if not hmac.compare_digest(_as_bytes(body_sha256(raw_body)), _as_bytes(claimed)):
            return False
        params = {}

    # Compute every candidate and check them all, without stopping at the
    # first match, so the time taken does not reveal which variant matched.
    # The parameters are sorted and joined once for every variant of the URL.
    signed_params = _signed_params(params)
    matched = False
    for candidate in _kept_url_variants(url):
        expected = _mac(auth_token, candidate, signed_params, algorithm)
        matched |= hmac.compare_digest(expected.encode("ascii"), header)
    return matched


def signed_headers(auth_token: str, url: str, params: Params | None) -> dict[str, str]:
    """Headers that make a request to ``url`` with ``params`` look Twilio-signed.

    For the simulator and tests. The URL is signed exactly as given. For a
    JSON body, put ``bodySHA256=<body_sha256(body)>`` in the URL's query and
    pass ``params={}``.
    """
    return {SIGNATURE_HEADER: twilio_signature(auth_token, url, params)}


def shared_key_headers(shared_key: str, key_id: str, url: str,
                       params: Params | None) -> dict[str, str]:
    """Headers of a request Twilio signs with a shared key (HMAC-SHA256),
    for the simulator and tests."""
    return {SIGNATURE_HEADER: twilio_signature(shared_key, url, params, HMAC_SHA256),
            SETTINGS_HEADER: f"key={key_id},algorithm={HMAC_SHA256}"}
