"""Business hours: when a call can reach a human.

A calendar is written in a flow's YAML (already parsed into Python data)::

    timezone: Europe/Paris
    weekly:
      mon-fri: "09:00-18:00"
      sat: "09:00-12:30"            # days not listed are closed
    holidays: FR                    # or {country: FR, subdiv: "6AE"}
    exceptions:                     # override weekly hours and holidays
      "12-24": "09:00-16:00"        # every year on 24 December
      "2026-12-31": closed          # one date

Everything here is pure: the caller passes ``now`` (timezone-aware), so the
engine and its tests decide what time it is.  Hours are wall-clock times in
the calendar's timezone; conversions go through ``zoneinfo`` so daylight
saving time is handled by the tz database, and public holidays come from the
``holidays`` package rather than a list someone has to keep up to date.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays as holidays_lib

from ivr.flow.dates import DateError, parse_day
from ivr.i18n import N_, _

__all__ = ["Calendar", "CalendarError", "parse_calendar"]

#: How far ahead ``next_opening`` and ``closes_at`` look.
HORIZON = dt.timedelta(days=14)

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # index = date.weekday()

# A range is (start, end) in minutes after local midnight, end exclusive;
# end may be 1440 ("24:00") so that a day can be open until midnight.
Range = tuple[int, int]


class CalendarError(ValueError):
    """A calendar spec is wrong.  ``path`` locates the problem inside the
    spec, e.g. ``("weekly", "mon-fri")``, for the flow linter to point at."""

    def __init__(self, message: str, path: tuple = ()):
        self.message = message
        self.path = tuple(path)
        where = ".".join(str(p) for p in self.path)
        super().__init__(f"{where}: {message}" if where else message)


@dataclass(frozen=True)
class Calendar:
    """Opening hours in one timezone.  Build it with :func:`parse_calendar`."""

    timezone: ZoneInfo
    weekly: tuple[tuple[Range, ...], ...]  # 7 entries, Monday first
    yearly: dict[tuple[int, int], tuple[Range, ...]] = field(default_factory=dict)  # (month, day)
    dated: dict[dt.date, tuple[Range, ...]] = field(default_factory=dict)
    # The holidays object fills itself in year by year as it is asked; it is
    # not part of the calendar's value.
    holidays: holidays_lib.HolidayBase | None = field(default=None, compare=False, repr=False)

    def is_open(self, now: dt.datetime) -> bool:
        """Whether the calendar is open at instant ``now`` (timezone-aware)."""
        local = self._local(now)
        seconds = local.hour * 3600 + local.minute * 60 + local.second + local.microsecond / 1e6
        return any(start * 60 <= seconds < end * 60 for start, end in self._ranges(local.date()))

    def next_opening(self, now: dt.datetime) -> dt.datetime | None:
        """The first instant at or after ``now`` when the calendar is open
        (``now`` itself if open), in the calendar's timezone; ``None`` if it
        stays closed for the next 14 days."""
        local = self._local(now)
        if self.is_open(local):
            return local
        for offset in range(HORIZON.days + 1):
            day = local.date() + dt.timedelta(days=offset)
            for start, _end in self._ranges(day):
                opening = self._at(day, start)
                if opening > local:
                    return opening if opening - local <= HORIZON else None
        return None

    def closes_at(self, now: dt.datetime) -> dt.datetime | None:
        """When the current opening ends, in the calendar's timezone;
        ``None`` if closed at ``now`` (or open for the whole next 14 days).

        Hours running to midnight and on from midnight the next day count as
        one opening.
        """
        local = self._local(now)
        if not self.is_open(local):
            return None
        day, minute = local.date(), local.hour * 60 + local.minute
        end = next(end for start, end in self._ranges(day) if start <= minute < end)
        while end == 1440:
            day += dt.timedelta(days=1)
            if day - local.date() > HORIZON:
                return None
            following = self._ranges(day)
            if not following or following[0][0] != 0:
                return self._at(day, 0)
            end = following[0][1]
        return self._at(day, end)

    # --- Internals ---------------------------------------------------------

    def _local(self, now: dt.datetime) -> dt.datetime:
        if now.tzinfo is None or now.utcoffset() is None:
            raise ValueError("now must be timezone-aware")
        return now.astimezone(self.timezone)

    def _ranges(self, day: dt.date) -> tuple[Range, ...]:
        # Most specific first: a dated exception, a yearly one, a public
        # holiday, then the weekly hours.
        if day in self.dated:
            return self.dated[day]
        if (day.month, day.day) in self.yearly:
            return self.yearly[(day.month, day.day)]
        if self.holidays is not None and day in self.holidays:
            return ()
        return self.weekly[day.weekday()]

    def _at(self, day: dt.date, minute: int) -> dt.datetime:
        """Local wall-clock time ``minute`` on ``day`` as an aware datetime.

        The round trip through UTC turns a time that does not exist (in the
        spring-forward gap) into a real one.
        """
        day += dt.timedelta(days=minute // 1440)
        minute %= 1440
        wall = dt.datetime.combine(day, dt.time(minute // 60, minute % 60), tzinfo=self.timezone)
        return wall.astimezone(dt.timezone.utc).astimezone(self.timezone)


# --- Parsing -------------------------------------------------------------------


#: The fields of a calendar under ``hours:``.
CALENDAR_FIELDS = ("timezone", "weekly", "holidays", "exceptions")


def parse_calendar(data) -> Calendar:
    """Build a :class:`Calendar` from its spec (a mapping, as parsed from YAML).

    Raises :class:`CalendarError` with the path of the first problem found.
    """
    if not isinstance(data, dict):
        raise CalendarError(_(MESSAGES["not-a-mapping"]).format(found=_show(data)), ())
    unknown = set(data) - set(CALENDAR_FIELDS)
    if unknown:
        key = sorted(map(str, unknown))[0]
        raise CalendarError(_(MESSAGES["unknown-key"]).format(key=key), (key,))

    timezone = _parse_timezone(data.get("timezone"))
    if "weekly" not in data:
        raise CalendarError(_(MESSAGES["no-weekly"]), ("weekly",))
    weekly = _parse_weekly(data["weekly"])
    hols = _parse_holidays(data["holidays"]) if data.get("holidays") is not None else None
    yearly, dated = _parse_exceptions(data.get("exceptions") or {})
    return Calendar(timezone, weekly, yearly, dated, hols)


def _parse_timezone(value) -> ZoneInfo:
    path = ("timezone",)
    if value is None:
        raise CalendarError(_(MESSAGES["no-timezone"]), path)
    if not isinstance(value, str):
        raise CalendarError(_(MESSAGES["timezone-type"]).format(found=_show(value)), path)
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise CalendarError(_(MESSAGES["unknown-timezone"]).format(timezone=value), path) from None


def _parse_weekly(value) -> tuple[tuple[Range, ...], ...]:
    if not isinstance(value, dict):
        raise CalendarError(_(MESSAGES["weekly-type"]).format(found=_show(value)), ("weekly",))
    week: list[tuple[Range, ...] | None] = [None] * 7
    for key, hours in value.items():
        path = ("weekly", key)
        days = _parse_days(key, path)
        ranges = _parse_hours(hours, path)
        for d in days:
            if week[d] is not None:
                raise CalendarError(_(MESSAGES["day-twice"]).format(day=DAYS[d]), path)
            week[d] = ranges
    return tuple(r or () for r in week)


def _parse_days(key, path: tuple) -> list[int]:
    """ "mon-fri", "sat", "mon,wed", "mon-wed,fri" → weekday indexes."""
    if not isinstance(key, str):
        raise CalendarError(_(MESSAGES["days-type"]).format(found=_show(key)), path)
    days: list[int] = []
    for item in key.split(","):
        ends = [e.strip().lower() for e in item.split("-")]
        for end in ends:
            if end not in DAYS:
                raise CalendarError(_(MESSAGES["unknown-day"]).format(day=end, key=key), path)
        if len(ends) > 2:
            raise CalendarError(_(MESSAGES["bad-day-range"]).format(range=item.strip()), path)
        first, last = DAYS.index(ends[0]), DAYS.index(ends[-1])
        if last < first:
            raise CalendarError(_(MESSAGES["days-backwards"]).format(range=item.strip(), last=ends[-1],
                                                                     first=ends[0]), path)
        days.extend(range(first, last + 1))
    return days


_TIME = re.compile(r"(\d{1,2}):(\d{2})")


def _parse_hours(value, path: tuple) -> tuple[Range, ...]:
    """ "closed", "09:00-18:00", "09:00-12:00, 14:00-18:00" or a list of ranges."""
    if isinstance(value, str) and value.strip().lower() == "closed":
        return ()
    if isinstance(value, str):
        items = value.split(",")
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        items = value
    else:
        raise CalendarError(_(MESSAGES["hours-type"]).format(found=_show(value)), path)
    ranges = []
    for item in items:
        parts = item.strip().split("-")
        if len(parts) != 2:
            raise CalendarError(_(MESSAGES["bad-range"]).format(range=item.strip()), path)
        start, end = (_parse_time(p.strip(), path) for p in parts)
        if start >= end:
            raise CalendarError(_(MESSAGES["range-backwards"]).format(range=item.strip()), path)
        if start == 1440:
            raise CalendarError(_(MESSAGES["range-from-midnight"]).format(range=item.strip()), path)
        ranges.append((start, end))
    ranges.sort()
    merged: list[Range] = []
    for start, end in ranges:
        if merged and start < merged[-1][1]:
            raise CalendarError(_(MESSAGES["ranges-overlap"]).format(hours=value), path)
        if merged and start == merged[-1][1]:  # "09:00-12:00, 12:00-14:00" is one opening
            merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return tuple(merged)


def _parse_time(text: str, path: tuple) -> int:
    m = _TIME.fullmatch(text)
    if m:
        hour, minute = int(m[1]), int(m[2])
        if (hour < 24 and minute < 60) or (hour, minute) == (24, 0):
            return hour * 60 + minute
    raise CalendarError(_(MESSAGES["bad-time"]).format(time=text), path)


def _parse_holidays(value) -> holidays_lib.HolidayBase:
    path: tuple = ("holidays",)
    subdiv = None
    if isinstance(value, dict):
        unknown = set(value) - {"country", "subdiv"}
        if unknown:
            key = sorted(map(str, unknown))[0]
            raise CalendarError(_(MESSAGES["unknown-holidays-key"]).format(key=key), path + (key,))
        if "country" not in value:
            raise CalendarError(_(MESSAGES["no-country"]), path + ("country",))
        country, subdiv = value["country"], value.get("subdiv")
        path = path + ("country",)
    else:
        country = value
    if not isinstance(country, str):
        raise CalendarError(_(MESSAGES["country-type"]).format(found=_show(country)), path)
    country = country.strip().upper()
    supported = holidays_lib.list_supported_countries()
    if country not in supported:
        raise CalendarError(_(MESSAGES["unknown-country"]).format(country=country), path)
    if subdiv is not None:
        subdiv = str(subdiv).strip()
        try:
            return holidays_lib.country_holidays(country, subdiv=subdiv)
        except NotImplementedError:
            raise CalendarError(_(MESSAGES["unknown-subdivision"]).format(
                subdiv=subdiv, country=country, expected=", ".join(supported[country])),
                ("holidays", "subdiv")) from None
    return holidays_lib.country_holidays(country)


_YEARLY = re.compile(r"(\d{2})-(\d{2})")


def _parse_exceptions(value) -> tuple[dict, dict]:
    if not isinstance(value, dict):
        raise CalendarError(_(MESSAGES["exceptions-type"]).format(found=_show(value)), ("exceptions",))
    yearly: dict[tuple[int, int], tuple[Range, ...]] = {}
    dated: dict[dt.date, tuple[Range, ...]] = {}
    for key, hours in value.items():
        # YAML reads an unquoted 2026-12-31 as a date already.
        if isinstance(key, dt.date) and not isinstance(key, dt.datetime):
            dated[key] = _parse_hours(hours, ("exceptions", key.isoformat()))
            continue
        path = ("exceptions", key)
        if not isinstance(key, str):
            raise CalendarError(
                _bad_exception_date(key),
                path,
            )
        text = key.strip()
        m = _YEARLY.fullmatch(text)
        try:
            if m:
                month, day = int(m[1]), int(m[2])
                dt.date(2000, month, day)  # a leap year, so 02-29 is allowed
            else:
                date = dt.date.fromisoformat(text)
        except ValueError:
            raise CalendarError(
                _bad_exception_date(key),
                path,
            ) from None
        if m:
            yearly[(month, day)] = _parse_hours(hours, path)
        else:
            dated[date] = _parse_hours(hours, path)
    return yearly, dated


#: How a bad exception date is told, with the date it most likely is.
#: The messages of the calendar checks, one sentence each with named values.
MESSAGES = {
    "not-a-mapping": N_("expected a mapping, found {found}"),
    "unknown-key": N_("unknown key {key!r}; expected timezone, weekly, holidays or exceptions"),
    "no-weekly": N_("missing key 'weekly' (days not listed are closed)"),
    "no-timezone": N_("missing key 'timezone' (e.g. 'Europe/Paris')"),
    "timezone-type": N_("expected a timezone name like 'Europe/Paris', found {found}"),
    "unknown-timezone": N_("unknown timezone {timezone!r}; expected an IANA name like 'Europe/Paris'"),
    "weekly-type": N_("expected a mapping of days to hours (mon-fri: \"09:00-18:00\"), found {found}"),
    "day-twice": N_("{day} is given hours twice"),
    "days-type": N_("expected day names like 'mon-fri', found {found}"),
    "unknown-day": N_("unknown day {day!r} in {key!r}; expected mon tue wed thu fri sat sun, a range like "
                      "mon-fri or a list like mon,wed"),
    "bad-day-range": N_("bad day range {range!r}; expected like mon-fri"),
    "days-backwards": N_("bad day range {range!r}: {last} comes before {first} (weeks run mon to sun; write "
                         "e.g. 'fri,sat,sun,mon')"),
    "hours-type": N_("expected \"closed\" or hours like \"09:00-18:00\", found {found}"),
    "bad-range": N_("bad range {range!r}; expected \"HH:MM-HH:MM\" like \"09:00-18:00\""),
    "range-backwards": N_("bad range {range!r}: the end must be after the start (ranges cannot run past "
                          "midnight; use \"24:00\" and the next day)"),
    "range-from-midnight": N_("bad range {range!r}: 24:00 can only end a range"),
    "ranges-overlap": N_("ranges overlap in {hours!r}"),
    "bad-time": N_("bad time {time!r}; expected HH:MM between 00:00 and 24:00"),
    "unknown-holidays-key": N_("unknown key {key!r}; expected country and subdiv"),
    "no-country": N_("missing key 'country' (e.g. FR)"),
    "country-type": N_("expected a country code like FR, found {found}"),
    "unknown-country": N_("unknown country code {country!r}; expected an ISO 3166 code known to the holidays "
                          "package, like FR or US"),
    "unknown-subdivision": N_("unknown subdivision {subdiv!r} of {country}; expected one of {expected}"),
    "exceptions-type": N_("expected a mapping of dates to hours (\"12-24\": \"09:00-16:00\"), found {found}"),
}
BAD_EXCEPTION_DATE = N_('bad exception date {key!r}; expected "MM-DD" (every year) or "YYYY-MM-DD"')
BAD_EXCEPTION_DATE_MEANT = N_('bad exception date {key!r}; expected "MM-DD" (every year) or '
                              '"YYYY-MM-DD": write "{meant}"')
_DAY_MONTH = re.compile(r"(\d{1,2})/(\d{1,2})")


def _bad_exception_date(key) -> str:
    """The message for an exception date we do not read; a day-first date
    (``24/12/2026``, ``24/12``) that can only be one day gets that day."""
    text = str(key).strip()
    meant = None
    try:
        meant = parse_day(text).isoformat()
    except DateError:
        found = _DAY_MONTH.fullmatch(text)
        if found and int(found[1]) > 12 >= int(found[2]) >= 1:
            meant = f"{int(found[2]):02d}-{int(found[1]):02d}"
    if meant:
        return _(BAD_EXCEPTION_DATE_MEANT).format(key=key, meant=meant)
    return _(BAD_EXCEPTION_DATE).format(key=key)


def _show(value) -> str:
    """How a found value is quoted in an error message."""
    return f"{type(value).__name__} {value!r}"
