"""Callback requests: what the engine records, how the store keeps them
(sealed, once, with the turn that kept the number), and the server
telling the helpdesk once that turn is committed."""

import copy
import json
import sqlite3
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlite_utils
from twisted.internet import defer, task

from ivr.engine.state import call_summary, callback_request
from ivr.engine.turn import play_turn
from ivr.flow.loader import load_flow
from ivr.flow.model import TRANSFER_CAUSES
from ivr.lookups.demo_orders import DEMO_CALLERS, DEMO_ORDERS, create_demo_db
from ivr.lookups.embedded import EmbeddedOrderLookups
from ivr.server.calls import CallHandler
from ivr.server.registry import FlowRegistry
from ivr.sim.scenarios import demo_lookups
from ivr.store.postgres.store import PostgresCallStore
from ivr.store.sqlite.group_commit import GroupCommit
from ivr.store.sqlite.store import CallStore

ROOT = Path(__file__).parent.parent
FIXTURES = Path(__file__).parent / "fixtures"
PARIS = ZoneInfo("Europe/Paris")
#: Tuesday 20:00: the support line is closed.
EVENING = datetime(2026, 11, 24, 20, 0, tzinfo=PARIS)
CALLER = "+33612345678"


@pytest.fixture(scope="module")
def demo():
    return load_flow(ROOT / "flows" / "post_sale.yaml", ROOT / "prompts")


class Call:
    """The demo flow played turn by turn, each turn kept for the store."""

    def __init__(self, flow, caller=CALLER, at=EVENING):
        self.flow, self.at, self.state = flow, at, None
        self.perform = demo_lookups(at)
        self.turns = []
        self._play({"type": "start", "call_id": "CA1", "caller": caller, "called": "+33100000000"})

    def _play(self, event):
        event["now"] = self.at
        turn = play_turn(self.flow, copy.deepcopy(self.state), event, self.perform)
        self.state = turn.state
        self.turns.append(turn)
        self.at += timedelta(seconds=10)
        return self

    def press(self, *keys):
        for key in keys:
            self._play({"type": "digits", "digits": key})
        return self

    def say(self, text):
        return self._play({"type": "speech", "text": text})

    @property
    def summary(self):
        return call_summary(self.state)

    def events_at(self, node):
        return [e for turn in self.turns for e in turn.node_events if e["node"] == node]


# --- the engine -----------------------------------------------------------------------


def test_callback_is_a_transfer_cause():
    assert "callback" in TRANSFER_CAUSES and "closed" in TRANSFER_CAUSES


def test_a_callback_call_has_cause_callback_and_leaves_where_the_caller_asked(demo):
    call = Call(demo).press("0", "1", "1", "1")  # agent, call me back, morning, my number
    summary = call.summary
    assert (summary["outcome"], summary["cause"]) == ("transferred", "callback")
    assert summary["handoff"] == {"kind": "callback", "target": CALLER, "node": "callback"}
    assert summary["exit_node"] == "main_menu"


def test_the_slot_reason_order_and_number_are_recorded(demo):
    lost = DEMO_CALLERS["lost"]
    call = Call(demo, caller=lost).press("1", "1")  # track my order, yes that one: lost, closed
    assert call.state["node"] == "closed_menu"
    call.press("1").say("plutôt l'après-midi").press("1")
    assert callback_request(call.state) == {
        "number": lost, "reason": "parcel_lost", "order_number": DEMO_ORDERS["lost"],
        "slot": "afternoon", "lang": "fr-FR", "node": "callback",
        "requested_at": "2026-11-24T20:00:50+01:00"}
    assert call.events_at("callback")[-1]["detail"] == "slot=afternoon"
    summary = call.summary
    assert (summary["cause"], summary["reason"], summary["exit_node"]) == (
        "callback", "parcel_lost", "agent_hours")


def test_a_number_typed_is_kept_and_the_log_shows_it_masked(demo):
    call = Call(demo).press("0", "1", "3", "2", "0699887766")
    request = callback_request(call.state)
    # The caller's one order was answered before the menu: the agent gets it too.
    assert (request["number"], request["slot"], request["order_number"]) == (
        "0699887766", "asap", DEMO_ORDERS["in_transit"])
    assert call.events_at("callback")[-1]["input"] == "*" * 10


def test_no_request_until_the_number_is_kept(demo):
    call = Call(demo).press("0", "1", "2")
    assert call.state["node"] == "callback"
    assert callback_request(call.state) is None
    assert call.summary["outcome"] is None


def test_voicemail_keeps_cause_closed(demo):
    call = Call(demo).press("0", "2")
    call._play({"type": "recorded", "url": "https://r.invalid/1.wav", "duration": 20})
    assert (call.summary["cause"], call.summary["handoff"]["kind"]) == ("closed", "voicemail")
    assert callback_request(call.state) is None


