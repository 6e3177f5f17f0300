"""Dates and times read one way in every command and file: ISO 8601 or an
unambiguous day-first date; anything else is one line saying the form to
use, never a traceback."""

import datetime as dt
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from ivr.flow.dates import DateError, parse_day, parse_time
from ivr.reports.cli import main as report
from ivr.sim.cli import main as sim

ROOT = Path(__file__).parent.parent
FLOW = str(ROOT / "flows" / "post_sale.yaml")


@pytest.mark.parametrize("text, expected", [
    ("2026-12-24 18:30", dt.datetime(2026, 12, 24, 18, 30)),
    ("2026-12-24T18:30:05", dt.datetime(2026, 12, 24, 18, 30, 5)),
    ("2026-12-24", dt.datetime(2026, 12, 24)),
    ("24/12/2026 18:30", dt.datetime(2026, 12, 24, 18, 30)),
    ("24/12/2026", dt.datetime(2026, 12, 24)),
    ("07/07/2026 9:05", dt.datetime(2026, 7, 7, 9, 5)),  # the same either way
])
def test_iso_and_unambiguous_day_first_times_are_read(text, expected):
    assert parse_time(text) == expected


@pytest.mark.parametrize("text, message", [
    ("07/12/2026 10:00", "'07/12/2026 10:00' could be read day first (2026-12-07 10:00) or month "
                         "first (2026-07-12 10:00): write it year first, as the one you mean"),
    ("12/24/2026", "'12/24/2026' puts the month first: write it year first, as 2026-12-24"),
    ("next tuesday", "'next tuesday' is not a date and time: write it as 2026-12-24 18:30 "
                     "(year-month-day, 24-hour clock) or in ISO 8601, e.g. 2026-12-24T18:30"),
    ("31/02/2026", "'31/02/2026' is not a date and time: write it as 2026-12-24 18:30 "
                   "(year-month-day, 24-hour clock) or in ISO 8601, e.g. 2026-12-24T18:30"),
])
def test_an_ambiguous_or_wrong_time_says_the_form_to_use(text, message):
    with pytest.raises(DateError) as caught:
        parse_time(text)
    assert str(caught.value) == message


def test_a_day_is_read_without_a_time():
    assert parse_day("24/12/2026") == parse_day("2026-12-24") == dt.date(2026, 12, 24)
    with pytest.raises(DateError, match="is not a date: write it as 2026-12-24"):
        parse_day("24/12/2026 10:00")


def one_line_error(main, *args):
    result = CliRunner().invoke(main, list(args), input="hangup\n")
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    assert result.output.count("\n") == 1 and "Traceback" not in result.output
    return result.output


def test_ivr_sim_call_at_a_day_first_time_places_the_call():
    result = CliRunner().invoke(sim, ["call", FLOW, "--at", "24/12/2026 18:30"], input="hangup\n")
    assert result.exit_code == 0, result.output
    assert "at 2026-12-24 18:30 CET" in result.output


def test_ivr_sim_call_at_an_ambiguous_time_is_one_line():
    assert one_line_error(sim, "call", FLOW, "--at", "07/12/2026 18:30") == (
        "Error: Invalid value for --at: '07/12/2026 18:30' could be read day first (2026-12-07 "
        "18:30) or month first (2026-07-12 18:30): write it year first, as the one you mean\n")


@pytest.mark.parametrize("args", [
    ("demo-orders", "--db", "x.db", "--today", "2026-13-01"),
    ("traffic", FLOW, "--db", "x.db", "--calls", "1", "--seed", "1", "--start", "next monday"),
    ("graph", FLOW, "--stats", "x.db", "--since", "01/02/2026"),
])
def test_every_ivr_sim_date_option_gives_one_line(tmp_path, monkeypatch, args):
    monkeypatch.chdir(tmp_path)
    assert one_line_error(sim, *args).startswith("Error: Invalid value for --")
    assert not (tmp_path / "x.db").exists()


@pytest.mark.parametrize("option", ["--since", "--until"])
def test_ivr_report_date_options_give_one_line(tmp_path, option):
    output = one_line_error(report, "summary", "--db", str(tmp_path / "ivr.db"), option, "24/13/2026")
    assert output == (f"Error: Invalid value for {option}: '24/13/2026' is not a date and time: "
                      "write it as 2026-12-24 18:30 (year-month-day, 24-hour clock) or in ISO "
                      "8601, e.g. 2026-12-24T18:30\n")


def test_ivr_report_reads_a_day_first_date_as_the_same_day(tmp_path):
    from ivr.reports.cli import LOCAL_TIME
    assert LOCAL_TIME.convert("24/12/2026", None, None) == "2026-12-24"
    assert LOCAL_TIME.convert("24/12/2026 18:30", None, None) == "2026-12-24 18:30"


def test_lint_count_comes_after_the_problems_on_one_pipe(tmp_path):
    flow = tmp_path / "flows" / "f.yaml"
    flow.parent.mkdir()
    source = Path(FLOW).read_text(encoding="utf-8")
    flow.write_text(source.replace("    next: main_menu\n", "    next: main_menuu\n", 1)
                    .replace("start: find_recent", "start: find_recnt"), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-c", "from ivr.sim.cli import main; main()", "lint", str(flow),
         "--prompts", str(ROOT / "prompts")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, timeout=120)
    lines = done.stdout.splitlines()
    assert done.returncode == 1
    assert lines[-1] == "2 problems"
    assert all(line.startswith(f"{flow}:") and line.endswith("[unknown-target]") for line in lines[:-1])
    assert len(lines) == 3


@pytest.mark.parametrize("key, message", [
    ("24/12/2026", 'bad exception date \'24/12/2026\'; expected "MM-DD" (every year) or '
                   '"YYYY-MM-DD": write "2026-12-24"'),
    ("24/12", 'bad exception date \'24/12\'; expected "MM-DD" (every year) or "YYYY-MM-DD": '
              'write "12-24"'),
    ("07/12/2026", 'bad exception date \'07/12/2026\'; expected "MM-DD" (every year) or '
                   '"YYYY-MM-DD"'),
])
def test_a_day_first_exception_date_in_a_calendar_says_what_to_write(key, message):
    from ivr.flow.hours import CalendarError, parse_calendar
    with pytest.raises(CalendarError) as caught:
        parse_calendar({"timezone": "Europe/Paris", "weekly": {"mon": "09:00-12:00"},
                        "exceptions": {key: "closed"}})
    assert caught.value.message == message
