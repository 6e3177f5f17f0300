"""ivr.store: the call state and the call log in SQLite."""

import copy
import json
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
import sqlite_utils

from ivr.engine.state import call_summary
from ivr.engine.turn import play_turn
from ivr.flow.loader import load_flow
from ivr.providers.twilio.render import render_twiml
from ivr.store.postgres.store import PostgresCallStore
from ivr.store.sqlite.migrations import MIGRATIONS
from ivr.store.sqlite.store import NO_SEQUENCE, CallStore, normalise_number

FIXTURES = Path(__file__).parent / "fixtures"
CALLER = "+33612345678"
TABLES = {"calls", "call_state", "node_events", "status_events", "flow_versions", "meta"}


def memory_store(**kwargs):
    return CallStore(sqlite_utils.Database(memory=True), **kwargs)


@pytest.fixture(params=["sqlite", "postgresql"])
def new_store(request):
    """Makes stores (keyword arguments as :class:`CallStore`'s) on SQLite in
    memory, then on PostgreSQL: the tests of behaviour every backend has."""
    made = []

    def make(**kwargs):
        if request.param == "sqlite":
            made.append(memory_store(**kwargs))
        else:
            made.append(PostgresCallStore.connect(request.getfixturevalue("postgres_dsn"), **kwargs))
        return made[-1]

    yield make
    for store in made:
        store.close()


def make_state(call_id="CA1", now="2026-11-24T09:00:10+00:00", ended=False, **changes):
    state = {
        "call_id": call_id, "flow": "shop", "version": "abc123", "caller": CALLER,
        "called": "+33100000000", "country": "FR", "lang": "fr-FR",
        "started_at": "2026-11-24T09:00:00+00:00", "now": now,
        "ended_at": now if ended else None, "node": "menu", "waiting": "gather",
        "request": None, "vars": {"tries": 1, "phone": CALLER}, "digits": "1", "speech": "",
        "no_input": 0, "no_match": 0, "visits": {"menu": 1}, "steps": 2, "seq": 2,
        "reason": "order_status", "resolved": False, "confirmed": False, "cause": None,
        "handoff": None, "outcome": "self_served" if ended else None, "ended": ended,
    }
    state.update(changes)
    return state


def make_events(call_id="CA1", seqs=(1, 2)):
    return [{"call_id": call_id, "seq": seq, "flow": "shop", "version": "abc123",
             "node": f"node{seq}", "kind": "say", "input": None, "branch": "next",
             "detail": None, "at": f"2026-11-24T09:00:0{seq}+00:00"} for seq in seqs]


def save(store, state, turn=1, events=(), response=b"<Response/>"):
    store.save_turn(state["call_id"], turn, state, response, list(events),
                    call_summary(state), state["caller"])


def db_bytes(path):
    return b"".join(p.read_bytes() for p in path.parent.iterdir() if p.name.startswith(path.name))


# --- schema ---------------------------------------------------------------------


def test_migrations_create_the_schema_and_applying_twice_is_a_no_op():
    db = sqlite_utils.Database(memory=True)
    CallStore(db)
    assert TABLES <= set(db.table_names())
    indexes = {tuple(i.columns) for name in TABLES for i in db[name].indexes}
    assert db["node_reached"].pks == ["flow", "version", "node"]
    for columns in [("started_at",), ("flow", "version"),
                    ("reason",), ("caller_hash", "started_at"),
                    ("caller_hash", "reason", None, "outcome")]:  # None: julianday(started_at)
        assert columns in indexes
    assert db["node_events"].pks == ["call_id", "seq"]
    assert db["status_events"].pks == ["call_id", "sequence"]
    schema = db.schema
    applied = MIGRATIONS.applied(db)
    names = ["0001_initial", "0002_exit_node_and_ivr_time", "0003_report_indexes",
             "0004_open_calls_index", "0005_callback_requests", "0006_sms_sent",
             "0007_reached_index", "0008_no_state_time_index", "0009_transfer_result",
             "0010_leases", "0011_provider", "0012_report_figures_index",
             "0013_reached_counts", "0014_callback_last_attempt"]
    assert [m.name for m in applied] == names

    CallStore(db)
    MIGRATIONS.apply(db)
    assert db.schema == schema
    assert [m.name for m in MIGRATIONS.applied(db)] == names
    assert MIGRATIONS.pending(db) == []


