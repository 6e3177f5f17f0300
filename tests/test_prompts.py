import datetime as dt
import shutil
from decimal import Decimal
from pathlib import Path

import pytest
from markupsafe import Markup

from ivr.flow.prompts import PromptError, PromptLibrary, PromptProblem

REPO_PROMPTS = Path(__file__).parent.parent / "prompts"


@pytest.fixture
def root(tmp_path):
    for lang in ("fr-FR", "en-US"):  # with their speech data: relative_date's words
        (tmp_path / lang).mkdir()
        shutil.copy(REPO_PROMPTS / lang / "speech.yaml", tmp_path / lang / "speech.yaml")
    (tmp_path / ".hidden").mkdir()
    return tmp_path


@pytest.fixture
def lib(root):
    return PromptLibrary(root)


def write(root, lang, name, text):
    path = root / lang / f"{name}.j2"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def say(lib, root, template, lang="fr-FR", **context):
    write(root, lang, "t", template)
    return lib.render(lang, "t", context)


# --- Library ------------------------------------------------------------------


def test_languages_exists_path_source(lib, root):
    path = write(root, "fr-FR", "order_status", "Bonjour.")
    assert lib.languages() == ["en-US", "fr-FR"]
    assert lib.path("fr-FR", "order_status") == path
    assert lib.exists("fr-FR", "order_status")
    assert not lib.exists("en-US", "order_status")
    assert not lib.exists("fr-FR", "../fr-FR/order_status")
    assert lib.source("fr-FR", "order_status") == b"Bonjour."


def test_languages_of_missing_root(tmp_path):
    assert PromptLibrary(tmp_path / "nope").languages() == []


def test_source_of_missing_prompt(lib):
    with pytest.raises(PromptError) as err:
        lib.source("fr-FR", "nope")
    assert (err.value.lang, err.value.name, err.value.line) == ("fr-FR", "nope", None)


@pytest.mark.parametrize("name", ["../secret", "/etc/passwd", "a//b", ""])
def test_names_stay_inside_the_root(lib, name):
    with pytest.raises(PromptError, match="invalid prompt name"):
        lib.path("fr-FR", name)


def test_subfolder_names(lib, root):
    write(root, "fr-FR", "common/goodbye", "Au revoir.")
    assert lib.render("fr-FR", "common/goodbye", {}) == "Au revoir."


# --- Rendering ------------------------------------------------------------------


def test_data_is_escaped(lib, root):
    assert say(lib, root, "{{ carrier }}", carrier="A&B <x>") == "A&amp;B &lt;x&gt;"


def test_ssml_in_the_template_is_kept(lib, root):
    out = say(lib, root, 'Bonjour.<break time="500ms"/> Votre commande {{ n }}.', n="<42>")
    assert out == 'Bonjour.<break time="500ms"/> Votre commande &lt;42&gt;.'


def test_whitespace_collapses(lib, root):
    template = """
    Votre commande
    {% if shipped %}
        est partie.
    {% else %}
        est en préparation.
    {% endif %}

    Merci.
    """
    assert say(lib, root, template, shipped=True) == "Votre commande est partie. Merci."
    assert say(lib, root, template, shipped=False) == "Votre commande est en préparation. Merci."


def test_unknown_variable_raises_with_line(lib, root):
    with pytest.raises(PromptError) as err:
        say(lib, root, "Bonjour.\n\n{{ missing }}")
    assert err.value.line == 3
    assert "missing" in err.value.message
    assert (err.value.lang, err.value.name) == ("fr-FR", "t")


def test_missing_template(lib):
    with pytest.raises(PromptError, match="no such prompt") as err:
        lib.render("fr-FR", "nope", {})
    assert err.value.line is None


def test_missing_language(lib):
    with pytest.raises(PromptError):
        lib.render("de-DE", "nope", {})


def test_syntax_error_at_render(lib, root):
    with pytest.raises(PromptError) as err:
        say(lib, root, "a\n{{ x ")
    assert err.value.line == 2


