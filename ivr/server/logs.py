"""The server's log lines: Twisted's classic text format, written faster.

``ivr-serve`` logs one line per call turn, so formatting that line is
part of the cost of a turn.  Twisted's ``textFileLogObserver`` formats
the time stamp through ``strftime`` for every line and the message
through a ``string.Formatter`` that also allows ``{method()}`` fields;
together they took 17 µs of the 25 µs of a turn's line.  The observer
here writes exactly the same text: the time stamp is formatted once per
second, and a message with plain ``{name}`` fields (ours) is formatted by
``str.format_map``.  Anything else (failures, call fields, events without
a format) goes through Twisted's own formatter.

Given the reactor, the observer writes the lines of one pass of the
reactor together, in one ``write`` of at most ``PIPE_BUF`` bytes
(Twisted's writes and flushes each line: a system call per turn).
Twisted sends what a request writes at the reactor's next pass over its
sockets, so a line is written before the answer it goes with leaves the
process: one logged while the reactor reads requests (a retry's, say) at
its next pass over its timed calls, which comes first; a turn's, logged
as the group commit hands its group's answers out, once they are all
handed out (the group commit calls :func:`flush_log_lines`); a hold's,
logged by the hold's timed call, once it has handed the hold out
(:class:`ivr.server.holding.Held` calls it).  A line logged by another
timed call is written at the next pass.  So a crash of the server loses
no line of a turn it answered, nor of a hold it sent, and ``tail -f``
shows each line within a pass of the reactor.  Lines logged
by another thread are written at once, after those waiting; ``ivr-serve``
writes what is left when the reactor stops.
"""

from __future__ import annotations

import select
import threading
from time import time
from typing import IO, Any

from twisted.logger import (
    FileLogObserver,
    Logger,
    LogLevel,
    formatEventAsClassicLogText,
    formatTime,
)

__all__ = ["TurnLogger", "flush_log_lines", "text_log_observer"]

#: Most bytes of lines written at once: a pipe takes that many in one
#: piece, so the lines of processes sharing one (the workers write to the
#: supervisor's standard output) never mix.  A longer line goes alone.
ATOMIC_WRITE = getattr(select, "PIPE_BUF", 512)

#: The observers holding lines to write in the reactor's thread (see
#: :func:`flush_log_lines`), each while its flush is scheduled: a plain
#: list, where a ``WeakSet`` of every observer cost each group commit a
#: guarded pass over it (some 18 thousand instructions).
_WAITING: list[BatchedFileLogObserver] = []


def text_log_observer(out: IO[Any], process: str = "", reactor=None) -> FileLogObserver:
    """A file observer writing the lines ``textFileLogObserver(out)`` would;
    with ``process`` (``worker-2``, say) each line's system, in brackets,
    starts with it and a slash, telling the processes of one server apart.
    With ``reactor``, the lines of one pass of the reactor are written in
    one go (see the module's notes; flush it once the reactor stops)."""
    formatter = _ClassicText(f"{process}/" if process else "")
    if reactor is None:
        return FileLogObserver(out, formatter)
    return BatchedFileLogObserver(out, formatter, reactor)


def flush_log_lines() -> None:
    """Write the lines the batching observers hold, now (in the reactor's
    thread): the group commit calls it once it has handed out a group's
    answers."""
    while _WAITING:
        _WAITING[-1].flush()  # which takes it off the list


class TurnLogger(Logger):
    """A :class:`Logger` for the lines logged per request, emitting the same
    events at less cost: read as a class's attribute it keeps the class's
    namespace (Twisted's joins it again at each read), and ``info`` builds
    the event from its keywords at once, without Twisted's check of the
    level against every level, sorted anew at each event.  The event goes
    to the same observer (the global publisher, so every observer sees
    it, filters and all)."""

    def __init__(self, namespace: str | None = None, source: object | None = None,
                 observer=None) -> None:
        super().__init__(namespace, source, observer)
        self._namespaces: dict[type, str] = {}  # by class: as many as classes

    def __get__(self, instance: object, owner: type | None = None) -> Logger:
        if owner is None:
            return super().__get__(instance, owner)
        namespace = self._namespaces.get(owner)
        if namespace is None:
            namespace = self._namespaces[owner] = f"{owner.__module__}.{owner.__name__}"
        bound = _new_logger(type(self))
        bound.namespace, bound.source, bound.observer = namespace, \
            owner if instance is None else instance, self.observer
        return bound

    def info(self, format: str | None = None, **kwargs: Any) -> None:
        """Emit an event at level ``info``, as :meth:`Logger.info` does."""
        kwargs["log_logger"] = self
        kwargs["log_level"] = _INFO
        kwargs["log_namespace"] = self.namespace
        kwargs["log_source"] = self.source
        kwargs["log_format"] = format
        kwargs["log_time"] = time()
        if "log_trace" in kwargs:
            kwargs["log_trace"].append((self, self.observer))
        self.observer(kwargs)


