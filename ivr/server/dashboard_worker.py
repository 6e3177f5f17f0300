"""The dashboard's queries in a process of their own, at the lowest CPU priority.

A dashboard view over a quarter of a large log reads a million rows and
adds them up in Python: seconds of work.  In a thread of the server that
work holds Python's lock, which the reactor's thread gets back only every
switch interval (5 ms), so every turn answered meanwhile waited.  Here it
runs in one worker process, started on the first view and kept for the
next ones, that lowers its priority before importing anything heavy
(:func:`ivr.reports.priority.lower_this_process`): the turns take the
cores first.

The server sends a job, a picklable ``(function, args, reads)``
(module-level functions and plain data: no lambdas), over the worker's
standard input; for a job that ``reads`` the worker opens the log
read-only (:func:`ivr.reports.queries.open_report_db`, an SQLite file or
a PostgreSQL URL alike), runs ``function(db, *args)`` and closes the log;
for another (drawing the page) it runs ``function(*args)``.  It writes
back the result, or the exception raised.
One job at a time (:class:`ProcessReader`), so at most one worker and one
job exist per server.  A worker that dies fails its job and the next view
starts another; a view abandoned by its browser kills the worker rather
than let it finish for nobody; the server's shutdown kills it, and a
worker whose server went away ends when its standard input closes.

On a machine whose cores are all busy the worker may wait long for CPU,
and while it reads, SQLite cannot start its log (the ``-wal`` file) over:
the file grows with every commit of the server.  So a job has a time limit
(:data:`TIME_LIMIT`): past it the worker is killed and the view fails with
:class:`TooSlow` (the page says to try again later).
"""

from __future__ import annotations

import os
import pickle
import struct
import sys
from pathlib import Path
from typing import Any, BinaryIO, Callable

from twisted.internet import defer, error, protocol

from ivr.server.requests import plain_text

__all__ = ["TIME_LIMIT", "ProcessReader", "TooSlow", "WorkerGone", "serve", "too_busy"]

#: What the worker runs first: its priority lowered before any heavy import.
BOOT = ("from ivr.reports.priority import lower_this_process; lower_this_process(); "
        "from ivr.server.dashboard_worker import serve; serve()")
#: The largest job or answer accepted, in bytes (a page of figures is far smaller).
MAX_FRAME = 64 * 1024 * 1024
#: The longest a job may take, in seconds: a browser has given up by then,
#: and the log file grows while the worker reads.
TIME_LIMIT = 60.0
_LENGTH = struct.Struct(">I")


def too_busy(request) -> bytes:
    """Answer a view whose job failed with :class:`TooSlow`: 503, try again
    later; the body to finish it with."""
    request.setHeader(b"retry-after", b"60")
    return plain_text(request, 503, "the server's machine is too busy to compute the figures "
                                    "now; try again in a minute")


class WorkerGone(RuntimeError):
    """The worker process ended before answering."""


class TooSlow(RuntimeError):
    """A job took longer than its time limit: the machine is too busy now."""


# -- the worker's side ----------------------------------------------------------------

def serve(path: str | None = None, jobs: BinaryIO | None = None,
          answers: BinaryIO | None = None) -> None:
    """The worker's loop: a job from ``jobs``, its answer to ``answers``,
    until ``jobs`` ends.  By default the log is ``sys.argv[1]`` and the
    jobs come on standard input; answers go to what was standard output,
    and anything else printed goes to standard error instead."""
    path = path if path is not None else sys.argv[1]
    if jobs is None:
        jobs = sys.stdin.buffer
    if answers is None:
        answers = os.fdopen(os.dup(1), "wb")
        os.dup2(2, 1)  # a stray print must not corrupt an answer
    while (job := _read_frame(jobs)) is not None:
        _write_frame(answers, _answer(path, job))


def _answer(path: str, job: bytes) -> bytes:
    from ivr.reports.queries import open_report_db

    try:
        function, args, reads = pickle.loads(job)
        if not reads:
            outcome = ("result", function(*args))
        else:
            db = open_report_db(path)
            try:
                outcome = ("result", function(db, *args))
            finally:
                db.close()
    except Exception as raised:  # noqa: BLE001 - handed to the server, which decides
        outcome = ("error", raised)
    try:
        return pickle.dumps(outcome)
    except Exception as unpicklable:  # noqa: BLE001 - said in words instead
        return pickle.dumps(("error", RuntimeError(f"{outcome[1]!r} (not picklable: {unpicklable})")))


def _read_frame(stream: BinaryIO) -> bytes | None:
    head = stream.read(_LENGTH.size)
    if len(head) < _LENGTH.size:
        return None
    (length,) = _LENGTH.unpack(head)
    body = stream.read(length)
    return body if len(body) == length else None


def _write_frame(stream: BinaryIO, body: bytes) -> None:
    stream.write(_LENGTH.pack(len(body)) + body)
    stream.flush()


# -- the server's side ----------------------------------------------------------------