def test_sandbox(lib, root):
    with pytest.raises(PromptError):
        say(lib, root, "{{ x.__class__.__mro__ }}", x="a")
    with pytest.raises(PromptError):
        say(lib, root, "{{ x.__init__.__globals__ }}", x=lambda: None)


def test_a_dict_key_wins_over_a_dict_method(lib, root):
    order = {"number": "100234", "items": 2}
    assert say(lib, root, "{{ order.number }}: {{ order.items }} articles", order=order) == (
        "100234: 2 articles")
    assert say(lib, root, "{{ order['items'] }}", order=order) == "2"
    with pytest.raises(PromptError, match="has no attribute 'missing'"):
        say(lib, root, "{{ order.missing }}", order=order)
    with pytest.raises(PromptError):  # still the sandbox for what is not a key
        say(lib, root, "{{ order.__class__.__mro__ }}", order=order)


def test_filter_error_is_a_prompt_error(lib, root):
    with pytest.raises(PromptError) as err:
        say(lib, root, "Livraison\n{{ d|date }}", d="pas une date")
    assert err.value.line == 2


def test_environment_per_language(lib, root):
    write(root, "fr-FR", "t", "{{ d|date }}")
    write(root, "en-US", "t", "{{ d|date }}")
    d = dt.date(2026, 11, 24)
    assert lib.render("fr-FR", "t", {"d": d}) == "mardi 24 novembre"
    assert lib.render("en-US", "t", {"d": d}) == "Tuesday, November 24"
    assert lib.render("fr-FR", "t", {"d": d}) == "mardi 24 novembre"


# --- Filters ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, expected",
    [("100234", "1 0 0 2 3 4"), ("+33 6 12", "3 3 6 1 2"), (100234, "1 0 0 2 3 4"), ("", "")],
)
def test_digits(lib, root, value, expected):
    assert say(lib, root, "{{ v|digits }}", v=value) == expected


@pytest.mark.parametrize("value, expected", [("6A123", "6 A 1 2 3"), ("6a-12", "6 A 1 2")])
def test_spell(lib, root, value, expected):
    assert say(lib, root, "{{ v|spell }}", v=value) == expected


@pytest.mark.parametrize(
    "lang, value, expected",
    [
        ("fr-FR", dt.date(2026, 11, 24), "mardi 24 novembre"),
        ("fr-FR", dt.datetime(2026, 11, 24, 15, 0), "mardi 24 novembre"),
        ("fr-FR", "2026-11-24", "mardi 24 novembre"),
        ("fr-FR", "2026-11-24T15:00:00+01:00", "mardi 24 novembre"),
        ("fr-FR", dt.date(2026, 5, 1), "vendredi 1er mai"),
        ("fr-FR", dt.date(2026, 5, 11), "lundi 11 mai"),
        ("en-US", dt.date(2026, 11, 24), "Tuesday, November 24"),
        ("en-US", dt.date(2026, 5, 1), "Friday, May 1"),
    ],
)
def test_date(lib, root, lang, value, expected):
    assert say(lib, root, "{{ v|date }}", lang=lang, v=value) == expected


@pytest.mark.parametrize(
    "lang, value, expected",
    [
        ("fr-FR", dt.date(2026, 11, 24), "mardi 24 novembre 2026"),
        ("fr-FR", dt.date(2026, 5, 1), "vendredi 1er mai 2026"),
        ("en-US", dt.date(2026, 11, 24), "Tuesday, November 24, 2026"),
    ],
)
def test_long_date(lib, root, lang, value, expected):
    assert say(lib, root, '{{ v|date("long") }}', lang=lang, v=value) == expected


def test_date_rejects_unknown_format(lib, root):
    with pytest.raises(PromptError):
        say(lib, root, '{{ v|date("short") }}', v=dt.date(2026, 11, 24))


