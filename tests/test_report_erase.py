"""``ivr-report forget`` and ``ivr-report purge``: erasing a caller, and old calls."""

import sqlite3

import pytest
from click.testing import CliRunner
from test_retention import CALLER, OTHER, call
from test_storage_faults import call_sid
from test_web import Server

from ivr.reports.cli import main


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def log(tmp_path):
    """A call log with two calls from CALLER and one from OTHER, the
    server's store closed."""
    server = Server(tmp_path)
    call(server, call_sid("CAMINE1"))
    call(server, call_sid("CAMINE2"))
    call(server, call_sid("CAOTHER"), number=OTHER)
    server.store.close()
    return server.db_path


def calls_in(path):
    db = sqlite3.connect(path)
    try:
        return sorted(r[0] for r in db.execute("SELECT call_id FROM calls"))
    finally:
        db.close()


@pytest.mark.parametrize("command", ["forget", "purge"])
def test_the_erasing_commands_have_help_with_an_example(command):
    result = invoke(command, "--help")
    assert result.exit_code == 0 and "Example:" in result.output
    assert f"ivr-report {command} --" in result.output


def test_forget_erases_the_callers_calls_prints_the_rows_and_is_idempotent(log):
    result = invoke("forget", "--number", "+33 6 12 34 56 78", "--db", log)
    assert result.exit_code == 0
    rows = int(result.output.split()[1])
    assert result.output.startswith(f"erased {rows} rows: 2 calls, ")
    assert "2 status callbacks" in result.output and rows > 2
    assert calls_in(log) == [call_sid("CAOTHER")]
    again = invoke("forget", "--number", CALLER, "--db", log)
    assert again.output == ("erased 0 rows: 0 calls, 0 node events, 0 status callbacks, "
                            "0 callback requests, 0 call states\n")


def test_forget_leaves_nothing_of_the_caller_in_the_file(log):
    db = sqlite3.connect(log)
    digest = db.execute("SELECT caller_hash FROM calls WHERE call_id = ?",
                        [call_sid("CAMINE1")]).fetchone()[0]
    db.close()
    invoke("forget", "--number", CALLER, "--db", log)
    assert digest.encode() not in log.read_bytes()
    assert not log.with_name(log.name + "-wal").exists() or \
        digest.encode() not in log.with_name(log.name + "-wal").read_bytes()


def test_forget_never_prints_the_number(log):
    result = invoke("forget", "--number", CALLER, "--db", log)
    assert CALLER not in result.output and "612345678" not in result.output


@pytest.mark.parametrize("number, message", [
    ("0612345678", "give the number in international form"),
    ("anonymous", "give the number in international form"),
])
def test_forget_refuses_a_number_it_cannot_match(log, number, message):
    result = CliRunner().invoke(main, ["forget", "--number", number, "--db", str(log)])
    assert result.exit_code == 1 and message in result.output
    assert len(calls_in(log)) == 3


def test_forget_refuses_a_file_that_is_not_a_call_log_and_creates_nothing(tmp_path):
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.close()
    result = CliRunner().invoke(main, ["forget", "--number", CALLER, "--db", str(other)])
    assert result.exit_code == 1 and "not a call log written by ivr-serve" in result.output
    db = sqlite3.connect(other)
    assert [r[0] for r in db.execute("SELECT name FROM sqlite_master")] == ["t"]
    db.close()


def test_purge_older_than_days_erases_old_calls_and_drops_ended_states(log):
    result = invoke("purge", "--older-than-days", "100000", "--db", log)
    assert result.exit_code == 0
    assert "0 calls" in result.output and "3 call states" in result.output
    assert calls_in(log) == sorted(call_sid(n) for n in ("CAMINE1", "CAMINE2", "CAOTHER"))
    result = invoke("purge", "--older-than-days", "1", "--db", log, "--vacuum")
    assert "erased" in result.output and " 3 calls," in result.output
    assert calls_in(log) == []
