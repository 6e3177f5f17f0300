"""Loading and validating flow files: every problem, at its line and column."""

import textwrap
from pathlib import Path

import pytest
from prompt_support import add_server_prompts

from ivr.flow.loader import check_flow, load_flow
from ivr.flow.problems import FlowError

REPO_PROMPTS = Path(__file__).parent.parent / "prompts"

VALID = """\
flow: mini
languages: [fr-FR, en-US]
start: menu
human: agent
reasons:
  order_status: Where is my order
nodes:
  menu:
    kind: menu
    say: hello
    choices:
      - key: "1"
        words: {fr-FR: [suivi], en-US: [track]}
        reason: order_status
        to: find
  find:
    kind: lookup
    find: order_by_number
    with: {number: "{{ caller }}"}
    found: bye
    not_found: agent
    error: agent
  bye:
    kind: hangup
    say: hello
  agent:
    kind: transfer
    to: {queue: support}
"""


@pytest.fixture
def prompts(tmp_path):
    root = tmp_path / "prompts"
    for lang in ("fr-FR", "en-US"):
        (root / lang).mkdir(parents=True)
        (root / lang / "hello.j2").write_text("Bonjour {{ caller|digits }}")
    add_server_prompts(root)
    return root


def problems(tmp_path, prompts, text):
    path = tmp_path / "flow.yaml"
    path.write_text(textwrap.dedent(text))
    return [(p.line, p.column, p.code, p.message) for p in check_flow(path, prompts)]


def edit(old, new):
    assert old in VALID
    return VALID.replace(old, new)


def test_valid_flow_loads_with_a_version(tmp_path, prompts):
    path = tmp_path / "flow.yaml"
    path.write_text(VALID)
    flow = load_flow(path, prompts)
    assert flow.start == "menu"
    assert len(flow.version) == 12
    assert set(flow.nodes) == {"menu", "find", "bye", "agent"}


def test_version_changes_when_a_used_prompt_changes(tmp_path, prompts):
    path = tmp_path / "flow.yaml"
    path.write_text(VALID)
    before = load_flow(path, prompts).version
    (prompts / "en-US" / "hello.j2").write_text("Hello {{ caller|digits }}")
    assert load_flow(path, prompts).version != before


def test_version_ignores_prompts_the_flow_does_not_use(tmp_path, prompts):
    path = tmp_path / "flow.yaml"
    path.write_text(VALID)
    before = load_flow(path, prompts).version
    (prompts / "en-US" / "unused.j2").write_text("Unused")
    assert load_flow(path, prompts).version == before


def test_yaml_syntax_error_gives_its_line_and_column(tmp_path, prompts):
    found = problems(tmp_path, prompts, edit("    say: hello\n    choices:", "    say: [hello\n    choices:"))
    # At the bracket left open, not where the parser gave up (11:12).
    assert [(line, col, code) for line, col, code, _ in found] == [(10, 10, "yaml-syntax")]


def test_missing_start_is_reported_at_the_top(tmp_path, prompts):
    found = problems(tmp_path, prompts, edit("start: menu\n", ""))
    assert (1, 1, "missing-start") in [(l, c, code) for l, c, code, _ in found]


def test_start_naming_an_unknown_node_is_an_unknown_target(tmp_path, prompts):
    found = problems(tmp_path, prompts, edit("start: menu", "start: menuu"))
    assert found == [(3, 8, "unknown-target", "'start' goes to unknown node 'menuu'; did you mean 'menu'?")]


def test_unknown_target_names_the_node_and_field(tmp_path, prompts):
    found = problems(tmp_path, prompts, edit("    found: bye", "    found: billing"))
    assert (20, 12, "unknown-target", "node 'find' 'found' goes to unknown node 'billing'") in found


def test_unreachable_node_is_reported_at_its_name(tmp_path, prompts):
    found = problems(tmp_path, prompts, VALID + "  orphan:\n    kind: hangup\n")
    assert found == [(29, 3, "unreachable-node", "node 'orphan' is unreachable: no node leads to it")]


def test_menu_key_used_twice(tmp_path, prompts):
    found = problems(tmp_path, prompts, edit(
        "        to: find\n",
        "        to: find\n      - key: 1\n        to: agent\n"))
    assert (16, 14, "duplicate-key", "key 1 is already used by choice 1 of this menu") in found


