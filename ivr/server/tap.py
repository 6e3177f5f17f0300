"""``twist ivr`` and ``ivr-serve``: the service tree (the options are
declared in :mod:`ivr.server.options`, ``ivr-serve``'s command line in
:mod:`ivr.server.cli`).

    twist ivr --listen tcp:8080:interface=127.0.0.1 --db ivr.db

The database is created on first start with its schema; without
``--orders`` it also gets the demo orders, so the demo flow can be called
right away.
"""

from __future__ import annotations

import gc
import io
import os
import re
import signal
import sys
from datetime import date

import sqlite_utils
from twisted.application import internet, service, strports
from twisted.internet import reactor as default_reactor
from twisted.logger import Logger
from twisted.python import usage  # noqa: F401 (its UsageError is what Options raise)
from twisted.web.http import combinedLogFormatter
from twisted.web.server import Site

from ivr.engine.actions import DialTarget
from ivr.lookups.demo_orders import create_demo_db
from ivr.lookups.embedded import EmbeddedOrderLookups
from ivr.lookups.orders import OrderStore
from ivr.lookups.shops import HttpOrderLookups, OrderLookupsService
from ivr.providers.registry import providers
from ivr.server.calls import COME_BACK_MARGIN, CallHandler
from ivr.server.dashboard import make_dashboard
from ivr.server.helpdesk import RESEND_INTERVAL, Helpdesk, HelpdeskService, NoHelpdesk
from ivr.server.holding import PollsElsewhere
from ivr.server.leases import (
    CHECKPOINT_LEASE,
    HELPDESK_LEASE,
    REACHED_FOLD_LEASE,
    RETENTION_LEASE,
    SWEEP_LEASE_INTERVALS,
    Leases,
)
from ivr.server.logs import flush_log_lines
from ivr.server.options import DEFAULT_BACKLOG, Options  # noqa: F401 (twist ivr finds Options here)
from ivr.server.registry import FlowRegistry
from ivr.server.requests import LimitedRequest, WebhookChannel
from ivr.server.served import (
    TWILIO_SHARED_KEY_OPTION,
    option_name,
    provider_secrets,
    served_providers,
    warn_unsigned,
)
from ivr.server.sms import SmsService, sender_for
from ivr.server.web import build_root
from ivr.store.postgres.connection import is_postgres_url
from ivr.store.sqlite.checkpoint import Checkpointer, bound_the_log
from ivr.store.sqlite.group_commit import GroupCommit
from ivr.store.sqlite.store import CallStore

log = Logger()

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


_BACKLOG_ENDPOINTS = ("tcp", "tcp6", "ssl", "unix")


def with_backlog(description: str, backlog: int = DEFAULT_BACKLOG) -> str:
    """``description`` (strports) with ``backlog=`` added when it is a TCP,
    SSL or UNIX socket that sets none."""
    kind = description.split(":", 1)[0].strip().lower()
    if kind not in _BACKLOG_ENDPOINTS or re.search(r"(^|:)backlog=", description):
        return description
    if ":" not in description:  # "tcp" alone would be refused by strports anyway
        return description
    return f"{description}:backlog={backlog}"


#: Query parameters whose values the access log never shows.
_SECRET_PARAM = re.compile(
    rb"(?i)([?&;](?:[^=&;#]*(?:token|key|secret|pass|auth|sig|session|code)[^=&;#]*)=)[^&;#]*")


def scrub_uri(uri: bytes, secrets: tuple[bytes, ...] = ()) -> bytes:
    """``uri`` with the value of every secret-looking query parameter, and
    any of ``secrets`` wherever it appears, replaced by ``REDACTED``."""
    uri = _SECRET_PARAM.sub(rb"\1REDACTED", uri)
    for secret in secrets:
        if secret:
            uri = uri.replace(secret, b"REDACTED")
    return uri


