"""The flow graph: every node of a flow and every way out of it, as data,
and three drawings of it (Graphviz DOT, Mermaid, a standalone SVG for the
dashboard), optionally annotated with the call funnel.

:func:`build_graph` reads the compiled flow only and the renderers read
only the graph, so a drawing never disagrees with what the engine runs.
The SVG is laid out here (layers by longest path, crossings reduced by
barycentres) so the dashboard needs neither Graphviz nor JavaScript.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from html import escape

from ivr.flow.model import Flow, Node

#: Node kinds that listen to the caller: the escape and retries leave them.
GATHERING_KINDS = ("menu", "input", "callback")

#: How edges are drawn: ``flow`` an exit the node declares, ``retry`` a
#: no-input or no-match count run out, ``escape`` the caller asked for a
#: human, ``guard`` the loop guard.
EDGE_KINDS = ("flow", "retry", "escape", "guard")

FORMATS = ("dot", "mermaid", "svg")


@dataclass(frozen=True)
class GraphNode:
    """A node of the flow, with what the drawings mark on it."""

    name: str
    kind: str
    reason: str | None = None
    resolves: bool = False
    start: bool = False
    human: bool = False
    #: On a loop: the loop guard may send calls from here to the human.
    guarded: bool = False


@dataclass(frozen=True)
class Edge:
    """One way out of ``source``: ``label`` is short ("1", "found",
    "no input", "escape 0"), ``detail`` the full text behind it when there
    is more (a branch's condition, the words of a choice)."""

    source: str
    target: str
    label: str
    kind: str = "flow"
    detail: str | None = None


@dataclass(frozen=True)
class FlowGraph:
    flow: str
    version: str
    start: str
    human: str
    nodes: tuple  # tuple[GraphNode, ...], in file order
    edges: tuple  # tuple[Edge, ...], by source in file order, exits in declared order

    def exits(self, name: str) -> list:
        return [e for e in self.edges if e.source == name]


class StatsError(ValueError):
    """Funnel figures that cannot annotate a graph (a row without a node
    or without ``reached``)."""


# --- building the graph ---------------------------------------------------------


def build_graph(flow: Flow) -> FlowGraph:
    """The graph of ``flow``: a node per flow node, an edge per way a call
    can leave it (declared exits, exhausted retries, the escape, the loop
    guard).  Pure data, for the renderers below and for tests."""
    edges = [e for node in flow.nodes.values() for e in _exits(flow, node)]
    on_loop = _nodes_on_loops(flow.nodes, edges)
    # The visit limit can only be passed on a loop; the step limit too in
    # practice, as retries are bounded.  So the guard leaves loop nodes.
    edges += [Edge(name, flow.human, "loop guard", "guard")
              for name in flow.nodes if name in on_loop and name != flow.human]
    nodes = tuple(
        GraphNode(n.name, n.kind, n.reason, n.resolves, start=n.name == flow.start,
                  human=n.name == flow.human, guarded=n.name in on_loop and n.name != flow.human)
        for n in flow.nodes.values())
    return FlowGraph(flow.name, flow.version, flow.start, flow.human, nodes, tuple(edges))


def _exits(flow: Flow, node: Node):
    opts, name = node.opts, node.name
    if node.kind in ("say", "set", "record", "callback") and node.next:
        yield Edge(name, node.next, "next")
    elif node.kind == "input":
        yield Edge(name, node.next, "confirmed" if "confirm" in opts else "entered")
    elif node.kind == "menu":
        for choice in opts["choices"]:
            words = [w for phrases in choice.words.values() for w in phrases]
            label = choice.key or (choice.words.get(flow.default_language) or words)[0]
            yield Edge(name, choice.to, label, detail=", ".join(words) or None)
    elif node.kind == "branch":
        for condition, to in opts["when"]:
            yield Edge(name, to, _shorten(condition), detail=condition)
        yield Edge(name, opts["else"], "else")
    elif node.kind == "lookup":
        for field in ("found", "many", "not_found", "error"):
            if opts.get(field):
                yield Edge(name, opts[field], field.replace("_", " "))
    elif node.kind == "hours":
        yield Edge(name, opts["open"], "open")
        yield Edge(name, opts["closed"], "closed")
    elif node.kind == "transfer" and opts.get("no_answer"):
        yield Edge(name, opts["no_answer"], "no answer")
    elif node.kind == "sms":
        yield Edge(name, node.next, "sent")
        yield Edge(name, opts.get("failed") or node.next, "failed")
    if node.kind in GATHERING_KINDS:
        for field in ("no_input", "no_match"):
            yield Edge(name, opts[field].to or flow.human, field.replace("_", " "), "retry")
        keys = " ".join(flow.escape.keys)
        yield Edge(name, flow.escape.to, f"escape {keys}".strip(), "escape")


def _shorten(text: str, limit: int = 28) -> str:
    """The end of a long condition: it holds the value that tells the
    exits of a branch apart (``…== 'delayed_carrier'``)."""
    if len(text) <= limit:
        return text
    tail = text[-(limit - 1):]
    if text[-limit] != " " and " " in tail:
        tail = tail[tail.index(" ") + 1:]  # whole words only
    return "…" + tail


def _nodes_on_loops(nodes, edges) -> set:
    """Names of nodes a call can come back to."""
    succ = {name: {e.target for e in edges if e.source == name} for name in nodes}
    looped = set()
    for name in nodes:
        seen, pending = set(), list(succ[name])
        while pending:
            current = pending.pop()
            if current == name:
                looped.add(name)
                break
            if current not in seen:
                seen.add(current)
                pending.extend(succ.get(current, ()))
    return looped


# --- funnel figures ---------------------------------------------------------------


def stats_by_node(stats) -> dict:
    """Funnel figures by node name, from the rows of
    :func:`ivr.analytics.funnel` or a dict already keyed by node.  Missing
    derived figures (``dropped``, ``drop_off_rate``) are computed, so a
    hand-built ``{"menu": {"reached": 10, "hung_up": 2}}`` works too."""
    if not stats:
        return {}
    if isinstance(stats, Mapping):
        items = list(stats.items())
    else:
        items = []
        for row in stats:
            if "node" not in row:
                raise StatsError(f"a funnel row has no 'node': {dict(row)!r}")
            items.append((row["node"], row))
    result = {}
    for name, row in items:
        if not isinstance(row.get("reached"), int):
            raise StatsError(f"the figures of node {name!r} have no 'reached' count")
        figures = {k: row.get(k, 0) for k in ("reached", "hung_up", "transferred", "ended")}
        figures["dropped"] = row.get("dropped", figures["hung_up"] + figures["transferred"])
        figures["continued"] = row.get(
            "continued", figures["reached"] - figures["dropped"] - figures["ended"])
        rate = row.get("drop_off_rate")
        if rate is None and figures["reached"]:
            rate = figures["dropped"] / figures["reached"]
        figures["drop_off_rate"] = rate
        result[name] = figures
    return result


#: Sequential heat scale (ColorBrewer OrRd): light where few callers are
#: lost, dark red where most are.
HEAT_STOPS = (
    (0.0, (255, 247, 236)), (0.25, (253, 212, 158)), (0.5, (252, 141, 89)),
    (0.75, (215, 48, 31)), (1.0, (127, 0, 0)),
)
NOT_REACHED = "#e8e8e8"


def heat_colour(rate: float | None) -> str:
    """The fill for a drop-off ``rate`` (0..1); grey for a node no call reached."""
    if rate is None:
        return NOT_REACHED
    rate = min(1.0, max(0.0, float(rate)))
    for (low, a), (high, b) in zip(HEAT_STOPS, HEAT_STOPS[1:]):
        if rate <= high:
            t = (rate - low) / (high - low)
            return "#%02x%02x%02x" % tuple(round(x + (y - x) * t) for x, y in zip(a, b))
    return "#%02x%02x%02x" % HEAT_STOPS[-1][1]


def luminance(colour: str) -> float:
    """Relative luminance (WCAG) of ``#rrggbb``: picks readable text on a fill."""
    def channel(c):
        c /= 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4
    r, g, b = (int(colour[i:i + 2], 16) for i in (1, 3, 5))
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def _figures_line(figures: dict | None) -> str:
    if not figures or not figures["reached"]:
        return "not reached"
    rate = figures["drop_off_rate"] or 0
    return f"reached {figures['reached']} · dropped {figures['dropped']} ({rate:.0%})"


def _tags(node: GraphNode) -> str:
    tags = [node.kind] + [t for t, on in (("start", node.start), ("human", node.human),
                                          ("resolves", node.resolves), ("↻", node.guarded)) if on]
    return " · ".join(tags)


def _drawn_edges(graph: FlowGraph) -> list:
    """Edges as drawn: the loop guard is shown on its nodes (↻) rather than
    as a line from every loop to the human, and edges between the same two
    nodes merge ("1, 2, 3, 4"); a declared exit's style wins."""
    merged: dict = {}
    for edge in graph.edges:
        if edge.kind == "guard":
            continue
        key = (edge.source, edge.target)
        if key not in merged:
            merged[key] = edge
            continue
        first = merged[key]
        kind = "flow" if "flow" in (first.kind, edge.kind) else first.kind
        details = [d for d in (first.detail or first.label, edge.detail or edge.label) if d]
        merged[key] = Edge(edge.source, edge.target, f"{first.label}, {edge.label}", kind,
                           "; ".join(details))
    return list(merged.values())


def _shown(label: str) -> str:
    """An edge's label as drawn: a node's single way on needs none."""
    return "" if label == "next" else label


def _guard_note(graph: FlowGraph) -> str | None:
    if any(n.guarded for n in graph.nodes):
        return f"↻ on a loop: the loop guard may send the call to {graph.human}"
    return None


# --- Graphviz DOT ---------------------------------------------------------------

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
    for node in graph.nodes:
        label = f"{node.name}\n{_tags(node)}"
        attrs = [f"shape={DOT_SHAPES.get(node.kind, 'box')}"]
        if node.kind == "set":
            attrs.append('style="rounded,filled"')
        if figures is not None:
            row = figures.get(node.name)
            label += "\n" + _figures_line(row)
            fill = heat_colour(row["drop_off_rate"] if row and row["reached"] else None)
            attrs.append(f"fillcolor=\"{fill}\"")
            if luminance(fill) < 0.25:
                attrs.append("fontcolor=white")
        if node.resolves:
            attrs += ["peripheries=2", "color=\"#1a7f37\""]
        if node.start:
            attrs.append("penwidth=2")
        lines.append(f"  {_dot_string(node.name)} [label={_dot_string(label)}, {', '.join(attrs)}];")
    for edge in _drawn_edges(graph):
        extra = f", tooltip={_dot_string(edge.detail)}" if edge.detail else ""
        lines.append(f"  {_dot_string(edge.source)} -> {_dot_string(edge.target)} "
                     f"[label={_dot_string(_shown(edge.label))}{_DOT_EDGE_STYLE[edge.kind]}{extra}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


# --- Mermaid --------------------------------------------------------------------

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


# --- SVG: layout ------------------------------------------------------------------

FONT = "DejaVu Sans, Verdana, Arial, sans-serif"
#: Average glyph width in em, a little generous so text stays inside its box.
GLYPH_EM = 0.62
NAME_SIZE, TEXT_SIZE, LABEL_SIZE = 13, 11, 10
LINE_HEIGHT = 16
PADDING = 10
NODE_GAP = 28
LAYER_GAP = 64
DUMMY_WIDTH = 12
MARGIN = 20
SWEEPS = 12


@dataclass
class Box:
    """A rectangle: top-left corner and size."""

    x: float
    y: float
    w: float
    h: float

    @property
    def right(self):
        return self.x + self.w

    @property
    def bottom(self):
        return self.y + self.h

    @property
    def cx(self):
        return self.x + self.w / 2

    def overlaps(self, other: "Box") -> bool:
        return (self.x < other.right and other.x < self.right
                and self.y < other.bottom and other.y < self.bottom)


@dataclass
class Route:
    """How one drawn edge goes: its points, its shape (``down`` through
    the layers, ``up`` for a back edge, ``self`` for a loop on a node) and
    where its label sits."""

    edge: Edge
    points: list
    shape: str
    label: Box


@dataclass
class Layout:
    """Where everything goes, in SVG units from the top-left corner."""

    boxes: dict  # node name -> Box
    routes: list  # [Route]
    width: float
    height: float


def _text_width(text: str, size: float) -> float:
    return len(text) * size * GLYPH_EM


def _box_lines(node: GraphNode, figures: dict | None) -> list:
    lines = [(node.name, NAME_SIZE), (_tags(node), TEXT_SIZE)]
    if figures is not None:
        lines.append((_figures_line(figures.get(node.name)), TEXT_SIZE))
    return lines


def layout(graph: FlowGraph, figures: dict | None = None) -> Layout:
    """A layered top-down layout: layers by longest path from the start
    (leaving out the back edges a depth-first walk finds), dummy points
    where an edge crosses a layer, layers ordered by barycentres, then each
    layer placed as near its neighbours as its order allows."""
    names = [n.name for n in graph.nodes]
    edges = _drawn_edges(graph)
    height = len(_box_lines(graph.nodes[0], figures)) * LINE_HEIGHT + 2 * PADDING
    size = {n.name: max(110.0, 2 * PADDING + max(_text_width(t, s) for t, s in _box_lines(n, figures)))
            for n in graph.nodes}
    loops = {e.source: e for e in edges if e.source == e.target}
    slot = {name: size[name] + (_self_loop_room(loops[name]) if name in loops else 0)
            for name in names}

    layer, back = _layering(graph.start, names, edges)
    rows, up, down = _with_dummies(names, edges, layer, back)
    for row in rows:
        for v in row:
            slot.setdefault(v, DUMMY_WIDTH)
    rows = _reduce_crossings(rows, up, down)
    centre = _positions(rows, slot, up, down)

    boxes, y = {}, MARGIN
    for row in rows:
        for v in row:
            boxes[v] = Box(centre[v] - slot[v] / 2, y, size.get(v, DUMMY_WIDTH), height)
        y += height + LAYER_GAP
    routes = _routes(edges, boxes, layer, back, rows)
    real = {k: b for k, b in boxes.items() if k in size}
    _place_labels(routes, real, edges)
    right = max([b.right for b in boxes.values()]
                + [x for r in routes for x, _ in r.points] + [r.label.right for r in routes])
    return Layout(real, routes, right + MARGIN, y - LAYER_GAP + MARGIN)


def _self_loop_room(edge: Edge) -> float:
    return 44 + _text_width(_shown(edge.label), LABEL_SIZE)


def _layering(start: str, names: list, edges: list):
    """Longest-path layers over the edges a depth-first walk from the start
    does not find going back up (those are drawn apart, as back edges)."""
    succ = {n: [e.target for e in edges if e.source == n and e.target != n] for n in names}
    state, back, finished = {}, set(), []
    for root in [start] + names:
        if root in state:
            continue
        state[root] = "open"
        stack = [(root, iter(succ[root]))]
        while stack:
            node, pending = stack[-1]
            for nxt in pending:
                if state.get(nxt) == "open":
                    back.add((node, nxt))
                elif nxt not in state:
                    state[nxt] = "open"
                    stack.append((nxt, iter(succ[nxt])))
                    break
            else:
                state[node] = "done"
                finished.append(node)
                stack.pop()
    layer = {}
    for node in reversed(finished):  # a topological order once back edges are left out
        layer.setdefault(node, 0)
        for nxt in succ[node]:
            if (node, nxt) not in back:
                layer[nxt] = max(layer.get(nxt, 0), layer[node] + 1)
    return layer, back


def _with_dummies(names, edges, layer, back):
    """Rows of node names, plus a dummy point per layer an edge crosses, so
    long edges take part in crossing reduction and pass between boxes."""
    rows = [[] for _ in range(max(layer.values()) + 1)]
    for name in names:
        rows[layer[name]].append(name)
    up = {v: [] for v in names}
    down = {v: [] for v in names}
    for edge in edges:
        s, t = edge.source, edge.target
        if s == t or (s, t) in back:
            continue
        previous = s
        for depth in range(layer[s] + 1, layer[t]):
            dummy = ("dummy", s, t, depth)
            rows[depth].append(dummy)
            up[dummy], down[dummy] = [previous], []
            down[previous].append(dummy)
            previous = dummy
        down[previous].append(t)
        up[t].append(previous)
    return rows, up, down


def _crossings(rows, down) -> int:
    total = 0
    for upper, lower in zip(rows, rows[1:]):
        where = {v: i for i, v in enumerate(lower)}
        segments = [(i, where[t]) for i, v in enumerate(upper) for t in down[v]]
        total += sum(1 for a, (i1, j1) in enumerate(segments) for i2, j2 in segments[a + 1:]
                     if (i1 - i2) * (j1 - j2) < 0)
    return total


def _reduce_crossings(rows, up, down):
    """Barycentre sweeps, down then up, keeping the best order seen.  An
    item with no neighbour on the other side keeps its place."""
    rows = [list(r) for r in rows]
    best, fewest = [list(r) for r in rows], _crossings(rows, down)
    for sweep in range(SWEEPS):
        downwards = sweep % 2 == 0
        for i in range(1, len(rows)) if downwards else range(len(rows) - 2, -1, -1):
            where = {v: k for k, v in enumerate(rows[i - 1] if downwards else rows[i + 1])}
            links = up if downwards else down

            def barycentre(item, links=links, where=where):
                position, v = item
                linked = [where[u] for u in links[v]]
                return sum(linked) / len(linked) if linked else position

            rows[i] = [v for _, v in sorted(enumerate(rows[i]), key=barycentre)]
        count = _crossings(rows, down)
        if count < fewest:
            best, fewest = [list(r) for r in rows], count
    return best


def _positions(rows, slot, up, down) -> dict:
    """Centre x of every item: each row packed in order, then pulled
    towards the mean of its neighbours, alternately above and below."""
    centre = {}
    for row in rows:
        x = 0.0
        for v in row:
            centre[v] = x + slot[v] / 2
            x += slot[v] + NODE_GAP
    for sweep in range(8):
        downwards = sweep % 2 == 0
        links = up if downwards else down
        for row in rows[1:] if downwards else rows[-2::-1]:
            wish = {}
            for v in row:
                linked = [centre[u] for u in links[v]]
                wish[v] = sum(linked) / len(linked) if linked else centre[v]
            centre.update(_place_row(row, wish, slot))
    left = min(centre[v] - slot[v] / 2 for row in rows for v in row)
    return {v: c - left + MARGIN for v, c in centre.items()}


def _place_row(row, wish, slot) -> dict:
    """Centres as near ``wish`` as the row's order allows without overlap:
    runs of items that would collide move as one block, centred on the
    mean of their wishes (pool adjacent violators)."""
    blocks = []  # [items, offsets from the block's left, sum of (wished left - offset)]
    for v in row:
        block = [[v], [0.0], wish[v] - slot[v] / 2]
        while blocks:
            previous = blocks[-1]
            width = previous[1][-1] + slot[previous[0][-1]] + NODE_GAP
            if previous[2] / len(previous[0]) + width <= block[2] / len(block[0]):
                break
            blocks.pop()
            shifted = [o + width for o in block[1]]
            total = previous[2] + sum(wish[u] - slot[u] / 2 - o for u, o in zip(block[0], shifted))
            block = [previous[0] + block[0], previous[1] + shifted, total]
        blocks.append(block)
    placed = {}
    for items, offsets, total in blocks:
        left = total / len(items)
        for v, o in zip(items, offsets):
            placed[v] = left + o + slot[v] / 2
    return placed


def _routes(edges, boxes, layer, back, rows) -> list:
    """Points of every drawn edge: down through its dummy points; a back
    edge up a gutter right of the layers it spans, along the gaps between
    rows (never across a box); a self-loop round the node's right side.
    Ports spread along a box's side in the order of where edges go."""
    routes = []
    forward = [e for e in edges if e.source != e.target and (e.source, e.target) not in back]

    def chain(edge):
        return [("dummy", edge.source, edge.target, d)
                for d in range(layer[edge.source] + 1, layer[edge.target])]

    toward = {e: boxes[(chain(e) or [e.target])[0]].cx for e in forward}
    fro = {e: boxes[(chain(e)[-1:] or [e.source])[0]].cx for e in forward}

    def port(name, edge, side):
        group = [e for e in forward if (e.source if side == "out" else e.target) == name]
        group.sort(key=(toward if side == "out" else fro).get)
        box = boxes[name]
        return box.x + box.w * (group.index(edge) + 1) / (len(group) + 1)

    for edge in forward:
        s, t = boxes[edge.source], boxes[edge.target]
        points = [(port(edge.source, edge, "out"), s.bottom)]
        for dummy in chain(edge):
            points += [(boxes[dummy].cx, boxes[dummy].y), (boxes[dummy].cx, boxes[dummy].bottom)]
        points.append((port(edge.target, edge, "in"), t.y))
        routes.append(Route(edge, points, "down", None))
    for k, edge in enumerate(e for e in edges if (e.source, e.target) in back):
        s, t = boxes[edge.source], boxes[edge.target]
        spanned = [boxes[v] for row in rows[layer[edge.target]:layer[edge.source] + 1] for v in row]
        gutter = max(b.right for b in spanned) + 24 + 12 * k
        out_y, in_y = s.bottom + 14 + 6 * (k % 3), t.y - 14 - 6 * (k % 3)
        sx, tx = s.x + s.w * 0.9, t.x + t.w * 0.9
        points = [(sx, s.bottom), (sx, out_y), (gutter, out_y), (gutter, in_y), (tx, in_y), (tx, t.y)]
        routes.append(Route(edge, points, "up", None))
    for edge in edges:
        if edge.source == edge.target:
            b = boxes[edge.source]
            points = [(b.right, b.y + b.h * 0.35), (b.right, b.y + b.h * 0.65)]
            routes.append(Route(edge, points, "self", None))
    return routes


def _bezier(p0, p1, t):
    """A point of the vertical-tangent cubic drawn between two points."""
    (x0, y0), (x1, y1) = p0, p1
    middle = (y0 + y1) / 2
    u = 1 - t
    return (u ** 3 * x0 + 3 * u * u * t * x0 + 3 * u * t * t * x1 + t ** 3 * x1,
            u ** 3 * y0 + 3 * u * u * t * middle + 3 * u * t * t * middle + t ** 3 * y1)


def _label_spots(route: Route, near_target: bool):
    """Candidate centres for a route's label, best first."""
    points = route.points
    if route.shape == "self":
        (x, y1), (_, y2) = points
        return [(x + 40, (y1 + y2) / 2, "start")]
    if route.shape == "up":
        (sx, _), (_, out_y), (gutter, _), (_, in_y), (tx, _) = points[:5]
        return ([(sx + 6 + i * 30, out_y - 6, "start") for i in range(4)]
                + [(tx + 6 + i * 30, in_y - 6, "start") for i in range(4)]
                + [(gutter + 4, (out_y + in_y) / 2, "start")])
    segments = list(zip(points, points[1:]))
    ends = [segments[-1], segments[0]] if near_target else [segments[0], segments[-1]]
    spots = [_bezier(a, b, t) for a, b in ends for t in (0.5, 0.3, 0.7, 0.15, 0.85)]
    spots += [_bezier(a, b, 0.5) for a, b in segments[1:-1]]
    return [(x, y, "middle") for x, y in spots]


def _place_labels(routes, boxes, edges):
    """Put each label on its edge where it hides no box and no other label:
    near the end of the edge with fewer neighbours, else further along."""
    out_degree, in_degree = {}, {}
    for e in edges:
        out_degree[e.source] = out_degree.get(e.source, 0) + 1
        in_degree[e.target] = in_degree.get(e.target, 0) + 1
    taken = list(boxes.values())
    for route in routes:
        edge = route.edge
        width, height = _text_width(_shown(edge.label), LABEL_SIZE), LABEL_SIZE + 3
        near_target = out_degree[edge.source] > in_degree[edge.target]
        candidates = []
        for x, y, anchor in _label_spots(route, near_target):
            left = x if anchor == "start" else x - width / 2
            candidates.append(Box(left, y - height / 2, width, height))
        route.label = next((c for c in candidates if not any(c.overlaps(o) for o in taken)),
                           candidates[0])
        taken.append(route.label)


# --- SVG: drawing -----------------------------------------------------------------

_EDGE_STROKE = {"flow": ("#555555", ""), "retry": ("#b35806", "6 4"), "escape": ("#2166ac", "2 3")}
_EDGE_MEANING = {"flow": "an exit of the node", "retry": "retries run out",
                 "escape": "escape to a human"}


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


def to_svg(graph: FlowGraph, stats=None) -> str:
    """A standalone SVG of the graph for the ops dashboard: no script, no
    external font, presentation attributes only, so it can be inlined in
    a page.  With ``stats`` each box shows reached / dropped and is filled
    on a heat scale by drop-off rate: where callers are lost.  Each node's
    ``<g>`` carries ``data-node`` and, with stats, ``data-reached``,
    ``data-dropped`` and ``data-drop-off-rate``."""
    figures = stats_by_node(stats) if stats is not None else None
    plan = layout(graph, figures)
    width = max(plan.width, 640)
    legend, legend_height = _legend(graph, figures, width)
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
        legend,
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
        tip.append(f"reason: {node.reason}")
    if node.resolves:
        tip.append("resolves the caller's question")
    if figures is not None:
        row = figures.get(node.name) or dict.fromkeys(
            ("reached", "hung_up", "transferred", "ended", "continued", "dropped"), 0)
        rate = row.get("drop_off_rate") if row["reached"] else None
        fill = heat_colour(rate)
        data += (f' data-reached="{row["reached"]}" data-dropped="{row["dropped"]}" '
                 f'data-drop-off-rate="{"" if rate is None else round(rate, 4)}"')
        tip.append(f"reached {row['reached']}: hung up {row['hung_up']}, transferred "
                   f"{row['transferred']}, ended {row['ended']}, continued {row['continued']}")
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
              'stroke="#1a7f37"/>', "resolves the caller's question")]
    for kind, (colour, dashes) in _EDGE_STROKE.items():
        dash = f' stroke-dasharray="{dashes}"' if dashes else ""
        items.append((f'<path d="M0,-4 H24" stroke="{colour}" stroke-width="1.3"{dash}/>',
                       _EDGE_MEANING[kind]))
    note = _guard_note(graph)
    if note:
        items.append(('<text x="12" y="0" text-anchor="middle" font-size="13">↻</text>',
                      note.removeprefix("↻ ")))
    if figures is not None:
        items.append(("", "drop-off rate (hung up or transferred ÷ reached):"))
        for rate in (0, 0.25, 0.5, 0.75, 1):
            items.append((f'<rect x="0" y="-10" width="24" height="13" fill="{heat_colour(rate)}" '
                          'stroke="#999999" stroke-width="0.5"/>', f"{rate:.0%}"))
        items.append((f'<rect x="0" y="-10" width="24" height="13" fill="{NOT_REACHED}" '
                      'stroke="#999999" stroke-width="0.5"/>', "not reached"))
        unknown = sorted(set(figures) - {n.name for n in graph.nodes})
        if unknown:
            shown = ", ".join(unknown[:5]) + (", …" if len(unknown) > 5 else "")
            items.append(("", f"figures for nodes not in this version: {shown}"))
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


RENDERERS = {"dot": to_dot, "mermaid": to_mermaid, "svg": to_svg}


def render(graph: FlowGraph, fmt: str, stats=None) -> str:
    """The graph in ``fmt`` (one of :data:`FORMATS`)."""
    try:
        renderer = RENDERERS[fmt]
    except KeyError:
        raise ValueError(f"unknown graph format {fmt!r}; expected one of {', '.join(FORMATS)}") from None
    return renderer(graph, stats)
