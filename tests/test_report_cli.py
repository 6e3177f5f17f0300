"""``ivr-report``: every subcommand in every format, its help, its errors."""

import csv
import io
import json

import pytest
import sqlite_utils
from click.testing import CliRunner

from ivr.flow.model import TRANSFER_CAUSES
from ivr.reports.cli import main
from ivr.store.sqlite.migrations import mark_first_visits
from ivr.store.sqlite.store import CallStore

COMMANDS = ["summary", "funnel", "reasons", "calls"]


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def add_call(db, n, started_at, outcome, reason, caller, path, cause=None, exit_node=None,
             ivr_seconds=60.0, flow="post_sale", version="abc123def456", lang="fr-FR"):
    call_id = f"CA{n:04d}"
    db["calls"].insert({
        "call_id": call_id, "flow": flow, "version": version, "started_at": started_at,
        "ended_at": started_at if outcome else None, "caller_hash": caller, "lang": lang,
        "reason": reason, "outcome": outcome, "cause": cause,
        "exit_node": (exit_node or path[-1]) if outcome else None,
        "ivr_seconds": ivr_seconds if outcome else None})
    db["node_events"].insert_all([
        {"call_id": call_id, "seq": seq, "flow": flow, "version": version, "node": node,
         "kind": "menu" if node.endswith("menu") else "say", "at": started_at}
        for seq, node in enumerate(path, 1)])
    mark_first_visits(db)  # as the server flags them


@pytest.fixture
def log(tmp_path):
    """8 ended calls: 5 self-served (1 of them a repeat), 2 transferred, 1
    abandoned; and one still in progress."""
    path = tmp_path / "ivr.db"
    store = CallStore.open(path)
    db = store.db
    answer = ["welcome", "main_menu", "answer"]
    add_call(db, 1, "2026-11-24T09:00:00+01:00", "self_served", "order_status", "alice", answer)
    add_call(db, 2, "2026-11-24T11:00:00+01:00", "self_served", "order_status", "alice", answer)
    add_call(db, 3, "2026-11-24T12:00:00+01:00", "self_served", "order_status", "", answer)
    add_call(db, 4, "2026-11-25T09:30:00+01:00", "self_served", "delivery_date", "bob", answer, lang="en-US")
    add_call(db, 5, "2026-11-25T10:00:00+01:00", "self_served", "delivery_date", "carol", answer)
    add_call(db, 6, "2026-11-25T10:30:00+01:00", "transferred", "not_stated", "dave",
             ["welcome", "main_menu", "agent"], cause="caller_asked", exit_node="main_menu")
    add_call(db, 7, "2026-11-25T11:00:00+01:00", "transferred", "return_refund", "erin",
             ["welcome", "main_menu", "return_handoff", "agent"], cause="policy", exit_node="return_handoff")
    add_call(db, 8, "2026-11-25T11:30:00+01:00", "abandoned", "not_stated", "frank", ["welcome", "main_menu"])
    add_call(db, 9, "2026-11-25T12:00:00+01:00", None, "order_status", "gina", ["welcome"])
    store.close()
    return path


# --- summary ------------------------------------------------------------------------


def test_summary_table_for_people(log):
    result = invoke("summary", "--db", log)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["Calls", "Self-served", "Transferred", "Abandoned", "Failed", "Deflection",
                                "Repeats", "Adj.", "deflection", "SMS", "sent", "Avg", "IVR", "s",
                                "Cost", "saved"]
    # 5 of 8 self-served, 1 a repeat: 62.5 %, then 50.0 %; 4 x 3.00 - 8 min x 0.02 = 11.84.
    assert lines[2].split() == ["8", "5", "2", "1", "0", "62.5", "%", "1", "50.0", "%", "0", "60.0",
                                "11.84", "EUR"]
    assert len(lines[0]) == len(lines[2])  # aligned
    assert "Transferred calls by cause:" in result.output
    causes = lines[lines.index("Transferred calls by cause:") + 1:][:3]
    assert causes[0].split() == ["caller_asked", "policy"] and causes[2].split() == ["1", "1"]
    assert "Repeat window 24 h; an agent call costs 3.00 EUR, an IVR minute 0.02 EUR." in result.output