class _ScrubbedRequest:
    """What the access log formatter reads of a request, its URI and
    referrer scrubbed (see :func:`scrub_uri`)."""

    def __init__(self, request, secrets):
        self._request, self._secrets = request, secrets
        self.uri = scrub_uri(request.uri, secrets)

    def getHeader(self, name):
        value = self._request.getHeader(name)
        if value is not None and name.lower() in (b"referer", "referer"):
            raw = value if isinstance(value, bytes) else value.encode("utf-8", "replace")
            value = scrub_uri(raw, self._secrets)
        return value

    def __getattr__(self, name):
        return getattr(self._request, name)


def scrubbing_log_formatter(secrets: tuple[bytes, ...] = ()):
    """Twisted's combined log format over a scrubbed request: a token put in
    a query string never lands in the access log."""
    def formatter(timestamp, request):
        return combinedLogFormatter(timestamp, _ScrubbedRequest(request, secrets))
    return formatter


class WebhookSite(Site):
    """A Site that keeps an access log only when given a file for it: each
    turn is already logged once, and formatting a second line per request
    costs a tenth of a turn.  The log never holds a token (see
    :func:`scrubbing_log_formatter`)."""

    #: HTTP/1.1 only (no HTTP/2 is negotiated), refusing broken HTTP in words.
    protocol = WebhookChannel

    def log(self, request):
        if self.logPath:
            super().log(request)

    def getContentFile(self, length):
        """Request bodies in memory: LimitedRequest keeps at most 64 kB
        of one.  (Twisted looks this hook up on every request, and without
        it a body of unknown length goes to a temporary file.)"""
        return io.BytesIO()


class GarbageCollectorTuning(service.Service):
    """Collect the youngest objects every 10,000 allocations instead of
    every 700: a turn allocates thousands of short-lived objects, nearly
    all freed by reference counting, and the collector's passes over
    them were 5 % of a turn.  The older generations' thresholds, counted
    in collections of the younger one, are left as they are.

    What the server built before it starts (modules, flows, templates,
    about 125,000 objects) is then frozen out of the collector's sight: a
    full collection walked all of it, 40 to 70 ms during which no caller
    was answered, and none of it is ever garbage.  Once this service
    starts, the whole tree is built."""

    def startService(self):
        gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
        gc.collect()  # start-up's own garbage is freed, not frozen
        gc.freeze()
        super().startService()


#: The server connection's SQLite page cache, in KiB.
PAGE_CACHE_KIB = 64 * 1024

#: See :class:`GarbageCollectorTuning`.
GC_YOUNG_THRESHOLD = 10_000


class FlushOnStop(service.Service):
    """Commit the turns still queued when the server stops."""

    def __init__(self, group_commit):
        self.group_commit = group_commit

    def stopService(self):
        self.group_commit.flush()
        return super().stopService()


def open_database(path: str, sync_every_commit: bool = False,
                  demo_orders: bool = True) -> tuple[CallStore, OrderStore]:
    """The call log and the order store, in one SQLite file.  A new file
    gets the demo orders, dated today, unless ``demo_orders`` is false (the
    orders come from a shop's API: made-up ones must never answer a caller).
    A PostgreSQL URL keeps the call log there (see :func:`open_postgres`)."""
    if is_postgres_url(path):
        return open_postgres(path, demo_orders)
    store = CallStore.open(path, synchronous="FULL" if sync_every_commit else "NORMAL")
    orders = OrderStore(store.db)
    if demo_orders and "orders" not in store.db.table_names():
        create_demo_db(store.db, date.today())
        log.info("{db}: created with the demo orders", db=path)
    return store, orders


def open_postgres(url: str, demo_orders: bool = True):
    """The call log in the PostgreSQL database at ``url``, and the demo
    orders in memory (every server its own copy; a shop's API, ``--orders``,
    is what production uses)."""
    from ivr.store.postgres.store import PostgresCallStore

    try:
        store = PostgresCallStore.connect(url)
    except Exception as error:  # noqa: BLE001 - said in one line at start
        raise usage.UsageError(f"--db: cannot use the PostgreSQL database: {error}") from None
    orders = sqlite_utils.Database(memory=True)
    if demo_orders:
        create_demo_db(orders, date.today())
    return store, OrderStore(orders)