def test_menu_key_clashing_with_the_escape_key(tmp_path, prompts):
    found = problems(tmp_path, prompts, edit('      - key: "1"', '      - key: "0"'))
    assert (12, 14, "duplicate-key", "key 0 of menu 'menu' is the flow's escape key to a human") in found


def test_prompt_missing_in_one_language(tmp_path, prompts):
    (prompts / "en-US" / "hello.j2").unlink()
    found = problems(tmp_path, prompts, VALID)
    assert (10, 10, "missing-prompt",
            f"prompt 'hello' has no en-US version: expected {prompts / 'en-US' / 'hello.j2'}") in found


def test_reason_used_but_not_declared(tmp_path, prompts):
    found = problems(tmp_path, prompts, edit("        reason: order_status", "        reason: billing"))
    assert (14, 17, "unknown-reason", "reason 'billing' is not declared under 'reasons'") in found


def test_reason_declared_but_never_used(tmp_path, prompts):
    found = problems(tmp_path, prompts, edit("  order_status: Where is my order\n",
                                             "  order_status: Where is my order\n  carrier_delay: Late\n"))
    assert found == [(7, 3, "unused-reason", "reason 'carrier_delay' is declared but no node marks it")]


def test_catch_all_reason_is_refused(tmp_path, prompts):
    found = problems(tmp_path, prompts, edit("  order_status: Where is my order\n",
                                             "  order_status: Where is my order\n  other: Anything else\n"))
    assert (7, 3, "catch-all-reason") in [(l, c, code) for l, c, code, _ in found]


def test_lookup_without_error_branch(tmp_path, prompts):
    found = problems(tmp_path, prompts, edit("    error: agent\n", ""))
    assert found == [(16, 3, "missing-error-branch",
                      "look-up 'find' has no 'error' branch: say where callers go when the back-end "
                      "fails (usually the human)")]


def test_unknown_node_kind(tmp_path, prompts):
    found = problems(tmp_path, prompts, edit("    kind: hangup", "    kind: hang_up"))
    assert (24, 11, "unknown-kind") in [(l, c, code) for l, c, code, _ in found]


def test_unknown_field_is_reported_at_its_key(tmp_path, prompts):
    found = problems(tmp_path, prompts, edit("    kind: hangup\n", "    kind: hangup\n    nxt: menu\n"))
    assert found == [(25, 5, "unknown-field",
                      "unknown field 'nxt'; expected one of description, kind, reason, resolves, "
                      "say")]


def test_wrong_value_type(tmp_path, prompts):
    found = problems(tmp_path, prompts, edit("kind: menu\n", "kind: menu\n    timeout: soon\n"))
    assert found == [(10, 14, "wrong-type", "expected a whole number, found text 'soon'")]


def test_template_with_unknown_variable_is_reported_in_the_template(tmp_path, prompts):
    (prompts / "fr-FR" / "hello.j2").write_text("Bonjour\n{{ ordr.number }}")
    found = problems(tmp_path, prompts, VALID)
    assert found == [(2, 4, "unknown-variable", "unknown variable 'ordr'; did you mean 'order'?")]


def test_condition_with_unknown_variable(tmp_path, prompts):
    found = problems(tmp_path, prompts, edit('    with: {number: "{{ caller }}"}',
                                             '    with: {number: "{{ callr }}"}'))
    assert found == [(19, 20, "unknown-variable", "expression uses unknown variable 'callr'")]


def test_every_problem_is_reported_at_once_and_sorted(tmp_path, prompts):
    text = edit("    found: bye", "    found: billing").replace("    error: agent\n", "")
    found = problems(tmp_path, prompts, text)
    assert [code for _, _, code, _ in found] == [
        "missing-error-branch", "unknown-target", "unreachable-node"]
    assert [line for line, *_ in found] == sorted(line for line, *_ in found)


def test_flow_error_prints_file_line_column_and_code(tmp_path, prompts):
    path = tmp_path / "flow.yaml"
    path.write_text(edit("    found: bye", "    found: billing"))
    with pytest.raises(FlowError) as caught:
        load_flow(path, prompts)
    assert str(caught.value).splitlines()[0] == (
        f"{path}:20:12: error: node 'find' 'found' goes to unknown node 'billing' [unknown-target]")