def test_a_menu_whose_every_choice_leads_to_a_person_keeps_the_exit_node(demo):
    # The slot menu is on the way to the callback: the cause stays pending.
    call = Call(demo).press("0", "1")
    assert call.state["node"] == "callback_slot"
    assert (call.state["cause"], call.state["exit_node"]) == ("closed", "main_menu")


def test_a_callback_without_slot_records_none(tmp_path):
    shop = load_flow(FIXTURES / "shop.yaml", FIXTURES / "prompts")
    saturday = datetime(2026, 11, 28, 10, 0, tzinfo=PARIS)
    state = None
    for event in ({"type": "start", "call_id": "CA1", "caller": CALLER}, {"type": "digits", "digits": "2"},
                  {"type": "digits", "digits": "1"}):
        state = play_turn(shop, state, {**event, "now": saturday}, None).state
    request = callback_request(state)
    assert request["slot"] is None and request["reason"] == "return_refund"
    assert call_summary(state)["cause"] == "callback"


def flow_with_slot(tmp_path, slot):
    (tmp_path / "flow.yaml").write_text((FIXTURES / "shop.yaml").read_text().replace(
        "    ask_number: callback_number\n", f"    ask_number: callback_number\n    slot: {slot}\n"))
    return load_flow(tmp_path / "flow.yaml", FIXTURES / "prompts")


@pytest.mark.parametrize("slot, recorded", [("evening", "evening"), ('"{{ tries + 1 }}"', "1"),
                                            ('"{{ none }}"', None)])
def test_a_literal_or_computed_slot_is_recorded_as_text(tmp_path, slot, recorded):
    flow = flow_with_slot(tmp_path, slot)
    saturday = datetime(2026, 11, 28, 10, 0, tzinfo=PARIS)
    state = None
    for event in ({"type": "start", "call_id": "CA1", "caller": CALLER}, {"type": "digits", "digits": "2"},
                  {"type": "digits", "digits": "1"}):
        state = play_turn(flow, state, {**event, "now": saturday}, None).state
    assert callback_request(state)["slot"] == recorded


# --- the store ------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def any_store(request):
    """A store on SQLite in memory, then on PostgreSQL."""
    if request.param == "sqlite":
        made = CallStore(sqlite_utils.Database(memory=True))
    else:
        made = PostgresCallStore.connect(request.getfixturevalue("postgres_dsn"))
    yield made
    made.close()


def save_call(store, call, status="not_configured", turns=None):
    for number, turn in enumerate(call.turns if turns is None else turns):
        store.save_turn("CA1", number, turn.state, b"<Response/>", turn.node_events,
                        call_summary(turn.state), turn.state["caller"], callback_status=status)


def db_bytes(path):
    return b"".join(p.read_bytes() for p in path.parent.iterdir() if p.name.startswith(path.name))


def test_the_request_is_stored_once_with_the_number_sealed(tmp_path, demo):
    path = tmp_path / "ivr.db"
    store = CallStore.open(path)
    call = Call(demo, caller=DEMO_CALLERS["lost"]).press("1", "1", "1", "1", "1")
    save_call(store, call, status="pending")
    save_call(store, call, status="sent", turns=call.turns[-1:])  # the last turn again
    rows = list(store.db.query("SELECT * FROM callback_requests"))
    assert len(rows) == 1
    row = rows[0]
    assert row["number_sealed"].startswith("sealed:v1:")
    assert row["number_hash"] == store.hash_caller(DEMO_CALLERS["lost"])
    assert {k: row[k] for k in ("call_id", "flow", "version", "reason", "order_number", "slot",
                                "lang", "status", "attempts", "last_error", "delivered_at")} == {
        "call_id": "CA1", "flow": "post_sale", "version": demo.version, "reason": "parcel_lost",
        "order_number": DEMO_ORDERS["lost"], "slot": "morning", "lang": "fr-FR",
        "status": "pending", "attempts": 0, "last_error": None, "delivered_at": None}
    assert store.callback_request("CA1")["number"] == DEMO_CALLERS["lost"]
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    assert DEMO_CALLERS["lost"][1:].encode() not in db_bytes(path)
    assert DEMO_CALLERS["lost"][3:].encode() not in db_bytes(path)  # nor as dialled nationally


def test_a_typed_number_is_not_in_the_file_either(tmp_path, demo):
    path = tmp_path / "ivr.db"
    store = CallStore.open(path)
    save_call(store, Call(demo).press("0", "1", "3", "2", "0699887766"))
    assert store.callback_request("CA1")["number"] == "0699887766"
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    assert b"699887766" not in db_bytes(path)


