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
"""

from __future__ import annotations

import contextvars
import os
import sys
import threading
from typing import Any, Callable

__all__ = ["BACKGROUND_NICENESS", "run_in_background"]

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
