"""Leases in the store: work that must run once, however many server
processes share it, is done by the one holding its lease."""

from datetime import datetime, timedelta, timezone

import pytest
from twisted.internet.task import Clock

from ivr.server.helpdesk import RESEND_INTERVAL
from ivr.server.leases import HELPDESK_LEASE, Leases
from ivr.store.memory import MemoryCallStore
from ivr.store.sqlite.store import CallStore

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=timezone.utc)
TTL = timedelta(seconds=30)


@pytest.fixture(params=["sqlite", "memory"])
def stores(request, tmp_path):
    """Two handles on one store, as two worker processes have: two
    connections to one file, or the same memory store twice."""
    if request.param == "memory":
        store = MemoryCallStore()
        yield store, store
        return
    first = CallStore.open(tmp_path / "ivr.db")
    second = CallStore.open(tmp_path / "ivr.db")
    yield first, second
    first.close()
    second.close()


def test_of_two_holders_asking_for_a_free_lease_the_first_gets_it(stores):
    a, b = stores
    assert a.take_lease("sweep", "worker-a", NOW, TTL) is True
    assert b.take_lease("sweep", "worker-b", NOW, TTL) is False


def test_a_holder_renews_its_own_lease(stores):
    a, b = stores
    assert a.take_lease("sweep", "worker-a", NOW, TTL)
    assert a.take_lease("sweep", "worker-a", NOW + TTL / 2, TTL)
    # Renewed until NOW + 1.5 TTL: still a's after the first term.
    assert b.take_lease("sweep", "worker-b", NOW + TTL + timedelta(seconds=1), TTL) is False


def test_an_expired_lease_passes_to_the_next_holder_and_not_back(stores):
    a, b = stores
    assert a.take_lease("sweep", "worker-a", NOW, TTL)
    assert b.take_lease("sweep", "worker-b", NOW + TTL - timedelta(microseconds=1), TTL) is False
    assert b.take_lease("sweep", "worker-b", NOW + TTL, TTL) is True
    assert a.take_lease("sweep", "worker-a", NOW + TTL, TTL) is False


def test_leases_of_different_names_are_independent(stores):
    a, b = stores
    assert a.take_lease("sweep", "worker-a", NOW, TTL)
    assert b.take_lease("wal-checkpoint", "worker-b", NOW, TTL)


def test_a_lease_compares_moments_whatever_their_offset(stores):
    a, b = stores
    paris = timezone(timedelta(hours=1))
    assert a.take_lease("sweep", "worker-a", NOW.astimezone(paris), TTL)
    assert b.take_lease("sweep", "worker-b", NOW + TTL / 2, TTL) is False
    assert b.take_lease("sweep", "worker-b", (NOW + TTL).replace(tzinfo=None), TTL) is True


@pytest.mark.parametrize("name, holder, ttl", [
    ("", "worker-a", TTL), ("sweep", "", TTL), ("sweep", "worker-a", timedelta(0)),
])
def test_a_lease_without_a_name_a_holder_or_a_term_is_refused(stores, name, holder, ttl):
    a, _b = stores
    with pytest.raises(ValueError):
        a.take_lease(name, holder, NOW, ttl)


def test_a_lease_given_up_passes_at_once_and_another_holder_s_is_kept(stores):
    a, b = stores
    clock = Clock()
    clock.advance(NOW.timestamp())
    mine, theirs = Leases(a, clock, holder="worker-a"), Leases(b, clock, holder="worker-b")
    assert mine.held("helpdesk-resend", 600) and not theirs.held("helpdesk-resend", 600)
    assert theirs.release("helpdesk-resend") is None  # not theirs: nothing to give up
    assert not theirs.held("helpdesk-resend", 600)
    mine.release("helpdesk-resend")
    assert theirs.held("helpdesk-resend", 600)  # at once, not in ten minutes
    clock.advance(600)
    assert mine.held("helpdesk-resend", 600)  # theirs ran out
    clock.advance(600)
    assert theirs.held("helpdesk-resend", 600)  # mine ran out, unknown to it
    mine.release("helpdesk-resend")  # too late: theirs is kept
    assert not Leases(a, clock, holder="worker-c").held("helpdesk-resend", 600)
    assert clock.getDelayedCalls() == []


def test_the_helpdesk_resend_holder_keeps_its_lease_and_a_dead_holder_s_passes_within_minutes(stores):
    a, b = stores
    clock = Clock()
    clock.advance(NOW.timestamp())
    holder, other = Leases(a, clock, holder="worker-a"), Leases(b, clock, holder="worker-b")
    for _run in range(10):  # each asks at every periodic run; the holder renews
        assert holder.held("helpdesk-resend", HELPDESK_LEASE)
        assert not other.held("helpdesk-resend", HELPDESK_LEASE)
        clock.advance(RESEND_INTERVAL)
    runs = 0  # the holder is killed: it asks no more, nor gives the lease up
    while not other.held("helpdesk-resend", HELPDESK_LEASE):
        clock.advance(RESEND_INTERVAL)
        runs += 1
    assert runs * RESEND_INTERVAL <= HELPDESK_LEASE + RESEND_INTERVAL <= 10 * 60
    assert clock.getDelayedCalls() == []
