"""The flow graph as text: Graphviz DOT and Mermaid."""

from __future__ import annotations

from typing import Callable

from ivr.reports.graph import (
    FlowGraph,
    GraphNode,
    _drawn_edges,
    _figures_line,
    _guard_note,
    _shown,
    _tags,
    heat_colour,
    luminance,
    stats_by_node,
)

DOT_SHAPES = {
    "say": "box", "set": "box", "menu": "hexagon", "input": "parallelogram",
    "branch": "diamond", "lookup": "cylinder", "hours": "trapezium", "transfer": "box3d",
    "record": "note", "callback": "box3d", "hangup": "oval",
}


_DOT_EDGE_STYLE = {"flow": "", "retry": ", style=dashed, color=\"#b35806\"",
                   "escape": ", style=dotted, color=\"#2166ac\""}


def _dot_string(text: str) -> str:
    text = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{text}"'


def dot_node(node: GraphNode, figures: dict | None,
             figures_line: Callable[[dict | None], str]) -> str:
    """A node's DOT statement: its shape by kind, its name and tags, and
    with ``figures`` the line ``figures_line`` writes and a heat fill."""
    label = f"{node.name}\n{_tags(node)}"
    attrs = [f"shape={DOT_SHAPES.get(node.kind, 'box')}"]
    if node.kind == "set":
        attrs.append('style="rounded,filled"')
    if figures is not None:
        row = figures.get(node.name)
        label += "\n" + figures_line(row)
        fill = heat_colour(row["drop_off_rate"] if row and row["reached"] else None)
        attrs.append(f"fillcolor=\"{fill}\"")
        if luminance(fill) < 0.25:
            attrs.append("fontcolor=white")
    if node.resolves:
        attrs += ["peripheries=2", "color=\"#1a7f37\""]
    if node.start:
        attrs.append("penwidth=2")
    return f"  {_dot_string(node.name)} [label={_dot_string(label)}, {', '.join(attrs)}];"


def to_dot(graph: FlowGraph, stats=None) -> str:
    """Graphviz DOT source of the graph: shapes by node kind, resolving
    nodes with a double green border; with ``stats``, nodes filled on the
    heat scale of their drop-off rate.  ``dot -Tsvg`` draws it."""
    figures = stats_by_node(stats) if stats is not None else None
    title = f"{graph.flow} · version {graph.version}"
    note = _guard_note(graph)
    lines = [
        f"digraph {_dot_string(graph.flow)} {{",
        f"  graph [rankdir=TB, labelloc=t, fontname=\"Helvetica\", "
        f"label={_dot_string(title + (chr(10) + note if note else ''))}];",
        "  node [fontname=\"Helvetica\", fontsize=11, style=filled, fillcolor=white];",
        "  edge [fontname=\"Helvetica\", fontsize=9];",
    ]
    lines += [dot_node(node, figures, _figures_line) for node in graph.nodes]
    for edge in _drawn_edges(graph):
        extra = f", tooltip={_dot_string(edge.detail)}" if edge.detail else ""
        lines.append(f"  {_dot_string(edge.source)} -> {_dot_string(edge.target)} "
                     f"[label={_dot_string(_shown(edge.label))}{_DOT_EDGE_STYLE[edge.kind]}{extra}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


#: Opening and closing brackets of each kind's Mermaid shape.
MERMAID_SHAPES = {
    "say": ("[", "]"), "set": ("(", ")"), "menu": ("{{", "}}"), "input": ("[/", "/]"),
    "branch": ("{", "}"), "lookup": ("[(", ")]"), "hours": ("[/", "\\]"),
    "transfer": ("[[", "]]"), "record": (">", "]"), "callback": ("[[", "]]"),
    "hangup": ("([", "])"),
}


# Characters that end a Mermaid string, start an entity or an HTML tag:
# written as Mermaid entity codes (#35; is '#').
_MERMAID_CODES = {c: f"#{ord(c)};" for c in '#"<>&|`'}


def mermaid_id(name: str) -> str:
    """A Mermaid node id for a flow node: prefixed, so no name can be a
    keyword ("end") or start an arrow ("o", "x")."""
    return "n_" + "".join(c if c.isascii() and (c.isalnum() or c == "_") else "_" for c in name)


def _mermaid_text(text: str) -> str:
    return '"' + "".join(_MERMAID_CODES.get(c, c) for c in text).replace("\n", "<br/>") + '"'


def to_mermaid(graph: FlowGraph, stats=None) -> str:
    """Mermaid ``flowchart TD`` of the graph (for Markdown pages), with the
    same shapes, marks and heat fills as :func:`to_dot`."""
    figures = stats_by_node(stats) if stats is not None else None
    ids: dict = {}
    for node in graph.nodes:  # names are ids already; only odd ones could collide
        candidate, n = mermaid_id(node.name), 1
        while candidate in ids.values():
            n += 1
            candidate = f"{mermaid_id(node.name)}_{n}"
        ids[node.name] = candidate
    comments = [f"{graph.flow} · version {graph.version}", _guard_note(graph)]
    lines = ["flowchart TD"] + [f"  %% {' '.join(c.split())}" for c in comments if c]
    for node in graph.nodes:
        label = f"{node.name}\n{_tags(node)}"
        if figures is not None:
            label += "\n" + _figures_line(figures.get(node.name))
        opening, closing = MERMAID_SHAPES.get(node.kind, ("[", "]"))
        lines.append(f"  {ids[node.name]}{opening}{_mermaid_text(label)}{closing}")
    for edge in _drawn_edges(graph):
        arrow = "-->" if edge.kind == "flow" else "-.->"
        label = _shown(edge.label)
        text = f"|{_mermaid_text(label)}|" if label else ""
        lines.append(f"  {ids[edge.source]} {arrow}{text} {ids[edge.target]}")
    resolving = [ids[n.name] for n in graph.nodes if n.resolves]
    if resolving:
        lines.append("  classDef resolves stroke:#1a7f37,stroke-width:3px")
        lines.append(f"  class {','.join(resolving)} resolves")
    for node in graph.nodes if figures is not None else ():
        row = figures.get(node.name)
        fill = heat_colour(row["drop_off_rate"] if row and row["reached"] else None)
        text = "#fff" if luminance(fill) < 0.25 else "#000"
        lines.append(f"  style {ids[node.name]} fill:{fill},color:{text}")
    return "\n".join(lines) + "\n"
