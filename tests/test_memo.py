"""Prompts and expressions kept by the values they read: said once for the
same values, never kept when they read the time, draw at random or read
what identifies a caller, and still bounded by the sandbox on a miss."""

from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from jinja2.runtime import Context
from markupsafe import Markup, escape

from ivr.engine.names import CallNames
from ivr.flow import expressions
from ivr.flow.memo import MISSING, Memo, key_of, read_with_key
from ivr.flow.prompts import MEMO_SIZE, PromptError, PromptLibrary
from ivr.flow.sandbox import RenderBudget, RenderBudgetExceeded, Sandbox

PARIS = ZoneInfo("Europe/Paris")


class CountingClock:
    """A render budget's clock that counts its reads: each render reads it."""

    def __init__(self, step: float = 0.0):
        self.reads, self.now, self.step = 0, 0.0, step

    def __call__(self) -> float:
        self.reads += 1
        self.now += self.step
        return self.now


def library(clock, **templates) -> PromptLibrary:
    return PromptLibrary(Path("."), {("en-US", name): text for name, text in templates.items()},
                         RenderBudget(clock=clock))


def renders(lib, clock, name, **context) -> tuple[str, bool]:
    """What ``name`` says, and whether it was rendered (not kept)."""
    before = clock.reads
    said = lib.render("en-US", name, context)
    return said, clock.reads > before


def test_a_prompt_is_rendered_once_for_the_same_values():
    clock = CountingClock()
    lib = library(clock, back="Back {{ day }}, {{ today }}.")
    assert renders(lib, clock, "back", day="Monday", today=date(2026, 12, 7)) == (
        "Back Monday, 2026-12-07.", True)
    assert renders(lib, clock, "back", day="Monday", today=date(2026, 12, 7), other={"x": 1}) == (
        "Back Monday, 2026-12-07.", False)
    assert renders(lib, clock, "back", day="Tuesday", today=date(2026, 12, 7)) == (
        "Back Tuesday, 2026-12-07.", True)


@pytest.mark.parametrize("template, context", [
    ("{{ now.hour }}", {"now": datetime(2026, 12, 7, 9, tzinfo=PARIS)}),
    ("{{ ['a', 'b']|random }}", {}),
    ("{{ caller|digits }}", {"caller": "+33612345678"}),
    ("{{ number }}", {"number": "06 12 34 56 78"}),
    ("{{ order.number }}", {"order": {"number": "1"}}),
    ("{{ ratio }}", {"ratio": 0.5}),
    ("{{ note }}", {"note": "x" * 300}),
])
def test_a_prompt_reading_the_time_chance_a_caller_or_a_dict_is_rendered_each_time(template, context):
    clock = CountingClock()
    lib = library(clock, p=template)
    lib.render("en-US", "p", context)
    assert renders(lib, clock, "p", **context)[1] is True


@pytest.mark.parametrize("value, said", [
    (1, "1"), (True, "True"), ("1", "1"), (None, "None"),
    ("a&b", "a&amp;b"), (Markup("a&amp;b"), "a&amp;b"), ("a&amp;b", "a&amp;amp;b"),
])
def test_values_equal_in_python_but_said_differently_are_kept_apart(value, said):
    clock = CountingClock()
    lib = library(clock, p="{{ x }}")
    for warm in (1, True, "1", None, "a&b", "a&amp;b"):
        lib.render("en-US", "p", {"x": warm})
    assert lib.render("en-US", "p", {"x": value}) == said


def test_the_time_limit_still_applies_to_a_render_not_kept():
    clock = CountingClock()
    lib = library(clock, p="{% for i in range(40) %}{{ day }}{% endfor %}")
    assert renders(lib, clock, "p", day="a")[1] is True
    clock.step = 1.0  # every read of the clock now finds a second gone
    with pytest.raises(PromptError) as caught:
        lib.render("en-US", "p", {"day": "b"})
    assert caught.value.kind == "budget"
    assert renders(lib, clock, "p", day="a") == ("a" * 40, False)  # kept before: no render


def test_a_render_that_fails_is_not_kept():
    clock = CountingClock()
    lib = library(clock, p="{{ day.missing }}")
    for _ in range(2):
        before = clock.reads
        with pytest.raises(PromptError):
            lib.render("en-US", "p", {"day": "a"})
        assert clock.reads > before


def test_the_kept_prompts_are_bounded():
    clock = CountingClock()
    lib = library(clock, p="{{ n }}")
    for n in range(MEMO_SIZE + 50):
        assert lib.render("en-US", "p", {"n": n}) == str(n)
    assert len(lib._said) == MEMO_SIZE
    assert renders(lib, clock, "p", n=0)[1] is True  # the oldest went first
    assert renders(lib, clock, "p", n=MEMO_SIZE + 49)[1] is False