def test_the_request_is_written_in_the_turns_transaction(demo, any_store):
    store = any_store
    call = Call(demo).press("0", "1", "1", "1")
    save_call(store, call, turns=call.turns[:-1])
    last = call.turns[-1]
    with pytest.raises(RuntimeError):
        with store.transaction():
            save_call(store, call, turns=[last])
            raise RuntimeError("the group commit failed")
    assert store.callback_request("CA1") is None
    assert store.call("CA1")["outcome"] is None


def test_an_unknown_status_is_refused(demo):
    store = CallStore(sqlite_utils.Database(memory=True))
    with pytest.raises(ValueError, match="unknown callback status 'queued'"):
        save_call(store, Call(demo).press("0", "1", "1", "1"), status="queued")
    with pytest.raises(sqlite3.IntegrityError):
        store.db.execute("INSERT INTO callback_requests (call_id, flow, version, requested_at, "
                         "number_sealed, number_hash, reason, status) VALUES "
                         "('X', 'f', 'v', 't', 's', 'h', 'r', 'queued')")


def test_pending_requests_and_their_updates(demo, any_store):
    store = any_store
    save_call(store, Call(demo).press("0", "1", "1", "1"), status="pending")
    assert store.pending_callbacks() == ["CA1"]
    store.update_callback("CA1", "sent", 2, last_error="HTTP 503", delivered_at="2026-11-24T19:01:00+00:00")
    row = store.callback_request("CA1")
    assert (row["status"], row["attempts"], row["last_error"], row["delivered_at"]) == (
        "sent", 2, "HTTP 503", "2026-11-24T19:01:00+00:00")
    assert store.pending_callbacks() == []


# --- the server ---------------------------------------------------------------------


class RecordingHelpdesk:
    """Notes which requests the handler asks to send, and what the
    database holds at that moment (it must be committed)."""

    initial_status = "pending"

    def __init__(self, path):
        self.path, self.requested_ids, self.committed = path, [], []

    def requested(self, call_id):
        self.requested_ids.append(call_id)
        other = sqlite3.connect(self.path)  # another connection sees only what is committed
        self.committed.append(other.execute(
            "SELECT status FROM callback_requests WHERE call_id = ?", [call_id]).fetchall())
        other.close()


@pytest.fixture
def line(tmp_path):
    clock = task.Clock()
    clock.advance(EVENING.timestamp())
    path = tmp_path / "ivr.db"
    store = CallStore.open(path)
    orders = EmbeddedOrderLookups(create_demo_db(store.db, date(2026, 11, 24)))
    registry = FlowRegistry(ROOT / "flows", ROOT / "prompts", store)
    registry.reload_if_changed()
    helpdesk = RecordingHelpdesk(path)
    handler = CallHandler(registry, store, orders.perform, clock,
                          group_commit=GroupCommit(store, clock), helpdesk=helpdesk)
    return clock, store, handler, helpdesk


def turn(clock, handler, number, **params):
    d = defer.ensureDeferred(handler.voice("post_sale", number, {
        "CallSid": "CA1", "From": CALLER, "To": "+33100000000", **params}))
    clock.advance(0)  # the group commit
    clock.advance(5)
    result = []
    d.addBoth(result.append)
    assert result and isinstance(result[0], bytes), result
    return result[0]


def test_the_helpdesk_hears_of_a_request_once_it_is_committed(line):
    clock, store, handler, helpdesk = line
    turn(clock, handler, 0)
    for number, digits in enumerate(["0", "1", "1"], 1):
        turn(clock, handler, number, Digits=digits)
    assert helpdesk.requested_ids == []
    answer = turn(clock, handler, 4, Digits="1")
    assert "dans la matinée" in answer.decode()
    assert helpdesk.requested_ids == ["CA1"] and helpdesk.committed == [[("pending",)]]
    # The provider retries the turn, then the call ends: nothing is sent twice.
    assert turn(clock, handler, 4, Digits="1") == answer
    handler.status({"CallSid": "CA1", "CallStatus": "completed", "SequenceNumber": "3"})
    assert helpdesk.requested_ids == ["CA1"]
    assert store.call("CA1")["cause"] == "callback"
    assert store.db["callback_requests"].count == 1


def test_without_a_helpdesk_requests_are_kept_as_not_configured(tmp_path):
    clock = task.Clock()
    clock.advance(EVENING.timestamp())
    store = CallStore(sqlite_utils.Database(memory=True))
    registry = FlowRegistry(ROOT / "flows", ROOT / "prompts", store)
    registry.reload_if_changed()
    handler = CallHandler(registry, store, demo_lookups(EVENING), clock)
    turn(clock, handler, 0)
    for number, digits in enumerate(["0", "1", "2", "1"], 1):
        turn(clock, handler, number, Digits=digits)
    row = store.callback_request("CA1")
    assert (row["status"], row["slot"], row["number"], row["attempts"]) == (
        "not_configured", "afternoon", CALLER, 0)
    assert json.loads(json.dumps(row))  # plain data
