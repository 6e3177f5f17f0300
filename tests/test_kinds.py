"""The node-kind registry: every kind declared once, and the loader, lint,
the graph and the engine all reading the same declaration."""

import re
import textwrap
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from prompt_support import add_server_prompts

from ivr.engine.gathering import GATHERING
from ivr.engine.step import ENTER, EVENT_TYPES, INPUT_EVENTS, WAITS, step
from ivr.flow.kinds import COMMON_FIELDS, KINDS, NODE_KINDS, RETRY_FIELDS, targets, waiting_states
from ivr.flow.loader import check_flow, load_flow
from ivr.reports.graph import build_graph

ROOT = Path(__file__).parent.parent
FIXTURES = Path(__file__).parent / "fixtures"
TUESDAY_10AM = datetime(2026, 11, 24, 10, 0, tzinfo=ZoneInfo("Europe/Paris"))

FLOW = """\
flow: probe
languages: [fr-FR, en-US]
start: bye
human: agent
reasons:
  order_status: Where is my order
nodes:
  bye: {kind: hangup, say: hello, reason: order_status}
  agent: {kind: transfer, to: {queue: support}}
  probe: {kind: KIND, zzz_unknown: 1}
"""


@pytest.fixture(scope="module")
def shop():
    return load_flow(FIXTURES / "shop.yaml", FIXTURES / "prompts")


@pytest.fixture(scope="module")
def demo():
    return load_flow(ROOT / "flows" / "post_sale.yaml", ROOT / "prompts")


@pytest.fixture(scope="module")
def prompts(tmp_path_factory):
    root = tmp_path_factory.mktemp("kinds") / "prompts"
    for lang in ("fr-FR", "en-US"):
        (root / lang).mkdir(parents=True)
        (root / lang / "hello.j2").write_text("Bonjour")
    add_server_prompts(root)
    return root


# --- one entry per kind -------------------------------------------------------------


def test_every_kind_the_docs_describe_has_one_entry_in_the_registry():
    section = (ROOT / "docs" / "flow-language.md").read_text(encoding="utf-8")
    section = section[section.index("## 4. Node kinds"):section.index("\n## 5.")]
    assert tuple(re.findall(r"^### (\w+)$", section, re.M)) == NODE_KINDS == tuple(KINDS)
    assert all(KINDS[name].name == name for name in KINDS)


def test_the_engine_enters_every_declared_kind_and_no_other():
    assert set(ENTER) == set(KINDS)


def test_a_kind_listens_exactly_when_it_has_retry_policies():
    for kind in KINDS.values():
        assert kind.gathers == all(f in kind.fields for f in RETRY_FIELDS), kind.name


def test_a_kind_that_reaches_a_human_may_stand_for_the_human():
    reaching = {k.name for k in KINDS.values() if k.reaches_human}
    standing = {k.name for k in KINDS.values() if k.stands_for_human}
    assert reaching == {"transfer", "callback", "record"}
    assert standing == reaching | {"hours"}  # hours picks between nodes that reach one


def test_required_fields_are_fields_of_the_kind():
    for kind in KINDS.values():
        assert set(kind.required) <= set(kind.fields), kind.name
        assert set(kind.defaults) <= set(kind.fields), kind.name


# --- the loader reads the registry ------------------------------------------------


@pytest.mark.parametrize("kind", NODE_KINDS)
def test_the_loader_takes_exactly_the_fields_the_registry_declares(tmp_path, prompts, kind):
    path = tmp_path / "flow.yaml"
    path.write_text(FLOW.replace("KIND", kind))
    found = check_flow(path, prompts)
    expected = ", ".join(sorted({**COMMON_FIELDS, **KINDS[kind].fields}))
    assert [p.message for p in found if p.code == "unknown-field"] == [
        f"unknown field 'zzz_unknown'; expected one of {expected}"]
    probe_line = next(i for i, line in enumerate(FLOW.splitlines(), 1) if "probe:" in line)
    missing = [p.message for p in found if p.code == "missing-field" and p.line == probe_line]
    assert sorted(missing) == sorted(f"missing field {name!r}" for name in KINDS[kind].required)