def test_duplicate_yaml_key(tmp_path, prompts):
    found = problems(tmp_path, prompts, edit("  bye:\n    kind: hangup\n",
                                             "  bye:\n    kind: hangup\n    kind: hangup\n"))
    assert (25, 5, "duplicate-key", "'kind' is given twice in this mapping (first at line 24): keep "
            "one of them") in found


def test_bad_business_hours_point_inside_the_calendar(tmp_path, prompts):
    text = VALID.replace("nodes:\n", "hours:\n  support:\n    timezone: Europe/Paris\n"
                         "    weekly: {mon-fri: \"18:00-09:00\"}\nnodes:\n")
    found = problems(tmp_path, prompts, text)
    assert [(l, c, code) for l, c, code, _ in found] == [(10, 23, "bad-hours")]


def test_escape_keys_must_be_a_list(tmp_path, prompts):
    found = problems(tmp_path, prompts, VALID.replace("nodes:\n", "escape: {keys: 0}\nnodes:\n"))
    assert found == [(7, 16, "wrong-type", "expected a list of keys such as [\"0\"], found a number 0")]


def test_unknown_timezone(tmp_path, prompts):
    found = problems(tmp_path, prompts, VALID.replace("start: menu", "timezone: Europe/Pariss\nstart: menu"))
    assert (3, 11, "wrong-value") in [(l, c, code) for l, c, code, _ in found]


def test_switching_to_a_language_the_flow_lacks(tmp_path, prompts):
    found = problems(tmp_path, prompts, edit("        reason: order_status\n",
                                             "        reason: order_status\n        set: {lang: de-DE}\n"))
    assert (15, 21, "unknown-language") in [(l, c, code) for l, c, code, _ in found]


def test_say_on_a_node_that_never_speaks_is_an_unknown_field(tmp_path, prompts):
    found = problems(tmp_path, prompts, edit("    kind: lookup\n", "    kind: lookup\n    reprompt: [hello]\n"))
    assert [(l, c, code) for l, c, code, _ in found] == [(18, 5, "unknown-field")]


CALLBACK = VALID.replace("    found: bye\n", "    found: call_me\n") + """\
  call_me:
    kind: callback
    say: hello
    ask_number: hello
    slot: SLOT
    next: bye
"""


@pytest.mark.parametrize("slot", ["morning", "after 18:00", '"{{ lang }}"', '"{{ slot_choice }}"'])
def test_a_callback_slot_is_a_literal_or_an_expression(tmp_path, prompts, slot):
    text = CALLBACK.replace("SLOT", slot).replace("nodes:\n", "vars: {slot_choice: asap}\nnodes:\n")
    assert problems(tmp_path, prompts, text) == []


@pytest.mark.parametrize("slot, column, code, message", [
    ("3", 11, "wrong-type",
     "expected a slot such as morning, or an expression such as \"{{ slot }}\", found a number 3"),
    ("[morning, afternoon]", 11, "wrong-type",
     "expected a slot such as morning, or an expression such as \"{{ slot }}\", found a list "
     "['morning', 'afternoon']"),
    ('""', 11, "wrong-value",
     "expected a slot such as morning, or an expression such as \"{{ slot }}\", found ''"),
    ('"slot {{ lang }}"', 11, "wrong-value",
     "expected a slot such as morning, or an expression such as \"{{ slot }}\": one whole "
     "expression, with no text around it, found 'slot {{ lang }}'"),
    ("x" * 65, 11, "wrong-value", "expected a slot of at most 64 characters, found 65"),
    ('"{{ slott }}"', 11, "unknown-variable", "expression uses unknown variable 'slott'"),
    ('"{{ lang == }}"', 11, "expression-syntax",
     "invalid expression ' lang == ': unexpected 'end of print statement'"),
])
def test_a_bad_callback_slot_is_reported_at_its_value(tmp_path, prompts, slot, column, code, message):
    found = problems(tmp_path, prompts, CALLBACK.replace("SLOT", slot))
    assert found == [(33, column, code, message)]


