"""Every turn of every scenario of flows/tests, against tests/golden/twiml.txt.

The TwiML a provider receives is pinned byte for byte.  When it changes on
purpose, regenerate the file and review the difference:

    python tools/render_twiml.py --write
    git diff tests/golden/twiml.txt
"""

import difflib
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "golden" / "twiml.txt"


def load_tool():
    spec = importlib.util.spec_from_file_location("render_twiml", ROOT / "tools" / "render_twiml.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


def test_every_turn_of_every_scenario_renders_the_golden_twiml():
    rendered = load_tool().render_all() + "\n"
    golden = GOLDEN.read_bytes().decode("utf-8")
    diff = "\n".join(difflib.unified_diff(golden.splitlines(), rendered.splitlines(),
                                          "tests/golden/twiml.txt", "rendered now", lineterm=""))
    assert rendered == golden, (
        "the TwiML of a scenario changed; if that is meant, run "
        f"`python tools/render_twiml.py --write` and review the diff:\n{diff}")


def test_the_golden_file_covers_every_scenario_file():
    golden = GOLDEN.read_text(encoding="utf-8")
    for path in sorted((ROOT / "flows" / "tests").glob("*.yaml")):
        assert f"== flows/tests/{path.name} #1:" in golden, f"{path.name} is not rendered"
    assert golden.count("<Response") >= golden.count("-- turn ")