def test_file_database_uses_wal(tmp_path):
    store = CallStore.open(tmp_path / "ivr.db")
    assert store.db.journal_mode == "wal"
    assert store.db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    assert store.db.execute("PRAGMA busy_timeout").fetchone()[0] == 5000
    store.close()
    reopened = sqlite_utils.Database(tmp_path / "ivr.db")
    assert reopened.journal_mode == "wal"


# --- turns ----------------------------------------------------------------------


def test_save_turn_then_load_call_round_trips(new_store):
    store = new_store()
    assert store.load_call("CA1") is None
    state = make_state()
    save(store, state, turn=3, events=make_events(), response=b"<Response><Hangup/></Response>")
    record = store.load_call("CA1")
    assert record.state == state
    assert record.turn == 3
    assert record.response == b"<Response><Hangup/></Response>"
    assert record.ended is False

    ended = make_state(now="2026-11-24T09:01:00+00:00", ended=True)
    save(store, ended, turn=4)
    record = store.load_call("CA1")
    assert record.state == ended and record.turn == 4 and record.ended is True


def test_save_turn_is_durable_once_it_returns(tmp_path):
    path = tmp_path / "ivr.db"
    store = CallStore.open(path)
    save(store, make_state(), turn=1, events=make_events())
    assert not store.db.conn.in_transaction
    other = CallStore.open(path)  # another process sees it at once
    assert other.load_call("CA1").turn == 1
    assert len(other.node_events("CA1")) == 2


def test_a_failing_save_turn_writes_nothing(new_store):
    store = new_store()
    bad_events = make_events() + [{"call_id": "CA1", "seq": 3}]  # missing fields
    with pytest.raises(KeyError):
        save(store, make_state(), events=bad_events)
    assert store.load_call("CA1") is None
    assert store.node_events("CA1") == []
    assert store.call("CA1") is None


def test_a_retried_turn_stores_its_node_events_once():
    store = memory_store()
    state = make_state()
    save(store, state, turn=1, events=make_events(seqs=(1, 2)))
    save(store, state, turn=1, events=make_events(seqs=(1, 2)))
    save(store, make_state(seq=3), turn=2, events=make_events(seqs=(2, 3)))
    assert [e["seq"] for e in store.node_events("CA1")] == [1, 2, 3]
    assert store.node_events("CA1")[0] == make_events()[0]
    assert store.db["node_events"].count == 3


def test_a_late_retry_of_an_older_turn_does_not_roll_the_call_back(new_store):
    store = new_store()
    save(store, make_state(steps=5), turn=2, events=make_events(seqs=(1, 2)),
         response=b"<Response>turn 2</Response>")
    save(store, make_state(steps=1), turn=1, events=make_events(seqs=(1,)),
         response=b"<Response>turn 1</Response>")
    record = store.load_call("CA1")
    assert record.turn == 2 and record.response == b"<Response>turn 2</Response>"
    assert store.call("CA1")["steps"] == 5


def test_node_events_of_another_call_are_refused(new_store):
    store = new_store()
    with pytest.raises(ValueError):
        save(store, make_state(), events=make_events(call_id="CA2"))
    assert store.load_call("CA1") is None


def test_calls_row_comes_from_the_summary(new_store):
    store = new_store()
    state = make_state(
        ended=True, outcome="transferred", cause="caller_asked", confirmed=True,
        handoff={"kind": "number", "target": "+33180000000", "node": "agent"},
        provider="twilio")
    save(store, state, turn=2)
    row = store.call("CA1")
    assert row == {
        "call_id": "CA1", "flow": "shop", "version": "abc123",
        "started_at": "2026-11-24T09:00:00+00:00", "ended_at": "2026-11-24T09:00:10+00:00",
        "caller_hash": store.hash_caller(CALLER), "country": "FR", "lang": "fr-FR",
        "reason": "order_status", "outcome": "transferred", "cause": "caller_asked",
        "confirmed": 1, "handoff_kind": "number", "handoff_target": "+33180000000",
        "steps": 2, "provider_status": None, "duration_s": None,
        "exit_node": "agent", "ivr_seconds": 10.0, "sms_sent": 0,
        "transfer_result": None, "queue_seconds": None, "provider": "twilio",
    }
    assert store.call("nope") is None


