"""Templates cannot hold the reactor, and a template that fails is never loaded.

Bounds of the sandbox, the per-render budget (operations, time with an
injected clock, output), the rehearsal of every prompt on sample data at
lint and load, reload keeping the last good version, the fail-safe at run
time, and the recording notice.
"""

import gc
import itertools
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from prompt_support import add_server_prompts

from ivr.engine import actions as act
from ivr.engine.step import step
from ivr.flow.loader import check_flow, load_flow
from ivr.flow.problems import FlowError
from ivr.flow.prompts import PromptError, PromptLibrary
from ivr.flow.sample_calls import SAMPLE_DAY
from ivr.flow.sandbox import MAX_OUTPUT, MAX_RANGE, RenderBudget
from ivr.lookups.demo_orders import demo_orders
from ivr.lookups.embedded import order_dict
from ivr.lookups.orders import ORDER_STATUSES
from ivr.lookups.samples import sample_orders
from ivr.server.registry import FlowRegistry
from ivr.sim.cli import main

ROOT = Path(__file__).resolve().parent.parent
NESTED_LOOPS = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
HUGE_REPEAT = "{{ 'x' * 100000000 }}"
PARIS = ZoneInfo("Europe/Paris")


def library(budget=RenderBudget(), **templates):
    return PromptLibrary(Path("."), {("en-US", name): text for name, text in templates.items()},
                         budget)


def failure(lib, name, **context) -> PromptError:
    with pytest.raises(PromptError) as caught:
        lib.render("en-US", name, context)
    return caught.value


# --- The sandbox's bounds -------------------------------------------------------


@pytest.mark.parametrize("template, says", [
    (NESTED_LOOPS, "range of 100000 items; at most 1000"),
    (HUGE_REPEAT, "a repetition of 100000000 characters or items; at most 10000"),
    ("{{ [1] * 100000000 }}", "a repetition of 100000000 characters or items"),
    ("{{ 'x'|center(100000000) }}", "center() given 1e+08; at most 10000"),
    ("{{ 'x'.ljust(100000000) }}", "ljust() given 1e+08; at most 10000"),
    ("{{ '%0999999d' % 1 }}", "a format with a width or precision of 10,000 or more"),
    ("{{ '{:>999999}'.format(1) }}", "a format with a width or precision of 10,000 or more"),
    ("{{ 2 ** 100000000 }}", "a power of more than 4096 bits"),
    ("{{ ('x' * 5000)|replace('x', 'x' * 5000) }}", "replace() would build 25000000 characters"),
    ("{{ range(1000)|join('x' * 9000) }}", "join() would build more than 10000 characters"),
    ("{{ ('x' * 9000).join(range(1000)|list) }}", "join() would build more than 10000 characters"),
    ("{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}"
     "{% endfor %}", "a value of 16384 characters or items; at most 10000"),
    ("{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}"
     "{% endfor %}", "a concatenation of 16384 characters or items"),
])
def test_a_template_cannot_build_a_huge_value(template, says):
    error = failure(library(t=template), "t")
    assert error.kind == "budget" and says in error.message and error.line == 1


def test_range_holds_up_to_its_bound():
    lib = library(t=f"{{{{ range({MAX_RANGE})|list|length }}}}", u=f"{{{{ range({MAX_RANGE + 1}) }}}}")
    assert lib.render("en-US", "t", {}) == str(MAX_RANGE)
    assert failure(lib, "u").kind == "budget"


def test_lipsum_is_not_available():
    assert failure(library(t="{{ lipsum(100000) }}"), "t").kind == "undefined"


def test_a_template_cannot_change_the_data_it_is_given():
    order = {"number": "100234"}
    error = failure(library(t="{{ order.update({'number': '1'}) }}"), "t", order=order)
    assert error.kind == "unsafe" and order == {"number": "100234"}


def test_a_missing_field_of_an_order_is_an_error_not_a_blank():
    error = failure(library(t="Order\n{{ order.numero }}"), "t", order={"number": "100234"})
    assert (error.kind, error.line) == ("undefined", 2)
    assert "has no attribute 'numero'" in error.message


# --- The budget of one render ---------------------------------------------------


