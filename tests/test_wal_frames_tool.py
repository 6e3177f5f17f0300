"""tools/wal_frames.py counts the pages each commit writes to SQLite's
write-ahead log, by b-tree."""

import re
import sqlite3
import struct
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _tool():
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import wal_frames
    finally:
        sys.path.remove(str(ROOT / "tools"))
    return wal_frames


def test_each_commits_pages_are_read_from_the_log_and_named_by_their_btree(tmp_path):
    wal_frames = _tool()
    path = tmp_path / "log.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    conn.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)")
    conn.execute("CREATE INDEX t_v ON t (v)")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("INSERT INTO t (v) VALUES ('a')")  # one commit: the table's page and the index's
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO t (v) VALUES (?)", [("b",), ("c",)])
    conn.execute("COMMIT")
    commits = wal_frames.commits_in_log((tmp_path / "log.db-wal").read_bytes())
    btrees = wal_frames.btrees_of_pages(path)
    conn.close()
    assert [sorted(btrees[page] for page in pages) for pages in commits] == [["t", "t_v"]] * 2
    lines = wal_frames.report(3, commits, btrees)
    assert lines[0] == "requests 3, commits 2, frames 4: 1.33 a request, 2.0 a commit"
    assert sorted(line.split()[0] for line in lines[1:]) == ["t", "t_v"]


def test_frames_left_from_an_earlier_run_of_the_log_are_not_counted():
    wal_frames = _tool()
    page = bytes(512)

    def frame(number, size_after, salts):
        return struct.pack(">IIII", number, size_after, *salts) + bytes(8) + page

    header = struct.pack(">IIIIII", 0x377F0682, 3007000, 512, 0, 7, 9) + bytes(8)
    wal = header + frame(2, 0, (7, 9)) + frame(3, 3, (7, 9)) + frame(5, 5, (1, 1))
    assert wal_frames.commits_in_log(wal) == [[2, 3]]
    assert wal_frames.commits_in_log(b"") == []


def test_the_tool_plays_the_harness_calls_and_prints_frames_by_btree():
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "wal_frames.py"),
                           "--calls", "2", "--warm", "1", "--batches", "1"],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    first, *by_btree = done.stdout.splitlines()
    assert re.fullmatch(r"requests 10, commits \d+, frames \d+: \d+\.\d\d a request, "
                        r"\d+\.\d a commit", first)
    names = {line.split()[0] for line in by_btree}
    assert {"call_state", "node_events", "node_reached"} <= names