def test_a_callback_number_is_hashed_in_the_calls_row(new_store):
    store = new_store()
    state = make_state(handoff={"kind": "callback", "target": "0699887766", "node": "callback"},
                       vars={"callback_number": "0699887766"}, digits="0699887766")
    save(store, state)
    assert store.call("CA1")["handoff_target"] == store.hash_caller("0699887766")
    assert store.load_call("CA1").state == state


# --- callers --------------------------------------------------------------------


def test_hash_is_keyed_normalised_and_empty_when_withheld(new_store):
    store = new_store(caller_key=b"k" * 32)
    digest = store.hash_caller(CALLER)
    assert len(digest) == 64 and CALLER not in digest
    assert store.hash_caller("+33 6 12 34 56 78") == digest
    assert store.hash_caller("tel:+33-6-12-34-56-78") == digest
    assert new_store(caller_key=b"x" * 32).hash_caller(CALLER) != digest
    for withheld in ("", None, "anonymous", " Restricted ", "+266696687"):
        assert store.hash_caller(withheld) == ""
    assert normalise_number("+1 (415) 555-0123") == "+14155550123"


def test_raw_number_is_nowhere_in_the_database_file(tmp_path):
    path = tmp_path / "ivr.db"
    store = CallStore.open(path)
    state = make_state(handoff={"kind": "callback", "target": CALLER, "node": "callback"},
                       vars={"callback_number": CALLER, "note": "sealed:v1:not really"})
    save(store, state, turn=1, events=make_events())
    save(store, make_state(ended=True), turn=2)
    assert store.call("CA1")["caller_hash"] == store.hash_caller(CALLER)
    assert store.load_call("CA1").state == make_state(ended=True)
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    everything = db_bytes(path)
    store.close()
    everything += db_bytes(path)
    assert len(everything) > 0
    for needle in (CALLER, CALLER[1:], CALLER[3:]):
        assert needle.encode() not in everything


def test_hash_is_stable_across_reopen_and_differs_with_another_key(tmp_path):
    path = tmp_path / "ivr.db"
    first = CallStore.open(path)
    digest = first.hash_caller(CALLER)
    save(first, make_state())
    first.close()

    again = CallStore.open(path)
    assert again.hash_caller(CALLER) == digest
    assert again.load_call("CA1").state["caller"] == CALLER  # sealed and opened with the same key
    assert again.db["meta"].count == 1
    again.close()

    assert CallStore.open(tmp_path / "other.db").hash_caller(CALLER) != digest
    keyed = CallStore.open(path, caller_key=b"configured-secret")
    assert keyed.hash_caller(CALLER) not in ("", digest)
    with pytest.raises(ValueError, match="another caller key"):
        keyed.load_call("CA1")
    assert "configured" not in repr(keyed)


def test_caller_key_must_be_bytes(new_store):
    with pytest.raises(TypeError):
        new_store(caller_key="secret")


# --- status callbacks -----------------------------------------------------------


def test_record_status_dedupes_and_follows_the_highest_sequence():
    store = memory_store()
    save(store, make_state(ended=True))
    assert store.record_status("CA1", 2, "completed", "2026-11-24T09:01:00Z", 61) is True
    assert store.record_status("CA1", 2, "completed", "2026-11-24T09:01:00Z", 61) is False
    # An older callback arriving late is kept but does not win.
    assert store.record_status("CA1", 1, "in-progress", "2026-11-24T09:00:01Z", None) is True
    row = store.call("CA1")
    assert (row["provider_status"], row["duration_s"]) == ("completed", 61)
    assert store.db["status_events"].count == 2