def test_a_runaway_loop_stops_after_the_operation_budget():
    lib = library(t="{% for i in range(1000) %}{% for j in range(1000) %}{% endfor %}{% endfor %}")
    error = failure(lib, "t")
    assert error.kind == "budget" and "more than 20000 operations in one render" in error.message


def test_the_operation_budget_counts_each_turn_of_a_loop():
    lib = library(RenderBudget(operations=100),
                  short="{% for i in range(40) %}.{% endfor %}",
                  long="{% for i in range(200) %}{% endfor %}")
    assert lib.render("en-US", "short", {}) == "." * 40
    assert "more than 100 operations" in failure(lib, "long").message


def test_the_time_budget_stops_a_render_by_its_own_clock():
    reads = itertools.count()
    clock = lambda: next(reads) * 0.010  # noqa: E731 - each read is 10 ms later
    lib = library(RenderBudget(seconds=0.050, clock=clock),
                  t="{% for i in range(1000) %}{% for j in range(1000) %}{% endfor %}{% endfor %}")
    error = failure(lib, "t")
    assert error.kind == "budget" and "took longer than 50 ms" in error.message
    # Read every 16 operations: stopped at the first read past the
    # deadline, after about a hundred operations, not a million.
    assert next(reads) == 7


def test_a_slow_operation_is_stopped_by_the_time_budget():
    lib = library(t="{% set s = 'abc def ' * 1200 %}{% for i in range(1000) %}"
                    "{{ s|wordwrap(5)|length }}{% endfor %}")
    assert "took longer than 50 ms" in failure(lib, "t").message


def test_a_render_is_not_blamed_for_the_garbage_collectors_pause():
    now = [0.0]

    def collector_takes_ten_seconds(phase, info):
        if phase == "start":
            now[0] += 10.0
    gc.callbacks.append(collector_takes_ten_seconds)
    try:
        lib = library(RenderBudget(clock=lambda: now[0]),
                      t="{% for i in range(100) %}{{ collect() }}{% endfor %}Done.")
        said = lib.render("en-US", "t", {"collect": lambda: gc.collect() and ""})
    finally:
        gc.callbacks.remove(collector_takes_ten_seconds)
    assert said.endswith("Done.") and now[0] >= 1000.0


def test_output_beyond_the_budget_stops_the_render():
    lib = library(t="{% for i in range(1000) %}0123456789{% endfor %}")
    error = failure(lib, "t")
    assert error.kind == "budget" and f"more than {MAX_OUTPUT} characters of output" in error.message


def test_an_ordinary_prompt_renders_within_budget():
    lib = library(t="{% for order in orders %}Order {{ order.number|digits }}"
                    "{% if order.tracking_number %}, tracking {{ order.tracking_number|spell }}"
                    "{% endif %}. {% endfor %}")
    now = datetime(2026, 3, 10, 10, 30, tzinfo=PARIS)
    orders = [order_dict(order, now) for order in demo_orders(now.date())]
    said = lib.render("en-US", "t", {"orders": orders})
    assert said.startswith("Order 1 0 0 2 3 4, tracking 6 A 1 0 0 2 3 4 0 0 0 0 F R. Order 1 0 0 3 1 0.")
    assert said.count("Order") == len(orders)


# --- Sample data ----------------------------------------------------------------


def test_sample_orders_cover_every_status_with_every_field():
    now = datetime.combine(SAMPLE_DAY, datetime.min.time(), PARIS)
    orders = sample_orders(now)
    fields = set(order_dict(demo_orders(SAMPLE_DAY)[0], now))
    assert {o["status"] for o in orders} == set(ORDER_STATUSES)
    assert all(set(o) == fields for o in orders)
    sparse = [o for o in orders if o["carrier"] is None and o["shipped_on"] is None
              and o["delivered_on"] is None and o["tracking_url"] is None]
    assert {o["status"] for o in sparse} == set(ORDER_STATUSES)


# --- Lint and load --------------------------------------------------------------

