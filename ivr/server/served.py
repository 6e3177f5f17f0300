"""The providers one server serves, each with its dialect, the prefix of
its routes and its signing secret (:class:`Served`), and the secrets read
from options and environment variables.

Built once at start: a request's route already holds its :class:`Served`,
so nothing per request looks a provider up.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from twisted.logger import Logger

from ivr.providers.dialect import Dialect
from ivr.providers.registry import providers
from ivr.providers.twilio.dialect import TwilioDialect

log = Logger()

#: The option and environment variable of Twilio's shared key (a Webhook
#: Setting's HMAC-SHA256 signatures), beside its auth token.
TWILIO_SHARED_KEY_OPTION = "twilio-shared-key"
TWILIO_SHARED_KEY_ENV = "TWILIO_SHARED_KEY"


def option_name(provider) -> str:
    """The ``ivr-serve`` option of ``provider``'s secret, without its
    dashes (a registry entry may write it either way)."""
    return provider.secret_option.lstrip("-")


@dataclass(frozen=True)
class Served:
    """One provider as this server serves it: its ``dialect``, the
    ``prefix`` of its routes ("" for ``/voice/<flow>``, "telnyx/" for
    ``/telnyx/voice/<flow>``) and its signing ``secret`` (None: requests
    are taken unsigned)."""

    dialect: Dialect
    prefix: str = ""
    secret: str | None = None
    #: The server's URL as this request reached it (``https://host``), when
    #: no public URL is configured: the URLs written into a document are
    #: then absolute, as Plivo and Vonage require.  None: the handler's own.
    base: str | None = None

    @property
    def name(self) -> str:
        return self.dialect.name

    @property
    def checks_signatures(self) -> bool:
        """Whether requests must be signed: a secret is configured (or the
        dialect holds one of its own, like Twilio's shared key)."""
        return bool(self.secret) or bool(getattr(self.dialect, "verifies", False))


def served_providers(secrets: Mapping[str, str | None] | None = None,
                     twilio_shared_key: str | None = None) -> list[Served]:
    """Every registered provider, with its secret from ``secrets`` (by
    provider name)."""
    secrets = secrets or {}
    served = []
    for provider in providers().values():
        dialect = (TwilioDialect(twilio_shared_key) if provider.name == "twilio"
                   else provider.dialect())
        served.append(Served(dialect, provider.prefix, secrets.get(provider.name) or None))
    return served


def secrets_from(options: Mapping, environ: Mapping[str, str] | None = None) -> dict[str, str | None]:
    """Each provider's secret: its ``ivr-serve`` option, else its
    environment variable; None when neither is set."""
    environ = os.environ if environ is None else environ
    return {provider.name: options.get(option_name(provider)) or environ.get(provider.secret_env)
            or None for provider in providers().values()}


def warn_unsigned(served: list[Served]) -> list[str]:
    """Log one warning per provider whose requests are taken unsigned; their names."""
    unsigned = [s.name for s in served if not s.checks_signatures]
    known = providers()
    for name in unsigned:
        provider = known.get(name)
        how = (f"--{option_name(provider)} or {provider.secret_env}" if provider
               else "its secret")
        log.warn("provider {provider}: no signing secret ({how}): its requests are "
                 "accepted unsigned", provider=name, how=how)
    return unsigned


def provider_secrets() -> list[tuple[str, str]]:
    """Every (option, environment variable) of a provider secret,
    Twilio's shared key included."""
    return [(option_name(p), p.secret_env) for p in providers().values()] + [
        (TWILIO_SHARED_KEY_OPTION, TWILIO_SHARED_KEY_ENV)]