def test_record_status_without_sequence():
    store = memory_store()
    save(store, make_state(ended=True))
    assert store.record_status("CA1", None, "Busy", "2026-11-24T09:01:00Z", 0) is True
    assert store.record_status("CA1", None, "busy", "2026-11-24T09:01:00Z", 0) is False
    assert store.call("CA1")["provider_status"] == "busy"
    assert store.db["status_events"].get(("CA1", NO_SEQUENCE))["status"] == "busy"
    store.record_status("CA1", 0, "failed", "2026-11-24T09:01:01Z", None)
    assert store.call("CA1")["provider_status"] == "failed"


def test_a_status_before_the_first_turn_is_applied_when_the_call_is_saved(new_store):
    store = new_store()
    assert store.record_status("CA1", 5, "completed", "2026-11-24T09:01:00Z", 42)
    assert store.call("CA1") is None
    save(store, make_state())
    row = store.call("CA1")
    assert (row["provider_status"], row["duration_s"]) == ("completed", 42)


def test_the_highest_status_wins_across_saves_and_stores(tmp_path):
    path = tmp_path / "calls.db"
    store = CallStore(sqlite_utils.Database(path))
    store.record_status("CA1", 5, "completed", "2026-11-24T09:01:00Z", 42)
    store.record_status("CA1", 3, "in-progress", "2026-11-24T09:00:30Z", None)
    save(store, make_state())
    assert (store.call("CA1")["provider_status"], store.call("CA1")["duration_s"]) \
        == ("completed", 42)
    # Another store (a restart) saves the call again: its status stays.
    other = CallStore(sqlite_utils.Database(path))
    save(other, make_state(now="2026-11-24T09:00:20+00:00"), turn=2)
    store.record_status("CA1", 4, "ringing", "2026-11-24T09:00:40Z", None)
    assert (other.call("CA1")["provider_status"], other.call("CA1")["duration_s"]) \
        == ("completed", 42)
    store.record_status("CA1", 6, "canceled", "2026-11-24T09:01:05Z", 0)
    assert (other.call("CA1")["provider_status"], other.call("CA1")["duration_s"]) \
        == ("canceled", 0)


# --- flow versions ----------------------------------------------------------------


def test_save_flow_version_is_idempotent_and_keeps_the_yaml():
    store = memory_store()
    prompts = SimpleNamespace(sources={("fr-FR", "hello"): "Bonjour.", ("en-US", "hello"): "Hello."})
    flow = SimpleNamespace(name="shop", version="abc123", source="name: shop\n", prompts=prompts)
    assert store.save_flow_version(flow) is True
    first = store.flow_version("shop", "abc123")
    assert store.save_flow_version(flow) is False
    assert store.flow_version("shop", "abc123") == first
    assert first["source"] == "name: shop\n"
    assert first["prompts"] == {"en-US/hello": "Hello.", "fr-FR/hello": "Bonjour."}
    datetime.fromisoformat(first["first_seen"])
    assert store.flow_version("shop", "other") is None
    assert store.db["flow_versions"].count == 1


def test_save_flow_version_of_a_real_flow(new_store):
    flow = load_flow(FIXTURES / "shop.yaml", FIXTURES / "prompts")
    store = new_store()
    assert store.save_flow_version(flow, first_seen="2026-11-24T09:00:00+00:00")
    stored = store.flow_version(flow.name, flow.version)
    assert stored["source"] == flow.source
    assert stored["first_seen"] == "2026-11-24T09:00:00+00:00"
    assert stored["prompts"] == {f"{lang}/{name}": text
                                 for (lang, name), text in flow.prompts.sources.items()}


# --- sweeping -------------------------------------------------------------------


