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

from ivr.flow.kinds import KINDS, RETRY_FIELDS
from ivr.flow.model import Flow, Node
from ivr.i18n import N_, _

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
    """The edges out of ``node``: the exits its kind declares, then, when
    it listens to the caller, its exhausted retries and the escape."""
    name, kind = node.name, KINDS[node.kind]
    for way_out in kind.exits(node, flow.default_language):
        label = _shorten(way_out.label) if way_out.condition else way_out.label
        yield Edge(name, way_out.target, label, detail=way_out.detail)
    if kind.gathers:
        for field in RETRY_FIELDS:
            yield Edge(name, node.opts[field].to or flow.human, field.replace("_", " "), "retry")
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
    :func:`ivr.reports.analytics.funnel` or a dict already keyed by node.  Missing
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
    """What a node's box says of its calls, in the operator's language."""
    if not figures or not figures["reached"]:
        return _("not reached")
    rate = figures["drop_off_rate"] or 0
    return _("reached {reached} · dropped {dropped} ({rate})").format(
        reached=figures["reached"], dropped=figures["dropped"], rate=f"{rate:.0%}")


def _tags(node: GraphNode) -> str:
    """A node's kind (its code) and marks (in the operator's language)."""
    marks = [_(t) for t, on in ((N_("start"), node.start), (N_("human"), node.human),
                                (N_("resolves"), node.resolves), ("↻", node.guarded)) if on]
    return " · ".join([node.kind] + marks)


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
        return "↻ " + _("on a loop: the loop guard may send the call to {human}").format(human=graph.human)
    return None