_new_logger = object.__new__
_thread_id = threading.get_ident
_INFO = LogLevel.info


class BatchedFileLogObserver(FileLogObserver):
    """A :class:`FileLogObserver` writing the lines logged in one pass of
    ``reactor`` in one write, at the reactor's next pass (or sooner, by
    :meth:`flush`).  Make it in the thread that runs the reactor."""

    def __init__(self, out: IO[Any], formatEvent, reactor):
        super().__init__(out, formatEvent)
        self._reactor = reactor
        self._thread = threading.get_ident()
        self._lines: list[str] = []
        self._lock = threading.Lock()  # another thread may log, or flush
        self._flushing = None  # the reactor's call to flush, while lines wait

    def __call__(self, event) -> None:
        text = self.formatEvent(event)
        if not text:
            return
        with self._lock:
            self._lines.append(text)
        if _thread_id() != self._thread:
            self._write_waiting()
        elif self._flushing is None:
            self._flushing = self._reactor.callLater(0, self.flush)
            _WAITING.append(self)

    def flush(self) -> None:
        """Write the lines waiting, in one write (in the reactor's thread)."""
        flushing, self._flushing = self._flushing, None
        if flushing is not None:
            if flushing.active():
                flushing.cancel()
            _WAITING.remove(self)
        self._write_waiting()

    def _write_waiting(self) -> None:
        with self._lock:
            lines, self._lines = self._lines, []
            if not lines:
                return
            text = "".join(lines)
            if len(text) <= ATOMIC_WRITE and text.isascii():  # usually: all in one piece
                self._write(text)
                return
            chunk: list[str] = []
            size = 0
            for line in lines:
                length = len(line) if line.isascii() else len(line.encode("utf-8"))
                if chunk and size + length > ATOMIC_WRITE:
                    self._write("".join(chunk))
                    chunk, size = [], 0
                chunk.append(line)
                size += length
            if chunk:
                self._write("".join(chunk))

    def _write(self, text: str) -> None:
        self._outFile.write(text if self._encoding is None else text.encode(self._encoding))
        self._outFile.flush()


class _ClassicText:
    """``formatEventAsClassicLogText``, with the fast path described above."""

    def __init__(self, prefix: str = ""):
        self._second: int | None = None
        self._stamp = "-"
        self._prefix = prefix

    def __call__(self, event: dict) -> str | None:
        fmt = event.get("log_format")
        system = event.get("log_system")
        # The checks of _message and of the system's type, inline: once a line.
        if fmt.__class__ is not str or "log_failure" in event or "log_text" in event \
                or "()" in fmt or (system is not None and system.__class__ is not str):
            return self._any(event)
        try:
            text = fmt.format_map(event)
        except Exception:  # noqa: BLE001 - a field Twisted formats its own way
            return self._any(event)
        if not text:
            return self._any(event)
        if "\n" in text:
            text = text.replace("\n", "\n\t")
        if system is None:
            level = event.get("log_level")
            system = f"{event.get('log_namespace', '-')}#{level.name if level else '-'}"
        when = event.get("log_time")
        stamp = self._stamp if when is not None and int(when) == self._second else self._time(when)
        return f"{stamp} [{self._prefix}{system}] {text}\n"

    def _any(self, event: dict) -> str | None:
        """The line of any event: the checks of the fast path, one by one."""
        text = self._message(event)
        system = event.get("log_system")
        if not text or not isinstance(system, (str, type(None))):
            return formatEventAsClassicLogText(self._tagged(event) if self._prefix else event)
        if system is None:
            level = event.get("log_level")
            system = f"{event.get('log_namespace', '-')}#{level.name if level else '-'}"
        return f"{self._time(event.get('log_time'))} [{self._prefix}{system}] {text}\n"

    def _tagged(self, event: dict) -> dict:
        """``event`` with this process's prefix on its system, for Twisted's formatter."""
        system = event.get("log_system")
        if system is None:
            level = event.get("log_level")
            system = f"{event.get('log_namespace', '-')}#{level.name if level else '-'}"
        return {**event, "log_system": f"{self._prefix}{system}"}

    @staticmethod
    def _message(event: dict) -> str | None:
        """The message, or None when only Twisted's formatter will do."""
        fmt = event.get("log_format")
        if not isinstance(fmt, str) or "log_failure" in event or "log_text" in event \
                or "()" in fmt:
            return None
        try:
            text = fmt.format_map(event)
        except Exception:  # noqa: BLE001 - a field Twisted formats its own way
            return None
        return text.replace("\n", "\n\t")

    def _time(self, when: float | None) -> str:
        if when is None:
            return "-"
        second = int(when)
        if second != self._second:
            self._second, self._stamp = second, formatTime(second)
        return self._stamp
