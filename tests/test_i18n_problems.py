"""Shop-configuration problems, speech-lexicon errors and the flow
drawing's own layout in the operator's language: French when it is
French, the English unchanged otherwise; positions, codes and file names
never translated."""

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ivr import i18n
from ivr.flow.loader import load_flow
from ivr.flow.speech import LexiconError, lexicon_from_source
from ivr.lookups.shops.config import ShopConfigError, config_from_text
from ivr.reports.graph import build_graph
from ivr.reports.graph_svg import to_svg
from ivr.reports.graph_text import to_dot

ROOT = Path(__file__).resolve().parent.parent

SHOP = """\
    base_url: shop.example.com
    token: abc123
    timeout: 12
    auth:
      secret_env: NOT_SET
    order_by_number:
      path: /orders/{id}
    orders_by_phone:
      path: /orders?phone={phone}
    fields:
      number: id
      ordered_on: created_at
      total: total
      tracking_number: fulfillments..tracking_number
      status:
        path: state
        map: {shipped: shiped}
    """


def _shop_problems() -> list[str]:
    with pytest.raises(ShopConfigError) as caught:
        config_from_text("shop.yaml", textwrap.dedent(SHOP), {})
    return str(caught.value).splitlines()


def test_shop_configuration_problems_are_french_in_french():
    i18n.use_language("fr")
    assert _shop_problems() == [
        "shop.yaml:1:11: erreur: base_url: attendu une URL http:// ou https://, trouvé "
        "'shop.example.com' [wrong-value]",
        "shop.yaml:2:1: erreur: token: champ inconnu 'token' ; champs possibles : auth, base_url, "
        "breaker, fields, order_by_number, orders_by_phone, preset, recent_days, timeout ; ne mettez "
        "jamais de secret dans ce fichier : exportez-le dans une variable d'environnement et nommez "
        "cette variable dans auth.secret_env [unknown-field]",
        "shop.yaml:3:10: erreur: timeout: 12 s, c'est trop long : une recherche doit répondre bien "
        "avant que l'opérateur téléphonique abandonne (15 s) ; mettez au plus quelques secondes "
        "[wrong-value]",
        "shop.yaml:5:15: erreur: auth.secret_env: la variable d'environnement NOT_SET n'est pas "
        "définie (ou est vide) : exportez-la avant de démarrer le serveur [missing-secret]",
        "shop.yaml:7:9: erreur: order_by_number.path: paramètre inconnu {id} ; possibles : {number} "
        "[bad-template]",
        "shop.yaml:8:1: erreur: orders_by_phone: check_phone demande fields.phone pour comparer les "
        "numéros des commandes à celui de l'appelant ; faites-le correspondre, ou mettez "
        "check_phone: false si ce chemin ne répond jamais que les commandes de l'appelant "
        "lui-même [missing-field]",
        "shop.yaml:14:20: erreur: fields.tracking_number.path: étape vide dans le chemin "
        "'fulfillments..tracking_number' (deux points de suite, ou un point à un bout) [bad-path]",
        "shop.yaml:17:20: erreur: fields.status.map.shipped: statut inconnu 'shiped' ; possibles : "
        "preparing, shipped, in_transit, out_for_delivery, delivered, delayed_carrier, "
        "delayed_warehouse, lost, cancelled, returned (ou null pour essayer la règle suivante) "
        "[unknown-status]",
    ]


def test_shop_configuration_problems_stay_english_in_english():
    i18n.use_language("en")
    problems = _shop_problems()
    assert problems[2] == ("shop.yaml:3:10: error: timeout: 12 s is too long: a look-up must answer "
                           "well before the telephony provider gives up (15 s); use at most a few "
                           "seconds [wrong-value]")
    assert problems[6] == ("shop.yaml:14:20: error: fields.tracking_number.path: empty step in path "
                           "'fulfillments..tracking_number' (two dots in a row, or a dot at an end) "
                           "[bad-path]")


