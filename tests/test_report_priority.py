"""Reports run in a thread of lower CPU priority than the server's turns."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ivr.reports import cli, launch
from ivr.reports.priority import BACKGROUND_NICENESS, run_in_background

ROOT = Path(__file__).resolve().parent.parent

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="a priority is a thread's only on Linux")


def this_thread_niceness() -> int:
    return os.getpriority(os.PRIO_PROCESS, 0)  # Linux: the calling thread's


@linux_only
def test_a_report_runs_at_a_lower_priority_and_the_caller_keeps_its_own():
    mine = this_thread_niceness()
    assert run_in_background(this_thread_niceness) == min(19, mine + BACKGROUND_NICENESS)
    assert this_thread_niceness() == mine


def test_a_report_s_error_is_raised_to_the_caller():
    def fails():
        raise LookupError("no such flow")

    with pytest.raises(LookupError, match="no such flow"):
        run_in_background(fails)


# -- ivr-report's whole process, for the commands that only read ---------------------

def test_the_command_is_found_after_the_group_s_options():
    assert launch.command_of(["summary", "--db", "x.db"]) == "summary"
    assert launch.command_of(["--lang", "fr", "purge", "--db", "x.db"]) == "purge"
    assert launch.command_of(["--lang=fr", "call", "CA1"]) == "call"
    assert launch.command_of(["--help"]) is None
    assert launch.command_of([]) is None


def test_every_command_is_known_to_read_or_to_write():
    assert set(cli.main.commands) == launch.READ_ONLY_COMMANDS | launch.WRITING_COMMANDS
    assert not launch.READ_ONLY_COMMANDS & launch.WRITING_COMMANDS


@pytest.mark.parametrize("argv, lowered", [
    (["summary", "--db", "ivr.db"], True),
    (["--lang", "fr", "callbacks"], True),
    (["call", "CA1"], True),
    # Holding SQLite's write lock at idle priority would stall the server.
    (["forget", "--number", "+33612345678"], False),
    (["--lang", "summary", "purge"], False),
    (["no-such-command"], False),
    (["--help"], False),
])
def test_only_a_command_that_reads_lowers_the_whole_process(monkeypatch, argv, lowered):
    calls = []
    monkeypatch.setattr(launch, "lower_this_process", lambda: calls.append("lowered"))
    monkeypatch.setattr(cli, "main", lambda: calls.append("ran"))
    monkeypatch.setattr(sys, "argv", ["ivr-report", *argv])
    launch.main()
    assert calls == (["lowered", "ran"] if lowered else ["ran"])


@linux_only
def test_a_lowered_process_and_the_threads_it_starts_run_only_on_idle_cpu():
    probe = ("import os, threading; from ivr.reports.priority import lower_this_process; "
             "print(lower_this_process()); seen = []; "
             "t = threading.Thread(target=lambda: seen.append(os.sched_getscheduler(0))); "
             "t.start(); t.join(); print(os.sched_getscheduler(0), seen[0], os.SCHED_IDLE)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                         cwd=ROOT, timeout=60).stdout.split()
    assert out[0] == "idle" and out[1] == out[2] == out[3]
