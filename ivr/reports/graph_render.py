"""The flow graph in any of its formats."""

from __future__ import annotations

from ivr.reports.graph import FORMATS, FlowGraph
from ivr.reports.graph_svg import to_svg
from ivr.reports.graph_text import to_dot, to_mermaid

RENDERERS = {"dot": to_dot, "mermaid": to_mermaid, "svg": to_svg}


def render(graph: FlowGraph, fmt: str, stats=None) -> str:
    """The graph in ``fmt`` (one of :data:`FORMATS`)."""
    try:
        renderer = RENDERERS[fmt]
    except KeyError:
        raise ValueError(f"unknown graph format {fmt!r}; expected one of {', '.join(FORMATS)}") from None
    return renderer(graph, stats)
