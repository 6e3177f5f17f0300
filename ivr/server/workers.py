"""``ivr-serve --workers N``: N server processes on one listening socket.

The parent (the supervisor) opens the database once (schema, demo
orders), creates the listening socket from ``--listen`` and starts N
workers, each ``python`` running :func:`worker_main` with the socket
passed as an inherited file descriptor.  Each worker adopts it
(``reactor.adoptStreamPort``) and is a whole server with its own reactor
and its own connection to the store; the kernel hands each new
connection to whichever worker accepts it first.  No call is tied to a
worker: each turn reads the call's state from the store.

The parent accepts nothing itself.  It restarts a worker that dies
(at once if it had been running a while, else after a back-off that
doubles up to :data:`MAX_RESTART_DELAY`, so a worker that cannot start
does not spin), sends SIGHUP on to the workers (reload the flows), and on
SIGTERM or SIGINT stops them (SIGTERM, then SIGKILL after
:data:`STOP_GRACE` seconds) and exits.  Each worker reads a pipe from the
parent on its standard input and stops when it closes: workers never
outlive a parent killed outright.

One shared socket rather than a socket per worker (``SO_REUSEPORT``):
connections waiting in the shared queue are served by the other workers
when one dies, where a dead worker's own queue is reset with it, and
Twisted adopts an inherited socket through a public API.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
from dataclasses import dataclass
from typing import Any, Callable

from twisted.application import service
from twisted.internet import abstract, defer, endpoints, error, fdesc, protocol
from twisted.logger import Logger
from twisted.python.failure import Failure

import ivr

__all__ = ["AdoptedPort", "WorkerPool", "listening_socket", "shares_a_socket", "supervise",
           "worker_log_path", "worker_main"]

log = Logger()

#: Where a worker finds its inherited socket, its family and its number.
FD_ENV, FAMILY_ENV, INDEX_ENV = "IVR_WORKER_FD", "IVR_WORKER_FAMILY", "IVR_WORKER_INDEX"

#: Seconds before restarting a worker that died young; doubled at each
#: death in a row, up to :data:`MAX_RESTART_DELAY`.
FIRST_RESTART_DELAY = 0.5
MAX_RESTART_DELAY = 30.0

#: A worker that ran this many seconds before dying is restarted at once,
#: its back-off forgotten.
STABLE_AFTER = 30.0

#: Seconds workers have to finish their requests after SIGTERM before SIGKILL.
STOP_GRACE = 10.0


#: The sockets worker processes can share (Twisted adopts these).
_SHARED_ENDPOINTS = ("tcp", "tcp6", "unix")


def shares_a_socket(description: str) -> bool:
    """Whether the strports ``description`` is a socket the workers of
    ``--workers`` can share."""
    return description.split(":", 1)[0].strip().lower() in _SHARED_ENDPOINTS


def listening_socket(description: str, reactor, factory: protocol.Factory | None = None):
    """The listening port of the strports ``description`` (TCP, TCP6 or
    UNIX), created and not accepting: left to the workers, or to
    ``factory`` once it is ready to serve.  Raises what listening raises
    (the address in use, say)."""
    endpoint = endpoints.serverFromString(reactor, description)
    results: list = []
    endpoint.listen(factory or protocol.Factory()).addBoth(results.append)
    port = results[0]  # TCP and UNIX endpoints listen at once
    if isinstance(port, Failure):
        port.raiseException()
    port.stopReading()
    return port


def restart_delay(lived: float, deaths_in_a_row: int) -> float:
    """Seconds to wait before restarting a worker that died after ``lived``
    seconds, the ``deaths_in_a_row``-th young death (counting from 0)."""
    if lived >= STABLE_AFTER:
        return 0.0
    return min(MAX_RESTART_DELAY, FIRST_RESTART_DELAY * 2 ** deaths_in_a_row)


@dataclass
class _Worker:
    """One worker slot: its process while it runs, its back-off."""

    index: int
    process: "_WorkerProcess | None" = None
    started_at: float = 0.0
    young_deaths: int = 0
    restart: object = None


class _WorkerProcess(protocol.ProcessProtocol):
    """What the parent hears of one worker process: its end."""

    def __init__(self, pool: "WorkerPool", slot: _Worker):
        self.pool, self.slot = pool, slot
        self.ended: defer.Deferred = defer.Deferred()
        self.pid: int | None = None

    def processEnded(self, reason):
        self.pool._ended(self.slot, self, reason)
        self.ended.callback(None)

    def signal(self, name: str) -> None:
        try:
            self.transport.signalProcess(name)
        except (error.ProcessExitedAlready, OSError):
            pass


class WorkerPool(service.Service):
    """Keep ``count`` workers running on the socket of ``description``.

    ``arguments`` are the server's options for each worker; ``spawn`` is
    ``reactor.spawnProcess`` and ``listen`` :func:`listening_socket`
    unless given (tests)."""

    def __init__(self, description: str, count: int, arguments: list[str], reactor,
                 spawn: Callable | None = None, listen: Callable = listening_socket):
        self.description, self.count, self.arguments = description, count, list(arguments)
        self.reactor, self.listen = reactor, listen
        self.spawn = spawn or reactor.spawnProcess
        self.slots = [_Worker(index) for index in range(1, count + 1)]
        self.port: Any = None
        self._previous_hup = None

    # -- starting -------------------------------------------------------------------
    def startService(self):
        super().startService()
        self.port = self.listen(self.description, self.reactor)
        log.info("{count} workers share {listen}", count=self.count, listen=self.description)
        for slot in self.slots:
            self._start(slot)
        if hasattr(signal, "SIGHUP"):
            self._previous_hup = signal.signal(
                signal.SIGHUP, lambda *_: self.reactor.callFromThread(self.signal_workers, "HUP"))

    def _start(self, slot: _Worker) -> None:
        slot.restart = None
        fd = self.port.fileno()
        process = _WorkerProcess(self, slot)
        environment = {**os.environ, FD_ENV: str(fd), INDEX_ENV: str(slot.index),
                       FAMILY_ENV: self.port.socket.family.name,
                       "PYTHONPATH": os.pathsep.join(filter(None, [
                           os.path.dirname(os.path.dirname(os.path.abspath(ivr.__file__))),
                           os.environ.get("PYTHONPATH")]))}
        argv = [sys.executable, "-c", "from ivr.server.workers import worker_main; worker_main()",
                *self.arguments, "--workers", "1"]
        # Standard input is a pipe the worker watches: it closes with this process.
        transport = self.spawn(process, sys.executable, argv, env=environment,
                               childFDs={0: "w", 1: 1, 2: 2, fd: fd})
        slot.process, slot.started_at = process, self.reactor.seconds()
        process.pid = transport.pid
        log.info("worker {index} started: pid {pid}", index=slot.index, pid=transport.pid)

    # -- a worker's end -------------------------------------------------------------
    def _ended(self, slot: _Worker, process: _WorkerProcess, reason) -> None:
        if slot.process is process:
            slot.process = None
        pid = process.pid
        if not self.running:
            log.info("worker {index} (pid {pid}) stopped", index=slot.index, pid=pid)
            return
        lived = self.reactor.seconds() - slot.started_at
        delay = restart_delay(lived, slot.young_deaths)
        slot.young_deaths = 0 if lived >= STABLE_AFTER else slot.young_deaths + 1
        log.warn("worker {index} (pid {pid}) ended after {lived:.1f} s ({why}); restarting it "
                 "in {delay:g} s", index=slot.index, pid=pid, lived=lived,
                 why=reason.getErrorMessage(), delay=delay)
        slot.restart = self.reactor.callLater(delay, self._start, slot)

    # -- signals and stopping ---------------------------------------------------------
    def signal_workers(self, name: str) -> None:
        """Send the signal ``name`` ("HUP", "TERM") to every running worker."""
        for slot in self.slots:
            if slot.process is not None:
                slot.process.signal(name)

    def stopService(self):
        super().stopService()
        if self._previous_hup is not None:
            signal.signal(signal.SIGHUP, self._previous_hup)
            self._previous_hup = None
        for slot in self.slots:
            if slot.restart is not None and slot.restart.active():
                slot.restart.cancel()
            slot.restart = None
        running = [slot.process for slot in self.slots if slot.process is not None]
        self.signal_workers("TERM")
        kill = self.reactor.callLater(STOP_GRACE, self.signal_workers, "KILL")
        stopped = defer.DeferredList([process.ended for process in running])

        def stopped_all(_):
            if kill.active():
                kill.cancel()
            port, self.port = self.port, None
            return port.stopListening() if port is not None else None
        return stopped.addCallback(stopped_all)


def supervise(options, reactor) -> service.MultiService:
    """``--workers N`` (N > 1): the database made ready once, then N worker
    processes on one listening socket (see ivr.server.workers)."""
    from ivr.server.tap import open_database, with_backlog

    store, _orders = open_database(options["db"], bool(options["sync-every-commit"]),
                                   demo_orders=options.get("orders-config") is None)
    store.close()
    top = service.MultiService()
    bound = options.get("listening-port")  # ivr-serve binds it before the database
    WorkerPool(with_backlog(options["listen"]), options["workers"], options["arguments"],
               reactor, listen=(lambda _description, _reactor: bound) if bound else listening_socket
               ).setServiceParent(top)
    return top


# -- the worker's side ------------------------------------------------------------------
class AdoptedPort(service.Service):
    """Serve ``factory`` on a listening socket inherited from the process
    that started this one (its supervisor)."""

    def __init__(self, fd: int, family, factory, reactor):
        self.fd, self.family, self.factory, self.reactor = fd, family, factory, reactor
        self.port = None

    def startService(self):
        super().startService()
        self.port = self.reactor.adoptStreamPort(self.fd, self.family, self.factory)
        os.close(self.fd)  # the port listens on a copy of it
        accept_one_at_a_time(self.port)

    def stopService(self):
        super().stopService()
        port, self.port = self.port, None
        return port.stopListening() if port is not None else None


def accept_one_at_a_time(port) -> None:
    """Have the listening ``port`` accept one waiting connection each time
    the reactor finds it readable, rather than every waiting one (up to a
    hundred at first, Twisted's default).  Workers share the socket: a
    worker that took every waiting connection would serve each of them for
    as long as the client keeps it open (a provider's keep-alive pool, say)
    while the other workers idle.  Accepting one at a time lets each
    connection go to a worker that is waiting on the socket, so an idle
    worker takes the next one."""
    read = port.doRead

    def doRead():
        port.numberAccepts = 1  # Twisted raises it again after each accept
        return read()
    port.doRead = doRead


class ParentPipe(abstract.FileDescriptor):
    """The read end of a pipe from the parent: ``gone`` is called once it
    closes (the parent exited, however it died)."""

    def __init__(self, reactor, fd: int, gone: Callable[[], object]):
        super().__init__(reactor)
        self.fd, self.gone = fd, gone
        fdesc.setNonBlocking(fd)

    def fileno(self) -> int:
        return self.fd

    def doRead(self):
        return fdesc.readFromFD(self.fd, lambda _data: None)

    def connectionLost(self, reason):
        super().connectionLost(reason)
        if reason.check(error.ConnectionDone):  # not the reactor's own shutdown
            log.warn("the supervisor is gone: stopping")
            self.gone()


def worker_log_path(path: str, index: int) -> str:
    """Worker ``index``'s own file for a log the workers would otherwise
    share (``ivr.log`` -> ``ivr.worker2.log``): each rotates its own."""
    stem, extension = os.path.splitext(path)
    return f"{stem}.worker{index}{extension}"


def inherited_socket() -> tuple[int, socket.AddressFamily, int]:
    """The socket a worker was given: (fd, address family, worker number)."""
    return (int(os.environ[FD_ENV]), socket.AddressFamily[os.environ[FAMILY_ENV]],
            int(os.environ[INDEX_ENV]))


def worker_main(argv=None) -> None:
    """One worker: the server of ``ivr-serve``'s options, on the inherited
    socket, until SIGTERM or until its parent is gone."""
    from twisted.internet import reactor

    from ivr.server import tap

    fd, family, index = inherited_socket()
    options = tap.Options()
    options.parseOptions(sys.argv[1:] if argv is None else argv)
    options["inherited-socket"] = (fd, family)
    options["worker"] = index
    for name in ("log-file", "access-log"):
        if options[name]:
            options[name] = worker_log_path(options[name], index)
    def parent_gone():
        if reactor.running:
            reactor.stop()
    ParentPipe(reactor, 0, parent_gone).startReading()
    tap.serve(options, reactor)