FLOW = """\
flow: tiny
languages: [fr-FR, en-US]
start: find
human: agent
reasons: {order_status: Where is my order}
nodes:
  find:
    kind: lookup
    find: orders_by_phone
    found: status
    not_found: agent
    error: agent
  status: {kind: say, say: status, reason: order_status, next: menu}
  menu:
    kind: menu
    say: menu
    choices:
      - {key: "1", to: bye}
      - {key: "2", to: voicemail}
  voicemail: {kind: record, say: record_intro, next: bye}
  bye: {kind: hangup, say: bye}
  agent: {kind: transfer, say: agent, to: {queue: support}}
"""

PROMPTS = {
    "status": "Order {{ order.number|digits }}.\n"
              "{% if order.tracking_url %}Tracked.{% endif %}",
    "menu": "Press 1 or 2.",
    "record_intro": "{# notice: recording #}\nYour message will be recorded.",
    "bye": "Goodbye.",
    "agent": "An agent.",
}


@pytest.fixture
def flow_dir(tmp_path):
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "tiny.yaml").write_text(FLOW, encoding="utf-8")
    for lang in ("fr-FR", "en-US"):
        (tmp_path / "prompts" / lang).mkdir(parents=True)
        for name, text in PROMPTS.items():
            write_prompt(tmp_path, lang, name, text)
    add_server_prompts(tmp_path / "prompts")
    return tmp_path


def write_prompt(root, lang, name, text):
    (root / "prompts" / lang / f"{name}.j2").write_text(text, encoding="utf-8")


def lint(root):
    return [str(p).replace(str(root) + "/", "")
            for p in check_flow(root / "flows" / "tiny.yaml", root / "prompts")]


def test_the_small_flow_is_valid(flow_dir):
    assert lint(flow_dir) == []


@pytest.mark.parametrize("template, code, says", [
    (NESTED_LOOPS, "prompt-budget", "runs over its render budget"),
    (HUGE_REPEAT, "prompt-budget", "runs over its render budget"),
    ("Order {{ order.numero }}", "prompt-undefined", "reads a variable or field that is not there"),
    ("{{ 'x'|money }}", "prompt-error", "fails"),
])
def test_lint_refuses_a_prompt_that_fails_on_sample_data(flow_dir, template, code, says):
    write_prompt(flow_dir, "en-US", "status", "Your order.\n" + template)
    found = lint(flow_dir)
    assert found and all(p.startswith("prompts/en-US/status.j2:2:1: error: ") for p in found)
    assert all(f"{says} when node 'status' (" in p and f"[{code}]" in p for p in found)
    assert all("flows/tiny.yaml:13) says it (en-US, sample: " in p for p in found)


def only_in_transit_orders_reach_status(flow_dir):
    flow = FLOW.replace("    found: status\n", "    found: in_transit\n").replace(
        "  status: {", "  in_transit:\n    kind: branch\n"
        "    when: [{if: \"order.status == 'in_transit'\", to: status}]\n"
        "    else: agent\n  status: {")
    (flow_dir / "flows" / "tiny.yaml").write_text(flow)


def test_a_prompt_is_rendered_only_with_what_can_reach_it(flow_dir):
    only_in_transit_orders_reach_status(flow_dir)
    write_prompt(flow_dir, "en-US", "status", "{{ order.status|upper }}{% if order.status != "
                 "'in_transit' %}{{ order.numero }}{% endif %}")
    assert lint(flow_dir) == []


def test_lint_names_the_sample_a_prompt_fails_on(flow_dir):
    # A field a shop may leave empty, read without {% if %}: every in-transit
    # demo order has a tracking number, not every shop's.
    only_in_transit_orders_reach_status(flow_dir)
    write_prompt(flow_dir, "fr-FR", "status", "Suivi {{ order.tracking_number|spell }}.")
    assert lint(flow_dir) == [
        "prompts/fr-FR/status.j2:1:1: error: fails when node 'status' (flows/tiny.yaml:17) says "
        "it (fr-FR, sample: order 100234 (in_transit) without optional fields): ValueError: "
        "no value (None) [prompt-error]"]


def test_an_escape_attempt_is_refused_even_where_no_sample_reaches(flow_dir):
    write_prompt(flow_dir, "en-US", "bye", "{% if false %}{{ ''.__class__.__mro__ }}{% endif %}Bye.")
    assert lint(flow_dir) == [
        "prompts/en-US/bye.j2:1:1: error: '__class__' is private: templates cannot reach it "
        "[prompt-unsafe]",
        "prompts/en-US/bye.j2:1:1: error: '__mro__' is private: templates cannot reach it "
        "[prompt-unsafe]",
    ]


