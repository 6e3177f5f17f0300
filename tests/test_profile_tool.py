"""tools/profile_turns.py plays whole calls through the server's Site."""

import re
import sqlite3
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_profile_turns_plays_whole_calls_and_prints_the_cost_of_a_request():
    # It stops with an error at the first answer that is not a 200 or a 204.
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "profile_turns.py"),
                           "--batches", "1", "--repeat", "1"],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert re.fullmatch(r"100 requests: \d+\.\d{3} ms of CPU a request \(best of 1; "
                        r"no network, no other process\)\n", done.stdout)


def test_profile_turns_with_another_writer_commits_from_a_second_connection(tmp_path):
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import profile_turns
    finally:
        sys.path.remove(str(ROOT / "tools"))
    bench = profile_turns.Bench(tmp_path / "profile.db",
                                profile_turns.parse_moment(profile_turns.DEFAULT_MOMENT), other_writer=7)
    bench.batch()  # 20 calls of 5 requests: the other connection commits after the 98th last
    assert bench.requests == 100
    stored = bench.other.execute("SELECT value FROM meta WHERE key = 'other_writer'").fetchone()
    assert stored == ("98",)
    bench.other.close()


def _nodes_reached(tmp_path, name, at):
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import profile_turns
    finally:
        sys.path.remove(str(ROOT / "tools"))
    db_path = tmp_path / f"{name}.db"
    profile_turns.Bench(db_path, profile_turns.parse_moment(at)).batch()
    with sqlite3.connect(db_path) as db:
        return {node for (node,) in db.execute("SELECT DISTINCT node FROM node_events")}


def test_profile_turns_plays_its_calls_at_the_moment_it_is_given(tmp_path):
    # The demo flow's agents answer on weekdays from 09:00 in Paris: the
    # same calls reach them on a Tuesday morning, the closed menu at night.
    morning = _nodes_reached(tmp_path, "morning", "2026-12-08T10:00:00+01:00")
    night = _nodes_reached(tmp_path, "night", "2026-12-08T23:30:00+01:00")
    assert "agent" in morning and "closed_menu" not in morning
    assert "closed_menu" in night and "agent" not in night
