"""Laying the flow graph out for SVG: nodes in layers from the start, fewer
crossings, routes and label spots, with no Graphviz needed."""

from __future__ import annotations

from dataclasses import dataclass

from ivr.reports.graph import Edge, FlowGraph, GraphNode, _drawn_edges, _figures_line, _shown, _tags

NAME_SIZE, TEXT_SIZE, LABEL_SIZE = 13, 11, 10
FONT = "DejaVu Sans, Verdana, Arial, sans-serif"


#: Average glyph width in em, a little generous so text stays inside its box.
GLYPH_EM = 0.62


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
