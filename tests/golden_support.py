"""Test helpers for the tools/ scripts and the golden files they write."""

import difflib
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def load_tool(name: str):
    """The module of ``tools/<name>.py`` (the tools are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def assert_golden(rendered: str, golden_path: Path, what_changed: str, tool: str) -> None:
    """``rendered`` must equal the golden file; else show the difference and
    how to accept it (``python tools/<tool>.py --write``)."""
    golden = golden_path.read_bytes().decode("utf-8")
    name = golden_path.relative_to(ROOT).as_posix()
    diff = "\n".join(difflib.unified_diff(golden.splitlines(), rendered.splitlines(),
                                          name, "rendered now", lineterm=""))
    assert rendered == golden, (
        f"{what_changed}; if that is meant, run `python tools/{tool}.py --write` "
        f"and review the diff:\n{diff}")
