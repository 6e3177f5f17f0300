"""The dashboard's flow drawing marks its entry node, where its box opens,
in either layout (the browser's side is in test_dashboard_browser.py)."""

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from ivr.reports import graph, graph_dot, graph_layout, graph_svg
from ivr.server.dashboard import readable
from ivr.server.dashboard_drawing import ABOVE, opening_on, where_in_drawing
from ivr.server.registry import FlowRegistry

ROOT = Path(__file__).parent.parent
SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def flow_graph():
    registry = FlowRegistry(ROOT / "flows", ROOT / "prompts")
    registry.reload()
    return graph.build_graph(registry.current("post_sale"))


def _size(svg: str) -> tuple[float, float]:
    _x, _y, width, height = (float(v) for v in ET.fromstring(svg).get("viewBox").split())
    return width, height


def test_the_own_layout_s_mark_is_centred_just_above_the_entry_box(flow_graph):
    svg = readable(graph_svg.to_svg(flow_graph, legend=False))
    width, height = _size(svg)
    box = graph_layout.layout(flow_graph, None).boxes[flow_graph.start]
    x, y = where_in_drawing(svg, flow_graph.start)
    assert x * width == pytest.approx(box.cx, abs=0.1)  # the drawing rounds to 0.1
    assert box.y - ABOVE <= y * height < box.y
    assert x > 0.5  # the entry is not in the top-left corner the box used to open on


def test_the_own_layout_s_mark_follows_the_drawing_below_its_legend(flow_graph):
    bare, keyed = (graph_svg.to_svg(flow_graph, legend=legend) for legend in (False, True))
    legend_height = float(re.search(r'class="drawing" transform="translate\(0,([\d.]+)\)"',
                                    keyed).group(1))
    (_, bare_height), (_, keyed_height) = _size(bare), _size(keyed)
    bare_y = where_in_drawing(bare, flow_graph.start)[1] * bare_height
    keyed_y = where_in_drawing(keyed, flow_graph.start)[1] * keyed_height
    assert legend_height > 0 and keyed_y == pytest.approx(bare_y + legend_height)


def _shape_extent(svg: str, node: str) -> tuple[float, float, float]:
    """The left, right and top of ``node``'s shape in a Graphviz drawing,
    in the drawing's units: from its outline's points, moved as the
    drawing's group moves them."""
    root = ET.fromstring(svg)
    group = root.find(f"{SVG}g")
    tx, ty = (float(v) for v in re.search(r"translate\(([-\d.]+) ([-\d.]+)\)",
                                          group.get("transform")).groups())
    [shape] = [g for g in group.iter(f"{SVG}g") if g.get("data-node") == node]
    points = []
    for element in shape:
        outline = element.get("d") or element.get("points") or ""
        points += [(float(x), float(y)) for x, y in re.findall(r"([-\d.]+),([-\d.]+)", outline)]
    xs, ys = [x + tx for x, _ in points], [y + ty for _, y in points]
    return min(xs), max(xs), min(ys)


def test_the_graphviz_drawing_s_mark_is_on_the_entry_node(flow_graph):
    if graph_dot.shutil.which("dot") is None:
        pytest.skip("Graphviz dot is not installed (apt-get install graphviz)")
    svg = readable(graph_dot.dot_svg(flow_graph))
    width, height = _size(svg)
    left, right, top = _shape_extent(svg, flow_graph.start)
    x, y = where_in_drawing(svg, flow_graph.start)
    assert left < x * width < right
    assert x * width == pytest.approx((left + right) / 2, abs=1)
    assert max(top - ABOVE - 20, 0) <= y * height <= top
    assert x > 0.5


def test_the_drawing_goes_in_a_canvas_with_the_mark_where_the_entry_is(flow_graph):
    svg = graph_svg.to_svg(flow_graph, legend=False)
    x, y = where_in_drawing(svg, flow_graph.start)
    framed = opening_on(svg, flow_graph.start)
    assert framed.startswith('<div class="graph-canvas"><svg ')
    assert framed.endswith(f'<span class="graph-entry" aria-hidden="true" '
                           f'style="left:{x:.3%};top:{y:.3%}"></span></div>')


def test_a_drawing_without_that_node_goes_in_a_canvas_without_a_mark(flow_graph):
    svg = graph_svg.to_svg(flow_graph, legend=False)
    assert opening_on(svg, "no_such_node") == f'<div class="graph-canvas">{svg}</div>'
    assert where_in_drawing("<svg not xml", flow_graph.start) is None