def test_open_calls(new_store):
    store = new_store()
    save(store, make_state("OLD", now="2026-11-24T09:00:00+00:00"))
    save(store, make_state("NEW", now="2026-11-24T09:30:00+00:00"))
    save(store, make_state("DONE", now="2026-11-24T08:00:00+00:00", ended=True))
    # Another offset for the same instant as 09:10 UTC.
    save(store, make_state("PARIS", now="2026-11-24T10:05:00+01:00"))
    assert store.open_calls("2026-11-24T09:10:00+00:00") == ["OLD", "PARIS"]
    assert store.open_calls("2026-11-24T10:10:00+01:00") == ["OLD", "PARIS"]
    assert store.open_calls("2026-11-24T08:00:00+00:00") == []


# --- with the engine ----------------------------------------------------------------


def test_a_real_call_survives_a_reopen(tmp_path):
    """A closed-hours callback call, turn by turn, the way the web server saves it."""
    flow = load_flow(FIXTURES / "shop.yaml", FIXTURES / "prompts")
    path = tmp_path / "ivr.db"
    at = datetime(2026, 11, 28, 10, 0, tzinfo=ZoneInfo("Europe/Paris"))  # a Saturday
    events = [{"type": "start", "call_id": "CA9", "caller": CALLER, "called": "+33100000000"},
              {"type": "digits", "digits": "2"}, {"type": "digits", "digits": "1"},
              {"type": "hangup"}]
    state = None
    for turn, event in enumerate(events):
        store = CallStore.open(path)  # a restart between every turn
        record = store.load_call("CA9")
        if record is not None:
            assert record.turn == turn - 1
            state = record.state
        event["now"] = at + timedelta(seconds=10 * turn)
        result = play_turn(flow, copy.deepcopy(state), event,
                           lambda request, now: {"status": "not_found", "data": {}})
        twiml = render_twiml(result.actions, f"https://ivr.invalid/turn?n={turn + 1}")
        store.save_turn("CA9", turn, result.state, twiml, result.node_events,
                        call_summary(result.state), CALLER)
        assert store.load_call("CA9").state == result.state
        state = result.state
        store.close()

    store = CallStore.open(path)
    row = store.call("CA9")
    assert row["handoff_kind"] == "callback" and row["cause"] == "callback"
    assert row["handoff_target"] == row["caller_hash"] == store.hash_caller(CALLER)
    assert row["ended_at"] is not None
    seqs = [e["seq"] for e in store.node_events("CA9")]
    assert seqs == list(range(1, len(seqs) + 1)) and seqs
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    assert CALLER[1:].encode() not in db_bytes(path)
    assert sqlite3.connect(path).execute("PRAGMA integrity_check").fetchone()[0] == "ok"


# --- the last saved record, kept in memory ------------------------------------------


def test_load_call_reads_the_database_when_another_process_saved_a_later_turn(tmp_path):
    path = tmp_path / "calls.db"
    here, there = CallStore.open(path, b"k" * 32), CallStore.open(path, b"k" * 32)
    save(here, make_state(node="menu"), turn=1)
    assert here.load_call("CA1").state["node"] == "menu"
    save(there, make_state(node="ask_number"), turn=2)  # the provider's next request went there
    record = here.load_call("CA1")
    assert (record.turn, record.state["node"]) == (2, "ask_number")


def test_a_rolled_back_turn_is_not_served_from_memory(new_store):
    store = new_store()
    save(store, make_state(node="menu"), turn=1)
    with pytest.raises(RuntimeError):
        with store.transaction():
            save(store, make_state(node="ask_number"), turn=2)
            raise RuntimeError("the group commit failed")
    record = store.load_call("CA1")
    assert (record.turn, record.state["node"]) == (1, "menu")


def test_load_call_sees_another_process_saving_the_same_turn_again(tmp_path):
    # The sweep ends a silent call at its last turn: same turn number, new state.
    path = tmp_path / "calls.db"
    here, there = CallStore.open(path, b"k" * 32), CallStore.open(path, b"k" * 32)
    save(here, make_state(node="menu"), turn=3)
    save(there, make_state(node="menu", ended=True), turn=3)
    assert here.load_call("CA1").ended


