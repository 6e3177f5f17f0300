"""Every turn of every scenario of flows/tests, against tests/golden/twiml.txt.

The TwiML a provider receives is pinned byte for byte.  When it changes on
purpose, regenerate the file and review the difference:

    python tools/render_twiml.py --write
    git diff tests/golden/twiml.txt
"""

from pathlib import Path

import golden_support
from golden_support import assert_golden

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "golden" / "twiml.txt"


def load_tool():
    return golden_support.load_tool("render_twiml")


def test_every_turn_of_every_scenario_renders_the_golden_twiml():
    assert_golden(load_tool().render_all() + "\n", GOLDEN, "the TwiML of a scenario changed", "render_twiml")


def test_the_golden_file_covers_every_scenario_file():
    golden = GOLDEN.read_text(encoding="utf-8")
    for path in sorted((ROOT / "flows" / "tests").glob("*.yaml")):
        assert f"== flows/tests/{path.name} #1:" in golden, f"{path.name} is not rendered"
    assert golden.count("<Response") >= golden.count("-- turn ")