@pytest.mark.parametrize("template", [
    "{{ order['__class__'] }}", "{{ order|attr('__globals__') }}", "{{ self.__init__.__globals__ }}"])
def test_every_way_of_naming_a_private_attribute_is_refused(flow_dir, template):
    write_prompt(flow_dir, "fr-FR", "bye", "Au revoir.\n{% if false %}" + template + "{% endif %}")
    found = lint(flow_dir)
    assert found and all(p.startswith("prompts/fr-FR/bye.j2:2:1: error: '__") and
                         p.endswith("is private: templates cannot reach it [prompt-unsafe]")
                         for p in found)


@pytest.mark.parametrize("template", [NESTED_LOOPS, HUGE_REPEAT])
def test_ivr_sim_lint_refuses_a_runaway_template(flow_dir, template):
    write_prompt(flow_dir, "en-US", "bye", template)
    result = CliRunner().invoke(main, ["lint", str(flow_dir / "flows")], catch_exceptions=False)
    assert result.exit_code == 1
    assert "bye.j2:1:1: error: runs over its render budget when node 'bye'" in result.output
    assert "[prompt-budget]" in result.output


@pytest.mark.parametrize("template", [NESTED_LOOPS, HUGE_REPEAT])
def test_a_runaway_template_is_not_loaded(flow_dir, template):
    write_prompt(flow_dir, "fr-FR", "agent", template)
    with pytest.raises(FlowError) as caught:
        load_flow(flow_dir / "flows" / "tiny.yaml", flow_dir / "prompts")
    assert [(p.path.endswith("fr-FR/agent.j2"), p.code) for p in caught.value.problems] == [
        (True, "prompt-budget")]


def test_the_demo_flow_lints_clean():
    result = CliRunner().invoke(main, ["lint", str(ROOT / "flows")], catch_exceptions=False)
    assert (result.exit_code, result.output) == (0, "0 problems\n")


def test_reload_keeps_the_last_good_version_when_a_template_runs_away(flow_dir):
    registry = FlowRegistry(flow_dir / "flows", flow_dir / "prompts")
    registry.reload()
    good = registry.current("tiny").version
    for hostile in (NESTED_LOOPS, HUGE_REPEAT, "{{ order.numero }}"):
        write_prompt(flow_dir, "fr-FR", "status", hostile)
        registry.reload()
        assert registry.current("tiny").version == good
        [(path, problems)] = registry.problems.items()
        assert path.endswith("tiny.yaml")
        assert all(p.code in ("prompt-budget", "prompt-undefined") for p in problems)


# --- At run time ----------------------------------------------------------------


def test_a_runaway_render_sends_that_call_to_the_human_and_the_next_call_is_served(flow_dir):
    # Data-dependent: no sample caller has this number, so lint lets it through.
    for lang in ("fr-FR", "en-US"):
        write_prompt(flow_dir, lang, "bye", "{% if caller == '+14155550100' %}" + NESTED_LOOPS.replace(
            "100000", "1000") + "{% endif %}Goodbye.")
    flow = load_flow(flow_dir / "flows" / "tiny.yaml", flow_dir / "prompts")
    now = datetime(2026, 3, 10, 10, 30, tzinfo=PARIS)
    order = order_dict(demo_orders(now.date())[0], now)

    def call(caller):
        state, actions, _ = step(flow, None, {"type": "start", "call_id": "CA1", "caller": caller,
                                              "called": "+33100000000", "now": now})
        lookup = actions[-1]
        state, _, _ = step(flow, state, {"type": "lookup_result", "request_id": lookup.request_id,
                                         "status": "found", "data": {"order": order}, "now": now})
        return step(flow, state, {"type": "digits", "digits": "1", "now": now})

    state, actions, _ = call("+14155550100")
    assert state["outcome"] == "failed" and state["cause"] == "error"
    assert actions[0].ssml == flow.server_says["fr-FR"]["failsafe_apology"]  # French to all
    assert isinstance(actions[-1], act.Enqueue) and actions[-1].queue == "support"
    state, actions, _ = call("+14155550199")
    assert state["outcome"] != "failed" and actions[0].ssml == "Goodbye."


