"""The flow graph: its edges, and its DOT, Mermaid and SVG drawings."""

import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from itertools import combinations
from pathlib import Path

import pytest
from click.testing import CliRunner

from ivr.engine.state import call_summary
from ivr.flow.loader import load_flow
from ivr.reports.graph import Edge, FlowGraph, GraphNode, StatsError, build_graph, heat_colour, luminance, stats_by_node
from ivr.reports.graph_layout import layout
from ivr.reports.graph_svg import to_svg
from ivr.reports.graph_text import mermaid_id, to_dot, to_mermaid
from ivr.sim.call import SimCall
from ivr.sim.cli import main
from ivr.sim.scenarios import demo_lookups, local_time
from ivr.store.sqlite.store import CallStore

ROOT = Path(__file__).parent.parent
FIXTURES = Path(__file__).parent / "fixtures"
POST_SALE = ROOT / "flows" / "post_sale.yaml"
SHOP = FIXTURES / "shop.yaml"
SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def demo():
    return load_flow(POST_SALE, ROOT / "prompts")


@pytest.fixture(scope="module")
def shop():
    return load_flow(SHOP, FIXTURES / "prompts")


def exits(graph, name, kinds=("flow", "retry", "escape")):
    return {(e.label, e.target, e.kind) for e in graph.exits(name) if e.kind in kinds}


# --- the graph ----------------------------------------------------------------------


@pytest.mark.parametrize("which", ["demo", "shop"])
def test_every_edge_joins_two_nodes_of_the_flow(which, request):
    flow = request.getfixturevalue(which)
    graph = build_graph(flow)
    names = [n.name for n in graph.nodes]
    assert names == list(flow.nodes)
    for edge in graph.edges:
        assert edge.source in flow.nodes and edge.target in flow.nodes, edge
        assert edge.label and edge.kind in ("flow", "retry", "escape", "guard")


def test_every_node_kind_of_the_fixture_has_its_exits(shop):
    graph = build_graph(shop)
    asked = {("no input", "agent", "retry"), ("no match", "agent", "retry"),
             ("escape 0", "agent", "escape")}
    assert exits(graph, "hello") == {("next", "menu", "flow")}
    assert exits(graph, "menu") == {("1", "ask_number", "flow"), ("2", "hours", "flow"),
                                    ("7", "loop", "flow"), ("9", "menu", "flow")} | asked
    assert exits(graph, "loop") == {("next", "menu", "flow")}
    assert exits(graph, "ask_number") == {("confirmed", "find", "flow")} | asked
    assert exits(graph, "find") == {("found", "answer", "flow"), ("not found", "agent", "flow"),
                                    ("error", "agent", "flow")}
    assert exits(graph, "answer") == {("…== 'delayed_carrier'", "late", "flow"),
                                      ("else", "status", "flow")}
    assert graph.exits("answer")[0].detail == "order.status == 'delayed_carrier'"
    assert exits(graph, "hours") == {("open", "agent", "flow"), ("closed", "callback", "flow")}
    assert exits(graph, "agent") == {("no answer", "voicemail", "flow")}
    assert exits(graph, "voicemail") == {("next", "bye", "flow")}
    assert exits(graph, "callback") == {("next", "bye", "flow")} | asked
    assert graph.exits("bye") == []


def test_retries_go_to_their_own_target_else_to_the_human(demo):
    graph = build_graph(demo)
    assert exits(graph, "closed_menu", ("retry",)) == {
        ("no input", "goodbye_closed", "retry"), ("no match", "goodbye_closed", "retry")}
    assert exits(graph, "anything_else", ("retry",)) == {
        ("no input", "goodbye", "retry"), ("no match", "agent_hours", "retry")}


def test_the_escape_leaves_every_node_that_listens_and_no_other(demo):
    graph = build_graph(demo)
    listening = {n.name for n in graph.nodes if n.kind in ("menu", "input", "callback")}
    escaping = {e.source for e in graph.edges if e.kind == "escape"}
    assert listening == escaping
    assert {"main_menu", "confirm_order", "ask_order_number", "status_delivered",
            "closed_menu", "callback_slot", "anything_else", "callback", "ask_reason"} == listening
    assert all(e.label == "escape 0" and e.target == "agent_hours"
               for e in graph.edges if e.kind == "escape")


def test_a_look_up_has_a_many_exit_only_when_the_flow_gives_one(demo):
    graph = build_graph(demo)
    assert ("many", "several_orders", "flow") in exits(graph, "find_by_phone")
    assert [e.label for e in graph.exits("find_by_number") if e.kind == "flow"] == [
        "found", "not found", "error"]