def test_a_library_read_from_files_keeps_nothing(tmp_path):
    (tmp_path / "en-US").mkdir()
    (tmp_path / "en-US" / "p.j2").write_text("Hello {{ day }}.")
    clock = CountingClock()
    lib = PromptLibrary(tmp_path, budget=RenderBudget(clock=clock))
    assert lib.render("en-US", "p", {"day": "Monday"}) == "Hello Monday."
    (tmp_path / "en-US" / "p.j2").write_text("Bye {{ day }}.")
    assert renders(lib, clock, "p", day="Monday") == ("Bye Monday.", True)


def test_memo_forgets_the_least_recently_used():
    memo = Memo(2)
    memo.put("a", 1)
    memo.put("b", None)
    assert memo.get("a") == 1  # now b is the oldest
    memo.put("c", 3)
    assert (memo.get("a"), memo.get("b"), memo.get("c")) == (1, MISSING, 3)


def test_a_key_holds_each_value_with_its_type_and_marks_a_missing_name():
    assert key_of(("a", "b"), {"a": 1}) != key_of(("a", "b"), {"a": True})
    assert key_of(("a", "b"), {"a": 1}) != key_of(("a", "b"), {"a": 1, "b": None})
    assert key_of(("a",), {"a": datetime(2026, 12, 7, tzinfo=PARIS)}) is None
    assert key_of(("a",), {"a": "+33612345678"}) is None


def test_an_expression_gives_the_right_value_for_values_equal_in_python():
    for value, expected in ((1, "int"), (True, "bool"), ("1", "str"), (1, "int")):
        assert expressions.evaluate("(x is sameas true) and 'bool' or (x is string) and 'str' or 'int'",
                                    {"x": value}) == expected


def test_an_expression_giving_a_dict_or_list_gives_a_new_one_each_time():
    first = expressions.evaluate("{'n': x}", {"x": "1"})
    second = expressions.evaluate("{'n': x}", {"x": "1"})
    assert first == second == {"n": "1"} and first is not second
    assert expressions.evaluate("[x]", {"x": "1"}) is not expressions.evaluate("[x]", {"x": "1"})


def call_state(**changes) -> dict:
    state = {"caller": "+33612345678", "called": "+33100000000", "call_id": "CA1",
             "country": "FR", "lang": "fr-FR", "no_input": 1, "no_match": 1, "digits": "1",
             "speech": "", "reason": "billing", "pending": {"label": "L", "word": "W"},
             "vars": {"order": {"number": "1"}, "caller": "shadowed", "opens_at": None}}
    state.update(changes)
    return state


def test_the_call_names_are_the_state_read_at_the_calls_local_time():
    now = datetime(2026, 12, 7, 8, 30, tzinfo=ZoneInfo("UTC"))
    names = CallNames(call_state(), now, "Europe/Paris")
    assert dict(names) == {
        "order": {"number": "1"}, "caller": "+33612345678", "called": "+33100000000",
        "call_id": "CA1", "country": "FR", "lang": "fr-FR",
        "now": datetime(2026, 12, 7, 9, 30, tzinfo=PARIS), "today": date(2026, 12, 7),
        "hour": 9, "weekday": 1, "attempt": 3, "digits": "1", "speech": "",
        "reason": "billing", "opens_at": None, "choice_label": "L", "choice_word": "W"}
    assert "order" in names and "missing" not in names and names.get("missing") is None
    with pytest.raises(KeyError):
        names["missing"]


def test_the_call_names_follow_the_state_and_keep_a_value_given():
    state = call_state(pending=None)
    names = CallNames(state, datetime(2026, 12, 7, 8, 30, tzinfo=PARIS), "Europe/Paris")
    state["vars"]["status_told"] = True
    state["lang"] = "en-US"
    names["reason"] = "assigned"
    assert (names["status_told"], names["lang"], names["reason"]) == (True, "en-US", "assigned")
    assert names["choice_label"] is None


# --- What a render or a condition is given ---------------------------------------


@pytest.mark.parametrize("template, context, said", [
    ("{% for i in range(n) %}{{ i }}{% endfor %}", {"n": 3}, "012"),
    ("{{ dict(a=x)['a'] }}", {"x": "1"}, "1"),
    ("{% set ns = namespace(n=x) %}{{ ns.n }}", {"x": "2"}, "2"),
    ("{{ range }}-{{ x }}", {"range": "mine", "x": "3"}, "mine-3"),  # a variable hides a global
    ("{{ x }}", {"x": "4", "range": "unread"}, "4"),
])
def test_a_prompt_reads_the_sandboxs_globals_and_the_variables_that_hide_them(template, context,
                                                                               said):
    clock = CountingClock()
    lib = library(clock, p=template)
    assert renders(lib, clock, "p", **context) == (said, True)
    assert lib.render("en-US", "p", context) == said


