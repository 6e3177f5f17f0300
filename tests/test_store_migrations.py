"""The call log's migrations stop where they are told, and only there: a
``stop_before`` naming no migration of ours is refused, not taken for
"apply everything" as sqlite-utils would."""

from datetime import datetime, timezone

import pytest
import sqlite_utils

from ivr.store.sqlite.migrations import MIGRATIONS, UnknownMigration
from ivr.store.sqlite.store import CallStore

#: A callback request as a server kept it before its last attempt was:
#: pending (its sender stopped), asked at 09:00:30 UTC.
KEPT_BEFORE = ("INSERT INTO callback_requests (call_id, flow, version, requested_at, number_sealed, "
               "number_hash, reason, status, attempts) VALUES ('OLD', 'shop', 'v1', "
               "'2026-11-24T10:00:30+01:00', 'sealed:v1:x', 'h', 'parcel_lost', 'pending', 2)")


def test_stopping_before_a_migration_applies_only_those_before_it():
    db = sqlite_utils.Database(memory=True)
    MIGRATIONS.apply(db, stop_before="0003_report_indexes")
    assert [m.name for m in MIGRATIONS.applied(db)] == ["0001_initial", "0002_exit_node_and_ivr_time"]


def test_a_misspelt_migration_is_refused_with_the_name_it_resembles():
    db = sqlite_utils.Database(memory=True)
    with pytest.raises(UnknownMigration) as refused:
        MIGRATIONS.apply(db, stop_before="0007_reachd_index")
    assert str(refused.value) == ("stop_before: no migration named '0007_reachd_index' in the set "
                                  "'ivr'; did you mean '0007_reached_index'?")
    assert db.table_names() == []  # nothing applied, not even the migrations' own table


def test_an_unknown_migration_among_several_is_refused_with_the_known_names():
    db = sqlite_utils.Database(memory=True)
    with pytest.raises(UnknownMigration, match=r"no migration named 'zzz' in the set 'ivr'; "
                                               r"known: 0001_initial, 0002_exit_node_and_ivr_time, "):
        MIGRATIONS.apply(db, stop_before=["0009_transfer_result", "zzz"])
    assert db.table_names() == []


def test_an_unknown_migration_is_a_value_error_like_the_librarys_own_refusals():
    db = sqlite_utils.Database(memory=True)
    with pytest.raises(ValueError):
        MIGRATIONS.apply(db, stop_before="0011_providers")
    MIGRATIONS.apply(db)
    with pytest.raises(ValueError, match="already been applied"):  # sqlite-utils' own check, kept
        MIGRATIONS.apply(db, stop_before="0011_provider")


def test_without_stop_before_every_migration_is_applied():
    db = sqlite_utils.Database(memory=True)
    MIGRATIONS.apply(db)
    assert MIGRATIONS.pending(db) == []


def test_requests_kept_before_the_last_attempt_column_get_none_and_their_request_time_stands_in():
    db = sqlite_utils.Database(memory=True)
    MIGRATIONS.apply(db, stop_before="0014_callback_last_attempt")
    db.execute(KEPT_BEFORE)
    store = CallStore(db)  # migrates
    assert MIGRATIONS.pending(db) == []
    assert db.execute("SELECT last_attempt_at FROM callback_requests").fetchall() == [(None,)]
    assert store.orphaned_callbacks(datetime(2026, 11, 24, 9, 0, 30, tzinfo=timezone.utc)) == []
    assert store.orphaned_callbacks(datetime(2026, 11, 24, 9, 1, tzinfo=timezone.utc)) == [("OLD", None)]
    assert store.claim_callback("OLD", None, datetime(2026, 11, 24, 9, 2, tzinfo=timezone.utc))