def test_the_loop_guard_leaves_the_nodes_a_call_can_come_back_to(shop, demo):
    graph = build_graph(shop)
    guarded = {e.source for e in graph.edges if e.kind == "guard"}
    assert guarded == {"menu", "loop"}
    assert all(e.target == "agent" and e.label == "loop guard"
               for e in graph.edges if e.kind == "guard")
    assert {n.name for n in graph.nodes if n.guarded} == guarded
    demo_graph = build_graph(demo)
    demo_guarded = {e.source for e in demo_graph.edges if e.kind == "guard"}
    assert {"main_menu", "ask_order_number", "anything_else", "closed_menu"} <= demo_guarded
    # Nothing leads back from a hang-up.  (A transfer nobody answers offers a
    # callback, from where the escape leads to the agents again: they are guarded.)
    assert not demo_guarded & {"welcome", "goodbye", "voicemail_done"}


MINI = """\
flow: mini
languages: [fr-FR, en-US]
start: hello
human: agent
escape: {keys: ["0", "*"], to: voicemail}
reasons: {order_status: Where is my order}
nodes:
  hello: {kind: say, say: hello, next: menu}
  menu:
    kind: menu
    say: menu
    choices:
      - {words: {fr-FR: [suivi, colis], en-US: [track]}, reason: order_status, to: ask}
    no_match: {to: bye}
  ask: {kind: input, say: ask_number, save_as: number, next: find}
  find: {kind: lookup, find: orders_by_phone, found: bye, many: bye, not_found: agent, error: agent}
  agent: {kind: transfer, say: transfer, to: {queue: support}}
  voicemail: {kind: record, say: bye}
  bye: {kind: hangup, say: bye}
"""


def test_words_only_choices_entries_without_read_back_and_a_custom_escape(tmp_path):
    path = tmp_path / "mini.yaml"
    path.write_text(MINI)
    graph = build_graph(load_flow(path, FIXTURES / "prompts"))
    assert exits(graph, "menu") == {
        ("suivi", "ask", "flow"), ("no input", "agent", "retry"), ("no match", "bye", "retry"),
        ("escape 0 *", "voicemail", "escape")}
    assert graph.exits("menu")[0].detail == "suivi, colis, track"
    assert ("entered", "find", "flow") in exits(graph, "ask")
    assert exits(graph, "find") == {("found", "bye", "flow"), ("many", "bye", "flow"),
                                    ("not found", "agent", "flow"), ("error", "agent", "flow")}
    assert graph.exits("agent") == graph.exits("voicemail") == []
    assert not [e for e in graph.edges if e.kind == "guard"]


# --- funnel figures -------------------------------------------------------------------


def test_funnel_rows_and_dicts_by_node_give_the_same_figures():
    rows = [{"node": "menu", "kind": "menu", "reached": 10, "hung_up": 2, "transferred": 3,
             "ended": 0, "continued": 5, "dropped": 5, "drop_off_rate": 0.5}]
    assert stats_by_node(rows) == stats_by_node({"menu": rows[0]})
    assert stats_by_node(rows)["menu"]["dropped"] == 5


def test_figures_left_out_are_derived():
    figures = stats_by_node({"menu": {"reached": 8, "hung_up": 1, "transferred": 1, "ended": 2}})
    assert figures["menu"]["dropped"] == 2
    assert figures["menu"]["continued"] == 4
    assert figures["menu"]["drop_off_rate"] == 0.25


def test_figures_without_a_node_or_a_count_are_refused():
    with pytest.raises(StatsError, match="has no 'node'"):
        stats_by_node([{"reached": 3}])
    with pytest.raises(StatsError, match="node 'menu' have no 'reached' count"):
        stats_by_node({"menu": {"dropped": 3}})


def test_the_heat_scale_darkens_as_the_drop_off_rate_rises():
    rates = [0, 0.1, 0.25, 0.4, 0.5, 0.6, 0.75, 0.9, 1]
    shades = [luminance(heat_colour(r)) for r in rates]
    assert shades == sorted(shades, reverse=True) and len(set(shades)) == len(shades)
    assert heat_colour(None) != heat_colour(0)
    assert heat_colour(2) == heat_colour(1) and heat_colour(-1) == heat_colour(0)


# --- DOT ----------------------------------------------------------------------------

