import datetime as dt
from zoneinfo import ZoneInfo

import pytest
import yaml

from ivr.flow.hours import CalendarError, parse_calendar

PARIS = ZoneInfo("Europe/Paris")
UTC = dt.timezone.utc

SPEC = """
timezone: Europe/Paris
weekly:
  mon-fri: "09:00-18:00"
  sat: "09:00-12:30"
holidays: FR
exceptions:
  "12-24": "09:00-16:00"
  "2026-12-31": closed
"""


@pytest.fixture
def cal():
    return parse_calendar(yaml.safe_load(SPEC))


@pytest.fixture
def weekdays():
    return parse_calendar(
        {"timezone": "Europe/Paris", "weekly": {"mon-fri": "09:00-18:00"}, "holidays": "FR"}
    )


def paris(*args):
    return dt.datetime(*args, tzinfo=PARIS)


# --- Open or closed -----------------------------------------------------------------


@pytest.mark.parametrize(
    "hour, minute, expected",
    [(8, 59, False), (9, 0, True), (12, 0, True), (17, 59, True), (18, 0, False), (23, 0, False)],
)
def test_weekday_edges(cal, hour, minute, expected):
    assert cal.is_open(paris(2026, 11, 24, hour, minute)) is expected  # a Tuesday


def test_end_of_range_is_exclusive_to_the_second(cal):
    assert cal.is_open(paris(2026, 11, 24, 17, 59, 59, 999999))
    assert not cal.is_open(paris(2026, 11, 24, 18, 0, 0))


@pytest.mark.parametrize(
    "hour, minute, expected", [(8, 59, False), (9, 0, True), (12, 29, True), (12, 30, False)]
)
def test_saturday_morning(cal, hour, minute, expected):
    assert cal.is_open(paris(2026, 11, 28, hour, minute)) is expected


def test_sunday_closed(cal):
    assert not cal.is_open(paris(2026, 11, 29, 10, 0))


@pytest.mark.parametrize(
    "day",
    [
        dt.date(2026, 12, 25),  # Christmas, a Friday
        dt.date(2026, 5, 1),  # Labour Day, a Friday
        dt.date(2026, 5, 14),  # Ascension, a Thursday
        dt.date(2026, 4, 6),  # Easter Monday
    ],
)
def test_public_holidays_closed(cal, day):
    assert not cal.is_open(dt.datetime.combine(day, dt.time(10, 0), tzinfo=PARIS))


def test_day_after_a_holiday_is_open(cal):
    assert cal.is_open(paris(2026, 5, 15, 10, 0))


def test_christmas_eve_closes_early(cal):
    assert cal.is_open(paris(2026, 12, 24, 15, 59))
    assert not cal.is_open(paris(2026, 12, 24, 16, 0))
    assert cal.closes_at(paris(2026, 12, 24, 10, 0)) == paris(2026, 12, 24, 16, 0)


def test_christmas_eve_exception_applies_every_year(cal):
    assert not cal.is_open(paris(2027, 12, 24, 16, 30))  # a Friday


def test_christmas_eve_exception_opens_a_closed_day(cal):
    # 24 December 2028 is a Sunday: the exception overrides the weekly hours.
    assert cal.is_open(paris(2028, 12, 24, 10, 0))


def test_one_date_exception(cal):
    assert not cal.is_open(paris(2026, 12, 31, 10, 0))  # a Thursday
    assert cal.is_open(paris(2027, 12, 31, 10, 0))  # a Friday, another year


def test_one_date_exception_overrides_a_holiday():
    cal = parse_calendar(
        {
            "timezone": "Europe/Paris",
            "weekly": {"mon-fri": "09:00-18:00"},
            "holidays": "FR",
            "exceptions": {dt.date(2026, 5, 14): "10:00-12:00"},  # as YAML reads an unquoted date
        }
    )
    assert cal.is_open(paris(2026, 5, 14, 11, 0))
    assert not cal.is_open(paris(2026, 5, 14, 9, 30))


def test_dated_exception_wins_over_yearly_one():
    cal = parse_calendar(
        {
            "timezone": "Europe/Paris",
            "weekly": {},
            "exceptions": {"12-24": "09:00-16:00", "2026-12-24": "09:00-12:00"},
        }
    )
    assert not cal.is_open(paris(2026, 12, 24, 13, 0))
    assert cal.is_open(paris(2027, 12, 24, 13, 0))


