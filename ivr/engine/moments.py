"""A moment as the state and the node events write it: ``isoformat()``.

Every step stamps the state and its node events with the moment of its
event, and a call's start stamps it twice more.  ``isoformat()`` of an
aware ``datetime`` asks its time zone for the offset (for a zone with
summer time, a search of its transitions) and formats eight numbers,
each time; the turns of one second, which are many under load, share
all of it but the microseconds.  So the text down to the second and the
offset are kept per second, and only the microseconds are formatted.
"""

from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

#: Time zones whose offset depends only on the wall time to the second
#: and ``fold``: a ``ZoneInfo`` (transitions fall on whole seconds) or a
#: fixed offset.  Any other ``tzinfo`` is asked each time.
_ZONES = frozenset({ZoneInfo, timezone})

#: Texts down to the second and offsets, by second and zone: bounded
#: (cleared when full); a call's moments and the next opening of its
#: calendar are a few keys a second.
_KEPT: dict = {}
_MOST_KEPT = 64


def iso_text(moment: datetime) -> str:
    """``moment.isoformat()``, the same text, cheaper when a moment of
    the same second in the same zone was written before."""
    zone = moment.tzinfo
    if type(zone) not in _ZONES:
        return moment.isoformat()
    key = (moment.second, moment.minute, moment.hour, moment.day, moment.month, moment.year,
           zone, moment.fold)
    parts = _KEPT.get(key)
    if parts is None:
        if len(_KEPT) >= _MOST_KEPT:
            _KEPT.clear()
        text = moment.replace(microsecond=0).isoformat()
        parts = _KEPT[key] = (text[:19], text[19:])  # "YYYY-MM-DDTHH:MM:SS", "+HH:MM"
    micro = moment.microsecond
    if micro:
        return f"{parts[0]}.{micro:06d}{parts[1]}"
    return parts[0] + parts[1]