@pytest.mark.parametrize(
    "lang, value, expected",
    [
        ("fr-FR", dt.date(2026, 11, 24), "aujourd&#39;hui"),
        ("fr-FR", "2026-11-25", "demain"),
        ("fr-FR", dt.date(2026, 11, 23), "hier"),
        # Within six days, the weekday alone: "livré jeudi", "expédié vendredi".
        ("fr-FR", dt.date(2026, 11, 26), "jeudi"),
        ("fr-FR", dt.date(2026, 11, 30), "lundi"),
        ("fr-FR", dt.date(2026, 11, 20), "vendredi"),
        # Further, the date, with its article: "livré le mardi 1er décembre".
        ("fr-FR", dt.date(2026, 12, 1), "le mardi 1er décembre"),
        ("fr-FR", dt.date(2026, 11, 17), "le mardi 17 novembre"),
        ("en-US", dt.date(2026, 11, 24), "today"),
        ("en-US", dt.datetime(2026, 11, 25, 8, 0), "tomorrow"),
        ("en-US", dt.date(2026, 11, 23), "yesterday"),
        ("en-US", dt.date(2026, 11, 26), "on Thursday"),
        ("en-US", dt.date(2026, 12, 8), "on Tuesday, December 8"),
    ],
)
def test_relative_date(lib, root, lang, value, expected):
    out = say(lib, root, "{{ v|relative_date(today) }}", lang=lang, v=value, today=dt.date(2026, 11, 24))
    assert out == expected


def test_relative_date_never_borrows_another_languages_words(lib, root):
    with pytest.raises(PromptError, match=r"de-DE/speech.yaml has no 'days' with today, tomorrow"):
        say(lib, root, "{{ v|relative_date(today) }}", lang="de-DE", v=dt.date(2026, 11, 25),
            today=dt.date(2026, 11, 24))
    (root / "de-DE" / "speech.yaml").write_text(
        'days: {today: heute, tomorrow: morgen, yesterday: gestern, before_date: "am ", '
        'before_weekday: "am "}\n', encoding="utf-8")
    fresh = PromptLibrary(root)
    assert say(fresh, root, "{{ v|relative_date(today) }}", lang="de-DE", v=dt.date(2026, 11, 25),
               today=dt.date(2026, 11, 24)) == "morgen"


@pytest.mark.parametrize(
    "lang, value, expected",
    [
        ("fr-FR", dt.time(18, 30), "18 h 30"),
        ("fr-FR", "09:00", "9 h"),
        ("fr-FR", "09:05", "9 h 05"),
        ("fr-FR", dt.datetime(2026, 11, 24, 14, 15), "14 h 15"),
        ("en-US", dt.time(18, 30), "6:30 PM"),
        ("en-US", "09:00", "9 AM"),  # on the hour, as said
    ],
)
def test_time(lib, root, lang, value, expected):
    assert say(lib, root, "{{ v|time }}", lang=lang, v=value) == expected


@pytest.mark.parametrize(
    "lang, template, value, expected",
    [
        ("fr-FR", "{{ v|money }}", Decimal("42.50"), "42,50 €"),
        ("fr-FR", "{{ v|money }}", "42.5", "42,50 €"),
        ("fr-FR", "{{ v|money }}", 1234, "1 234,00 €"),
        ("en-US", "{{ v|money }}", 42.5, "€42.50"),
        ("en-US", '{{ v|money("USD") }}', "42.5", "$42.50"),
    ],
)
def test_money(lib, root, lang, template, value, expected):
    assert say(lib, root, template, lang=lang, v=value) == expected


def test_filter_output_is_escaped_once(lib, root):
    # Data with markup characters goes through a filter: still escaped, and
    # Markup input is not escaped twice.
    assert say(lib, root, "{{ v|digits }} {{ v|spell }}", v="<1&2>") == "1 2 1 2"
    assert say(lib, root, "{{ v|money }}", v=Markup("42.5")) == "42,50 €"
    assert say(lib, root, "{{ v|e|spell }}", v="a&b") == "A B"


# --- Static checks ------------------------------------------------------------------


