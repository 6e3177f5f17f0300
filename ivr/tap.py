"""``twist ivr`` and ``ivr-serve``: options and the service tree.

    twist ivr --listen tcp:8080:interface=127.0.0.1 --db ivr.db

The database is created on first start with its schema and the demo
orders, so the demo flow can be called right away.
"""

from __future__ import annotations

import os
import signal
import sys
from datetime import date

from twisted.application import internet, service, strports
from twisted.internet import reactor as default_reactor
from twisted.logger import Logger
from twisted.python import usage
from twisted.web.server import Site

from .actions import DialTarget
from .calls import CallHandler
from .demo_orders import create_demo_db
from .group_commit import GroupCommit
from .lookups import EmbeddedOrderLookups
from .orders import OrderStore
from .registry import FlowRegistry
from .store import CallStore
from .web import LimitedRequest, build_root

log = Logger()


class Options(usage.Options):
    synopsis = "[options]"
    longdesc = ("Answer telephony provider voice webhooks (Twilio TwiML) with the flows in "
                "--flows. Example: twist ivr --listen tcp:8080:interface=127.0.0.1")
    optParameters = [
        ["listen", "l", "tcp:8080:interface=127.0.0.1", "Where to listen (a strports description)."],
        ["db", "d", "ivr.db", "SQLite file for calls and orders; created with the demo orders if missing."],
        ["flows", "f", "flows", "Folder of flow files (*.yaml)."],
        ["prompts", "p", "prompts", "Folder of prompt templates (<lang>/<name>.j2)."],
        ["public-url", None, None,
         "Base URL the provider calls (e.g. https://ivr.example.com), for signatures behind a proxy."],
        ["twilio-auth-token", None, None,
         "Twilio auth token (default: $TWILIO_AUTH_TOKEN); when set, every request must be signed."],
        ["fallback-number", None, None,
         "Number (E.164) or sip: address callers are put through to if a flow cannot be run."],
        ["lookup-timeout", None, "4", "Seconds a look-up may take before the flow's error branch."],
        ["reload-interval", None, "2", "Seconds between checks for changed flow files."],
        ["access-log", None, None,
         "File to append an HTTP access log to (combined format); by default only the "
         "one line per turn and the refused requests are logged."],
    ]
    optFlags = [
        ["simulated-clock", None,
         "Let requests set their time with X-IVR-Simulated-Time (ivr-sim test --url); "
         "for test servers only."],
    ]

    def postOptions(self):
        if self["twilio-auth-token"] is None:
            self["twilio-auth-token"] = os.environ.get("TWILIO_AUTH_TOKEN") or None
        for name in ("lookup-timeout", "reload-interval"):
            try:
                self[name] = float(self[name])
            except ValueError:
                raise usage.UsageError(f"--{name} must be a number of seconds") from None
            if self[name] <= 0:
                raise usage.UsageError(f"--{name} must be positive")
        if self["lookup-timeout"] >= 10:
            raise usage.UsageError("--lookup-timeout must stay well under the provider's 15 s")


class ReloadOnHangup(service.Service):
    """Reload the flows on SIGHUP, as daemons do."""

    def __init__(self, registry, reactor):
        self.registry, self.reactor = registry, reactor

    previous = None

    def startService(self):
        super().startService()
        if hasattr(signal, "SIGHUP"):
            self.previous = signal.signal(
                signal.SIGHUP, lambda *_: self.reactor.callFromThread(self._reload))

    def stopService(self):
        if self.previous is not None:
            signal.signal(signal.SIGHUP, self.previous)
        return super().stopService()

    def _reload(self):
        log.info("SIGHUP: reloading flows")
        self.registry.reload()


class WebhookSite(Site):
    """A Site that keeps an access log only when given a file for it: each
    turn is already logged once, and formatting a second line per request
    costs a tenth of a turn."""

    def log(self, request):
        if self.logPath:
            super().log(request)


class FlushOnStop(service.Service):
    """Commit the turns still queued when the server stops."""

    def __init__(self, group_commit):
        self.group_commit = group_commit

    def stopService(self):
        self.group_commit.flush()
        return super().stopService()


def open_database(path: str) -> tuple[CallStore, OrderStore]:
    """The call log and the order store, in one SQLite file.  A new file
    gets the demo orders, dated today."""
    store = CallStore.open(path)
    orders = OrderStore(store.db)
    if "orders" not in store.db.table_names():
        create_demo_db(store.db, date.today())
        log.info("{db}: created with the demo orders", db=path)
    return store, orders


def fallback_target(value: str | None) -> DialTarget | None:
    if not value:
        return None
    return DialTarget("sip" if value.startswith("sip:") else "number", value)


def makeService(options, reactor=default_reactor) -> service.MultiService:
    store, orders = open_database(options["db"])
    registry = FlowRegistry(options["flows"], options["prompts"], store)
    registry.reload_if_changed()
    if not registry.versions():
        log.warn("no valid flow in {flows}: every call will be refused", flows=options["flows"])
    handler = CallHandler(
        registry, store, EmbeddedOrderLookups(orders).perform, reactor,
        lookup_timeout=options["lookup-timeout"],
        fallback=fallback_target(options["fallback-number"]),
        base_url=(options["public-url"] or "").rstrip("/") if options["public-url"] else "",
        group_commit=GroupCommit(store, reactor),
    )
    root = build_root(handler, registry, auth_token=options["twilio-auth-token"],
                      public_url=options["public-url"],
                      simulated_clock=bool(options["simulated-clock"]))
    if options["simulated-clock"]:
        log.warn("--simulated-clock: requests may set their own time; never use it in production")
    site = WebhookSite(root, requestFactory=LimitedRequest, logPath=options["access-log"])
    site.displayTracebacks = False
    top = service.MultiService()
    # Children stop in reverse order: this one last, once nothing listens.
    FlushOnStop(handler.group_commit).setServiceParent(top)
    strports.service(options["listen"], site, reactor=reactor).setServiceParent(top)
    reload = internet.TimerService(options["reload-interval"], registry.reload_if_changed)
    reload.clock = reactor
    reload.setServiceParent(top)
    ReloadOnHangup(registry, reactor).setServiceParent(top)
    return top


def main(argv=None):
    """``ivr-serve``: the same service as ``twist ivr``, with the same options."""
    from twisted.logger import globalLogBeginner, textFileLogObserver

    options = Options()
    try:
        options.parseOptions(sys.argv[1:] if argv is None else argv)
    except usage.UsageError as error:
        print(f"{options}\nivr-serve: {error}", file=sys.stderr)
        sys.exit(2)
    globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stdout)])
    top = makeService(options, default_reactor)
    top.startService()
    default_reactor.addSystemEventTrigger("before", "shutdown", top.stopService)
    default_reactor.run()
