"""tools/bench_syscalls.py: perf's counts read and turned into counts a request."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import bench_syscalls  # noqa: E402

#: ``perf stat -x ,`` as perf 6.1 prints it: value, unit, event, run time, percentage.
PERF_OUTPUT = """\
# started on Mon Dec  7 01:26:19 2026

1221,,context-switches,3061844811,100.00,,
40321,,raw_syscalls:sys_enter,3061844811,100.00,,
19920,,syscalls:sys_enter_pwrite64,3061844811,100.00,,
<not counted>,,syscalls:sys_enter_pread64,0,0.00,,
0,,syscalls:sys_enter_fdatasync,3061844811,100.00,,
<not supported>,,syscalls:sys_enter_flock,0,0.00,,
"""


def test_perf_counts_are_read_and_the_uncounted_left_out():
    counts = bench_syscalls.parse_perf_csv(PERF_OUTPUT)
    assert counts == {"context-switches": 1221, "raw_syscalls:sys_enter": 40321,
                      "syscalls:sys_enter_pwrite64": 19920, "syscalls:sys_enter_fdatasync": 0}


def test_counts_a_request_are_named_by_the_system_call_in_perf_events_order():
    rows = bench_syscalls.per_request(bench_syscalls.parse_perf_csv(PERF_OUTPUT), 1000)
    assert rows == [("context-switches", 1.221), ("all system calls", 40.321),
                    ("pwrite64", 19.92), ("fdatasync", 0.0)]


def test_every_counted_system_call_is_a_tracepoint_event():
    events = bench_syscalls.perf_events()
    assert events[:2] == ["context-switches", "raw_syscalls:sys_enter"]
    assert events[2:] == [f"syscalls:sys_enter_{name}" for name in bench_syscalls.SYSCALLS]
