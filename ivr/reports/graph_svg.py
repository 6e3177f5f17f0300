"""The flow graph drawn as SVG, with its legend."""

from __future__ import annotations

from html import escape

from ivr.i18n import N_, _
from ivr.reports.graph import (
    NOT_REACHED,
    FlowGraph,
    GraphNode,
    _guard_note,
    _shown,
    heat_colour,
    luminance,
    stats_by_node,
)
from ivr.reports.graph_layout import (
    FONT,
    LABEL_SIZE,
    LINE_HEIGHT,
    MARGIN,
    PADDING,
    Box,
    Route,
    _box_lines,
    _text_width,
    layout,
)
from ivr.reports.graph_text import mermaid_id

_EDGE_STROKE = {"flow": ("#555555", ""), "retry": ("#b35806", "6 4"), "escape": ("#2166ac", "2 3")}


_EDGE_MEANING = {"flow": N_("an exit of the node"), "retry": N_("retries run out"),
                 "escape": N_("escape to a human")}


def _n(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _path(route: Route) -> str:
    points = route.points
    if route.shape == "self":
        (x, y1), (_, y2) = points
        return f"M{_n(x)},{_n(y1)} C{_n(x + 34)},{_n(y1 - 14)} {_n(x + 34)},{_n(y2 + 14)} {_n(x)},{_n(y2)}"
    d = [f"M{_n(points[0][0])},{_n(points[0][1])}"]
    if route.shape == "up":  # straight runs joined by round corners
        for (x0, y0), (x1, y1), (x2, y2) in zip(points, points[1:], points[2:]):
            r = min(14, abs(x1 - x0 + y1 - y0) / 2, abs(x2 - x1 + y2 - y1) / 2)
            d.append(f"L{_n(x1 - r * _sign(x1 - x0))},{_n(y1 - r * _sign(y1 - y0))} "
                     f"Q{_n(x1)},{_n(y1)} {_n(x1 + r * _sign(x2 - x1))},{_n(y1 + r * _sign(y2 - y1))}")
        d.append(f"L{_n(points[-1][0])},{_n(points[-1][1])}")
        return " ".join(d)
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        middle = (y0 + y1) / 2
        d.append(f"C{_n(x0)},{_n(middle)} {_n(x1)},{_n(middle)} {_n(x1)},{_n(y1)}")
    return " ".join(d)


def _sign(value: float) -> int:
    return (value > 0) - (value < 0)


def _attr(value) -> str:
    return escape(str(value), quote=True)


def to_svg(graph: FlowGraph, stats=None, *, legend: bool = True) -> str:
    """A standalone SVG of the graph for the ops dashboard: no script, no
    external font, presentation attributes only, so it can be inlined in
    a page.  With ``stats`` each box shows reached / dropped and is filled
    on a heat scale by drop-off rate: where callers are lost.  Each node's
    ``<g>`` carries ``data-node`` and, with stats, ``data-reached``,
    ``data-dropped`` and ``data-drop-off-rate``.  Without ``legend`` the
    heading and key are left out (a page that shows its own).  Its words
    are in the operator's language."""
    figures = stats_by_node(stats) if stats is not None else None
    plan = layout(graph, figures)
    width = max(plan.width, 640)
    key, legend_height = _legend(graph, figures, width) if legend else ("", 0)
    height = plan.height + legend_height
    marker = f"arrow-{mermaid_id(graph.flow)}"
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_n(width)}" height="{_n(height)}" '
        f'viewBox="0 0 {_n(width)} {_n(height)}" font-family="{_attr(FONT)}" '
        f'data-flow="{_attr(graph.flow)}" data-version="{_attr(graph.version)}">',
        f"<title>{_attr(graph.flow)} · version {_attr(graph.version)}</title>",
        "<defs>" + "".join(
            f'<marker id="{marker}-{kind}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
            f'markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="{colour}"/></marker>'
            for kind, (colour, _) in _EDGE_STROKE.items()) + "</defs>",
        f'<rect width="{_n(width)}" height="{_n(height)}" fill="#ffffff"/>',
        key,
        f'<g class="drawing" transform="translate(0,{_n(legend_height)})">',
        '<g class="edges" fill="none">',
    ]
    for route in plan.routes:
        edge = route.edge
        colour, dashes = _EDGE_STROKE[edge.kind]
        dash = f' stroke-dasharray="{dashes}"' if dashes else ""
        tip = f"{edge.source} → {edge.target}: {edge.detail or edge.label}"
        label = route.label
        out.append(
            f'<g class="edge edge-{edge.kind}" data-source="{_attr(edge.source)}" '
            f'data-target="{_attr(edge.target)}"><title>{_attr(tip)}</title>'
            f'<path d="{_path(route)}" stroke="{colour}" stroke-width="1.3"{dash} '
            f'marker-end="url(#{marker}-{edge.kind})"/>'
            f'<text x="{_n(label.cx)}" y="{_n(label.bottom - 3.5)}" text-anchor="middle" '
            f'font-size="{LABEL_SIZE}" fill="{colour}" stroke="#ffffff" stroke-width="3" '
            f'paint-order="stroke">{_attr(_shown(edge.label))}</text></g>')
    out.append('</g><g class="nodes">')
    out += [_svg_node(node, plan.boxes[node.name], figures) for node in graph.nodes]
    out.append("</g></g></svg>")
    return "\n".join(out) + "\n"


