"""tools/profile_turns.py plays whole calls through the server's Site."""

import re
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
