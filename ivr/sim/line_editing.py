"""Line editing and history at ``ivr-sim call``'s ``caller>`` prompt.

With the standard library's ``readline`` (not on every platform) and a
terminal on standard input, the arrow keys edit the line and recall
earlier ones, Tab completes the commands, and the history is kept
between runs in the user's state folder (``$XDG_STATE_HOME/ivr/sim_history``,
else ``~/.local/state/ivr/sim_history``), at most :data:`HISTORY_LENGTH`
lines.  Without either, input is read as it comes.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

__all__ = ["COMMANDS", "HISTORY_LENGTH", "history_path", "line_editing"]

#: Lines of history kept between runs.
HISTORY_LENGTH = 1000

#: The words the prompt completes with Tab.
COMMANDS = ("say ", "silence", "dial ", "record", "wait ", "hangup")


def history_path(environ: Mapping[str, str] | None = None) -> Path:
    """Where the history of ``caller>`` lines is kept."""
    environ = os.environ if environ is None else environ
    state = environ.get("XDG_STATE_HOME") or os.path.join(
        environ.get("HOME") or os.path.expanduser("~"), ".local", "state")
    return Path(state) / "ivr" / "sim_history"


def _readline():
    try:
        return importlib.import_module("readline")
    except ImportError:
        return None


def complete(text: str, state: int) -> str | None:
    """readline's completer: the ``state``-th command starting with ``text``."""
    matches = [command for command in COMMANDS if command.startswith(text)]
    return matches[state] if state < len(matches) else None


@contextmanager
def line_editing(path: Path | None = None, stdin=None) -> Iterator[bool]:
    """While the block runs, ``input()`` edits lines and keeps history (at
    ``path``, default :func:`history_path`); yields whether it does.  The
    history is written back when the block ends, however it ends."""
    readline = _readline()
    stdin = sys.stdin if stdin is None else stdin
    if readline is None or not stdin.isatty():
        yield False
        return
    path = history_path() if path is None else path
    try:
        readline.read_history_file(str(path))
    except OSError:  # no history yet, or unreadable: start afresh
        pass
    readline.set_history_length(HISTORY_LENGTH)
    readline.set_completer(complete)
    readline.parse_and_bind("tab: complete")
    try:
        yield True
    finally:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            readline.write_history_file(str(path))
        except OSError as error:  # a read-only home must not end the call in a traceback
            print(f"(history not saved to {path}: {error.strerror or error})", file=sys.stderr)
