"""Lint an operator understands: each common YAML mistake is one sentence
that says how to fix it, at the line and column that cause it; a known name
is offered for a misspelt one; a broken or misplaced node brings no
knock-on problems."""

from pathlib import Path

import pytest

from ivr.flow.loader import flow_from_source
from ivr.flow.problems import FlowError
from ivr.flow.prompts import PromptLibrary
from ivr.flow.suggest import closest

ROOT = Path(__file__).parent.parent
DEMO = (ROOT / "flows" / "post_sale.yaml").read_text(encoding="utf-8")
WELCOME = "  welcome:\n    kind: say\n    say: welcome\n    next: main_menu\n"


def problems(old: str, new: str) -> list[tuple]:
    """(line, column, code, message) of every problem of the demo flow with
    ``old`` replaced by ``new`` once."""
    assert old in DEMO
    with pytest.raises(FlowError) as caught:
        flow_from_source("f.yaml", DEMO.replace(old, new, 1), PromptLibrary(ROOT / "prompts"))
    return [(p.line, p.column, p.code, p.message) for p in caught.value.problems]


def line_of(text: str) -> int:
    """The 1-based line of the demo flow where ``text`` starts."""
    return DEMO[:DEMO.index(text)].count("\n") + 1


W = line_of(WELCOME)  # the line of 'welcome:'


# --- YAML mistakes ----------------------------------------------------------------------


def test_a_tab_says_to_use_spaces_at_the_tab():
    assert problems("    say: welcome\n", "\tsay: welcome\n") == [
        (W + 2, 1, "yaml-syntax",
         "a tab is used for indentation; YAML needs spaces: replace the tab with two spaces")]


def test_a_colon_in_text_says_to_quote_the_text():
    assert problems("description: Order status and delivery dates, then a human for the rest.",
                    "description: Order status: then a human") == [
        (5, 26, "yaml-syntax",
         "the text of 'description' contains ': ', which YAML reads as a new field: put the whole "
         "text in quotes, e.g. description: \"Order status: then a human\"")]


def test_a_field_indented_less_than_its_neighbours_is_the_one_reported():
    # The parser stops on the next line ("mapping values are not allowed here").
    assert problems(WELCOME, WELCOME.replace("    kind: say", "  kind: say")) == [
        (W + 1, 3, "yaml-syntax",
         "'kind' is indented by 2 spaces but the lines after it by 4: indent it by 4 spaces like them")]


def test_a_field_indented_out_of_line_says_where_the_fields_are():
    assert problems(WELCOME, WELCOME.replace("    next:", "   next:")) == [
        (W + 3, 4, "yaml-syntax",
         "'next' is indented by 3 spaces, which lines it up with no field above (they are at 0, 2, "
         "4 spaces): line it up with the fields of its mapping")]


def test_a_node_moved_to_the_top_level_is_reported_where_it_is():
    assert problems(WELCOME, "welcome:\n    kind: say\n    say: welcome\n    next: main_menu\n") == [
        (W, 1, "yaml-syntax",
         "'welcome' is indented by 0 spaces but the lines after it by 2: indent it by 2 spaces "
         "like them")]


def test_an_unclosed_quote_is_reported_at_the_opening_quote():
    assert problems('mon-fri: "09:00-18:00"', 'mon-fri: "09:00-18:00') == [
        (line_of('mon-fri: "09:00'), 16, "yaml-syntax",
         'the text opened with " here is never closed: add the closing " at the end of the text')]


def test_an_unclosed_bracket_is_reported_at_the_opening_bracket():
    assert problems("languages: [fr-FR, en-US]", "languages: [fr-FR, en-US") == [
        (7, 12, "yaml-syntax",
         "the list opened with '[' here is never closed: add ']' after its last item (and a comma "
         "between items)")]


@pytest.mark.parametrize("spelled, value", [("yes", True), ("no", False), ("on", True),
                                            ("off", False), ("true", True)])
def test_a_boolean_where_text_is_expected_says_to_quote_it(spelled, value):
    assert problems("description: Order status and delivery dates, then a human for the rest.",
                    f"description: {spelled}") == [
        (5, 14, "wrong-type", f"expected text, found {spelled} without quotes, which YAML reads as "
                              f"the boolean {value}: write it in quotes, \"{spelled}\"")]


def test_a_duplicate_key_says_where_the_first_one_is():
    assert problems(WELCOME, WELCOME.replace("    say: welcome\n", "    say: welcome\n    say: welcome\n")) == [
        (W + 3, 5, "duplicate-key",
         "'say' is given twice in this mapping (first at line %d): keep one of them" % (W + 2))]


# --- did you mean -----------------------------------------------------------------------


def test_a_misspelt_node_offers_the_node():
    assert problems("    next: main_menu\n", "    next: main_menuu\n") == [
        (W + 3, 11, "unknown-target",
         "node 'welcome' 'next' goes to unknown node 'main_menuu'; did you mean 'main_menu'?")]


