"""The flow graph drawn by Graphviz ``dot`` as SVG, for the dashboard.

``dot`` lays a flow out better than :mod:`ivr.reports.graph_layout` (fewer
crossings, edges routed around boxes), so the dashboard uses it when it is
installed and falls back on :func:`ivr.reports.graph_svg.to_svg` when it is
not (:func:`dot_svg` returns None).  The drawing carries the same
``data-node``, ``data-reached``, ``data-dropped`` and ``data-drop-off-rate``
attributes on each node's ``<g>`` as the own layout's, so a page or a test
reads it the same way.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from html import escape, unescape
from typing import Callable

from ivr.reports.graph import FlowGraph, _drawn_edges, _shown, stats_by_node
from ivr.reports.graph_text import _DOT_EDGE_STYLE, _dot_string, dot_node

#: Text sizes in the drawing's units (1 unit is 1 px at full size).
NODE_SIZE, EDGE_SIZE = 15, 13
#: The longest edge label drawn, in characters (the end of a condition says most).
EDGE_LABEL_LIMIT = 20
#: A large flow is drawn in well under a second; this bounds a stuck ``dot``.
DOT_TIMEOUT = 20
_NODE_GROUP = re.compile(r'<g id="(node\d+)" class="node">\s*<title>(.*?)</title>', re.S)


def dot_source(graph: FlowGraph, figures: dict | None,
               figures_line: Callable[[dict | None], str]) -> str:
    """The DOT the dashboard draws: shapes by kind, heat fills by drop-off
    rate, each box's figures written by ``figures_line`` (in the
    operator's language), no title (the page has its own heading)."""
    lines = [
        f"digraph {_dot_string(graph.flow)} {{",
        '  graph [rankdir=TB, nodesep=0.3, ranksep=0.45, fontname="Helvetica", bgcolor="white"];',
        f'  node [fontname="Helvetica", fontsize={NODE_SIZE}, style=filled, fillcolor=white, '
        f'margin="0.12,0.06"];',
        f'  edge [fontname="Helvetica", fontsize={EDGE_SIZE}, color="#555555", '
        f'fontcolor="#333333"];',
    ]
    lines += [dot_node(node, figures, figures_line) for node in graph.nodes]
    for edge in _drawn_edges(graph):
        tip = f"{edge.source} → {edge.target}: {edge.detail or edge.label}"
        lines.append(f"  {_dot_string(edge.source)} -> {_dot_string(edge.target)} "
                     f"[label={_dot_string(_clipped(_shown(edge.label)))}"
                     f"{_DOT_EDGE_STYLE[edge.kind]}, "
                     f"tooltip={_dot_string(tip)}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _clipped(label: str) -> str:
    # Long conditions would widen the whole drawing; the edge's tooltip has them in full.
    return label if len(label) <= EDGE_LABEL_LIMIT else "…" + label[-(EDGE_LABEL_LIMIT - 1):]


def dot_svg(graph: FlowGraph, stats=None, *,
            figures_line: Callable[[dict | None], str] = lambda row: "",
            program: str = "dot") -> str | None:
    """The graph drawn by Graphviz as an inline ``<svg>`` sized in px, with
    each node's figures in ``data-*`` attributes; None when ``program`` is
    not installed or fails (the caller draws with its own layout)."""
    path = shutil.which(program)
    if path is None:
        return None
    figures = stats_by_node(stats) if stats is not None else None
    source = dot_source(graph, figures, figures_line)
    try:
        done = subprocess.run([path, "-Tsvg"], input=source.encode("utf-8"), capture_output=True,
                              timeout=DOT_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    svg = done.stdout.decode("utf-8", errors="replace")
    start = svg.find("<svg")
    if done.returncode != 0 or start < 0:
        return None
    return _annotated(_in_pixels(svg[start:]), graph, figures)


def _in_pixels(svg: str) -> str:
    """Graphviz sizes the drawing in points (4/3 px each): size it in px
    instead, one px per unit, so a font size in the source is the size
    shown at full size."""
    box = re.search(r'viewBox="([\d.\s-]+)"', svg)
    if not box:
        return svg
    _x, _y, width, height = (float(v) for v in box.group(1).split())
    return re.sub(r'<svg width="[^"]*" height="[^"]*"',
                  f'<svg class="flow-drawing" width="{width:.0f}" height="{height:.0f}"', svg, count=1)


def _annotated(svg: str, graph: FlowGraph, figures: dict | None) -> str:
    kinds = {node.name: node.kind for node in graph.nodes}

    def annotate(match: re.Match) -> str:
        name = unescape(match.group(2))
        data = f'data-node="{escape(name)}" data-kind="{escape(kinds.get(name, ""))}"'
        if figures is not None:
            row = figures.get(name) or {"reached": 0, "dropped": 0, "drop_off_rate": None}
            rate = row["drop_off_rate"] if row["reached"] else None
            data += (f' data-reached="{row["reached"]}" data-dropped="{row["dropped"]}" '
                     f'data-drop-off-rate="{"" if rate is None else round(rate, 4)}"')
        return f'<g id="{match.group(1)}" class="node" {data}>\n<title>{match.group(2)}</title>'

    return _NODE_GROUP.sub(annotate, svg)