def test_slot_is_only_a_callback_field(tmp_path, prompts):
    found = problems(tmp_path, prompts, edit("    kind: hangup\n", "    kind: hangup\n    slot: morning\n"))
    assert [(l, c, code) for l, c, code, _ in found] == [(25, 5, "unknown-field")]


def test_each_language_needs_the_prompts_the_server_says(tmp_path, prompts):
    (prompts / "de-DE").mkdir()
    (prompts / "de-DE" / "hello.j2").write_text("Hallo")
    (prompts / "de-DE" / "hold.j2").write_text("Einen Moment bitte.")
    for data in ("speech.yaml", "confirm_choice.j2"):  # only the server's prompts are missing
        (prompts / "de-DE" / data).write_text((prompts / "fr-FR" / data).read_text(encoding="utf-8"))
    found = problems(tmp_path, prompts, edit("languages: [fr-FR, en-US]",
                                             "languages: [fr-FR, en-US, de-DE]"))
    # No falling back to English: each one missing is named, at the language.
    assert found == [
        (2, 27, "missing-prompt", f"prompt '{name}' has no de-DE version: expected "
         f"{prompts / 'de-DE' / (name + '.j2')} (the server says it during calls in de-DE)")
        for name in ("agent_whisper", "failsafe_apology")]


def test_a_server_prompt_may_read_only_what_the_server_gives_it(tmp_path, prompts):
    (prompts / "en-US" / "agent_whisper.j2").write_text("Reason: {{ reason }} from {{ caller }}")
    found = problems(tmp_path, prompts, VALID)
    assert [(code, message) for _line, _column, code, message in found] == [
        ("unknown-variable", "unknown variable 'caller'")]


def test_the_fixed_server_prompts_are_rendered_when_the_flow_loads(tmp_path, prompts):
    path = tmp_path / "flow.yaml"
    path.write_text(VALID)
    flow = load_flow(path, prompts)
    assert flow.server_says["en-US"] == {
        "hold": "One moment, I'm looking up your order.",
        "failsafe_apology": "Sorry, we're having a technical problem. Let me put you through to an agent."}
    (prompts / "fr-FR" / "failsafe_apology.j2").write_text("Désolé {{ 1 / 0 }}")
    with pytest.raises(FlowError) as error:
        load_flow(path, prompts)
    assert "failsafe_apology.j2:1: ZeroDivisionError: division by zero [prompt-render]" in str(error.value)
def test_an_example_won_by_another_choice_is_a_problem_at_its_position(tmp_path, prompts):
    found = problems(tmp_path, prompts, edit(
        "        words: {fr-FR: [suivi], en-US: [track]}\n",
        "        words: {fr-FR: [suivi], en-US: [track]}\n"
        "        examples: {fr-FR: [conseiller conseillère agent opérateur humain]}\n"))
    assert found == [(14, 28, "example-mismatch",
                      "example 'conseiller conseillère agent opérateur humain' (fr-FR) of choice 1 (key 1) "
                      "of menu 'menu' is taken by the escape to a human (score=0.67 margin=0.50): give the "
                      "choices words that tell them apart")]


def test_an_example_that_would_not_match_is_ambiguous(tmp_path, prompts):
    found = problems(tmp_path, prompts, edit(
        "        words: {fr-FR: [suivi], en-US: [track]}\n",
        "        words: {fr-FR: [suivi], en-US: [track]}\n"
        "        examples: {en-US: [hello there]}\n"))
    assert [(line, code) for line, _col, code, _msg in found] == [(14, "example-ambiguous")]


def test_speech_thresholds_must_be_numbers_from_0_to_1(tmp_path, prompts):
    found = problems(tmp_path, prompts, "speech: {accept: 2, guess: 0.5}\n" + VALID)
    assert [(code, msg) for _l, _c, code, msg in found] == [
        ("wrong-value", "expected a number from 0 to 1, found 2"),
        ("unknown-field", "unknown field 'guess'; expected one of accept, confirm, margin, confidence"),
    ]


def test_a_language_without_speech_data_is_a_problem(tmp_path, prompts):
    (prompts / "en-US" / "speech.yaml").unlink()
    found = problems(tmp_path, prompts, VALID)
    assert [(line, code) for line, _col, code, _msg in found] == [(2, "missing-speech-data")]
