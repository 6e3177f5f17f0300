"""The flow drawn by Graphviz for the dashboard: its nodes carry their
figures, it is sized in px, and without Graphviz there is no drawing."""

import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from ivr.flow.loader import load_flow
from ivr.reports.graph import build_graph
from ivr.reports.graph_dot import EDGE_LABEL_LIMIT, NODE_SIZE, dot_source, dot_svg

ROOT = Path(__file__).parent.parent
SVG = "{http://www.w3.org/2000/svg}"
needs_dot = pytest.mark.skipif(shutil.which("dot") is None,
                               reason="Graphviz dot is not installed (apt-get install graphviz)")


@pytest.fixture(scope="module")
def demo():
    return build_graph(load_flow(ROOT / "flows" / "post_sale.yaml", ROOT / "prompts"))


def test_without_graphviz_there_is_no_drawing(demo):
    assert dot_svg(demo, program="no-such-graphviz-program") is None


@needs_dot
def test_each_node_carries_its_figures_and_its_box_says_them(demo):
    stats = {"main_menu": {"reached": 40, "hung_up": 3, "transferred": 7}}
    svg = dot_svg(demo, stats, figures_line=lambda row: f"seen {row['reached']}" if row else "none")
    root = ET.fromstring(svg)
    nodes = {g.get("data-node"): g for g in root.iter(SVG + "g") if g.get("data-node")}
    assert set(nodes) == {node.name for node in demo.nodes}
    menu = nodes["main_menu"]
    assert (menu.get("data-reached"), menu.get("data-dropped"), menu.get("data-drop-off-rate")) == (
        "40", "10", "0.25")
    assert menu.get("data-kind") == "menu"
    assert "seen 40" in [t.text for t in menu.iter(SVG + "text")]
    assert nodes["welcome"].get("data-reached") == "0"


@needs_dot
def test_the_drawing_is_sized_in_px_one_per_unit(demo):
    root = ET.fromstring(dot_svg(demo))
    _x, _y, width, height = (float(v) for v in root.get("viewBox").split())
    assert (root.get("width"), root.get("height")) == (f"{width:.0f}", f"{height:.0f}")
    sizes = {float(t.get("font-size")) for t in root.iter(SVG + "text")}
    assert min(sizes) >= 13 and NODE_SIZE in sizes


def test_long_conditions_are_clipped_on_the_drawing_and_whole_in_the_tooltip(demo):
    source = dot_source(demo, None, lambda row: "")
    long_ones = [e for e in demo.edges if len(e.label) > EDGE_LABEL_LIMIT]
    assert long_ones
    for line in source.splitlines():
        if "label=" in line and "->" in line:
            label = line.split('label="', 1)[1].split('"', 1)[0]
            assert len(label) <= EDGE_LABEL_LIMIT, line
