"""The options of ``ivr-serve`` and ``twist ivr``, declared once.

:data:`SERVE_OPTIONS` lists every option with its default, its help and
the environment variable it falls back to; the providers' signing secrets
come from their entries in :mod:`ivr.providers.registry`.  Twisted's parser
(:class:`Options`, what ``twist ivr`` and each worker process read) and
``ivr-serve``'s click command (:mod:`ivr.server.cli`) are both built from
it, and both check the values with :meth:`Options.postOptions`, so the
two commands cannot drift apart.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from urllib.parse import urlsplit

from twisted.logger import Logger
from twisted.python import usage

from ivr.i18n import _, use_language
from ivr.lookups.shops import ShopConfigError, load_config
from ivr.providers.registry import providers
from ivr.server.dashboard import MIN_TOKEN_LENGTH, check_dashboard_token
from ivr.server.served import TWILIO_SHARED_KEY_ENV, TWILIO_SHARED_KEY_OPTION, option_name
from ivr.server.sms import SmsConfigError, TwilioAccount
from ivr.server.workers import shares_a_socket

log = Logger()

#: The listen queue of a socket whose description gives none: 1,000
#: connections opened at once on loopback all wait in it instead of timing
#: out (the kernel caps it at net.core.somaxconn, 4096 on current Linux).
DEFAULT_BACKLOG = 2048

#: Where the server listens unless told.
DEFAULT_LISTEN = "tcp:8080:interface=127.0.0.1"


@dataclass(frozen=True)
class ServeOption:
    """One option of the server: ``--name`` (``-short``), its ``default``
    (None: not set), ``help``, the environment variable ``env`` read when
    it is not given, and whether it is a ``flag`` (no value)."""

    name: str
    help: str
    default: str | None = None
    short: str | None = None
    env: str | None = None
    flag: bool = False
    metavar: str | None = None


def provider_secret_options() -> list[ServeOption]:
    """The signing secret of every provider (``--twilio-auth-token``,
    ``--telnyx-public-key``…), as its registry entry declares it, in the
    registry's order; then Twilio's shared key."""
    found = [ServeOption(option_name(provider),
                         f"{provider.title}: {provider.secret_help}; without it, its requests "
                         f"are accepted unsigned.", env=provider.secret_env, metavar="SECRET")
             for provider in providers().values()]
    found.append(ServeOption(
        TWILIO_SHARED_KEY_OPTION, "Secret of the Twilio shared key a Webhook Setting signs with "
        "(HMAC-SHA256); requests naming it in X-Twilio-Webhooks-Signature-Settings are checked "
        "with it.", env=TWILIO_SHARED_KEY_ENV, metavar="SECRET"))
    return found


def _declare() -> list[ServeOption]:
    """Every option, in the order ``--help`` lists them."""
    return [
        ServeOption("listen", "Where to listen (a Twisted strports description); a TCP, SSL or "
                    f"UNIX socket without backlog= gets backlog={DEFAULT_BACKLOG}, not "
                    "Twisted's 50.", DEFAULT_LISTEN, "l", metavar="DESCRIPTION"),
        ServeOption("db", "SQLite file for calls and orders; created if missing, with the demo "
                    "orders unless --orders is given. A postgresql:// URL (e.g. "
                    "postgresql://ivr@db.example.com/ivr) keeps the calls in PostgreSQL instead, "
                    "shared by several servers (docs/storage.md).", "ivr.db", "d",
                    metavar="FILE|URL"),
        ServeOption("flows", "Folder of flow files (*.yaml).", "flows", "f", metavar="DIR"),
        ServeOption("prompts", "Folder of prompt templates (<lang>/<name>.j2).", "prompts", "p",
                    metavar="DIR"),
        ServeOption("public-url", "Base URL the provider calls (e.g. https://ivr.example.com), "
                    "for signatures behind a proxy.", metavar="URL"),
        *provider_secret_options(),
        ServeOption("fallback-number", "Number (E.164) or sip: address callers are put through "
                    "to if a flow cannot be run.", metavar="NUMBER"),
        ServeOption("lookup-timeout", "Seconds a look-up may take before the flow's error "
                    "branch.", "4", metavar="SECONDS"),
        ServeOption("reload-interval", "Seconds between checks for changed flow files.", "2",
                    metavar="SECONDS"),
        ServeOption("orders", "Look orders up in a shop's API configured by this YAML file "
                    "(docs/configuration.md, e.g. shop.yaml); default: the orders in --db.",
                    metavar="FILE"),
        ServeOption("hold-after", "Seconds a look-up may take before the caller hears \"one "
                    "moment\" and holds (each webhook is answered within this, whatever "
                    "--lookup-timeout is).", "1.5", metavar="SECONDS"),
        ServeOption("sweep-after", "Seconds of silence after which a call the provider never "
                    "closed (no status callback) is ended as a hang-up (4 h 10 min while with "
                    "an agent).", "3600", metavar="SECONDS"),
        ServeOption("retry-window", "Seconds an ended call's state is kept, so a provider retry "
                    "of its last turn gets the same answer; the sweep then drops it (its events "
                    "and call row stay).", "600", metavar="SECONDS"),
        ServeOption("retention-days", "Erase the calls that started more than this many days "
                    "ago, with their events, status callbacks, callback requests and state: once "
                    "at start, then daily (e.g. 365). Default: keep everything.", metavar="DAYS"),
        ServeOption("log-file", "Write the server's log to this file instead of stdout, rotated "
                    "by size (--log-max-bytes, --log-files), e.g. /var/log/ivr/ivr.log.",
                    metavar="FILE"),
        ServeOption("log-max-bytes", "With --log-file: rotate the log when it reaches this many "
                    "bytes.", "10000000", metavar="BYTES"),
        ServeOption("log-files", "With --log-file: how many rotated files to keep (ivr.log.1 "
                    "... ivr.log.N).", "10", metavar="COUNT"),
        ServeOption("access-log", "File to append an HTTP access log to (combined format, the "
                    "values of query parameters such as token= or key= replaced by REDACTED); "
                    "by default only the one line per turn and the refused requests are "
                    "logged.", metavar="FILE"),
        ServeOption("dashboard-token", "Serve the ops dashboard at /dashboard to requests "
                    f"carrying this token, at least {MIN_TOKEN_LENGTH} printable characters "
                    "without spaces; without one there is no dashboard.",
                    env="IVR_DASHBOARD_TOKEN", metavar="TOKEN"),
        ServeOption("workers", "Server processes sharing the listening socket, all on --db "
                    "(default: one per core for ivr-serve, one for twist ivr); --listen must then "
                    "be a tcp:, tcp6: or unix: socket.", short="w", metavar="N"),
        ServeOption("helpdesk-url", "POST each callback request as JSON to this URL (e.g. "
                    "https://helpdesk.example.com/callbacks), with $IVR_HELPDESK_TOKEN as a "
                    "Bearer token when set; without one requests are only kept in --db "
                    "(ivr-report callbacks).", metavar="URL"),
        ServeOption("lang", "Language of the server's messages to the operator, en or fr "
                    "(default: from $LANG).", metavar="LANG"),
        ServeOption("sync-every-commit", "Have the disk confirm each commit (SQLite "
                    "synchronous=FULL): a power cut or an OS crash then loses no answered turn. "
                    "By default a process crash loses none, a power cut may lose the last "
                    "commits.", flag=True),
        ServeOption("simulated-clock", "Let requests set their time with X-IVR-Simulated-Time "
                    "(ivr-sim test --url); for test servers only.", flag=True),
    ]


SERVE_OPTIONS: list[ServeOption] = _declare()


def _twisted_help(option: ServeOption) -> str:
    return option.help + (f" (default: ${option.env})" if option.env else "")


class Options(usage.Options):
    """``twist ivr``'s options (and each worker's), from :data:`SERVE_OPTIONS`."""

    synopsis = "[options]"
    longdesc = ("Answer telephony provider voice webhooks with the flows in --flows. "
                "Example: twist ivr --listen tcp:8080:interface=127.0.0.1")
    optParameters = [[o.name, o.short, o.default, _twisted_help(o)]
                     for o in SERVE_OPTIONS if not o.flag]
    optFlags = [[o.name, o.short, o.help] for o in SERVE_OPTIONS if o.flag]

    def parseOptions(self, options=None):
        # Kept as given: each worker process is started with the same options.
        self["arguments"] = list(sys.argv[1:] if options is None else options)
        super().parseOptions(options)

    def postOptions(self):
        """Fill what the environment gives, check every value; a bad one
        raises :class:`twisted.python.usage.UsageError` in one sentence."""
        if self["lang"]:  # twist ivr's messages too; else the environment's, read when shown
            use_language(self["lang"])
        for option in SERVE_OPTIONS:
            if option.env and self.get(option.name) is None:
                self[option.name] = os.environ.get(option.env) or None
        self["workers"] = positive_number(self["workers"], "--workers", int)
        if (self["workers"] or 1) > 1 and not shares_a_socket(self["listen"]):
            raise usage.UsageError(_("--workers {workers} shares one socket: --listen must be a tcp:, "
                                     "tcp6: or unix: description, not {listen!r} (terminate TLS in "
                                     "front of the server)").format(workers=self["workers"],
                                                                    listen=self["listen"]))
        if self["dashboard-token"] is not None:
            check_dashboard_token(self["dashboard-token"])
        check_waits(self)
        self["retention-days"] = positive_number(self["retention-days"], "--retention-days", float)
        self["log-max-bytes"] = positive_number(self["log-max-bytes"], "--log-max-bytes", int)
        self["log-files"] = positive_number(self["log-files"], "--log-files", int)
        if self["log-file"] and not os.path.isdir(os.path.dirname(os.path.abspath(self["log-file"]))):
            raise usage.UsageError(_("--log-file {path}: its folder does not exist").format(
                path=self["log-file"]))
        self["orders-config"] = shop_config(self["orders"], self["lookup-timeout"])
        self["helpdesk-url"] = helpdesk_url(self["helpdesk-url"])
        self["helpdesk-token"] = os.environ.get("IVR_HELPDESK_TOKEN", "").strip() or None
        try:  # texts: TWILIO_ACCOUNT_SID and friends (docs/flow-language.md, sms)
            self["sms-account"] = TwilioAccount.from_environment(os.environ, self["twilio-auth-token"])
        except SmsConfigError as error:
            raise usage.UsageError(str(error)) from None


def check_waits(options) -> None:
    """The waits (seconds) as numbers, each within what a provider and a
    caller tolerate."""
    for name in ("lookup-timeout", "reload-interval", "sweep-after", "hold-after",
                 "retry-window"):
        try:
            options[name] = float(options[name])
        except ValueError:
            raise usage.UsageError(_("--{name} must be a number of seconds").format(name=name)) from None
        if options[name] <= 0:
            raise usage.UsageError(_("--{name} must be positive").format(name=name))
    if options["hold-after"] >= 10:
        raise usage.UsageError(_("--hold-after must stay well under the provider's 15 s"))
    if options["lookup-timeout"] > 30:
        raise usage.UsageError(_("--lookup-timeout over 30 s keeps callers on hold too long"))
    if options["retry-window"] < 60:
        raise usage.UsageError(_("--retry-window under 60 s would drop states a provider "
                                 "may still retry"))


def positive_number(value, option: str, kind):
    """``value`` as a positive ``kind`` (int or float), None when not
    given; a usage error naming ``option`` otherwise."""
    if value is None:
        return None
    try:
        number = kind(value)
    except ValueError:
        number = 0
    if number <= 0:
        wanted = (_("{option} must be a positive whole number, not {value!r}") if kind is int
                  else _("{option} must be a positive number, not {value!r}"))
        raise usage.UsageError(wanted.format(option=option, value=value))
    return number


def shop_config(path: str | None, lookup_timeout: float):
    """The shop back-end configuration at ``path`` (None: the embedded
    store); its problems become a usage error listing them all."""
    if path is None:
        return None
    try:
        config = load_config(path)
    except ShopConfigError as error:
        raise usage.UsageError(_("--orders {path} is not valid:").format(path=path) + f"\n{error}") from None
    if config.timeout >= lookup_timeout:
        log.warn("{path}: the shop's timeout ({timeout:g} s) is not under --lookup-timeout "
                 "({limit:g} s): slow look-ups will end as 'timeout' without the shop's cause",
                 path=path, timeout=config.timeout, limit=lookup_timeout)
    return config


def helpdesk_url(value: str | None) -> str | None:
    """``--helpdesk-url``: an http(s) URL with a host, or a usage error."""
    if not value:
        return None
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise usage.UsageError(_("--helpdesk-url must be an http:// or https:// URL such as "
                                 "https://helpdesk.example.com/callbacks, not {value!r}").format(value=value))
    return value.strip()
