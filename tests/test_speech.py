"""The speech matcher: every candidate scored, the specific phrase winning,
numbers heard as digits, and confidence turning a take into a confirm."""

from pathlib import Path

import pytest

from ivr.flow.loader import load_flow
from ivr.flow.speech import (
    ESCAPE,
    NO,
    YES,
    Candidate,
    LexiconError,
    Matcher,
    Settings,
    lexicon_from_source,
    load_lexicon,
)

ROOT = Path(__file__).parent.parent


@pytest.fixture(scope="module")
def demo():
    return load_flow(ROOT / "flows" / "post_sale.yaml", ROOT / "prompts")


def menu_decision(demo, text, lang="fr-FR", node="main_menu", confidence=None):
    menu = demo.nodes[node]
    decision = menu.opts["matchers"][lang].decide(text, menu.opts["speech"], confidence)
    if decision.candidate in (None, ESCAPE):
        return decision.verdict, decision.candidate
    return decision.verdict, menu.opts["choices"][decision.candidate].key


@pytest.mark.parametrize("text, key", [
    ("je voudrais retourner ma commande", "2"),
    ("quand est-ce que ma commande sera livrée", "1"),
    ("je veux être remboursé", "2"),
    ("comment renvoyer un article", "2"),
    ("une vraie personne", ESCAPE),
    ("je voudrais annuler ma commande", "4"),
    ("mon colis est indiqué livré mais je l'ai jamais reçu", "3"),
])
def test_french_phrasings_are_taken_as_meant(demo, text, key):
    assert menu_decision(demo, text) == ("take", key)


@pytest.mark.parametrize("text, key", [
    ("I'd like a refund for my order", "2"),
    ("it says delivered but I never got it", "3"),
    ("talk to a human", ESCAPE),
    ("where is my order", "1"),
])
def test_english_phrasings_are_taken_as_meant(demo, text, key):
    assert menu_decision(demo, text, lang="en-US") == ("take", key)


def test_a_word_every_choice_shares_is_no_match(demo):
    assert menu_decision(demo, "ma commande")[0] == "no_match"


def test_a_number_word_said_alone_is_the_key(demo):
    assert menu_decision(demo, "euh la deux") == ("take", "2")
    assert menu_decision(demo, "option four", lang="en-US") == ("take", "4")


def test_an_article_is_not_a_key(demo):
    # "un" is a number word, but "un retour" is about a return.
    assert menu_decision(demo, "c'est pour un retour") == ("take", "2")


def test_a_misrecognised_word_is_brought_to_the_nearest_one(demo):
    assert menu_decision(demo, "rembourssemant") == ("take", "2")


def test_low_recogniser_confidence_confirms_instead_of_taking(demo):
    assert menu_decision(demo, "je veux être remboursé", confidence=0.2) == ("confirm", "2")


def test_negation_tells_not_received_from_received(demo):
    assert menu_decision(demo, "je ne l'ai pas reçu", node="status_delivered") == ("take", "1")
    assert menu_decision(demo, "oui je l'ai reçu", node="status_delivered") == ("take", "2")


def test_decision_detail_gives_score_and_margin(demo):
    menu = demo.nodes["main_menu"]
    decision = menu.opts["matchers"]["fr-FR"].decide("je veux être remboursé", menu.opts["speech"])
    assert decision.detail == f"score={decision.score:.2f} margin={decision.margin:.2f}"
    assert decision.score >= Settings().accept and decision.margin >= Settings().margin


def test_the_specific_phrase_beats_the_generic_one():
    lexicon = load_lexicon(ROOT / "prompts" / "fr-FR" / "speech.yaml", "fr-FR")
    matcher = Matcher(lexicon, (Candidate("status", (), ("colis",)),
                                Candidate("missing", (), ("colis pas reçu",))))
    evidence = matcher.evidence("mon colis pas reçu")
    assert evidence["missing"] > evidence.get("status", 0.0)
    assert matcher.evidence("mon colis") == {"status": 1.0}


@pytest.mark.parametrize("text, lang", [
    ("je ne sais pas", "fr-FR"), ("I don't know", "en-US"), ("pas du tout", "fr-FR"),
    ("never", "en-US"),
])
def test_a_negation_alone_is_no_reason(demo, text, lang):
    # Key 3 of ask_reason is "pas reçu": its "pas" counts only with "reçu".
    assert menu_decision(demo, text, lang=lang, node="ask_reason") == ("no_match", None)


@pytest.mark.parametrize("text, lang", [("c'est personnel", "fr-FR"), ("it's personal", "en-US")])
def test_a_distinct_word_is_not_the_escape_word_it_looks_like(demo, text, lang):
    assert menu_decision(demo, text, lang=lang, node="ask_reason") == ("no_match", None)