def test_several_ranges_a_day():
    cal = parse_calendar(
        {"timezone": "Europe/Paris", "weekly": {"mon,wed": "09:00-12:00, 14:00-18:00", "fri": "closed"}}
    )
    assert cal.is_open(paris(2026, 11, 23, 11, 0))
    assert not cal.is_open(paris(2026, 11, 23, 13, 0))
    assert cal.is_open(paris(2026, 11, 25, 14, 0))
    assert not cal.is_open(paris(2026, 11, 24, 11, 0))  # Tuesday: not listed
    assert not cal.is_open(paris(2026, 11, 27, 11, 0))
    assert cal.closes_at(paris(2026, 11, 23, 10, 0)) == paris(2026, 11, 23, 12, 0)
    assert cal.next_opening(paris(2026, 11, 23, 12, 0)) == paris(2026, 11, 23, 14, 0)


def test_ranges_as_a_list():
    cal = parse_calendar({"timezone": "Europe/Paris", "weekly": {"mon": ["09:00-12:00", "14:00-18:00"]}})
    assert cal.is_open(paris(2026, 11, 23, 15, 0))


def test_no_holidays_means_open_on_them():
    cal = parse_calendar({"timezone": "Europe/Paris", "weekly": {"mon-fri": "09:00-18:00"}})
    assert cal.is_open(paris(2026, 12, 25, 10, 0))


def test_holidays_with_subdivision():
    alsace = parse_calendar(
        {
            "timezone": "Europe/Paris",
            "weekly": {"mon-sat": "09:00-18:00"},
            "holidays": {"country": "FR", "subdiv": "6AE"},
        }
    )
    paris_cal = parse_calendar(
        {"timezone": "Europe/Paris", "weekly": {"mon-sat": "09:00-18:00"}, "holidays": "FR"}
    )
    good_friday = paris(2026, 4, 3, 10, 0)
    assert not alsace.is_open(good_friday)
    assert paris_cal.is_open(good_friday)


def test_now_in_another_timezone(cal):
    new_york = ZoneInfo("America/New_York")
    # 04:00 in New York is 10:00 in Paris on 24 November 2026.
    assert cal.is_open(dt.datetime(2026, 11, 24, 4, 0, tzinfo=new_york))
    assert not cal.is_open(dt.datetime(2026, 11, 24, 12, 30, tzinfo=new_york))


def test_naive_datetime_refused(cal):
    with pytest.raises(ValueError):
        cal.is_open(dt.datetime(2026, 11, 24, 10, 0))


# --- Daylight saving time --------------------------------------------------------------


def test_dst_spring_forward():
    cal = parse_calendar({"timezone": "Europe/Paris", "weekly": {"mon-fri": "09:00-18:00"}})
    # Clocks went forward on Sunday 2026-03-29: Paris is UTC+2 afterwards, UTC+1 before.
    assert cal.is_open(dt.datetime(2026, 3, 30, 7, 30, tzinfo=UTC))  # 09:30 Paris
    assert not cal.is_open(dt.datetime(2026, 3, 23, 7, 30, tzinfo=UTC))  # 08:30 Paris
    assert cal.is_open(dt.datetime(2026, 3, 23, 8, 0, tzinfo=UTC))  # 09:00 Paris
    assert not cal.is_open(dt.datetime(2026, 3, 30, 16, 0, tzinfo=UTC))  # 18:00 Paris


def test_dst_next_opening_and_closing(weekdays):
    # From Friday before the change to Monday after it.
    opening = weekdays.next_opening(dt.datetime(2026, 3, 27, 18, 0, tzinfo=UTC))
    assert opening == paris(2026, 3, 30, 9, 0)
    assert opening.astimezone(UTC) == dt.datetime(2026, 3, 30, 7, 0, tzinfo=UTC)
    # Autumn: clocks go back on Sunday 2026-10-25.
    closing = weekdays.closes_at(dt.datetime(2026, 10, 26, 9, 0, tzinfo=UTC))  # 10:00 Paris
    assert closing.astimezone(UTC) == dt.datetime(2026, 10, 26, 17, 0, tzinfo=UTC)


def test_open_through_the_missing_hour():
    cal = parse_calendar({"timezone": "Europe/Paris", "weekly": {"sun": "01:00-05:00"}})
    # 02:30 does not exist in Paris on 2026-03-29; 01:00 UTC is 03:00 CEST.
    assert cal.is_open(dt.datetime(2026, 3, 29, 1, 0, tzinfo=UTC))
    assert cal.closes_at(dt.datetime(2026, 3, 29, 1, 0, tzinfo=UTC)) == paris(2026, 3, 29, 5, 0)


# --- Next opening, closing time ------------------------------------------------------------


def test_next_opening_friday_evening_to_monday(weekdays):
    assert weekdays.next_opening(paris(2026, 11, 27, 19, 0)) == paris(2026, 11, 30, 9, 0)