def test_check_clean(lib, root):
    write(root, "fr-FR", "t", "{% for i in items %}{{ i }}{% endfor %} {{ order.id|digits }}")
    assert lib.check("fr-FR", "t", {"items", "order"}) == []
    assert lib.variables("fr-FR", "t") == {"items", "order"}


def test_check_unknown_variables(lib, root):
    path = write(
        root,
        "fr-FR",
        "t",
        "Votre commande {{ order.id }}\nLivrée par {{ carrier }} le {{ eta|date }}.\n{{ carrier }}",
    )
    problems = lib.check("fr-FR", "t", {"order"})
    assert problems == [
        PromptProblem(path, 2, 15, "unknown variable 'carrier'", "unknown-variable"),
        PromptProblem(path, 2, 32, "unknown variable 'eta'", "unknown-variable"),
    ]


def test_check_column_skips_spoken_text(lib, root):
    path = write(root, "fr-FR", "t", "order {{ order }}")
    assert lib.check("fr-FR", "t", set()) == [
        PromptProblem(path, 1, 10, "unknown variable 'order'", "unknown-variable")
    ]


def test_check_syntax_error(lib, root):
    path = write(root, "fr-FR", "t", "Bonjour.\n{% if x %}\n{{ x }}")
    [problem] = lib.check("fr-FR", "t", {"x"})
    assert problem.path == path
    assert problem.code == "prompt-syntax"
    assert problem.line == 3
    assert problem.column == 1
    with pytest.raises(PromptError):
        lib.variables("fr-FR", "t")


def test_check_unknown_filter(lib, root):
    write(root, "fr-FR", "t", "Bonjour.\n{{ x|nope }}")
    [problem] = lib.check("fr-FR", "t", {"x"})
    assert (problem.code, problem.line) == ("prompt-syntax", 2)
    assert "nope" in problem.message


def test_check_missing_template(lib):
    with pytest.raises(PromptError):
        lib.check("fr-FR", "nope", set())


# --- A flow version's prompts (in memory) -----------------------------------------------


def test_a_snapshot_renders_what_the_files_rendered_and_ignores_later_edits(lib, root):
    write(root, "fr-FR", "menu", "Pour suivre   une commande,\n tapez 1.")
    write(root, "fr-FR", "hello", "Bonjour {{ name }}.")
    snapshot = lib.snapshot([("fr-FR", "menu"), ("fr-FR", "hello")])
    write(root, "fr-FR", "menu", "Changed.")
    assert snapshot.render("fr-FR", "menu", {}) == "Pour suivre une commande, tapez 1."
    assert snapshot.render("fr-FR", "menu", {"any": 1}) == "Pour suivre une commande, tapez 1."
    assert snapshot.render("fr-FR", "hello", {"name": "Ana"}) == "Bonjour Ana."
    assert snapshot.render("fr-FR", "hello", {"name": "Léo"}) == "Bonjour Léo."
    assert snapshot.render_text("fr-FR", "menu", {}) == "Pour suivre une commande,\ntapez 1."


def test_a_prompt_that_reads_nothing_is_rendered_once(lib, root, monkeypatch):
    write(root, "fr-FR", "menu", "Tapez 1.")
    write(root, "fr-FR", "random", "{{ range(3) | random }}")  # a global: rendered each time
    write(root, "fr-FR", "pick", "{{ [1, 2, 3] | random }}")  # random: rendered each time
    snapshot = lib.snapshot([("fr-FR", "menu"), ("fr-FR", "random"), ("fr-FR", "pick")])
    rendered = []
    real = PromptLibrary._render
    monkeypatch.setattr(PromptLibrary, "_render",
                        lambda self, *args, **kw: rendered.append(args[1]) or real(self, *args, **kw))
    for _ in range(3):
        snapshot.render("fr-FR", "menu", {})
        snapshot.render("fr-FR", "random", {})
        snapshot.render("fr-FR", "pick", {})
    assert rendered == ["menu"] + ["random", "pick"] * 3
