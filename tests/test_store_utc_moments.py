"""ivr.store.sqlite.sql: a turn's moment put in UTC, as ``datetime`` does it,
whether its UTC minute is kept from an earlier moment or not."""

import random
from datetime import datetime, timedelta, timezone

import pytest

from ivr.store.sqlite import sql
from ivr.store.sqlite.sql import _utc_iso
from ivr.store.sqlite.sql import _utc_iso_parsed as by_datetime  # parsed, converted, formatted


@pytest.fixture(autouse=True)
def no_minutes_kept(monkeypatch):
    monkeypatch.setattr(sql, "_utc_minutes", {})


def test_a_moment_as_the_engine_writes_it_is_put_in_utc():
    assert _utc_iso("2026-12-06T23:33:19.243743+01:00") == "2026-12-06T22:33:19.243743+00:00"
    assert _utc_iso("2026-12-06T23:33:20.000001+01:00") == "2026-12-06T22:33:20.000001+00:00"
    assert sql._utc_minutes == {"2026-12-06T23:33+01:00": "2026-12-06T22:33"}


def test_moments_around_every_offset_and_day_are_put_in_utc_as_datetime_does():
    draw = random.Random(14)
    offsets = [timedelta(minutes=m) for m in (0, 30, 60, 330, 345, 525, 840, -60, -210, -720)]
    texts = []
    for _ in range(3000):
        zone = timezone(draw.choice(offsets))
        moment = datetime(2024, 1, 1, tzinfo=timezone.utc) + timedelta(
            days=draw.randrange(900), seconds=draw.randrange(86400),
            microseconds=draw.choice([0, 1, 999999, draw.randrange(10 ** 6)]))
        texts.append(moment.astimezone(zone).isoformat())
    # The same minutes again with other seconds: the kept minutes are used.
    texts += [text[:17] + f"{draw.randrange(60):02d}" + text[19:] for text in texts]
    for text in texts:
        assert _utc_iso(text) == by_datetime(text), text
    assert sql._utc_minutes


@pytest.mark.parametrize("text", [
    "2026-12-06T23:33:60.243743+01:00",  # no leap second
    "2026-12-06T23:33:19.000000+01:00",  # isoformat leaves a nought fraction out
    "2026-12-06T23:33:1x.243743+01:00",
    "2026-12-06T23:33:19,243743+01:00",
    "2026-12-06T23:33:19.24374a+01:00",
    "2026-12-06T23:33:19.243743+01:30",
    "2026-12-06T23:33:19.243743-01:00",
    "2026-12-06T23:33:19.243743+00:00",
    "2026-12-06T23:33:19.243743Z",
    "2026-12-06T23:33:19+01:00",
    "2026-12-06T23:33:19.243743",
    "2026-02-30T23:33:19.243743+01:00",
    "2026-12-06T23:33:19.243743+01:00:30",
    "2026-12-06T23:33:١٩.243743+01:00",  # digits, but not ASCII ones
    "not a time at all, 32 characters",
    "",
    None,
])
def test_odd_moments_are_read_as_datetime_reads_them_whatever_minute_is_kept(text):
    _utc_iso("2026-12-06T23:33:19.243743+01:00")  # that minute kept
    _utc_iso("2026-02-30T23:33:19.243743+01:00")
    assert _utc_iso(text) == by_datetime(text)
    assert _utc_iso(text) == by_datetime(text)


def test_the_minutes_kept_are_bounded(monkeypatch):
    monkeypatch.setattr(sql, "_UTC_MINUTES_KEPT", 5)
    start = datetime(2026, 12, 6, 23, 0, 0, 1, tzinfo=timezone(timedelta(hours=1)))
    for minute in range(12):
        text = (start + timedelta(minutes=minute)).isoformat()
        assert _utc_iso(text) == by_datetime(text)
        assert len(sql._utc_minutes) <= 5
