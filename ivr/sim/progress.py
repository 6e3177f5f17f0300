"""A progress bar for the long commands of ``ivr-sim`` (``traffic``,
``utterances``): drawn on standard error when it is a terminal, nothing
at all otherwise (a CI log or a pipe gets only the results)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

import click

__all__ = ["progress"]


@contextmanager
def progress(length: int, label: str, stream: TextIO | None = None) -> Iterator[Callable[[int], None]]:
    """A function to call with how many of ``length`` steps were just done,
    drawing a bar labelled ``label`` on ``stream`` (standard error) while
    the block runs, when ``stream`` is a terminal."""
    stream = sys.stderr if stream is None else stream
    if not _is_terminal(stream):
        yield lambda _steps: None
        return
    with click.progressbar(length=length, label=label, file=stream) as bar:
        yield bar.update


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed or not a file
        return False