def store_threads(store, reactor, top: service.MultiService):
    """How turns are committed, and how their reads run: in the reactor's
    thread on SQLite (one local file, a fraction of a millisecond each); on
    PostgreSQL (a round trip to another host each), commits in one writer
    thread and reads in a small pool of their own, started and stopped
    with ``top``, each bounded in time.  The group commit, and the read
    runner (None: at once)."""
    from ivr.store.postgres.store import PostgresCallStore

    if not isinstance(store, PostgresCallStore):
        return GroupCommit(store, reactor), None
    from twisted.internet.threads import deferToThreadPool

    from ivr.store.postgres.group_commit import (
        STORE_DEADLINE,
        PooledGroupCommit,
        reader_pool,
        within,
        writer_pool,
    )

    writer, readers = writer_pool(), reader_pool()
    ThreadPoolService(writer).setServiceParent(top)
    ThreadPoolService(readers).setServiceParent(top)
    return (PooledGroupCommit(store, reactor, writer, reactor),
            lambda function, *args: within(deferToThreadPool(reactor, readers, function, *args),
                                           STORE_DEADLINE, reactor, "read"))


class ThreadPoolService(service.Service):
    """Start a thread pool with the server and stop it (its work done) after."""

    def __init__(self, pool):
        self.pool = pool

    def startService(self):
        super().startService()
        self.pool.start()

    def stopService(self):
        self.pool.stop()
        return super().stopService()


#: Seconds between two attempts to write while the store fails.
STORAGE_PROBE_INTERVAL = 5.0

#: Seconds between two retention purges.
RETENTION_INTERVAL = 24 * 3600.0
#: Seconds between two folds of PostgreSQL's funnel counts (each first
#: visit adds a row to them; see ivr.store.postgres.migrations).
REACHED_FOLD_INTERVAL = 3600.0


def log_file(path: str, max_bytes: int, files: int):
    """The server's log file at ``path``, rotated when it reaches
    ``max_bytes`` (``path.1`` is the newest old file), keeping ``files``
    old files; its folder must exist."""
    from twisted.python.logfile import LogFile

    folder, name = os.path.split(os.path.abspath(path))
    return LogFile(name, folder, rotateLength=max_bytes, maxRotatedFiles=files)


def fallback_target(value: str | None) -> DialTarget | None:
    if not value:
        return None
    return DialTarget("sip" if value.startswith("sip:") else "number", value)


def listening(options, site, reactor) -> service.Service:
    """The service accepting the server's connections: on ``--listen``, or
    on the socket a worker inherited from its supervisor."""
    if options.get("inherited-socket"):
        from ivr.server.workers import AdoptedPort

        fd, family = options["inherited-socket"]
        return AdoptedPort(fd, family, site, reactor)
    if options.get("listening-port") is not None:
        from ivr.server.listening import PreboundPort

        return PreboundPort(options["listening-port"], site)
    return strports.service(with_backlog(options["listen"]), site, reactor=reactor)