# --- The recording notice ---------------------------------------------------------


def test_a_record_node_without_a_notice_is_a_warning_and_still_loads(flow_dir):
    write_prompt(flow_dir, "en-US", "record_intro", "Leave a message after the tone.")
    assert lint(flow_dir) == [
        "flows/tiny.yaml:20:3: warning: record node 'voicemail' is not preceded by a notice that "
        "the message is recorded: say it in its prompt (or in one of every node that leads to it) "
        "and mark that template {# notice: recording #} [recording-notice]"]
    assert load_flow(flow_dir / "flows" / "tiny.yaml", flow_dir / "prompts").nodes["voicemail"]
    result = CliRunner().invoke(main, ["lint", str(flow_dir / "flows")], catch_exceptions=False)
    assert result.exit_code == 0 and result.output.endswith("1 problem (1 warning)\n")


def test_a_notice_in_every_node_before_the_record_node_is_enough(flow_dir):
    for lang in ("fr-FR", "en-US"):
        write_prompt(flow_dir, lang, "record_intro", "After the tone.")
        write_prompt(flow_dir, lang, "menu", "{# notice: recording #}\nPress 1, or 2 for a "
                                             "message, which will be recorded.")
    assert lint(flow_dir) == []


def test_a_record_node_any_node_can_reach_needs_its_own_notice(flow_dir):
    flow = (flow_dir / "flows" / "tiny.yaml").read_text().replace("human: agent", "human: voicemail")
    (flow_dir / "flows" / "tiny.yaml").write_text(flow)
    for lang in ("fr-FR", "en-US"):
        write_prompt(flow_dir, lang, "record_intro", "After the tone.")
        write_prompt(flow_dir, lang, "menu", "{# notice: recording #}\nPress 1 or 2.")
    assert [p.split(": ")[1] for p in lint(flow_dir)] == ["warning"]


def test_a_node_no_sample_reaches_is_still_checked_for_its_budget(flow_dir):
    flow = FLOW.replace("    found: status\n", "    found: never\n").replace(
        "  status: {", "  never:\n    kind: branch\n"
        "    when: [{if: \"order.status == 'teleported'\", to: status}]\n"
        "    else: agent\n  status: {")
    (flow_dir / "flows" / "tiny.yaml").write_text(flow)
    write_prompt(flow_dir, "en-US", "status", "{{ order.numero }}")  # never said: not reported
    assert lint(flow_dir) == []
    write_prompt(flow_dir, "en-US", "status", HUGE_REPEAT)
    [problem] = lint(flow_dir)
    assert problem.startswith("prompts/en-US/status.j2:1:1: error: runs over its render budget "
                              "when node 'status'")


def test_a_condition_that_fails_on_sample_data_is_refused_where_it_is_written(flow_dir):
    flow = FLOW.replace("    found: status\n", "    found: check\n").replace(
        "  status: {", "  check:\n    kind: branch\n"
        "    when: [{if: \"order.numero == '1'\", to: status}]\n"
        "    else: status\n  status: {")
    (flow_dir / "flows" / "tiny.yaml").write_text(flow)
    [problem] = lint(flow_dir)
    assert problem.startswith(
        "flows/tiny.yaml:15:17: error: expression \"order.numero == '1'\" reads a variable or "
        "field that is not there when node 'check' runs it (sample: order 100234 (in_transit)): "
        "UndefinedError: 'dict object' has no attribute 'numero' [expression-undefined]")


def test_a_computed_value_that_fails_on_sample_data_is_refused(flow_dir):
    flow = FLOW.replace('      - {key: "1", to: bye}',
                        '      - {key: "1", to: bye, set: {n: "{{ order.total + order.items }}"}}')
    (flow_dir / "flows" / "tiny.yaml").write_text(flow)
    [problem] = lint(flow_dir)
    assert problem.startswith("flows/tiny.yaml:18:38: error: expression 'order.total + "
                              "order.items' fails when node 'menu' runs it (sample: order 100234")
    assert problem.endswith('TypeError: can only concatenate str (not "int") to str '
                            "[expression-error]")