def test_next_opening_skips_easter_monday(weekdays):
    assert weekdays.next_opening(paris(2026, 4, 3, 19, 0)) == paris(2026, 4, 7, 9, 0)


def test_next_opening_saturday(cal):
    assert cal.next_opening(paris(2026, 11, 27, 19, 0)) == paris(2026, 11, 28, 9, 0)
    assert cal.next_opening(paris(2026, 11, 28, 12, 30)) == paris(2026, 11, 30, 9, 0)


def test_next_opening_same_day_before_opening(cal):
    assert cal.next_opening(paris(2026, 11, 24, 7, 15)) == paris(2026, 11, 24, 9, 0)


def test_next_opening_when_open_is_now(cal):
    now = paris(2026, 11, 24, 10, 0)
    assert cal.next_opening(now) == now


def test_next_opening_in_calendar_timezone(cal):
    opening = cal.next_opening(dt.datetime(2026, 11, 24, 6, 0, tzinfo=UTC))
    assert opening.tzinfo == PARIS
    assert (opening.hour, opening.minute) == (9, 0)


def test_next_opening_over_christmas(cal):
    # Thursday 24th closes at 16:00, Friday 25th is Christmas.
    assert cal.next_opening(paris(2026, 12, 24, 16, 0)) == paris(2026, 12, 26, 9, 0)


def test_next_opening_beyond_two_weeks_is_none():
    cal = parse_calendar({"timezone": "Europe/Paris", "weekly": {}, "exceptions": {"2026-12-15": "09:00-10:00"}})
    assert cal.next_opening(paris(2026, 12, 1, 9, 0)) == paris(2026, 12, 15, 9, 0)
    assert cal.next_opening(paris(2026, 11, 30, 9, 0)) is None
    assert parse_calendar({"timezone": "Europe/Paris", "weekly": {}}).next_opening(
        paris(2026, 12, 1, 9, 0)
    ) is None


def test_closes_at(cal):
    assert cal.closes_at(paris(2026, 11, 24, 10, 0)) == paris(2026, 11, 24, 18, 0)
    assert cal.closes_at(paris(2026, 11, 28, 10, 0)) == paris(2026, 11, 28, 12, 30)
    assert cal.closes_at(paris(2026, 11, 24, 18, 0)) is None
    assert cal.closes_at(paris(2026, 11, 29, 10, 0)) is None


def test_closes_at_runs_through_midnight():
    cal = parse_calendar(
        {"timezone": "Europe/Paris", "weekly": {"fri": "18:00-24:00", "sat": "00:00-02:00"}}
    )
    assert cal.is_open(paris(2026, 11, 27, 23, 59))
    assert cal.is_open(paris(2026, 11, 28, 0, 0))
    assert cal.closes_at(paris(2026, 11, 27, 20, 0)) == paris(2026, 11, 28, 2, 0)


def test_closes_at_midnight():
    cal = parse_calendar({"timezone": "Europe/Paris", "weekly": {"fri": "18:00-24:00"}})
    assert cal.closes_at(paris(2026, 11, 27, 20, 0)) == paris(2026, 11, 28, 0, 0)


def test_always_open_never_closes_within_horizon():
    cal = parse_calendar({"timezone": "Europe/Paris", "weekly": {"mon-sun": "00:00-24:00"}})
    now = paris(2026, 11, 24, 10, 0)
    assert cal.is_open(now)
    assert cal.closes_at(now) is None


# --- Errors ----------------------------------------------------------------------------


def spec(**changes):
    data = {"timezone": "Europe/Paris", "weekly": {"mon-fri": "09:00-18:00"}}
    data.update(changes)
    return {k: v for k, v in data.items() if v is not ...}