class _Worker(protocol.ProcessProtocol):
    """One worker process, seen from the server: at most one job asked."""

    def __init__(self) -> None:
        self.alive = True
        self.asked: defer.Deferred | None = None
        self.ended: defer.Deferred = defer.Deferred()
        self._buffer = bytearray()

    def ask(self, function: Callable, args: tuple, reads: bool) -> defer.Deferred:
        assert self.asked is None, "one job at a time"
        job = pickle.dumps((function, args, reads))
        self.asked = defer.Deferred(self._abandon)
        self.transport.write(_LENGTH.pack(len(job)) + job)
        return self.asked

    def _abandon(self, _asked: defer.Deferred) -> None:
        # The browser went away: no one wants the answer, the worker's
        # time is better spent on the next view.
        self.asked = None
        self.stop()

    def outReceived(self, data: bytes) -> None:  # noqa: N802 - Twisted's name
        self._buffer += data
        if len(self._buffer) < _LENGTH.size:
            return
        (length,) = _LENGTH.unpack_from(self._buffer)
        if length > MAX_FRAME:
            self.fail(WorkerGone(f"the dashboard worker answered {length} bytes"))
            self.stop()
        elif len(self._buffer) >= _LENGTH.size + length:
            body = bytes(self._buffer[_LENGTH.size:_LENGTH.size + length])
            del self._buffer[:_LENGTH.size + length]
            self._settle(body)

    def _settle(self, body: bytes) -> None:
        asked, self.asked = self.asked, None
        if asked is None:
            return
        try:
            kind, value = pickle.loads(body)
        except Exception as unreadable:  # noqa: BLE001 - the job fails, the worker goes
            asked.errback(WorkerGone(f"unreadable answer: {unreadable!r}"))
            self.stop()
            return
        if kind == "error":
            asked.errback(value)
        else:
            asked.callback(value)

    def fail(self, reason: Exception) -> None:
        """Fail the job asked, if any (its answer, should it come, is dropped)."""
        asked, self.asked = self.asked, None
        if asked is not None:
            asked.errback(reason)

    def processEnded(self, reason) -> None:  # noqa: N802 - Twisted's name
        self.alive = False
        self.fail(WorkerGone(f"the dashboard worker ended: {reason.value}"))
        self.ended.callback(None)

    def stop(self) -> defer.Deferred:
        """Kill the worker (it only reads: nothing is lost); fires once it ended."""
        if self.alive:
            self.alive = False  # no new job for it from now on
            try:
                self.transport.signalProcess("KILL")
            except error.ProcessExitedAlready:
                pass
        return self.ended


class ProcessReader:
    """Runs report functions in the dashboard's worker process (see the
    module's docstring): ``reader(function, *args)`` is a Deferred of
    ``function(db, *args)`` on the log at ``path`` opened read-only;
    :meth:`call` runs other pure work there (drawing the page), which in
    a thread of the server would hold its Python lock.

    One job at a time: views asked for together wait their turn rather
    than each taking a process (and a core) from the turns."""

    def __init__(self, path: str, reactor, time_limit: float = TIME_LIMIT):
        self.path, self.reactor, self.time_limit = path, reactor, time_limit
        self.one_at_a_time = defer.DeferredSemaphore(1)
        self.worker: _Worker | None = None
        self._on_shutdown: Any = None

    def __call__(self, function: Callable[..., Any], *args) -> defer.Deferred:
        return self.one_at_a_time.run(self._ask, function, args, True)

    def call(self, function: Callable, *args) -> defer.Deferred:
        return self.one_at_a_time.run(self._ask, function, args, False)

    def _ask(self, function: Callable, args: tuple, reads: bool) -> defer.Deferred:
        try:
            if self.worker is None or not self.worker.alive:
                self.worker = self._start()
            worker = self.worker
            answer = worker.ask(function, args, reads)
        except Exception:  # noqa: BLE001 - a job that cannot be sent fails its view only
            return defer.fail()
        limit = self.reactor.callLater(self.time_limit, self._too_slow, worker)

        def settled(outcome):
            if limit.active():
                limit.cancel()
            return outcome

        return answer.addBoth(settled)

    def _too_slow(self, worker: _Worker) -> None:
        worker.fail(TooSlow(f"the figures took longer than {self.time_limit:g} s"))
        worker.stop()

    def _start(self) -> _Worker:
        worker = _Worker()
        env = dict(os.environ)
        # The worker imports this same package, wherever it came from.
        here = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(filter(None, (here, env.get("PYTHONPATH"))))
        self.reactor.spawnProcess(worker, sys.executable, [sys.executable, "-c", BOOT, self.path],
                                  env=env, childFDs={0: "w", 1: "r", 2: 2})
        if self._on_shutdown is None:
            self._on_shutdown = self.reactor.addSystemEventTrigger("before", "shutdown",
                                                                   self._shutting_down)
        return worker

    def _shutting_down(self) -> defer.Deferred:
        self._on_shutdown = None  # fired: not to be removed
        return self.stop()

    def stop(self) -> defer.Deferred:
        """Kill the worker, if one runs; fires once it ended."""
        if self._on_shutdown is not None:
            self.reactor.removeSystemEventTrigger(self._on_shutdown)
            self._on_shutdown = None
        worker, self.worker = self.worker, None
        return worker.stop() if worker is not None else defer.succeed(None)