def test_the_calls_row_is_right_after_another_process_changed_it(tmp_path):
    # Only the columns that changed since this process's last save are
    # written, so what it remembers of the row must be what is stored.
    path = tmp_path / "calls.db"
    here, there = CallStore.open(path, b"k" * 32), CallStore.open(path, b"k" * 32)
    save(here, make_state(reason="order_status", steps=2), turn=1)
    save(there, make_state(reason="delivery_date", steps=3), turn=2)
    save(here, make_state(reason="order_status", steps=4), turn=3)
    row = here.call("CA1")
    assert (row["reason"], row["steps"]) == ("order_status", 4)


def test_each_turn_updates_the_calls_row_it_changes(new_store):
    store = new_store()
    save(store, make_state(reason="not_stated", steps=1), turn=1)
    save(store, make_state(reason="order_status", steps=3), turn=2)
    save(store, make_state(reason="order_status", steps=5, ended=True), turn=3)
    row = store.call("CA1")
    assert (row["reason"], row["steps"], row["outcome"], row["ended_at"]) == (
        "order_status", 5, "self_served", "2026-11-24T09:00:10+00:00")


# --- the sealed state ---------------------------------------------------------------


def test_a_state_sealed_before_gcm_siv_still_opens():
    # Calls in progress when the server is upgraded keep their Fernet-sealed state.
    store = memory_store()
    state = make_state(node="ask_number")
    store.db.execute("INSERT INTO call_state (call_id, turn, state_json, response, updated_at) "
                     "VALUES (?, ?, ?, ?, ?)",
                     ["CA1", 2, store._seal(json.dumps(state)), b"<Response/>", "2026-11-24T09:00:10"])
    record = store.load_call("CA1")
    assert (record.turn, record.state) == (2, state)


def test_a_sealed_state_opens_only_for_its_own_call(new_store):
    store = new_store()
    save(store, make_state(call_id="CA1"), events=make_events(call_id="CA1"))
    save(store, make_state(call_id="CA2", node="other"), events=make_events(call_id="CA2"))
    sealed = store.db.execute("SELECT state_json FROM call_state WHERE call_id = 'CA1'").fetchone()[0]
    store.db.execute("UPDATE call_state SET state_json = ? WHERE call_id = 'CA2'", [sealed])
    store._live.clear()  # as in another process
    with pytest.raises(ValueError, match="another call"):
        store.load_call("CA2")


def test_states_are_sealed_with_the_calls_own_key_even_where_openssl_has_no_gcm_siv(monkeypatch):
    monkeypatch.setattr("ivr.store.sqlite.store.gcm_siv_cipher", lambda key: None)
    store = memory_store()
    save(store, make_state(node="menu"), turn=1)
    sealed = store.db.execute("SELECT state_json FROM call_state").fetchone()[0]
    assert sealed[:1] == b"\x03" and CALLER.encode() not in sealed
    store._live.clear()
    assert store.load_call("CA1").state == make_state(node="menu")


def test_a_state_sealed_with_gcm_siv_still_opens():
    # Calls in progress when the server is upgraded keep their GCM-SIV-sealed state.
    store = memory_store()
    state = make_state(node="ask_number")
    nonce = bytes(12)
    sealed = b"\x02" + nonce + store._state_cipher.encrypt(
        nonce, json.dumps(state).encode(), b"CA1")
    store.db.execute("INSERT INTO call_state (call_id, turn, state_json, response, updated_at) "
                     "VALUES (?, ?, ?, ?, ?)", ["CA1", 2, sealed, b"<Response/>", "2026-11-24T09:00:10"])
    record = store.load_call("CA1")
    assert (record.turn, record.state) == (2, state)


def test_each_call_seals_with_a_key_of_its_own():
    store = memory_store()
    one, other = store._call_keys.cipher("CA1"), store._call_keys.cipher("CA2")
    nonce = bytes(12)
    assert one.encrypt(nonce, b"state", b"") != other.encrypt(nonce, b"state", b"")
    assert memory_store(caller_key=b"k" * 32)._call_keys.cipher("CA1").encrypt(nonce, b"state", b"") \
        != memory_store(caller_key=b"j" * 32)._call_keys.cipher("CA1").encrypt(nonce, b"state", b"")