def test_an_unknown_kind_lists_the_registry_kinds(tmp_path, prompts):
    path = tmp_path / "flow.yaml"
    path.write_text(FLOW.replace("KIND", "fax"))
    [problem] = [p for p in check_flow(path, prompts) if p.code == "unknown-kind"]
    assert problem.message == f"node 'probe' has unknown kind 'fax'; expected one of {', '.join(NODE_KINDS)}"


def test_the_variables_a_kind_sets_are_known_to_prompts(tmp_path, prompts):
    """A record node sets ``recording_url``: a prompt after it may read it."""
    flow = textwrap.dedent("""\
        flow: probe
        languages: [fr-FR, en-US]
        start: voicemail
        human: voicemail
        reasons:
          order_status: Where is my order
        nodes:
          voicemail: {kind: record, say: hello, next: bye, reason: order_status}
          bye: {kind: hangup, say: thanks}
        """)
    for lang in ("fr-FR", "en-US"):
        (prompts / lang / "thanks.j2").write_text("{{ recording_url }}")
    path = tmp_path / "flow.yaml"
    path.write_text(flow)
    assert KINDS["record"].sets({}) == {"recording_url"}
    assert [p for p in check_flow(path, prompts) if p.code == "unknown-variable"] == []
    path.write_text(flow.replace("kind: record, say: hello, next: bye",
                                 "kind: say, say: hello, next: bye"))
    assert {p.message for p in check_flow(path, prompts) if p.code == "unknown-variable"} == {
        "unknown variable 'recording_url'"}


# --- the graph reads the registry ----------------------------------------------


@pytest.mark.parametrize("which", ["demo", "shop"])
def test_the_graph_and_lint_see_the_same_ways_out(which, request):
    flow = request.getfixturevalue(which)
    graph = build_graph(flow)
    for node in flow.nodes.values():
        drawn = {e.target for e in graph.exits(node.name) if e.kind in ("flow", "retry")}
        # A retry with no target of its own goes to the human: drawn, not declared.
        implicit = {flow.human} if KINDS[node.kind].gathers else set()
        assert set(targets(node)) <= drawn <= set(targets(node)) | implicit, node.name


# --- the engine's waiting states --------------------------------------------------


def test_the_engine_handles_every_declared_waiting_state_and_no_other():
    assert set(WAITS) == set(waiting_states())
    assert set(GATHERING) == set(waiting_states(gathering=True))
    for waiting in GATHERING:
        assert set(WAITS[waiting]) == set(INPUT_EVENTS), waiting
    for waiting in waiting_states(gathering=False):
        assert len(WAITS[waiting]) == 1 and not set(WAITS[waiting]) & set(INPUT_EVENTS), waiting


def _waiting_at_menu(flow):
    state, _actions, _events = step(flow, None, {
        "type": "start", "call_id": "c1", "caller": "+33612345678", "called": "+33100000000",
        "now": TUESDAY_10AM})
    assert (state["node"], state["waiting"]) == ("menu", "gather")
    return state


@pytest.mark.parametrize("waiting", sorted(WAITS))
def test_an_event_a_waiting_state_does_not_accept_sends_the_call_to_a_human(shop, waiting):
    state = {**_waiting_at_menu(shop), "waiting": waiting}
    for event_type in sorted(EVENT_TYPES - {"hangup", "error"} - set(WAITS[waiting])):
        event = {"type": event_type, "now": TUESDAY_10AM, "request_id": state["request"]}
        after, _actions, events = step(shop, state, event)
        if event_type in INPUT_EVENTS:
            message = f"input arrived while node 'menu' waits for {waiting!r}"
        else:
            message = f"{event_type} arrived while the call waits for {waiting!r}"
        assert (events[0]["branch"], events[0]["detail"]) == ("failsafe", f"ValueError: {message}")
        assert after["outcome"] == "failed"


def test_an_unknown_event_type_is_refused_whatever_the_call_waits_for(shop):
    state = _waiting_at_menu(shop)
    _after, _actions, events = step(shop, state, {"type": "fax", "now": TUESDAY_10AM})
    assert events[0]["detail"] == "ValueError: unknown event type 'fax'"