def test_summary_counts_calls_without_a_reason_apart(log):
    result = invoke("summary", "--db", log)
    # Call 8 hung up before saying why; call 6 was put through without a reason.
    assert ("No reason stated: 1 call ended before stating a reason; 1 transferred without one "
            "(50.0 % of transferred calls).") in result.output.splitlines()
    [row] = json.loads(invoke("summary", "--db", log, "--format", "json").output)
    assert (row["ended_before_reason"], row["transferred_without_reason"]) == (1, 1)
    by_reason = invoke("summary", "--db", log, "--by", "reason").output
    assert "No reason stated" not in by_reason  # the not_stated row says it there


def test_summary_options_change_the_figures(log):
    result = invoke("summary", "--db", log, "--agent-cost", "4.50", "--ivr-cost-per-minute", "0.10",
                    "--currency", "USD", "--repeat-window", "1", "--format", "json")
    row = json.loads(result.output)[0]
    # Alice's call back came 2 h later: no repeat within 1 h.  5 x 4.50 - 8 x 0.10 = 21.70.
    assert row["repeat_calls"] == 0 and row["deflected"] == 5
    assert row["cost_saved"] == "21.70" and row["currency"] == "USD"


@pytest.mark.parametrize("by, label, first", [
    ("reason", "Reason", "order_status"), ("flow", "Flow", "post_sale"),
    ("version", "Version", "post_sale abc123def456"), ("language", "Language", "fr-FR"),
    ("day", "Day", "2026-11-24"), ("hour", "Hour", "09:00"),
])
def test_summary_by_each_dimension(log, by, label, first):
    result = invoke("summary", "--db", log, "--by", by)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith(label)
    assert lines[2].startswith(first)


