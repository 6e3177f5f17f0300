"""The voice providers the server can speak, by name.

Each provider package (``ivr/providers/<name>/``) declares one
:class:`Provider` as ``PROVIDER`` in its ``__init__.py``: its dialect, its
fake, where its routes live and where its signing secret comes from.
:data:`PROVIDER_PACKAGES` lists the packages; everything that serves,
lints or simulates "every provider" iterates :func:`providers`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

from ivr.providers.dialect import Dialect
from ivr.providers.fake_call import FakeCall, SendFn

#: Provider packages under ``ivr.providers``, in the order they are listed.
PROVIDER_PACKAGES = ("twilio", "signalwire", "telnyx", "plivo", "vonage", "jambonz")

#: Builds a fake call: ``(send, caller, called, base_url, secret)``, where
#: ``base_url`` is the server's public URL (routes are appended to it) and
#: ``secret`` signs every request when given.
FakeFactory = Callable[[SendFn, str, str, str, "str | None"], FakeCall]


@dataclass(frozen=True)
class Provider:
    """One voice provider as the server, lint and ``ivr-sim`` know it."""

    #: Short name, as :attr:`Dialect.name` ("twilio", "telnyx"…).
    name: str
    #: Human name for docs and messages ("Telnyx (TeXML)").
    title: str
    #: Builds the dialect (no arguments: credentials are passed to ``verify``).
    dialect: Callable[[], Dialect]
    fake: FakeFactory
    #: Path prefix of its routes: "" for Twilio (``/voice/<flow>``),
    #: "telnyx/" for ``/telnyx/voice/<flow>``.
    prefix: str
    #: The ``ivr-serve`` option (``"twilio-auth-token"``; leading dashes
    #: are ignored) and environment variable of its signing secret (auth
    #: token, signing key, public key…), and what it is.
    secret_option: str
    secret_env: str
    secret_help: str
    #: For tests and ``ivr-sim``: ``(server's secret, fake's secret)`` of a
    #: working pair, when the two differ (a public key and its private key);
    #: None when the provider signs with the one shared secret.
    test_keys: Callable[[], tuple[str, str]] | None = None


@cache
def providers() -> dict[str, Provider]:
    """Every provider, by name."""
    found = {}
    for package in PROVIDER_PACKAGES:
        provider = importlib.import_module(f"ivr.providers.{package}").PROVIDER
        found[provider.name] = provider
    return found


def provider(name: str) -> Provider:
    """The provider called ``name``; ``KeyError`` names the known ones."""
    known = providers()
    if name not in known:
        raise KeyError(f"unknown provider {name!r}; known: {', '.join(known)}")
    return known[name]
