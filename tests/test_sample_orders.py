"""ivr.flow.sample_orders: the flow package's copy of the demo orders
that every prompt is rehearsed on, kept equal to what look-ups return."""

import importlib.util
from pathlib import Path

from ivr.flow.sample_orders import SAMPLE_ORDERS
from ivr.lookups.samples import rehearsal_orders

ROOT = Path(__file__).resolve().parent.parent


def test_the_rehearsal_orders_are_the_demo_orders_as_look_ups_return_them():
    assert SAMPLE_ORDERS == rehearsal_orders(), (
        "the demo orders changed: run `python tools/render_sample_orders.py --write`")


def test_the_generated_module_is_what_the_tool_writes():
    spec = importlib.util.spec_from_file_location(
        "render_sample_orders", ROOT / "tools" / "render_sample_orders.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    assert tool.main(["--check"]) == 0
