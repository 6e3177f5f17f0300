"""The engine's text of a moment is ``isoformat()``'s, kept per second or not."""

import random
from datetime import datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo

import pytest

from ivr.engine import moments
from ivr.engine.moments import iso_text

ZONES = [ZoneInfo("Europe/Paris"), ZoneInfo("America/New_York"), ZoneInfo("Australia/Lord_Howe"),
         ZoneInfo("Asia/Kolkata"), timezone.utc, timezone(timedelta(hours=-3, minutes=-30)),
         timezone(timedelta(seconds=37)), timezone(timedelta(microseconds=5))]


class Drifting(tzinfo):
    """A time zone whose offset follows the microseconds: not kept."""

    def utcoffset(self, moment):
        return timedelta(minutes=moment.microsecond % 60)

    def dst(self, moment):
        return timedelta(0)


@pytest.mark.parametrize("zone", ZONES, ids=str)
def test_moments_of_one_second_are_written_as_isoformat_writes_them(zone):
    moments._KEPT.clear()
    start = datetime(2026, 12, 6, 23, 59, 58, tzinfo=zone)
    for micro in (0, 1, 999_999, 123_456, 0, 500_000):
        for second in range(3):
            moment = start.replace(microsecond=micro) + timedelta(seconds=second)
            assert iso_text(moment) == moment.isoformat()


@pytest.mark.parametrize("zone", ZONES[:4], ids=str)
def test_random_moments_over_the_years_are_written_as_isoformat_writes_them(zone):
    moments._KEPT.clear()
    draw = random.Random(14)
    for _ in range(3000):
        moment = datetime.fromtimestamp(draw.uniform(-2e9, 4e9), zone)
        if draw.random() < 0.2:
            moment = moment.replace(microsecond=0)
        assert iso_text(moment) == moment.isoformat()
        assert iso_text(moment) == moment.isoformat()  # kept this time
    assert len(moments._KEPT) <= moments._MOST_KEPT


def test_both_sides_of_a_clock_change_keep_their_own_offset():
    paris = ZoneInfo("Europe/Paris")
    moments._KEPT.clear()
    for fold in (0, 1, 0, 1):
        twice = datetime(2026, 10, 25, 2, 30, 15, 250, tzinfo=paris, fold=fold)
        assert iso_text(twice) == twice.isoformat()
    assert iso_text(datetime(2026, 10, 25, 2, 30, 15, tzinfo=paris, fold=0)).endswith("+02:00")
    assert iso_text(datetime(2026, 10, 25, 2, 30, 15, tzinfo=paris, fold=1)).endswith("+01:00")


def test_naive_moments_and_other_time_zones_are_formatted_each_time():
    moments._KEPT.clear()
    naive = datetime(2026, 12, 6, 12, 0, 0, 42)
    assert iso_text(naive) == naive.isoformat()
    for micro in (0, 30, 59, 61):
        drifting = datetime(2026, 12, 6, 12, 0, 0, micro, tzinfo=Drifting())
        assert iso_text(drifting) == drifting.isoformat()
    assert moments._KEPT == {}


def test_zones_with_the_same_wall_time_are_kept_apart():
    moments._KEPT.clear()
    wall = datetime(2026, 7, 1, 9, 0, 0, 7)
    for zone in ZONES:
        assert iso_text(wall.replace(tzinfo=zone)) == wall.replace(tzinfo=zone).isoformat()