@pytest.mark.parametrize(
    "data, path, message",
    [
        ([], (), "expected a mapping, found list"),
        (spec(timezone="Europe/Pariss"), ("timezone",), "unknown timezone 'Europe/Pariss'"),
        (spec(timezone="../etc"), ("timezone",), "unknown timezone '../etc'"),
        (spec(timezone=...), ("timezone",), "missing key 'timezone'"),
        (spec(timezone=1), ("timezone",), "found int 1"),
        (spec(weekly=...), ("weekly",), "missing key 'weekly'"),
        (spec(weekly="mon-fri 9-18"), ("weekly",), "expected a mapping of days to hours"),
        (spec(weekly={"mon-fry": "09:00-18:00"}), ("weekly", "mon-fry"), "unknown day 'fry'"),
        (spec(weekly={"monday": "09:00-18:00"}), ("weekly", "monday"), "unknown day 'monday'"),
        (spec(weekly={"fri-mon": "09:00-18:00"}), ("weekly", "fri-mon"), "mon comes before fri"),
        (spec(weekly={"mon-wed-fri": "09:00-18:00"}), ("weekly", "mon-wed-fri"), "bad day range"),
        (
            spec(weekly={"mon-fri": "09:00-18:00", "fri": "09:00-12:00"}),
            ("weekly", "fri"),
            "fri is given hours twice",
        ),
        (spec(weekly={"mon-fri": "18:00-09:00"}), ("weekly", "mon-fri"), "bad range '18:00-09:00'"),
        (spec(weekly={"mon-fri": "09:00-09:00"}), ("weekly", "mon-fri"), "bad range '09:00-09:00'"),
        (spec(weekly={"mon-fri": "09:00-25:00"}), ("weekly", "mon-fri"), "bad time '25:00'"),
        (spec(weekly={"mon-fri": "09:60-18:00"}), ("weekly", "mon-fri"), "bad time '09:60'"),
        (spec(weekly={"mon-fri": "9h-18h"}), ("weekly", "mon-fri"), "bad time '9h'"),
        (spec(weekly={"mon-fri": "09:00"}), ("weekly", "mon-fri"), "bad range '09:00'"),
        (spec(weekly={"mon-fri": "24:00-24:00"}), ("weekly", "mon-fri"), "bad range"),
        (
            spec(weekly={"mon-fri": "09:00-13:00, 12:00-18:00"}),
            ("weekly", "mon-fri"),
            "ranges overlap",
        ),
        (spec(weekly={"mon-fri": "open"}), ("weekly", "mon-fri"), "bad range 'open'"),
        (spec(weekly={"mon-fri": 540}), ("weekly", "mon-fri"), "found int 540"),
        (spec(weekly={"mon-fri": None}), ("weekly", "mon-fri"), "found NoneType None"),
        (spec(holidays="XX"), ("holidays",), "unknown country code 'XX'"),
        (spec(holidays=33), ("holidays",), "expected a country code like FR, found int 33"),
        (
            spec(holidays={"country": "FR", "subdiv": "67"}),
            ("holidays", "subdiv"),
            "unknown subdivision '67' of FR",
        ),
        (spec(holidays={"country": "XX"}), ("holidays", "country"), "unknown country code 'XX'"),
        (spec(holidays={"subdiv": "6AE"}), ("holidays", "country"), "missing key 'country'"),
        (spec(holidays={"country": "FR", "region": "x"}), ("holidays", "region"), "unknown key 'region'"),
        (spec(exceptions={"24-12": "closed"}), ("exceptions", "24-12"), "bad exception date '24-12'"),
        (spec(exceptions={"02-30": "closed"}), ("exceptions", "02-30"), "bad exception date"),
        (
            spec(exceptions={"2026-13-01": "closed"}),
            ("exceptions", "2026-13-01"),
            "bad exception date '2026-13-01'",
        ),
        (spec(exceptions={"christmas": "closed"}), ("exceptions", "christmas"), "expected \"MM-DD\""),
        (spec(exceptions={1224: "closed"}), ("exceptions", 1224), "bad exception date 1224"),
        (
            spec(exceptions={"12-24": "16:00-09:00"}),
            ("exceptions", "12-24"),
            "bad range '16:00-09:00'",
        ),
        (
            spec(exceptions={dt.date(2026, 12, 31): "closd"}),
            ("exceptions", "2026-12-31"),
            "bad range 'closd'",
        ),
        (spec(exceptions=["12-24"]), ("exceptions",), "expected a mapping of dates to hours"),
        (spec(timezon="Europe/Paris"), ("timezon",), "unknown key 'timezon'"),
    ],
)
def test_calendar_errors(data, path, message):
    with pytest.raises(CalendarError) as err:
        parse_calendar(data)
    assert err.value.path == path
    assert message in err.value.message
    assert message in str(err.value)


def test_error_message_says_what_was_expected():
    with pytest.raises(CalendarError) as err:
        parse_calendar(spec(weekly={"mon-fri": "09:00-25:00"}))
    assert "expected HH:MM" in err.value.message
    assert str(err.value).startswith("weekly.mon-fri: ")


def test_country_code_case_and_whitespace_are_forgiven():
    cal = parse_calendar(spec(holidays="fr"))
    assert not cal.is_open(paris(2026, 12, 25, 10, 0))


def test_day_names_are_case_insensitive():
    cal = parse_calendar(spec(weekly={"Mon-Fri": "09:00-18:00"}))
    assert cal.is_open(paris(2026, 11, 24, 10, 0))