_DOT_TOKEN = re.compile(r'\s*(?:(->)|("(?:[^"\\]|\\.)*")|([A-Za-z_][A-Za-z0-9_.]*|-?[0-9.]+)|([{}\[\];=,])|(//[^\n]*))')


def parse_dot(text):
    """A small parser for the DOT subset the renderer writes: returns the
    nodes with their attributes and the edges."""
    tokens, at = [], 0
    while text[at:].strip():
        match = _DOT_TOKEN.match(text, at)
        assert match, f"unexpected DOT text at {text[at:at + 40]!r}"
        at = match.end()
        if match.group(5) is None:
            tokens.append(next(g for g in match.groups() if g is not None))

    def value(token):
        if token.startswith('"'):
            return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), token[1:-1])
        return token

    assert tokens[0] == "digraph" and tokens[2] == "{" and tokens[-1] == "}", tokens[:3]
    nodes, edges, i = {}, [], 3
    while i < len(tokens) - 1:
        first = tokens[i]
        if tokens[i + 1] == "->":
            head, tail, i = value(first), value(tokens[i + 2]), i + 3
        else:
            head, tail, i = value(first), None, i + 1
        attrs = {}
        if tokens[i] == "[":
            i += 1
            while tokens[i] != "]":
                assert tokens[i + 1] == "=", tokens[i:i + 3]
                attrs[tokens[i]] = value(tokens[i + 2])
                i += 3
                if tokens[i] == ",":
                    i += 1
            i += 1
        assert tokens[i] == ";", tokens[i - 3:i + 1]
        i += 1
        if tail is not None:
            edges.append((head, tail, attrs))
        elif head not in ("graph", "node", "edge"):
            assert head not in nodes, f"node {head} declared twice"
            nodes[head] = attrs
    return nodes, edges


@pytest.mark.parametrize("which", ["demo", "shop"])
def test_dot_declares_every_node_once_and_draws_every_edge(which, request):
    graph = build_graph(request.getfixturevalue(which))
    nodes, edges = parse_dot(to_dot(graph))
    assert list(nodes) == [n.name for n in graph.nodes]
    drawn = {(s, t) for s, t, _ in edges}
    assert drawn == {(e.source, e.target) for e in graph.edges if e.kind != "guard"}
    assert len(edges) == len(drawn)  # parallel exits merge into one labelled edge
    assert nodes[graph.start]["label"].startswith(f"{graph.start}\n")
    assert all(nodes[n.name].get("peripheries") == "2" for n in graph.nodes if n.resolves)
    assert nodes.get("agent_hours", nodes.get("agent"))["shape"] in ("trapezium", "box3d")


def test_dot_merges_the_labels_of_parallel_exits(demo):
    _, edges = parse_dot(to_dot(build_graph(demo)))
    labels = {(s, t): a["label"] for s, t, a in edges}
    assert labels["main_menu", "status_question"] == "1, 3"
    assert labels["main_menu", "which_order"] == "2, 4"
    assert labels["main_menu", "agent_hours"] == "no input, no match, escape 0"