def test_summary_csv_is_flat_with_a_column_per_cause(log):
    result = invoke("summary", "--db", log, "--by", "day", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert [r["day"] for r in rows] == ["2026-11-24", "2026-11-25"]
    assert [f"cause_{c}" in rows[0] for c in TRANSFER_CAUSES] == [True] * len(TRANSFER_CAUSES)
    assert "causes" not in rows[0]
    assert (rows[1]["calls"], rows[1]["cause_caller_asked"], rows[1]["cause_policy"]) == ("5", "1", "1")
    assert rows[0]["repeat_calls"] == "1" and rows[0]["cost_saved"] == "5.94"
    assert float(rows[0]["deflection_rate"]) == 1.0


def test_summary_json_has_the_api_rows_with_money_as_strings(log):
    result = invoke("summary", "--db", log, "--by", "reason", "--format", "json")
    rows = json.loads(result.output)
    assert [r["reason"] for r in rows] == ["order_status", "delivery_date", "not_stated", "return_refund"]
    assert rows[0]["causes"] == dict.fromkeys(TRANSFER_CAUSES, 0)
    assert rows[0]["deflection_rate"] == 1.0 and rows[0]["repeat_adjusted_deflection_rate"] == 2 / 3
    assert rows[0]["cost_saved"] == "5.94"


def test_summary_of_a_period(log):
    result = invoke("summary", "--db", log, "--since", "2026-11-25", "--format", "json")
    assert json.loads(result.output)[0]["calls"] == 5
    table = invoke("summary", "--db", log, "--since", "2026-11-25", "--flow", "post_sale")
    assert table.output.splitlines()[0] == "Calls since 2026-11-25, flow post_sale"


def test_summary_of_no_calls_says_so(log):
    result = invoke("summary", "--db", log, "--since", "2027-01-01", "--by", "reason")
    assert result.exit_code == 0
    assert result.output.splitlines() == ["Calls since 2027-01-01", "No ended calls."]
    assert invoke("summary", "--db", log, "--since", "2027-01-01", "--format", "csv").output.startswith("calls,")


# --- funnel ---------------------------------------------------------------------------


def test_funnel_table_names_the_worst_drop_off(log):
    result = invoke("funnel", "post_sale", "--db", log)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "Funnel of post_sale version abc123def456"
    assert lines[1].split() == ["Node", "Kind", "Reached", "Continued", "Ended", "Hung", "up",
                                "Transferred", "Dropped", "Drop-off"]
    assert lines[3].split() == ["main_menu", "menu", "8", "6", "0", "1", "1", "2", "25.0", "%"]
    assert lines[-1] == "Worst drop-off: main_menu, 2 of 8 calls (25.0 %): 1 hung up, 1 transferred."


def test_funnel_csv_and_json_say_which_version(log):
    rows = list(csv.DictReader(io.StringIO(invoke("funnel", "post_sale", "--db", log, "--format", "csv").output)))
    assert rows[0]["node"] == "main_menu" and rows[0]["version"] == "abc123def456"
    assert {r["node"]: r["reached"] for r in rows}["welcome"] == "8"
    data = json.loads(invoke("funnel", "post_sale", "--db", log, "--version", "abc", "--format", "json").output)
    assert (data["flow"], data["version"]) == ("post_sale", "abc123def456")
    assert data["nodes"][0]["drop_off_rate"] == 0.25


# --- reasons ----------------------------------------------------------------------------


def test_reasons_table_ranks_the_reasons(log):
    result = invoke("reasons", "--db", log)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split()[:4] == ["Rank", "Reason", "Calls", "Share"]
    assert lines[2].split()[:4] == ["1", "order_status", "3", "37.5"]
    # delivery_date: both deflected, the best answered.
    assert lines[3].split()[:2] == ["2", "delivery_date"] and lines[3].split()[-1] == "1"
    assert "Deflection rank: by repeat-adjusted deflection" in result.output


def test_reasons_csv_json_and_by(log):
    rows = list(csv.DictReader(io.StringIO(invoke("reasons", "--db", log, "--format", "csv").output)))
    assert [(r["reason"], r["volume_rank"], r["deflection_rank"]) for r in rows] == [
        ("order_status", "1", "2"), ("delivery_date", "2", "1"), ("not_stated", "2", "3"),
        ("return_refund", "4", "3")]
    data = json.loads(invoke("reasons", "--db", log, "--by", "day", "--format", "json").output)
    assert [(r["day"], r["reason"], r["volume_rank"]) for r in data] == [
        ("2026-11-24", "order_status", 1), ("2026-11-25", "delivery_date", 1),
        ("2026-11-25", "not_stated", 1), ("2026-11-25", "return_refund", 3)]
    table = invoke("reasons", "--db", log, "--by", "day").output.splitlines()
    assert table[0].split()[:3] == ["Day", "Rank", "Reason"]


# --- calls --------------------------------------------------------------------------------


def test_calls_in_every_format(log):
    lines = invoke("calls", "--db", log, "--limit", "2").output.splitlines()
    assert lines[0].split()[:3] == ["Started", "Call", "Flow"]
    assert lines[2].split()[:2] == ["2026-11-25T12:00:00+01:00", "CA0009"] and "ongoing" in lines[2]
    assert len(lines) == 4
    rows = list(csv.DictReader(io.StringIO(invoke("calls", "--db", log, "--format", "csv").output)))
    assert len(rows) == 9 and rows[-1]["call_id"] == "CA0001"
    data = json.loads(invoke("calls", "--db", log, "--since", "2026-11-25T11:00", "--format", "json").output)
    assert [r["call_id"] for r in data] == ["CA0009", "CA0008", "CA0007"]
    assert data[0]["outcome"] is None


# --- help -----------------------------------------------------------------------------------


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_an_example(command):
    result = invoke(command, "--help")
    assert result.exit_code == 0
    assert "Example:" in result.output
    assert f"ivr-report {command}" in result.output


def test_the_group_help_lists_the_commands_with_an_example():
    result = invoke("--help")
    assert "Example:" in result.output and "ivr-report summary" in result.output
    for command in COMMANDS:
        assert command in result.output


# --- errors ---------------------------------------------------------------------------------


def error(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)  # a message, not a traceback
    assert "Traceback" not in result.output
    return result.output.strip()


@pytest.mark.parametrize("command", [["summary"], ["funnel", "post_sale"], ["reasons"], ["calls"]])
def test_a_missing_database_is_an_error_and_is_not_created(tmp_path, command):
    path = tmp_path / "nothing.db"
    assert error(*command, "--db", path) == f"Error: {path}: no such file (give the call log the " \
                                            f"server writes, e.g. ivr.db)"
    assert not path.exists()


def test_the_default_database_is_ivr_db_in_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert error("summary") == "Error: ivr.db: no such file (give the call log the server writes, e.g. ivr.db)"
    assert not (tmp_path / "ivr.db").exists()


def test_a_file_that_is_not_sqlite_is_an_error(tmp_path):
    path = tmp_path / "calls.csv"
    path.write_text("call_id,outcome\n" * 50)
    assert error("summary", "--db", path) == f"Error: {path}: not an SQLite database"


def test_an_sqlite_file_without_our_tables_is_not_an_ivr_call_log(tmp_path):
    path = tmp_path / "orders.db"
    sqlite_utils.Database(path)["orders"].insert({"number": 100234})
    assert error("reasons", "--db", path) == \
        f"Error: {path}: not an IVR call log (no calls or node_events table)"


@pytest.mark.parametrize("option, value, message", [
    ("--since", "last monday", "Invalid value for --since: 'last monday' is not a date and time: "
                               "write it as 2026-12-24 18:30 (year-month-day, 24-hour clock)"),
    ("--until", "2026-02-30", "Invalid value for --until: '2026-02-30' is not a date and time"),
    ("--since", "07/11/2026", "Invalid value for --since: '07/11/2026' could be read day first "
                              "(2026-11-07) or month first (2026-07-11): write it year first"),
    ("--until", "2026-11-24T10:00Z", "until '2026-11-24T10:00Z' has a UTC offset"),
])
def test_a_bad_period_is_an_error(log, option, value, message):
    assert error("summary", "--db", log, option, value).startswith(f"Error: {message}")


def test_an_empty_period_is_an_error(log):
    assert error("funnel", "post_sale", "--db", log, "--since", "2026-11-25", "--until", "2026-11-24") == \
        "Error: the period is empty: until (2026-11-24) is not after since (2026-11-25)"


@pytest.mark.parametrize("command", ["summary", "reasons"])
def test_an_unknown_by_is_an_error(log, command):
    assert error(command, "--db", log, "--by", "week") == \
        "Error: unknown --by 'week': expected one of reason, flow, version, language, day, hour, provider"


def test_an_unknown_flow_for_the_funnel_is_an_error(log):
    assert error("funnel", "billing", "--db", log) == \
        "Error: flow 'billing' has no calls (flows with calls: post_sale)"


def test_an_unknown_version_for_the_funnel_is_an_error(log):
    assert error("funnel", "post_sale", "--db", log, "--version", "fff") == \
        "Error: flow 'post_sale' has no version 'fff' (its versions: abc123def456)"


def test_a_bad_amount_is_a_usage_error(log):
    result = CliRunner().invoke(main, ["summary", "--db", str(log), "--agent-cost", "three"])
    assert result.exit_code == 2
    assert "'three' is not an amount like 3.00" in result.output


# --- transfers at the agents' end -------------------------------------------------------


@pytest.fixture
def queue_log(log):
    """The log, its two transfers now known: one answered, one whose
    caller hung up after 47 s in the queue; plus a third, not answered."""
    db = sqlite_utils.Database(log)
    db.execute("UPDATE calls SET transfer_result = 'answered', queue_seconds = 12 WHERE call_id = 'CA0006'")
    db.execute("UPDATE calls SET transfer_result = 'abandoned_in_queue', queue_seconds = 47 "
               "WHERE call_id = 'CA0007'")
    add_call(db, 10, "2026-11-25T13:00:00+01:00", "transferred", "return_refund", "hank",
             ["welcome", "main_menu", "agent"], cause="caller_asked", exit_node="main_menu")
    db.execute("UPDATE calls SET transfer_result = 'no_answer' WHERE call_id = 'CA0010'")
    db.conn.commit()
    db.close()
    return log


def test_summary_shows_queue_abandonment_next_to_answered_transfers(queue_log):
    result = invoke("summary", "--db", queue_log)
    lines = result.output.splitlines()
    start = lines.index("Transfers at the agents' end:")
    assert lines[start + 1].split() == ["Answered", "Abandoned", "in", "queue", "Queue", "abandonment",
                                        "Avg", "s", "before", "hang-up", "No", "answer/busy"]
    assert lines[start + 3].split() == ["1", "1", "50.0", "%", "47.0", "1"]
    row = json.loads(invoke("summary", "--db", queue_log, "--format", "json").output)[0]
    assert (row["transferred"], row["transfers_answered"], row["queue_abandoned"],
            row["transfers_unanswered"], row["queue_abandonment_rate"],
            row["avg_queue_seconds_abandoned"]) == (3, 1, 1, 1, 0.5, 47.0)


def test_reasons_show_queue_abandonment_per_reason(queue_log):
    lines = invoke("reasons", "--db", queue_log).output.splitlines()
    start = lines.index("Transfers at the agents' end:")
    assert lines[start + 1].split()[0] == "Reason"
    body = {line.split()[0]: line.split()[1:] for line in lines[start + 3:start + 5]}
    assert body == {"return_refund": ["0", "1", "100.0", "%", "47.0", "1"],
                    "not_stated": ["1", "0", "0.0", "%", "–", "0"]}
    csv_rows = list(csv.DictReader(io.StringIO(invoke("reasons", "--db", queue_log, "--format", "csv").output)))
    assert {r["reason"]: r["queue_abandoned"] for r in csv_rows}["return_refund"] == "1"


def test_a_log_without_transfer_results_reports_no_transfer_table(log):
    result = invoke("summary", "--db", log)
    assert "Transfers at the agents' end:" not in result.output
    row = json.loads(invoke("summary", "--db", log, "--format", "json").output)[0]
    assert (row["queue_abandoned"], row["queue_abandonment_rate"]) == (0, None)


def test_a_log_written_before_the_transfer_columns_still_reports(tmp_path):
    from ivr.store.sqlite.migrations import MIGRATIONS

    path = tmp_path / "old.db"
    db = sqlite_utils.Database(path)
    MIGRATIONS.apply(db, stop_before="0009_transfer_result")
    add_call(db, 1, "2026-11-24T09:00:00+01:00", "transferred", "order_status", "alice",
             ["welcome", "main_menu", "agent"], cause="caller_asked")
    db.close()
    row = json.loads(invoke("summary", "--db", path, "--format", "json").output)[0]
    assert (row["transferred"], row["transfers_answered"], row["queue_abandoned"]) == (1, 0, 0)
    assert "transfer_result" not in json.loads(invoke("calls", "--db", path, "--format", "json").output)[0]


# --- by provider ---------------------------------------------------------------------


@pytest.fixture
def provider_log(log):
    """The log, its calls by Twilio but two by Telnyx."""
    db = sqlite_utils.Database(log)
    db.execute("UPDATE calls SET provider = 'twilio'")
    db.execute("UPDATE calls SET provider = 'telnyx' WHERE call_id IN ('CA0004', 'CA0006')")
    db.close()
    return log


def test_summary_breaks_calls_down_by_provider(provider_log):
    rows = json.loads(invoke("summary", "--db", provider_log, "--by", "provider",
                             "--format", "json").output)
    by_provider = {row["provider"]: (row["calls"], row["self_served"], row["transferred"])
                   for row in rows}
    assert by_provider == {"twilio": (6, 4, 1), "telnyx": (2, 1, 1)}
    table = invoke("summary", "--db", provider_log, "--by", "provider").output
    assert "Provider" in table and "telnyx" in table


def test_reports_filter_by_provider(provider_log):
    row = json.loads(invoke("summary", "--db", provider_log, "--provider", "telnyx",
                            "--format", "json").output)[0]
    assert (row["calls"], row["self_served"], row["transferred"]) == (2, 1, 1)
    assert "Calls provider telnyx" in invoke("summary", "--db", provider_log,
                                             "--provider", "telnyx").output
    shown = json.loads(invoke("calls", "--db", provider_log, "--provider", "telnyx",
                              "--format", "json").output)
    assert sorted((c["call_id"], c["provider"]) for c in shown) == [
        ("CA0004", "telnyx"), ("CA0006", "telnyx")]
    funnel = json.loads(invoke("funnel", "post_sale", "--db", provider_log, "--provider",
                               "telnyx", "--format", "json").output)
    assert {row["node"]: row["reached"] for row in funnel["nodes"]}["main_menu"] == 2


def test_a_log_written_before_providers_refuses_a_report_by_provider(tmp_path):
    from ivr.store.sqlite.migrations import MIGRATIONS

    path = tmp_path / "old.db"
    db = sqlite_utils.Database(path)
    MIGRATIONS.apply(db, stop_before="0011_provider")
    add_call(db, 1, "2026-11-24T09:00:00+01:00", "self_served", "order_status", "alice",
             ["welcome", "main_menu", "answer"])
    db.close()
    result = CliRunner().invoke(main, ["summary", "--db", str(path), "--by", "provider"])
    assert result.exit_code == 1
    assert "no provider column): start ivr-serve on it once" in result.output
    assert invoke("summary", "--db", path).exit_code == 0
