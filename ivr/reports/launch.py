"""``ivr-report``'s entry point: a command that only reads runs wholly at
the lowest CPU priority, start-up and imports included.

A report on a large log takes about 0.6 s, of which Python's start-up and
the imports of :mod:`ivr.reports.cli` are two thirds: lowered only around
its query, a report run again and again on a serving machine took a core
from the turns for most of its time.  So this module imports nothing heavy,
finds the command in the arguments and lowers the whole process
(:func:`ivr.reports.priority.lower_this_process`) before importing the CLI.

Commands that write (:data:`WRITING_COMMANDS`) keep the caller's priority:
waiting for an idle core while holding SQLite's write lock, they would
stall the server's commits.  A command in neither set keeps it too.
"""

from __future__ import annotations

import sys

from ivr.reports.priority import lower_this_process

__all__ = ["READ_ONLY_COMMANDS", "WRITING_COMMANDS", "command_of", "main"]

#: Commands that open the log read-only: these run at the lowest priority.
READ_ONLY_COMMANDS = frozenset({"summary", "funnel", "reasons", "calls", "callbacks", "call"})
#: Commands that write the log (erasure): these keep the caller's priority.
WRITING_COMMANDS = frozenset({"forget", "purge"})
#: The group's options that take a value (``ivr-report --lang fr summary``).
_GROUP_OPTIONS_WITH_VALUE = frozenset({"--lang"})


def command_of(argv: list[str]) -> str | None:
    """The sub-command ``argv`` (without the program name) runs; None when
    there is none (``--help``, no arguments)."""
    arguments = iter(argv)
    for argument in arguments:
        if argument in _GROUP_OPTIONS_WITH_VALUE:
            next(arguments, None)
        elif not argument.startswith("-"):
            return argument
    return None


def main() -> None:
    """``ivr-report``: lower this process's priority for a read-only
    command, then run the CLI."""
    if command_of(sys.argv[1:]) in READ_ONLY_COMMANDS:
        lower_this_process()
    from ivr.reports.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