def makeService(options, reactor=default_reactor) -> service.MultiService:
    """The server's service tree: one server, or with ``--workers`` N > 1
    the supervisor of N servers."""
    if (options.get("workers") or 1) > 1:
        from ivr.server.workers import supervise

        return supervise(options, reactor)
    shop = options.get("orders-config")
    store, orders = open_database(options["db"], bool(options["sync-every-commit"]),
                                  demo_orders=shop is None)
    registry = FlowRegistry(options["flows"], options["prompts"], store)
    registry.reload_if_changed()
    if not registry.versions():
        log.warn("no valid flow in {flows}: every call will be refused", flows=options["flows"])
    lookups = HttpOrderLookups(shop, reactor) if shop else EmbeddedOrderLookups(orders)
    texts = sender_for(options.get("sms-account"), reactor)
    top = service.MultiService()
    # Before FlushOnStop: children stop in reverse order, the writer thread last.
    group_commit, read_in_thread = store_threads(store, reactor, top)
    registry.in_thread = read_in_thread  # flow versions kept off the reactor too
    group_commit.after_delivery = flush_log_lines  # the answers' lines, before they are sent
    helpdesk = NoHelpdesk()
    if options.get("helpdesk-url"):
        helpdesk = Helpdesk(options["helpdesk-url"], store, reactor,
                            token=options.get("helpdesk-token"), registry=registry,
                            in_thread=read_in_thread)
        log.info("callback requests are posted to {url}", url=options["helpdesk-url"])
    handler = CallHandler(
        registry, store, lookups.perform, reactor,
        lookup_timeout=options["lookup-timeout"],
        fallback=fallback_target(options["fallback-number"]),
        base_url=(options["public-url"] or "").rstrip("/") if options["public-url"] else "",
        group_commit=group_commit,
        read_in_thread=read_in_thread,
        hold_after=options["hold-after"],
        send_sms=texts.send,
        helpdesk=helpdesk,
    )
    if options.get("worker") or is_postgres_url(options["db"]):
        # A caller on hold may poll another process than the one playing the
        # turn: another worker, or another server on the same PostgreSQL.
        handler.polls_elsewhere = PollsElsewhere.bounded(
            options["lookup-timeout"], options["hold-after"], COME_BACK_MARGIN)
    served = served_providers({p.name: options.get(option_name(p)) for p in providers().values()},
                              options.get(TWILIO_SHARED_KEY_OPTION))
    warn_unsigned(served)
    root = build_root(handler, registry, served=served,
                      public_url=options["public-url"],
                      simulated_clock=bool(options["simulated-clock"]),
                      dashboard=make_dashboard(options["dashboard-token"], options["db"],
                                               registry, reactor),
                      dashboard_token=options["dashboard-token"])
    if options["simulated-clock"]:
        log.warn("--simulated-clock: requests may set their own time; never use it in production")
    # Webhook resources read the body themselves (strict UTF-8, body
    # parameters apart from the query's): Twisted's own parse of it into
    # request.args would be thrown away, and its Content-Type parsing through
    # the email package cost a tenth of a turn.
    secrets = tuple(t.encode("utf-8") for t in (
        options["dashboard-token"], *(options.get(option) for option, _env in provider_secrets()))
        if t)
    site = WebhookSite(root, requestFactory=LimitedRequest, logPath=options["access-log"],
                       parsePOSTFormSubmission=False,
                       logFormatter=scrubbing_log_formatter(secrets))
    site.displayTracebacks = False
    GarbageCollectorTuning().setServiceParent(top)
    # Work that must run once however many processes share the store.
    leases = Leases(store, reactor, in_thread=read_in_thread)
    if read_in_thread is not None:  # a long purge must not stop the server either
        from twisted.internet.threads import deferToThread

        handler.in_background = deferToThread
    if not is_postgres_url(options["db"]):
        # Checkpoints run in a thread; the commits keep one only as a safety
        # net, and the log file shrinks back after a long reader.
        bound_the_log(store.db.conn)
        # Every turn touches index pages all over the log (call ids are
        # random): SQLite's default 2 MB page cache was read again and again
        # from the OS as the log grew.
        store.db.execute(f"PRAGMA cache_size = -{PAGE_CACHE_KIB}")
        Checkpointer(options["db"], reactor,
                     may_run=lambda: leases.held("wal-checkpoint", CHECKPOINT_LEASE)
                     ).setServiceParent(top)
    # Children stop in reverse order: this one last, once nothing listens.
    FlushOnStop(handler.group_commit).setServiceParent(top)
    listening(options, site, reactor).setServiceParent(top)
    reload = internet.TimerService(options["reload-interval"], registry.reload_if_changed)
    reload.clock = reactor
    reload.setServiceParent(top)
    ReloadOnHangup(registry, reactor).setServiceParent(top)
    # Calls whose status callback never came are ended, not left open.
    sweep_interval = min(300.0, options["sweep-after"] / 4)
    sweep = internet.TimerService(sweep_interval,
                                  leases.once("sweep", SWEEP_LEASE_INTERVALS * sweep_interval,
                                              handler.sweep),
                                  idle=options["sweep-after"],
                                  state_kept=options.get("retry-window") or 600.0)
    sweep.clock = reactor
    sweep.setName("sweep")
    sweep.setServiceParent(top)
    # While writes fail, /healthz recovers as soon as one succeeds, calls or not.
    probe = internet.TimerService(STORAGE_PROBE_INTERVAL, handler.probe_storage)
    probe.clock = reactor
    probe.setName("storage-probe")
    probe.setServiceParent(top)
    if options.get("retention-days"):
        retention = internet.TimerService(RETENTION_INTERVAL,
                                          leases.once("retention", RETENTION_LEASE, handler.purge),
                                          options["retention-days"])
        retention.clock = reactor
        retention.setName("retention")
        retention.setServiceParent(top)
        log.info("calls older than {days:g} days are erased daily", days=options["retention-days"])
    if is_postgres_url(options["db"]):
        fold = internet.TimerService(REACHED_FOLD_INTERVAL,
                                     leases.once("reached-fold", REACHED_FOLD_LEASE,
                                                 handler.fold_counts))
        fold.clock = reactor
        fold.setName("reached-fold")
        fold.setServiceParent(top)
    SmsService(texts).setServiceParent(top)
    # Requests left pending by a server that stopped or died are sent again,
    # at start and every few minutes, by the one process holding the lease.
    HelpdeskService(helpdesk, may_resend=lambda: leases.asked("helpdesk-resend", HELPDESK_LEASE),
                    release=lambda: leases.release("helpdesk-resend"),
                    interval=RESEND_INTERVAL).setServiceParent(top)
    if shop:
        OrderLookupsService(lookups).setServiceParent(top)
        log.info("orders from {url} ({preset})", url=shop.base_url, preset=shop.preset or "custom mapping")
    return top