def test_a_misspelt_node_name_in_a_menu_offers_the_node():
    found = problems("to: ask_order_number", "to: ask_order_numbre")
    assert [m for _l, _c, code, m in found if code == "unknown-target"] == [
        "node 'confirm_order' (choices 2) 'to' goes to unknown node 'ask_order_numbre'; did you "
        "mean 'ask_order_number'?"]


def test_a_misspelt_field_offers_the_field_and_is_not_also_missing():
    assert problems(WELCOME, WELCOME.replace("    say:", "    sya:")) == [
        (W + 2, 5, "unknown-field",
         "unknown field 'sya': did you mean 'say'? (expected one of description, kind, next, "
         "reason, resolves, say)")]


def test_a_misspelt_prompt_offers_the_prompt():
    found = problems(WELCOME, WELCOME.replace("say: welcome", "say: welcom"))
    assert [(line, code) for line, _c, code, _m in found] == [(W + 2, "missing-prompt")] * 2
    assert all(m.endswith("welcom.j2; did you mean 'welcome'?") for *_, m in found)


def test_a_misspelt_filter_offers_the_filter(tmp_path):
    prompts = tmp_path / "prompts"
    for lang in ("fr-FR", "en-US"):
        (prompts / lang).mkdir(parents=True)
        for source in (ROOT / "prompts" / lang).iterdir():
            (prompts / lang / source.name).write_bytes(source.read_bytes())
    (prompts / "en-US" / "welcome.j2").write_text("Hello {{ caller | digts }}")
    with pytest.raises(FlowError) as caught:
        flow_from_source("f.yaml", DEMO, PromptLibrary(prompts))
    assert [(p.line, p.code, p.message) for p in caught.value.problems] == [
        (1, "prompt-syntax", "no filter named 'digts'; did you mean 'digits'?")]


def test_only_a_close_name_is_offered():
    assert closest("ask_order_numbre", ["ask_order_number", "main_menu"]) == "ask_order_number"
    assert closest("promt", ["prompt", "say"]) == "prompt"
    assert closest("sya", ["say", "kind"]) == "say"  # swapped letters
    assert closest("billing", ["main_menu", "welcome"]) is None


# --- no knock-on problems ---------------------------------------------------------------


def test_a_node_indented_into_another_is_one_problem():
    # welcome's fields land in proactive_answer: no unknown targets, no
    # duplicate keys, no unreachable nodes, no unused reasons.
    assert problems("\n" + WELCOME, "\n" + "\n".join("  " + line for line in WELCOME.splitlines()) + "\n") == [
        (W, 5, "misplaced-node",
         "node 'welcome' is not under 'nodes' but inside node 'proactive_answer', so nothing can go "
         "to it: indent it by 2 spaces, like the other nodes")]


def test_a_node_at_the_top_level_with_its_followers_is_one_problem():
    moved = "\n".join(line[2:] for line in WELCOME.splitlines()) + "\n"
    assert problems("\n" + WELCOME, "\n" + moved) == [
        (W, 1, "misplaced-node",
         "node 'welcome' is not under 'nodes' but inside the top level of the file, so nothing can "
         "go to it: indent it by 2 spaces, like the other nodes")]


def test_a_broken_start_node_does_not_make_every_node_unreachable():
    found = problems("    find: orders_by_phone\n", "    find: order_by_phone\n")
    assert [code for _l, _c, code, _m in found] == ["wrong-value"]


def test_a_misspelt_start_does_not_make_its_node_unreachable():
    found = problems("start: find_recent", "start: find_recnt")
    assert [(code, m) for _l, _c, code, m in found] == [
        ("unknown-target", "'start' goes to unknown node 'find_recnt'; did you mean 'find_recent'?")]


def test_a_field_indented_deeper_than_the_line_above_can_take_is_the_one_reported():
    assert problems(WELCOME, WELCOME.replace("    say:", "      say:")) == [
        (W + 2, 7, "yaml-syntax",
         "'say' is indented by 6 spaces, deeper than the line above can take: line it up with "
         "'kind' (4 spaces)")]


def test_nothing_where_text_is_expected_says_to_write_it():
    assert problems("description: Order status and delivery dates, then a human for the rest.",
                    "description:") == [
        (5, 13, "wrong-type",
         "expected text, found nothing: write the value after the colon, or remove the field")]


def test_a_misspelt_kind_is_one_problem_with_the_kind_meant():
    # The start node cannot be built: before, every node after it was
    # also reported unreachable (42 problems).
    assert problems("  find_recent:\n    kind: lookup\n", "  find_recent:\n    kind: lookp\n") == [
        (line_of("  find_recent:\n    kind: lookup") + 1, 11, "unknown-kind",
         "node 'find_recent' has unknown kind 'lookp'; did you mean 'lookup'? (expected one of say, "
         "menu, input, set, branch, lookup, sms, hours, transfer, record, callback, hangup)")]
