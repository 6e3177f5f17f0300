"""Results kept by the values they were computed from.

A prompt or an expression that reads only a handful of plain values
(the caller's language, a date, a flag) says the same thing every time
those values are the same: the sandbox is pure (no clock, no I/O, the
``random`` filter aside).  Keeping the result by exactly those values
spares the render the next time, for every caller who has them.

Only values that are immutable, and equal only when they are said alike,
make a key: ``str``, ``int``, ``bool``, ``None`` and ``datetime.date``,
each with its type (``1``, ``1.0`` and ``True`` are equal in Python but
read differently; ``Markup`` is escaped differently from ``str``).  A
``datetime`` (the time of the call), a float (``0.0`` and ``-0.0`` are
equal), a dict (an order) or a long text makes no key, and its result is
computed afresh each time.

Nothing that identifies a caller is kept: a template or an expression
that reads one of :data:`PERSONAL` (the caller's number, what they typed
or said) is never kept, nor a text holding six digits in a row (a phone
number or an order number in any variable).  Such values differ from
call to call anyway.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import OrderedDict
from collections.abc import Mapping

__all__ = ["MAX_KEY_TEXT", "MISSING", "PERSONAL", "Memo", "key_of", "keyable", "read_with_key"]

#: Texts longer than this make no key: a key holds its values.
MAX_KEY_TEXT = 256

#: Names whose values come from the caller: what reads them is never kept.
PERSONAL = frozenset({"caller", "called", "call_id", "digits", "speech"})

#: Six digits in a row, maybe spaced ("06 12 34 56 78"): a number of the caller's.
_NUMBER = re.compile(r"\d(?:[ .]?\d){5}")

#: The types a key may hold (exact types: no subclasses).
_KEYABLE = frozenset({str, int, bool, type(None), dt.date})

#: What a key holds for a name the context does not have.
_ABSENT = object()

#: What :meth:`Memo.get` gives when it keeps nothing for the key.
MISSING = object()


def key_of(names, context: Mapping) -> tuple | None:
    """The values of ``names`` in ``context`` with their types, or
    None when one of them makes no key."""
    return read_with_key(names, context)[1]


def read_with_key(names, context: Mapping, keeps: bool = True) -> tuple[dict, tuple | None]:
    """The values of ``names`` that ``context`` has (what a render or an
    expression is given), and their key as :func:`key_of` makes it (None
    when ``keeps`` is false or a value makes no key): one read of each
    name for both, where a miss of the memo read them twice."""
    read = {}
    key: list | None = [] if keeps else None
    for name in names:
        value = context.get(name, _ABSENT)
        if value is _ABSENT:
            if key is not None:
                key.append(_ABSENT)
            continue
        read[name] = value
        if key is not None:
            if keyable(value):
                key.append(type(value))
                key.append(value)
            else:
                key = None
    return read, (None if key is None else tuple(key))


def keyable(value) -> bool:
    """Whether ``value`` may be part of a key, or kept as a result."""
    kind = type(value)
    if kind is str:
        return len(value) <= MAX_KEY_TEXT and _NUMBER.search(value) is None
    return kind in _KEYABLE and (kind is not int or -100_000 < value < 100_000)


class Memo:
    """A bounded map of results: past ``size`` entries, the one used least
    recently goes.  Each step is one operation of an ``OrderedDict``, so a
    memo shared with another thread stays whole."""

    __slots__ = ("_kept", "size")

    def __init__(self, size: int):
        self.size = size
        self._kept: OrderedDict = OrderedDict()

    def get(self, key):
        """The result kept for ``key``, or :data:`MISSING`."""
        kept = self._kept
        result = kept.get(key, MISSING)
        if result is not MISSING:
            try:
                kept.move_to_end(key)  # now the most recently used
            except KeyError:  # another thread let it go meanwhile
                pass
        return result

    def put(self, key, result) -> None:
        """Keep ``result`` for ``key``."""
        kept = self._kept
        kept[key] = result
        if len(kept) > self.size:
            try:
                kept.popitem(last=False)
            except KeyError:  # another thread emptied it meanwhile
                pass

    def __len__(self) -> int:
        return len(self._kept)
