"""``ivr-report callbacks``: the callers to call back, in every format, and its errors."""

import csv
import io
import json
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlite_utils
from click.testing import CliRunner

from ivr.engine.state import call_summary
from ivr.engine.turn import play_turn
from ivr.flow.loader import load_flow
from ivr.lookups.demo_orders import DEMO_CALLERS, DEMO_ORDERS
from ivr.reports.cli import main
from ivr.sim.scenarios import demo_lookups
from ivr.store.sqlite.store import CallStore

ROOT = Path(__file__).parent.parent
PARIS = ZoneInfo("Europe/Paris")
LOST = DEMO_CALLERS["lost"]
FR = "+33612345678"
US = DEMO_CALLERS["english_one_order"]
FIELDS = ["call_id", "requested_at", "number", "reason", "reason_text", "order_number", "slot",
          "status", "attempts", "last_error", "delivered_at", "flow", "version", "lang"]


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def error(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    return result.output.strip()


def request_callback(store, flow, call_id, caller, at, inputs, status):
    """Play a call of the demo flow to its callback and save it as the server does."""
    perform, state = demo_lookups(at), None
    events = [{"type": "start", "call_id": call_id, "caller": caller}] + [
        {"type": "speech", "text": i[4:]} if i.startswith("say ") else {"type": "digits", "digits": i}
        for i in inputs]
    for number, event in enumerate(events):
        turn = play_turn(flow, state, {**event, "now": at + timedelta(seconds=10 * number)}, perform)
        state = turn.state
        store.save_turn(call_id, number, state, b"<Response/>", turn.node_events,
                        call_summary(state), caller, callback_status=status)
    assert state["callback"], f"{call_id} did not reach the callback"


@pytest.fixture(scope="module")
def log(tmp_path_factory):
    """Four requests over two evenings: pending, sent, failed, kept without a helpdesk."""
    flow = load_flow(ROOT / "flows" / "post_sale.yaml", ROOT / "prompts")
    path = tmp_path_factory.mktemp("log") / "ivr.db"
    store = CallStore.open(path)
    store.save_flow_version(flow)
    monday = datetime(2026, 11, 23, 19, 0, tzinfo=PARIS)
    tuesday = datetime(2026, 11, 24, 20, 30, tzinfo=PARIS)
    request_callback(store, flow, "CA1", LOST, monday, ["1", "1", "1", "1", "1"], "pending")
    request_callback(store, flow, "CA2", FR, monday + timedelta(minutes=5),
                     ["0", "1", "2", "2", "0699887766"], "pending")
    store.update_callback("CA2", "sent", 2, delivered_at="2026-11-23T18:05:51+00:00")
    request_callback(store, flow, "CA3", US, tuesday, ["say operator", "say call me back",
                                                       "say as soon as possible", "say yes"], "pending")
    store.update_callback("CA3", "failed", 1, last_error="HTTP 422: unknown reason")
    request_callback(store, flow, "CA4", FR, tuesday + timedelta(minutes=1), ["0", "1", "3", "1"],
                     "not_configured")
    store.close()
    return path


def test_the_table_lists_the_requests_oldest_first_with_the_numbers_in_clear(log):
    result = invoke("callbacks", "--db", log)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["Requested", "Number", "Reason", "Order", "Slot", "Status", "Tries", "Call"]
    assert lines[2].split() == ["2026-11-23", "19:00", LOST, "parcel_lost", DEMO_ORDERS["lost"],
                                "morning", "pending", "0", "CA1"]
    # FR and US have one order on its way, answered before the menu: its
    # cause is the reason and the agent gets its number.
    assert lines[3].split() == ["2026-11-23", "19:05", "0699887766", "in_transit_on_time",
                                DEMO_ORDERS["in_transit"], "afternoon", "sent", "2", "CA2"]
    assert lines[4].split() == ["2026-11-24", "20:30", US, "in_transit_on_time",
                                DEMO_ORDERS["out_for_delivery"], "asap", "failed", "1", "CA3"]
    assert lines[5].split() == ["2026-11-24", "20:31", FR, "in_transit_on_time",
                                DEMO_ORDERS["in_transit"], "asap", "not_configured", "0", "CA4"]
    assert "parcel_lost: Colis perdu par le transporteur" in lines
    assert lines[-2:] == ["Helpdesk errors:", "CA3: HTTP 422: unknown reason"]


def test_json_has_every_field_and_the_reason_described(log):
    rows = json.loads(invoke("callbacks", "--db", log, "--format", "json").output)
    assert [r["call_id"] for r in rows] == ["CA1", "CA2", "CA3", "CA4"]
    assert list(rows[0]) == FIELDS
    first = rows[0]
    assert {k: first[k] for k in ("requested_at", "number", "reason", "reason_text", "order_number",
                                  "slot", "status", "attempts", "flow", "lang")} == {
        "requested_at": "2026-11-23T19:00:50+01:00", "number": LOST, "reason": "parcel_lost",
        "reason_text": "Colis perdu par le transporteur", "order_number": DEMO_ORDERS["lost"],
        "slot": "morning", "status": "pending", "attempts": 0, "flow": "post_sale", "lang": "fr-FR"}
    assert rows[1]["delivered_at"] == "2026-11-23T18:05:51+00:00"
    # Described in the caller's language.
    assert (rows[2]["lang"], rows[2]["reason_text"]) == ("en-US", "Parcel on its way, on time")


def test_csv_has_a_header_and_one_row_per_request(log):
    output = invoke("callbacks", "--db", log, "--format", "csv", "--status", "pending").output
    rows = list(csv.DictReader(io.StringIO(output)))
    assert list(rows[0]) == FIELDS
    assert [(r["call_id"], r["number"], r["slot"], r["order_number"]) for r in rows] == [
        ("CA1", LOST, "morning", DEMO_ORDERS["lost"])]


@pytest.mark.parametrize("status, calls", [("pending", ["CA1"]), ("sent", ["CA2"]), ("failed", ["CA3"]),
                                           ("not_configured", ["CA4"]),
                                           ("all", ["CA1", "CA2", "CA3", "CA4"])])
def test_status_picks_the_requests(log, status, calls):
    rows = json.loads(invoke("callbacks", "--db", log, "--status", status, "--format", "json").output)
    assert [r["call_id"] for r in rows] == calls


@pytest.mark.parametrize("since, until, calls", [
    ("2026-11-24", None, ["CA3", "CA4"]),
    (None, "2026-11-24", ["CA1", "CA2"]),
    ("2026-11-23T19:01", "2026-11-24T20:31", ["CA2", "CA3"]),
])
def test_since_and_until_are_local_times(log, since, until, calls):
    args = ["callbacks", "--db", log, "--format", "json"]
    args += ["--since", since] if since else []
    args += ["--until", until] if until else []
    assert [r["call_id"] for r in json.loads(invoke(*args).output)] == calls


def test_no_request_in_the_period_says_so(log):
    result = invoke("callbacks", "--db", log, "--since", "2026-12-01", "--status", "pending")
    assert result.output.splitlines() == ["Callback requests status pending, since 2026-12-01",
                                          "No callback requests."]
    assert json.loads(invoke("callbacks", "--db", log, "--since", "2026-12-01", "--format", "json").output) == []
    assert invoke("callbacks", "--db", log, "--since", "2026-12-01", "--format", "csv").output == ""


def test_the_report_writes_nothing(log):
    before = sqlite_utils.Database(log).schema
    invoke("callbacks", "--db", log)
    assert sqlite_utils.Database(log).schema == before


def test_numbers_sealed_with_another_key_are_not_shown(tmp_path, log):
    copy = tmp_path / "copy.db"
    source = sqlite_utils.Database(log)
    source.execute(f"VACUUM INTO '{copy}'")
    sqlite_utils.Database(copy).execute("UPDATE meta SET value = ? WHERE key = 'caller_hash_key'", ["ab" * 32])
    result = CliRunner().invoke(main, ["callbacks", "--db", str(copy)])
    assert result.exit_code == 0
    assert "Warning: 4 number(s) were sealed with another caller key" in result.stderr
    assert "(sealed with another key)" in result.stdout and LOST not in result.stdout


# --- help and errors ----------------------------------------------------------------------


def test_help_has_an_example_and_the_group_lists_the_command():
    result = invoke("callbacks", "--help")
    assert "Example:" in result.output and "ivr-report callbacks --db ivr.db" in result.output
    assert "callbacks" in invoke("--help").output


def test_a_missing_database_is_the_same_error_as_for_other_reports(tmp_path):
    path = tmp_path / "nothing.db"
    assert error("callbacks", "--db", path) == \
        f"Error: {path}: no such file (give the call log the server writes, e.g. ivr.db)"
    assert not path.exists()


def test_a_foreign_database_is_refused_and_left_as_it_was(tmp_path):
    path = tmp_path / "orders.db"
    sqlite_utils.Database(path)["orders"].insert({"number": 100234})
    assert error("callbacks", "--db", path) == \
        f"Error: {path}: not an IVR call log (no calls or node_events table)"
    assert sqlite_utils.Database(path).table_names() == ["orders"]
    text = tmp_path / "calls.csv"
    text.write_text("call_id,number\n" * 50)
    assert error("callbacks", "--db", text) == f"Error: {text}: not an SQLite database"


def test_a_log_from_before_callback_requests_says_how_to_upgrade_it(tmp_path):
    path = tmp_path / "old.db"
    store = CallStore.open(path)
    store.db.execute("DROP TABLE callback_requests")
    store.close()
    assert error("callbacks", "--db", path) == (
        f"Error: {path}: a call log of an older version (no callback_requests table): "
        "start ivr-serve on it once to bring it up to date")


def test_a_log_without_its_key_cannot_open_the_numbers(tmp_path):
    path = tmp_path / "keyless.db"
    store = CallStore.open(path)
    store.db.execute("DELETE FROM meta")
    store.close()
    assert error("callbacks", "--db", path).startswith(
        f"Error: {path}: no caller key in its meta table, so its numbers cannot be opened")


@pytest.mark.parametrize("args, message", [
    (["--since", "yesterday"], "Error: since 'yesterday' is not a time: expected a date like 2026-11-01"),
    (["--since", "2026-11-24", "--until", "2026-11-24"],
     "Error: the period is empty: until (2026-11-24) is not after since (2026-11-24)"),
])
def test_a_bad_period_is_an_error(log, args, message):
    assert error("callbacks", "--db", log, *args).startswith(message)


def test_an_unknown_status_is_a_usage_error(log):
    result = CliRunner().invoke(main, ["callbacks", "--db", str(log), "--status", "queued"])
    assert result.exit_code == 2
    assert "'queued' is not one of 'pending', 'sent', 'failed', 'not_configured', 'all'" in result.output