def test_upgrading_a_log_flags_each_calls_first_event_at_each_node_and_the_funnel_is_unchanged():
    db = sqlite_utils.Database(memory=True)
    MIGRATIONS.apply(db, stop_before="0007_reached_index")
    paths = {"CA1": ["welcome", "menu", "menu", "lookup", "menu"], "CA2": ["welcome", "menu"]}
    for call_id, path in paths.items():
        db["node_events"].insert_all(
            {"call_id": call_id, "seq": seq, "flow": "shop", "version": "v1", "node": node,
             "kind": "say", "at": "2026-11-24T09:00:00+00:00"} for seq, node in enumerate(path, 1))
    before = {row["node"]: row["n"] for row in db.query(
        "SELECT node, count(DISTINCT call_id) AS n FROM node_events GROUP BY node")}
    CallStore(db)  # applies the rest
    flagged = [(r["call_id"], r["seq"]) for r in db.query(
        "SELECT call_id, seq FROM node_events WHERE first_visit = 1 ORDER BY call_id, seq")]
    assert flagged == [("CA1", 1), ("CA1", 2), ("CA1", 4), ("CA2", 1), ("CA2", 2)]
    after = {row["node"]: row["reached"] for row in db.query(
        "SELECT node, reached FROM node_reached WHERE flow = 'shop' AND version = 'v1'")}
    assert after == before == {"welcome": 2, "menu": 2, "lookup": 1}


def test_a_turn_flags_the_first_event_of_the_call_at_each_node_once(new_store):
    store = new_store()
    events = [dict(e, node=node) for e, node in zip(make_events(seqs=(1, 2, 3)), ("a", "b", "a"))]
    save(store, make_state(), turn=1, events=events)
    save(store, make_state(), turn=1, events=events)  # a retried turn: nothing new
    later = [dict(e, node=node) for e, node in zip(make_events(seqs=(4, 5)), ("b", "c"))]
    save(store, make_state(), turn=2, events=later)
    rows = store.db.execute("SELECT seq, first_visit FROM node_events ORDER BY seq").fetchall()
    assert rows == [(1, 1), (2, 1), (3, 0), (4, 0), (5, 1)]


def test_a_log_from_before_transfer_results_is_upgraded_and_its_calls_stay_unknown():
    db = sqlite_utils.Database(memory=True)
    MIGRATIONS.apply(db, stop_before="0009_transfer_result")
    db["calls"].insert({"call_id": "OLD", "flow": "shop", "version": "v1",
                        "started_at": "2026-11-24T09:00:00+00:00", "outcome": "transferred"})
    store = CallStore(db)
    assert {"transfer_result", "queue_seconds"} <= set(db["calls"].columns_dict)
    assert (store.call("OLD")["transfer_result"], store.call("OLD")["queue_seconds"]) == (None, None)
    state = make_state(ended=True, outcome="transferred",
                       handoff={"kind": "queue", "target": "support", "node": "agent"},
                       transfer_result="abandoned_in_queue", queue_seconds=47)
    save(store, state, turn=2)
    row = store.call("CA1")
    assert (row["transfer_result"], row["queue_seconds"]) == ("abandoned_in_queue", 47)


def test_the_sealed_state_and_the_answer_are_stored_as_blobs(tmp_path):
    store = CallStore.open(tmp_path / "ivr.db", caller_key=b"k" * 32)
    try:
        for turn in (0, 1):
            store.save_turn("CA1", turn, {"call_id": "CA1", "steps": turn}, b"<Response/>", [],
                            {"flow": "f", "version": "v", "started_at": "2026-11-24T09:00:00+00:00"},
                            "+33612345678")
        assert store.db.conn.execute(
            "SELECT typeof(state_json), typeof(response), response FROM call_state").fetchall() \
            == [("blob", "blob", b"<Response/>")]
        other = CallStore.open(tmp_path / "ivr.db", caller_key=b"k" * 32)
        record = other.load_call("CA1")
        other.close()
        assert (record.turn, record.response, record.state["steps"]) == (1, b"<Response/>", 1)
    finally:
        store.close()
