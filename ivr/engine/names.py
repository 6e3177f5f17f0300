"""What a call's prompts and expressions read: the flow's variables and the
built-in names (docs/flow-language.md), looked up in the call's state when
read.

A prompt or an expression reads two or three names of some twenty; the
engine reads them in the state as they are asked for, rather than copying
every one into a new dict each time something is said or tested.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from zoneinfo import ZoneInfo

_ABSENT = object()


def _pending(state: dict, field: str):
    return (state.get("pending") or {}).get(field)


#: Each built-in name, read from the call's state and its local time.  They
#: hide a flow variable of the same name.
_BUILT_IN = {
    "caller": lambda names: names.state["caller"],
    "called": lambda names: names.state["called"],
    "call_id": lambda names: names.state["call_id"],
    "country": lambda names: names.state["country"],
    "lang": lambda names: names.state["lang"],
    "now": lambda names: names.local(),
    "today": lambda names: names.local().date(),
    "hour": lambda names: names.local().hour,
    "weekday": lambda names: names.local().isoweekday(),
    "attempt": lambda names: 1 + names.state["no_input"] + names.state["no_match"],
    "digits": lambda names: names.state["digits"],
    "speech": lambda names: names.state["speech"],
    "reason": lambda names: names.state["reason"],
    "opens_at": lambda names: names.state["vars"].get("opens_at"),
    "choice_label": lambda names: _pending(names.state, "label"),
    "choice_word": lambda names: _pending(names.state, "word"),
}


class CallNames(Mapping):
    """The names of a call at ``now`` (its time in ``timezone``), read in
    ``state`` as they are asked for.  A name given a value (``names[n] =
    v``) keeps that value, whatever the state says, for as long as this
    object lives: what a ``set:`` assigned is what the next assignment of
    the same node reads."""

    __slots__ = ("state", "_now", "_timezone", "_local", "_given")

    def __init__(self, state: dict, now: datetime, timezone: str):
        self.state = state
        self._now, self._timezone = now, timezone
        self._local: datetime | None = None
        self._given: dict = {}

    def local(self) -> datetime:
        """The call's time in the flow's time zone."""
        if self._local is None:
            self._local = self._now.astimezone(ZoneInfo(self._timezone))
        return self._local

    def get(self, name, default=None):
        if self._given and name in self._given:
            return self._given[name]
        built_in = _BUILT_IN.get(name)
        if built_in is not None:
            return built_in(self)
        return self.state["vars"].get(name, default)

    def __getitem__(self, name):
        value = self.get(name, _ABSENT)
        if value is _ABSENT:
            raise KeyError(name)
        return value

    def __setitem__(self, name, value) -> None:
        self._given[name] = value

    def __contains__(self, name) -> bool:
        return name in _BUILT_IN or name in self.state["vars"] or name in self._given

    def __iter__(self) -> Iterator[str]:
        return iter({**dict.fromkeys(self.state["vars"]), **dict.fromkeys(_BUILT_IN),
                     **dict.fromkeys(self._given)})

    def __len__(self) -> int:
        return sum(1 for _ in self)
