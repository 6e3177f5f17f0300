"""Reports read at a lower CPU priority than the server's turns.

A report reads the whole call log: on a machine that also serves calls it
takes a core for seconds, and the turns answered meanwhile wait for CPU.
Run at a lower priority (``nice``), it takes what the server leaves.  On
Linux a priority is a thread's, so each report runs in a thread of its own
that lowers its priority and ends with the report: the caller's own thread
(a test's, say) keeps its priority.  Elsewhere the report runs at the
caller's priority.

Only for a process of its own (``ivr-report``): a thread of the server's
process at a lower priority would hold Python's lock while waiting for a
core, and the reactor's thread would wait with it.

A process that only reads (``ivr-report summary``, the dashboard's figures)
goes further with :func:`lower_this_process`, from its first line: its
start-up and imports, a good half of a short report's time, then wait for
the server too.  Never a process that writes: holding SQLite's write lock
while waiting for an idle core, it would stall every turn of the server.
"""

from __future__ import annotations

import contextvars
import os
import sys
import threading
from typing import Any, Callable

__all__ = ["BACKGROUND_NICENESS", "lower_this_process", "run_in_background"]

#: How much lower than the server a report runs (0 to 19; 10 leaves it a
#: tenth of a core's time when the server wants the core).
BACKGROUND_NICENESS = 10


def run_in_background(function: Callable[..., Any], *args) -> Any:
    """``function(*args)`` in a thread of lower priority; its result, or
    its exception raised here.  It runs in the caller's context (the
    operator's language, :mod:`ivr.i18n`)."""
    outcome: dict[str, Any] = {}
    context = contextvars.copy_context()

    def run() -> None:
        _lower_this_thread()
        try:
            outcome["result"] = context.run(function, *args)
        except BaseException as error:  # noqa: BLE001 - handed to the caller
            outcome["error"] = error

    thread = threading.Thread(target=run, name="report", daemon=True)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def _lower_this_thread() -> None:
    if sys.platform.startswith("linux"):
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(),
                           min(19, os.getpriority(os.PRIO_PROCESS, 0) + BACKGROUND_NICENESS))
        except OSError:
            pass  # not allowed here: the report runs at the caller's priority


def lower_this_process() -> str:
    """Run the calling thread, and every thread it starts after, only on
    CPU time nothing else wants: Linux's ``SCHED_IDLE`` (a waking turn
    takes the core from it at once), else the lowest niceness (19).  Call
    it first thing in a process that only reads; says which it got:
    ``idle``, ``nice`` or ``unchanged`` (not allowed here)."""
    if hasattr(os, "SCHED_IDLE"):
        try:
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
            return "idle"
        except OSError:
            pass  # a sandbox may refuse it: the niceness still helps
    try:
        os.setpriority(os.PRIO_PROCESS, 0, 19)
        return "nice"
    except (OSError, AttributeError):
        return "unchanged"
