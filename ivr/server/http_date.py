"""The Date header of every answer, formatted once a second.

Twisted formats it anew for each answer (``datetimeToString()``: the wall
clock read, ``gmtime`` and a ``%`` format, about 8 thousand instructions);
the text changes once a second.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from twisted.web.http import datetimeToString


class DateHeader:
    """The Date header's value, Twisted's ``datetimeToString()``, formatted
    once per second of ``clock`` (the wall clock) rather than for every
    answer."""

    def __init__(self, clock: Callable[[], float] = time.time):
        self._clock = clock
        self._second: int | None = None
        self._text = b""

    def now(self) -> bytes:
        """The header's value for the current second."""
        second = int(self._clock())
        if second != self._second:
            self._text = datetimeToString(second)
            self._second = second
        return self._text


#: The Date of every answer.
date_header = DateHeader().now