def test_dot_fills_nodes_by_their_drop_off_rate(shop):
    dot = to_dot(build_graph(shop), {"menu": {"reached": 10, "hung_up": 6, "transferred": 2},
                                     "hello": {"reached": 10}})
    nodes, _ = parse_dot(dot)
    assert nodes["menu"]["fillcolor"] == heat_colour(0.8)
    assert nodes["hello"]["fillcolor"] == heat_colour(0)
    assert nodes["bye"]["fillcolor"] == heat_colour(None)
    assert nodes["menu"]["label"].endswith("reached 10 · dropped 8 (80%)")
    assert nodes["bye"]["label"].endswith("not reached")


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz 'dot' is not installed")
def test_graphviz_reads_the_dot_of_the_demo_flow(demo):
    dot = to_dot(build_graph(demo), {"main_menu": {"reached": 3, "hung_up": 1}})
    result = subprocess.run(["dot", "-Tsvg"], input=dot.encode(), capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr.decode()
    ET.fromstring(result.stdout)


# --- Mermaid ------------------------------------------------------------------------

_MERMAID_NODE = re.compile(r'^  (\w+)(\[\(|\[\[|\(\[|\[/|\{\{|[\[({>])("[^"]*")(\)\]|\]\]|\]\)|/\]|\\\]|\}\}|[\])}])$')
_MERMAID_EDGE = re.compile(r'^  (\w+) (-->|-\.->)(\|"[^"]*"\|)? (\w+)$')


@pytest.mark.parametrize("which", ["demo", "shop"])
def test_mermaid_ids_are_valid_and_every_line_parses(which, request):
    graph = build_graph(request.getfixturevalue(which))
    lines = to_mermaid(graph, {"menu": {"reached": 1}}).splitlines()
    assert lines[0] == "flowchart TD"
    declared, edges = [], []
    for line in lines[1:]:
        if node := _MERMAID_NODE.match(line):
            declared.append(node.group(1))
        elif edge := _MERMAID_EDGE.match(line):
            edges.append((edge.group(1), edge.group(4)))
        else:
            assert re.match(r"^  (%%.*|classDef \w+ .+|class [\w,]+ \w+|style \w+ fill:#[0-9a-f]{6},color:#[0-9a-f]{3})$",
                            line), line
    assert declared == [mermaid_id(n.name) for n in graph.nodes]
    assert len(set(declared)) == len(declared)
    assert all(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", i) and i != "end" for i in declared)
    assert {s for s, _ in edges} | {t for _, t in edges} <= set(declared)


def test_mermaid_ids_cannot_be_keywords_or_start_an_arrow():
    assert mermaid_id("end") == "n_end"
    assert mermaid_id("o_menu") == "n_o_menu"
    assert mermaid_id("a-b c") == "n_a_b_c"


# --- SVG ----------------------------------------------------------------------------


def node_groups(svg_text):
    root = ET.fromstring(svg_text)
    return root, {g.get("data-node"): g for g in root.iter(f"{SVG}g") if g.get("data-node")}


def box_of(group):
    rect = group.find(f"{SVG}rect")
    return tuple(float(rect.get(k)) for k in ("x", "y", "width", "height"))


@pytest.mark.parametrize("which", ["demo", "shop"])
@pytest.mark.parametrize("with_stats", [False, True])
def test_the_svg_is_standalone_xml_with_each_node_once(which, with_stats, request):
    graph = build_graph(request.getfixturevalue(which))
    svg = to_svg(graph, {graph.start: {"reached": 5}} if with_stats else None)
    root, groups = node_groups(svg)
    assert root.tag == f"{SVG}svg"
    names = [g.get("data-node") for g in root.iter(f"{SVG}g") if g.get("data-node")]
    assert names == [n.name for n in graph.nodes]
    assert not list(root.iter(f"{SVG}script")) and not list(root.iter(f"{SVG}style"))
    assert "http" not in svg.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "@font-face" not in svg and "<foreignObject" not in svg
    assert ("data-reached" in svg) is with_stats


@pytest.mark.parametrize("which", ["demo", "shop"])
@pytest.mark.parametrize("with_stats", [False, True])
def test_no_two_boxes_overlap(which, with_stats, request):
    graph = build_graph(request.getfixturevalue(which))
    _, groups = node_groups(to_svg(graph, {graph.start: {"reached": 5}} if with_stats else None))
    boxes = {name: box_of(g) for name, g in groups.items()}
    for (a, (ax, ay, aw, ah)), (b, (bx, by, bw, bh)) in combinations(boxes.items(), 2):
        apart = ax + aw <= bx or bx + bw <= ax or ay + ah <= by or by + bh <= ay
        assert apart, f"{a} and {b} overlap"


@pytest.mark.parametrize("which", ["demo", "shop"])
def test_the_layout_runs_top_down_from_the_start(which, request):
    graph = build_graph(request.getfixturevalue(which))
    plan = layout(graph)
    tops = {name: box.y for name, box in plan.boxes.items()}
    assert tops[graph.start] == min(tops.values())
    reach = {n.name: _reachable(graph, n.name) for n in graph.nodes}
    for edge in graph.edges:
        if edge.kind != "guard" and edge.source not in reach[edge.target]:
            assert tops[edge.target] > tops[edge.source], edge  # only loops go back up
    assert len(plan.routes) == len({(e.source, e.target) for e in graph.edges if e.kind != "guard"})


def _reachable(graph, start):
    seen, pending = set(), [start]
    while pending:
        for edge in graph.exits(pending.pop()):
            if edge.kind != "guard" and edge.target not in seen:
                seen.add(edge.target)
                pending.append(edge.target)
    return seen


def test_stats_annotate_the_right_nodes(demo):
    graph = build_graph(demo)
    rows = [
        {"node": "main_menu", "kind": "menu", "reached": 40, "hung_up": 6, "transferred": 4,
         "ended": 0, "continued": 30, "dropped": 10, "drop_off_rate": 0.25},
        {"node": "goodbye", "kind": "hangup", "reached": 12, "hung_up": 0, "transferred": 0,
         "ended": 12, "continued": 0, "dropped": 0, "drop_off_rate": 0.0},
    ]
    _, groups = node_groups(to_svg(graph, rows))
    assert groups["main_menu"].get("data-reached") == "40"
    assert groups["main_menu"].get("data-dropped") == "10"
    assert groups["main_menu"].get("data-drop-off-rate") == "0.25"
    assert groups["goodbye"].get("data-reached") == "12"
    assert groups["goodbye"].get("data-dropped") == "0"
    assert groups["several_orders"].get("data-reached") == "0"
    texts = ["".join(t.itertext()) for t in groups["main_menu"].iter(f"{SVG}text")]
    assert "reached 40 · dropped 10 (25%)" in texts
    assert "not reached" in ["".join(t.itertext()) for t in groups["agent"].iter(f"{SVG}text")]


def test_the_fill_of_a_box_darkens_with_its_drop_off_rate(demo):
    graph = build_graph(demo)
    rates = {"welcome": 0.0, "main_menu": 0.1, "find_by_phone": 0.3, "confirm_order": 0.55,
             "ask_order_number": 0.8, "agent_hours": 1.0}
    stats = {name: {"reached": 100, "hung_up": round(rate * 100)} for name, rate in rates.items()}
    _, groups = node_groups(to_svg(graph, stats))
    fills = [groups[name].find(f"{SVG}rect").get("fill") for name in rates]
    shades = [luminance(f) for f in fills]
    assert shades == sorted(shades, reverse=True) and len(set(shades)) == len(shades)
    assert groups["goodbye"].find(f"{SVG}rect").get("fill") == heat_colour(None)


def test_figures_of_nodes_the_flow_no_longer_has_are_named_in_the_legend(shop):
    svg = to_svg(build_graph(shop), {"menu": {"reached": 3}, "old_menu": {"reached": 2}})
    root, groups = node_groups(svg)
    assert "old_menu" not in groups
    legend = next(g for g in root.iter(f"{SVG}g") if g.get("class") == "legend")
    assert "figures for nodes not in this version: old_menu" in "".join(legend.itertext())


ODD = 'a<b>&"c\'d'


def odd_graph():
    nodes = (GraphNode(ODD, "say", start=True), GraphNode("x&y", "branch"),
             GraphNode("</text><script>alert(1)</script>", "hangup", resolves=True),
             GraphNode("agent", "transfer", human=True))
    edges = (Edge(ODD, "x&y", "next"),
             Edge("x&y", "</text><script>alert(1)</script>", 'n < 2 & m == "#1"', detail="full"),
             Edge("x&y", "agent", "else"))
    return FlowGraph("odd", "v<1>", ODD, "agent", nodes, edges)


def test_svg_escapes_every_text():
    svg = to_svg(odd_graph(), {ODD: {"reached": 1}})
    root, groups = node_groups(svg)
    assert set(groups) == {ODD, "x&y", "</text><script>alert(1)</script>", "agent"}
    assert not list(root.iter(f"{SVG}script"))
    texts = ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]
    assert 'n < 2 & m == "#1"' in texts and ODD in texts
    assert root.find(f"{SVG}title").text == "odd · version v<1>"


def test_dot_escapes_every_text():
    nodes, edges = parse_dot(to_dot(odd_graph()))
    assert set(nodes) == {ODD, "x&y", "</text><script>alert(1)</script>", "agent"}
    assert ("x&y", "</text><script>alert(1)</script>") in {(s, t) for s, t, _ in edges}
    assert {a["label"] for _, _, a in edges} >= {'n < 2 & m == "#1"'}


def test_mermaid_writes_special_characters_as_entity_codes():
    text = to_mermaid(odd_graph())
    assert '"n #60; 2 #38; m == #34;#35;1#34;"' in text
    for line in text.splitlines()[1:]:
        if not line.startswith("  %%"):
            quoted = re.findall(r'"([^"]*)"', line.replace("<br/>", ""))
            assert not any(re.search(r"[<>&]", q) for q in quoted), line


def test_mermaid_ids_stay_unique_when_names_fold_alike():
    nodes = (GraphNode("x&y", "say", start=True), GraphNode("x_y", "hangup"))
    graph = FlowGraph("f", "v", "x&y", "x_y", nodes, (Edge("x&y", "x_y", "next"),))
    lines = to_mermaid(graph).splitlines()
    assert '  n_x_y["x#38;y<br/>say · start"]' in lines
    assert '  n_x_y_2(["x_y<br/>hangup"])' in lines
    assert "  n_x_y --> n_x_y_2" in lines


# --- ivr-sim graph ----------------------------------------------------------------------


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_graph_command_has_help_with_an_example():
    result = invoke("graph", "--help")
    assert result.exit_code == 0
    assert "Example:" in result.output
    assert "ivr-sim graph flows/post_sale.yaml" in result.output


def test_graph_command_writes_dot_by_default_and_mermaid_on_request():
    dot = invoke("graph", POST_SALE)
    assert dot.exit_code == 0, dot.output
    assert set(parse_dot(dot.output)[0]) == set(load_flow(POST_SALE, ROOT / "prompts").nodes)
    mermaid = invoke("graph", POST_SALE, "--format", "mermaid")
    assert mermaid.output.startswith("flowchart TD\n")


def test_graph_command_picks_the_format_from_the_output_suffix(tmp_path):
    out = tmp_path / "flow.svg"
    result = invoke("graph", SHOP, "--prompts", FIXTURES / "prompts", "-o", out)
    assert result.exit_code == 0, result.output
    _, groups = node_groups(out.read_text(encoding="utf-8"))
    assert "menu" in groups


def test_graph_command_options_of_the_call_log_need_stats():
    result = CliRunner().invoke(main, ["graph", str(POST_SALE), "--since", "2026-11-01"])
    assert result.exit_code == 2
    assert "--since, --until and --version need --stats" in result.output


def test_graph_command_reports_a_missing_call_log(tmp_path):
    result = CliRunner().invoke(main, ["graph", str(POST_SALE), "--stats", str(tmp_path / "no.db")])
    assert result.exit_code == 1
    assert "no such file" in result.output


def _play_calls(path, flow):
    """Three ended calls at 10:00 on a Tuesday (support open): one presses
    0 at the main menu, says why and is put through, one hangs up there,
    one hears its order was cancelled and says goodbye."""
    at = local_time("2026-11-24 10:00", flow.timezone)
    store = CallStore.open(path)
    plays = [
        ("+33700000000", lambda sim: [sim.press("0"), sim.press("1"), sim.dial_result("completed")]),
        ("+33700000000", lambda sim: [sim.hangup()]),
        ("+33639980014", lambda sim: [sim.press("1"), sim.press("1"), sim.press("2")]),
    ]
    for number, (caller, play) in enumerate(plays):
        sim = SimCall(flow, demo_lookups(at), caller=caller, at=at, call_id=f"CA{number:032d}")
        turns = [sim.start()] + play(sim)
        assert sim.ended
        for turn in turns:
            store.save_turn(sim.call_id, turn.number, sim.state, turn.twiml, turn.node_events,
                            call_summary(sim.state), caller)
    store.close()


def test_graph_command_annotates_the_nodes_with_the_funnel_of_the_call_log(tmp_path, demo):
    db_path = tmp_path / "ivr.db"
    _play_calls(db_path, demo)
    out = tmp_path / "funnel.svg"
    result = invoke("graph", POST_SALE, "--stats", db_path, "--since", "2026-11-24", "-o", out)
    assert result.exit_code == 0, result.output
    _, groups = node_groups(out.read_text(encoding="utf-8"))
    figures = {name: (g.get("data-reached"), g.get("data-dropped")) for name, g in groups.items()}
    assert figures["welcome"] == ("3", "0")
    assert figures["main_menu"] == ("3", "2")  # one hung up, one pressed 0
    assert figures["confirm_order"] == ("1", "0")
    assert figures["agent"] == ("1", "0")  # counted as lost at the menu, where it asked
    assert figures["goodbye"] == ("1", "0")
    assert figures["several_orders"] == ("0", "0")
    later = CliRunner().invoke(main, ["graph", str(POST_SALE), "--stats", str(db_path),
                                      "--since", "2026-11-25"])
    assert later.exit_code == 1
    assert "no calls" in later.output


def test_an_sms_node_leads_on_whether_the_text_was_sent_or_not():
    demo = load_flow(ROOT / "flows" / "post_sale.yaml", ROOT / "prompts")
    graph = build_graph(demo)
    sms = [n for n in demo.nodes.values() if n.kind == "sms"]
    assert sms
    for node in sms:
        exits = {(e.label, e.target) for e in graph.edges if e.source == node.name}
        assert ("sent", node.next) in exits
        assert ("failed", node.opts.get("failed") or node.next) in exits
