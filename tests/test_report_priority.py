"""Reports run in a thread of lower CPU priority than the server's turns."""

import os
import sys

import pytest

from ivr.reports.priority import BACKGROUND_NICENESS, run_in_background

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
