"""tools/bench_ab.py: ivr-serve from several source trees, side by side."""

import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import bench_ab  # noqa: E402


def test_trees_are_named_by_their_folder_and_numbered_when_two_share_a_name(tmp_path):
    before, after = tmp_path / "before", tmp_path / "main"
    assert bench_ab.tree_names([before, after]) == ["before", "main"]
    assert bench_ab.tree_names([after, tmp_path / "x" / "main"]) == ["1:main", "2:main"]


def test_ratios_are_taken_round_by_round():
    baseline = [{"per_second": 100.0}, {"per_second": 200.0}]
    rows = [{"per_second": 110.0}, {"per_second": 180.0}]
    assert bench_ab.round_ratios(rows, baseline, "per_second") == [1.1, 0.9]


def test_a_folder_that_is_not_a_source_tree_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit, match="not a source tree"):
        bench_ab.main([str(ROOT), str(tmp_path)])
    with pytest.raises(SystemExit, match="two trees or more"):
        bench_ab.main([str(ROOT)])


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")
def test_two_trees_are_measured_in_every_round(capsys):
    bench_ab.main(["--rounds", "2", "--seconds", "1", "--connections", "2", str(ROOT), str(ROOT)])
    out = capsys.readouterr().out
    name = ROOT.name
    rounds = [line.split() for line in out.splitlines()
              if line.startswith((f"1:{name} ", f"2:{name} ")) and "req/s" not in line]
    assert sorted((row[0], row[1]) for row in rounds) == [
        (f"1:{name}", "1"), (f"1:{name}", "2"), (f"2:{name}", "1"), (f"2:{name}", "2")]
    assert all(float(row[2]) > 0 and float(row[3]) > 0 for row in rounds)  # req/s, CPU ms
    summary = [line for line in out.splitlines() if line.startswith(f"2:{name} ") and "x req/s" in line]
    assert len(summary) == 1