def test_a_presets_problem_says_so_in_french():
    i18n.use_language("fr")
    with pytest.raises(ShopConfigError) as caught:
        config_from_text("shop.yaml", "preset: shopify\nbase_url: https://x.example.com\n"
                         "auth:\n  secret_env: SHOP_SECRET\n", {})
    assert str(caught.value) == ("shop.yaml:4:15: erreur: auth.secret_env: la variable "
                                 "d'environnement SHOP_SECRET n'est pas définie (ou est vide) : "
                                 "exportez-la avant de démarrer le serveur [missing-secret]")
    with pytest.raises(ShopConfigError) as caught:
        config_from_text("shop.yaml", "preset: shopify\nbase_url: https://x.example.com\n"
                         "order_by_number: {path: 'https://x/{number}'}\n",
                         {"SHOPIFY_ACCESS_TOKEN": "t"})
    assert "attendu un chemin relatif à base_url, trouvé une URL complète" in str(caught.value)


LEXICON = "stemmer: french\nyes: [oui]\nno: [non]\nescape: [conseiller]\nfiller: [euh]\nnumbers: {}\n"


@pytest.mark.parametrize(("source", "french", "english"), [
    ("yes: [oui]\n", "speech.yaml : il manque stemmer, no, escape, filler, numbers",
     "speech.yaml: missing stemmer, no, escape, filler, numbers"),
    ("- oui\n", "speech.yaml : attendu un dictionnaire avec stemmer, yes, no, escape, filler, numbers",
     "speech.yaml: expected a mapping with stemmer, yes, no, escape, filler, numbers"),
    (LEXICON.replace("french", "frenchh"), "speech.yaml : racinisateur inconnu 'frenchh' ; possibles : ",
     "speech.yaml: unknown stemmer 'frenchh'; expected one of "),
])
def test_lexicon_errors_are_french_in_french_and_english_otherwise(source, french, english):
    for lang, expected in (("fr", french), ("en", english)):
        i18n.use_language(lang)
        with pytest.raises(LexiconError) as caught:
            lexicon_from_source(source, "fr-FR", "speech.yaml")
        assert str(caught.value).startswith(expected)


def test_lint_names_a_broken_lexicon_in_french_under_a_french_locale(tmp_path):
    prompts = tmp_path / "prompts"
    for lang in ("fr-FR", "en-US"):
        (prompts / lang).mkdir(parents=True)
        for template in (ROOT / "prompts" / lang).iterdir():
            (prompts / lang / template.name).write_bytes(template.read_bytes())
    (prompts / "en-US" / "speech.yaml").write_text("yes: [yes]\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG")}
    env.update(LANG="fr_FR.UTF-8", PYTHONPATH=str(ROOT))
    flow = ROOT / "flows" / "post_sale.yaml"
    linted = subprocess.run([sys.executable, "-c", "from ivr.sim.cli import main; main()", "lint",
                             "--prompts", str(prompts), str(flow)],
                            capture_output=True, text=True, env=env, check=False)
    assert linted.returncode == 1
    assert linted.stdout == (f"{flow}:7:20: erreur: {prompts / 'en-US' / 'speech.yaml'} : il manque "
                             "stemmer, no, escape, filler, numbers [speech-data]\n")


@pytest.fixture(scope="module")
def demo_graph():
    return build_graph(load_flow(ROOT / "flows" / "post_sale.yaml", ROOT / "prompts"))


STATS = {"main_menu": {"reached": 40, "hung_up": 6, "transferred": 4}}


def test_the_own_layout_writes_its_boxes_and_key_in_french(demo_graph):
    i18n.use_language("fr")
    svg = to_svg(demo_graph, STATS)
    assert ">arrivés 40 · perdus 10 (25%)</text>" in svg
    assert ">non atteinte</text>" in svg
    assert "résout la demande de l&#x27;appelant" in svg
    assert "taux d&#x27;abandon (raccroché ou transféré ÷ arrivés) :" in svg
    assert f"{demo_graph.start}" in svg and " · début</text>" in svg
    words = " ".join(re.findall(r">([^<>]+)<", svg))  # what is written, not the attributes
    assert "reached" not in words and "resolves" not in words


def test_the_own_layout_stays_english_in_english(demo_graph):
    i18n.use_language("en")
    svg = to_svg(demo_graph, STATS)
    assert ">reached 40 · dropped 10 (25%)</text>" in svg
    assert ">not reached</text>" in svg
    assert "drop-off rate (hung up or transferred ÷ reached):" in svg
    assert " · start</text>" in svg


def test_the_dot_drawing_marks_its_nodes_in_french(demo_graph):
    i18n.use_language("fr")
    dot = to_dot(demo_graph)
    assert " · début" in dot and "sur une boucle : le garde-fou de boucle" in dot
    i18n.use_language("en")
    assert " · start" in to_dot(demo_graph)