def test_nobody_is_not_somebody_misheard(demo):
    verdict, key = menu_decision(demo, "nobody delivered anything to me", lang="en-US",
                                 node="status_delivered")
    assert key == "1"


@pytest.mark.parametrize("text, lang, key", [
    ("yes I did get it", "en-US", "2"),
    ("yes I got it", "en-US", "2"),
    ("no I never got it", "en-US", "1"),
    ("but I never received it", "en-US", "1"),
    ("no it's fine I got it thanks", "en-US", "2"),
    ("oui je l'ai bien reçu", "fr-FR", "2"),
    ("non je l'ai jamais reçu", "fr-FR", "1"),
    ("non c'est bon j'ai reçu merci", "fr-FR", "2"),
])
def test_yes_and_no_beside_what_the_caller_got(demo, text, lang, key):
    assert menu_decision(demo, text, lang=lang, node="status_delivered")[1] == key


def test_a_negation_is_a_weak_no_where_a_choice_holds_the_no_words(demo):
    # "Si vous ne l'avez pas reçu, tapez 1": a negated sentence is worth a confirmation.
    assert menu_decision(demo, "je l'ai toujours pas", node="status_delivered") == ("confirm", "1")


@pytest.mark.parametrize("text, lang", [
    ("je voudrais savoir où est mon colis mais je préfère parler à un conseiller", "fr-FR"),
    ("where is my order I want to talk to an agent", "en-US"),
])
def test_a_request_to_talk_to_a_human_wins_over_a_self_served_choice(demo, text, lang):
    assert menu_decision(demo, text, lang=lang) == ("take", ESCAPE)


def test_a_human_who_calls_back_is_the_call_back(demo):
    # No request to talk: the escape word is part of what the caller asks for.
    assert menu_decision(demo, "I want an agent to call me back", lang="en-US",
                         node="closed_menu")[1] == "1"


def test_the_refund_of_a_returned_order_is_a_status_question(demo):
    assert menu_decision(demo, "où en est mon remboursement") == ("take", "1")
    assert menu_decision(demo, "je veux être remboursé") == ("take", "2")


def test_a_decision_takes_under_a_millisecond(demo):
    import time
    menu = demo.nodes["main_menu"]
    matcher, settings = menu.opts["matchers"]["fr-FR"], menu.opts["speech"]
    text = "bonjour euh j'ai renvoyé le colis la semaine dernière et je n'ai pas été remboursé"
    start = time.perf_counter()
    for _ in range(200):
        matcher.decide(text, settings)
    assert (time.perf_counter() - start) / 200 < 0.001


def test_yes_no_comes_from_the_language_data(demo):
    matcher = demo.yes_no["fr-FR"]
    assert matcher.decide("oui tout à fait", demo.speech).candidate == YES
    assert matcher.decide("non pas du tout", demo.speech).candidate == NO
    assert demo.yes_no["en-US"].decide("yep", demo.speech).candidate == YES


@pytest.mark.parametrize("text, lang, digits", [
    ("un deux trois quatre cinq six", "fr-FR", "123456"),
    ("cent deux mille trois cent quatre", "fr-FR", "102304"),
    ("one hundred and two thousand three hundred and four", "en-US", "102304"),
    ("my order is one two three four five six", "en-US", "123456"),
    ("j'ai un problème avec ma commande", "fr-FR", ""),
])
def test_spoken_numbers_become_digits(demo, text, lang, digits):
    assert demo.escape_only[lang].lexicon.digits_in(text) == digits


def test_speech_data_must_name_every_field():
    with pytest.raises(LexiconError, match="missing filler, numbers"):
        lexicon_from_source('stemmer: french\n"yes": [oui]\n"no": [non]\nescape: [agent]\n',
                            "fr-FR", "speech.yaml")


def test_bare_on_and_no_in_speech_data_stay_words():
    # Plain YAML would read them as true and false.
    lexicon = lexicon_from_source('stemmer: french\nyes: [oui]\nno: [non, no]\nescape: [agent]\n'
                                  'filler: [euh, on]\nnumbers: {}\n', "fr-FR", "speech.yaml")
    assert "on" in lexicon.filler and lexicon.no == ("non", "no") and lexicon.yes == ("oui",)


def test_split_and_misheard_words(demo):
    assert menu_decision(demo, "I want a re fund", lang="en-US") == ("take", "2")
    # A slip keeps the word's length: "dress" is not "address" misheard.
    assert menu_decision(demo, "the dress", lang="en-US") == ("no_match", None)


def test_settings_merge_a_menus_overrides():
    assert Settings().merged({"accept": 0.8}) == Settings(accept=0.8)