def main(argv=None):
    """``ivr-serve``: the same service as ``twist ivr``, with the same
    options (see :mod:`ivr.server.cli`)."""
    from ivr.server.cli import main as serve_main

    serve_main(argv)


def serve(options, reactor) -> None:
    """Bind ``--listen``, log, start the service tree of ``options`` and
    run ``reactor`` until it stops.  A socket that cannot be bound raises
    :class:`twisted.internet.error.CannotListenError` before anything
    (database, log file) is created."""
    from twisted.logger import globalLogBeginner

    from ivr.server.listening import bind_early
    from ivr.server.logs import text_log_observer

    if not options.get("inherited-socket"):  # a worker's socket is bound already
        options["listening-port"] = bind_early(with_backlog(options["listen"]), reactor,
                                               for_workers=(options.get("workers") or 1) > 1)

    out = sys.stdout
    if options["log-file"]:
        out = log_file(options["log-file"], options["log-max-bytes"], options["log-files"])
    process = f"worker-{options['worker']}" if options.get("worker") else ""
    globalLogBeginner.beginLoggingTo([text_log_observer(out, process, reactor)])
    try:
        try:
            top = makeService(options, reactor)
        except usage.UsageError as error:  # a database that cannot be used, say
            print(f"ivr-serve: {error}", file=sys.stderr)
            sys.exit(2)
        top.startService()
        reactor.addSystemEventTrigger("before", "shutdown", top.stopService)
        reactor.run()
    finally:
        flush_log_lines()  # the lines of the reactor's last pass


if __name__ == "__main__":
    main()