def test_a_prompt_that_takes_another_is_given_every_name_and_the_globals():
    clock = CountingClock()
    lib = library(clock, p="{% include 'q.j2' %}", q="{% for i in range(n) %}{{ i }}{% endfor %}")
    assert renders(lib, clock, "p", n=2) == ("01", True)


@pytest.mark.parametrize("source, context, value", [
    ("range(n)|list|length", {"n": 3}, 3),
    ("dict(a=x)", {"x": "1"}, {"a": "1"}),
    ("namespace(a=x).a ~ joiner('-')()", {"x": "1"}, "1"),
    ("x", {"x": "5", "dict": "unread"}, "5"),
])
def test_an_expression_reads_the_sandboxs_globals_and_the_variables_that_hide_them(source, context,
                                                                                   value):
    assert expressions.evaluate(source, context) == value
    assert expressions.evaluate(source, context) == value


def test_a_context_holds_what_jinjas_own_holds():
    sandbox = Sandbox()
    template = sandbox.from_string("{{ x }}")
    ours = sandbox.context_of(template, {"x": 1})
    jinjas = Context(sandbox, {**template.globals, "x": 1}, template.name, template.blocks,
                     template.globals)
    assert isinstance(ours, Context)
    assert vars(ours).keys() == vars(jinjas).keys()
    for name in ("parent", "vars", "environment", "exported_vars", "name", "blocks"):
        assert getattr(ours, name) == getattr(jinjas, name), name
    assert set(ours.globals_keys) == jinjas.globals_keys
    assert ours.globals_keys - {"range"} == jinjas.globals_keys - {"range"}
    assert vars(ours.eval_ctx) == vars(jinjas.eval_ctx)
    alone = sandbox.context_of(template, {"x": 1}, own=True)
    assert alone.parent == {"x": 1} and alone.resolve_or_missing("x") == 1


def test_a_read_gives_the_values_it_has_and_the_key_of_them():
    context = {"lang": "fr-FR", "flag": True, "order": {"status": "shipped"}}
    read, key = read_with_key(("flag", "lang", "missing"), context)
    assert read == {"flag": True, "lang": "fr-FR"}
    assert key == key_of(("flag", "lang", "missing"), context)
    assert key is not None
    read, key = read_with_key(("lang", "order"), context)
    assert read == {"lang": "fr-FR", "order": {"status": "shipped"}} and key is None
    assert read_with_key(("lang",), context, keeps=False) == ({"lang": "fr-FR"}, None)


@pytest.mark.parametrize("value", ["Tom & Jerry <b>", "l'été \"chaud\"", "", 42, None, 1.5,
                                   Markup("<break time='1s'/>"), date(2026, 12, 8)])
def test_what_a_template_says_is_escaped_as_markupsafe_escapes_it(value):
    lib = library(CountingClock(), said="[{{ value }}]")
    said = lib.render("en-US", "said", {"value": value})
    assert said == f"[{escape(value)}]"


def test_a_template_that_changes_its_escaping_gets_its_own_evaluation_context():
    """``{% autoescape %}`` changes the render's evaluation context, and a
    failure inside it leaves it changed: such a template never shares one."""
    lib = library(CountingClock(), switch="{% if fail %}{% autoescape false %}{{ boom.x.y }}"
                                          "{% endautoescape %}{% endif %}{{ a }}",
                  plain="{{ a }}")
    with pytest.raises(PromptError):
        lib.render("en-US", "switch", {"fail": True, "a": "<"})
    assert lib.render("en-US", "switch", {"fail": False, "a": "<"}) == "&lt;"
    assert lib._templates["en-US", "switch", False].eval_ctx is None
    assert lib.render("en-US", "plain", {"a": "<"}) == "&lt;"
    assert lib._templates["en-US", "plain", False].eval_ctx is not None


def test_the_filters_are_bounded_once_however_they_are_set():
    sandbox = Sandbox()
    calls = []

    def shout(text):
        calls.append(text)
        return text.upper()

    sandbox.filters["shout"] = shout
    sandbox.filters.update(loud=shout)
    sandbox.filters.setdefault("quiet", shout)
    sandbox.filters |= {"louder": shout}
    sandbox.filters["again"] = sandbox.filters["shout"]  # already bounded: not wrapped twice
    for name in ("shout", "loud", "quiet", "louder", "again"):
        assert getattr(sandbox.filters[name], "metered", False), name
        assert sandbox.filters.get(name) is sandbox.filters[name]
        template = sandbox.from_string("{{ v | " + name + " }}")
        assert sandbox.render_within(template, {"v": "a"}, RenderBudget(operations=1)) == "A"
    with pytest.raises(RenderBudgetExceeded):  # counted: one operation over the budget
        sandbox.render_within(sandbox.from_string("{{ v | shout | again }}"), {"v": "a"},
                              RenderBudget(operations=1))
    assert calls == ["a"] * 6  # the second filter stopped before it ran
