"""Read the dates and times an operator types or writes in a file.

Every command and file takes the same forms: ISO 8601 (``2026-12-24``,
``2026-12-24 18:30``, ``2026-12-24T18:30:00+01:00``) and, because an
operator in Europe writes it that way, day first with slashes
(``24/12/2026`` or ``24/12/2026 18:30``) when it can only be read one way.
``07/12/2026`` could be 7 December or 12 July: it is refused, with both
readings, rather than guessed.  A text that is not a date is a
:class:`DateError` whose message says which form to use.
"""

from __future__ import annotations

import datetime as dt
import re

from ivr.i18n import N_, _

#: The messages of this module, one sentence each with named values.
MESSAGES = {
    "not-a-time": N_("{text!r} is not a date and time: write it as 2026-12-24 18:30 (year-month-day, "
                  "24-hour clock) or in ISO 8601, e.g. 2026-12-24T18:30"),
    "not-a-day": N_("{text!r} is not a date: write it as 2026-12-24 (year-month-day, ISO 8601)"),
    "ambiguous": N_("{text!r} could be read day first ({one}) or month first ({other}): write it "
                 "year first, as the one you mean"),
    "month-first": N_("{text!r} puts the month first: write it year first, as {iso}"),
}

_DAY_FIRST = re.compile(
    r"(?P<a>\d{1,2})/(?P<b>\d{1,2})/(?P<year>\d{4})"
    r"(?:[ T]+(?P<hour>\d{1,2}):(?P<minute>\d{2})(?::(?P<second>\d{2}))?)?")


class DateError(ValueError):
    """A text that is not a date or time in a form we read; the message
    says the form to use."""


def parse_time(text) -> dt.datetime:
    """The date and time ``text`` gives (naive unless it has an offset);
    a date alone is its midnight.  Raises :class:`DateError`."""
    if isinstance(text, dt.datetime):
        return text
    if isinstance(text, dt.date):
        return dt.datetime.combine(text, dt.time())
    value = str(text).strip()
    try:
        return dt.datetime.fromisoformat(value)
    except ValueError:
        pass
    return _day_first(value, _(MESSAGES["not-a-time"]))


def parse_day(text) -> dt.date:
    """The date ``text`` gives, without a time.  Raises :class:`DateError`."""
    if isinstance(text, dt.date) and not isinstance(text, dt.datetime):
        return text
    value = str(text).strip()
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        pass
    moment = _day_first(value, _(MESSAGES["not-a-day"]))
    if moment.time() != dt.time():
        raise DateError(_(MESSAGES["not-a-day"]).format(text=value))
    return moment.date()


def iso(moment: dt.datetime | dt.date) -> str:
    """How a parsed date or time is passed on: ISO 8601, a date alone
    when it is one, the seconds only when there are some."""
    if isinstance(moment, dt.datetime):
        return moment.isoformat(sep=" ", timespec="seconds" if moment.second else "minutes")
    return moment.isoformat()


def _day_first(value: str, wrong: str) -> dt.datetime:
    found = _DAY_FIRST.fullmatch(value)
    if not found:
        raise DateError(wrong.format(text=value))
    a, b, year = int(found["a"]), int(found["b"]), int(found["year"])
    clock = dict(hour=int(found["hour"] or 0), minute=int(found["minute"] or 0),
                 second=int(found["second"] or 0))
    day_first = _make(year, b, a, clock)
    month_first = _make(year, a, b, clock)
    if day_first and month_first and day_first != month_first:
        raise DateError(_(MESSAGES["ambiguous"]).format(
            text=value, one=_shown(day_first, found), other=_shown(month_first, found)))
    if day_first:
        return day_first
    if month_first:
        raise DateError(_(MESSAGES["month-first"]).format(text=value, iso=_shown(month_first, found)))
    raise DateError(wrong.format(text=value))


def _make(year, month, day, clock) -> dt.datetime | None:
    try:
        return dt.datetime(year, month, day, **clock)
    except ValueError:
        return None


def _shown(moment: dt.datetime, found) -> str:
    return iso(moment) if found["hour"] else moment.date().isoformat()