def _svg_node(node: GraphNode, box: Box, figures: dict | None) -> str:
    data = f'data-node="{_attr(node.name)}" data-kind="{_attr(node.kind)}"'
    fill = "#ffffff"
    tip = [f"{node.name} ({node.kind})"]
    if node.reason:
        tip.append(_("reason: {reason}").format(reason=node.reason))
    if node.resolves:
        tip.append(_("resolves the caller's question"))
    if figures is not None:
        row = figures.get(node.name) or dict.fromkeys(
            ("reached", "hung_up", "transferred", "ended", "continued", "dropped"), 0)
        rate = row.get("drop_off_rate") if row["reached"] else None
        fill = heat_colour(rate)
        data += (f' data-reached="{row["reached"]}" data-dropped="{row["dropped"]}" '
                 f'data-drop-off-rate="{"" if rate is None else round(rate, 4)}"')
        tip.append(_("reached {reached}: hung up {hung_up}, transferred {transferred}, ended {ended}, "
                     "continued {continued}").format(**row))
    ink = "#ffffff" if luminance(fill) < 0.25 else "#1a1a1a"
    stroke, width = ("#1a7f37", 2.5) if node.resolves else ("#333333", 2 if node.start else 1)
    parts = [f'<g class="node node-{_attr(node.kind)}" {data}>',
             f"<title>{_attr(chr(10).join(tip))}</title>",
             f'<rect x="{_n(box.x)}" y="{_n(box.y)}" width="{_n(box.w)}" height="{_n(box.h)}" '
             f'rx="6" fill="{fill}" stroke="{stroke}" stroke-width="{width}"/>']
    if node.resolves:
        parts.append(f'<rect x="{_n(box.x + 3.5)}" y="{_n(box.y + 3.5)}" width="{_n(box.w - 7)}" '
                     f'height="{_n(box.h - 7)}" rx="4" fill="none" stroke="{stroke}" stroke-width="1"/>')
    for i, (text, size) in enumerate(_box_lines(node, figures)):
        weight = ' font-weight="bold"' if i == 0 else ""
        y = box.y + PADDING + LINE_HEIGHT * i + size
        parts.append(f'<text x="{_n(box.cx)}" y="{_n(y)}" text-anchor="middle" font-size="{size}"'
                     f'{weight} fill="{ink}">{_attr(text)}</text>')
    parts.append("</g>")
    return "".join(parts)


def _legend(graph: FlowGraph, figures: dict | None, width: float):
    """The heading and the key above the drawing, wrapped to ``width``;
    returns the SVG and its height."""
    items = [('<rect x="0" y="-10" width="24" height="13" rx="3" fill="#ffffff" stroke="#1a7f37" '
              'stroke-width="2.5"/><rect x="3" y="-7" width="18" height="7" rx="2" fill="none" '
              'stroke="#1a7f37"/>', _("resolves the caller's question"))]
    for kind, (colour, dashes) in _EDGE_STROKE.items():
        dash = f' stroke-dasharray="{dashes}"' if dashes else ""
        items.append((f'<path d="M0,-4 H24" stroke="{colour}" stroke-width="1.3"{dash}/>',
                       _(_EDGE_MEANING[kind])))
    note = _guard_note(graph)
    if note:
        items.append(('<text x="12" y="0" text-anchor="middle" font-size="13">↻</text>',
                      note.removeprefix("↻ ")))
    if figures is not None:
        items.append(("", _("drop-off rate (hung up or transferred ÷ reached):")))
        for rate in (0, 0.25, 0.5, 0.75, 1):
            items.append((f'<rect x="0" y="-10" width="24" height="13" fill="{heat_colour(rate)}" '
                          'stroke="#999999" stroke-width="0.5"/>', f"{rate:.0%}"))
        items.append((f'<rect x="0" y="-10" width="24" height="13" fill="{NOT_REACHED}" '
                      'stroke="#999999" stroke-width="0.5"/>', _("not reached")))
        unknown = sorted(set(figures) - {n.name for n in graph.nodes})
        if unknown:
            shown = ", ".join(unknown[:5]) + (", …" if len(unknown) > 5 else "")
            items.append(("", _("figures for nodes not in this version: {nodes}").format(nodes=shown)))
    parts = ['<g class="legend" font-size="11" fill="#1a1a1a">',
             f'<text x="{MARGIN}" y="{MARGIN + 6}" font-size="14" font-weight="bold">'
             f"{_attr(graph.flow)} · version {_attr(graph.version)}</text>"]
    x, y = MARGIN, MARGIN + 30
    for sample, text in items:
        item_width = (30 if sample else 0) + _text_width(text, 11) + 18
        if x > MARGIN and x + item_width > width - MARGIN:
            x, y = MARGIN, y + 20
        parts.append(f'<g transform="translate({_n(x)},{_n(y)})">{sample}'
                     f'<text x="{30 if sample else 0}" y="0">{_attr(text)}</text></g>')
        x += item_width
    parts.append("</g>")
    return "".join(parts), y + 12 - MARGIN
