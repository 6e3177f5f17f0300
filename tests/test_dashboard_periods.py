"""GET /dashboard in memory: the operator's language, the period it opens
on, the comparison with the previous period, and the flow drawing."""

import re
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from dashboard_support import Page
from test_dashboard import TOKEN, WEEK, Dashboard

from ivr.reports import analytics, graph_dot
from ivr.server.dashboard import readable
from ivr.server.dashboard_locale import choose_language

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def nbsp(text: str) -> str:
    """Babel's no-break spaces as plain spaces, to compare with typed text."""
    return text.replace("\u202f", " ").replace("\xa0", " ")


@pytest.fixture(scope="module")
def dash():
    return Dashboard()


# -- the language --------------------------------------------------------------------

@pytest.mark.parametrize("asked, header, server, chosen", [
    ("fr", "en-US,en", "en_US.UTF-8", "fr"),
    ("en", "fr-FR", "fr_FR.UTF-8", "en"),
    (None, "fr-CH, fr;q=0.9, en;q=0.8", "en_US.UTF-8", "fr"),
    (None, "de-DE, en;q=0.3, fr;q=0.7", "en_US.UTF-8", "fr"),
    (None, "de-DE, fr;q=0", "en_US.UTF-8", "en"),
    ("de", "", "fr_FR.UTF-8", "fr"),
    (None, None, "C.UTF-8", "en"),
])
def test_the_language_is_the_query_s_else_the_browser_s_else_the_server_s(asked, header,
                                                                            server, chosen):
    assert choose_language(asked, header, server) == chosen


def test_a_french_browser_gets_the_page_in_french(dash):
    page = dash.page(headers={**AUTH, "Accept-Language": "fr-FR,fr;q=0.9,en;q=0.5"})
    [html] = page.find("html")
    assert html["lang"] == "fr"
    assert nbsp(page.text("deflection-rate")) == "60,3 %"
    assert nbsp(page.text("cost-saved")) == "112,63 €"
    assert page.text("period").startswith("18 nov. 2026 – 24 nov. 2026 (7 jours")
    assert "Déflexion par jour" in page.by_id["timeline"]["text"]
    assert "Motifs et issues des appels" in page.by_id["outcomes"]["text"]


def test_lang_in_the_query_wins_over_the_browser_and_is_kept_by_the_form(dash):
    page = dash.page("?lang=en", headers={**AUTH, "Accept-Language": "fr-FR"})
    [html] = page.find("html")
    assert html["lang"] == "en" and page.text("cost-saved") == "€112.63"
    assert [e["value"] for e in page.find("input") if e.get("name") == "lang"] == ["en"]
    code, headers, _body = dash.get("/dashboard?lang=fr", AUTH)
    assert headers.getRawHeaders("content-language") == ["fr"]


def test_without_a_preference_the_page_speaks_the_server_s_language(monkeypatch):
    for name in ("LANGUAGE", "LC_ALL", "LC_MESSAGES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LANG", "fr_FR.UTF-8")
    _code, _headers, body = Dashboard().get("/dashboard", AUTH)
    assert '<html lang="fr">' in body


def test_reasons_are_shown_with_the_flow_s_own_descriptions(dash):
    english = dash.page("?lang=en")
    french = dash.page("?lang=fr")
    for page, description in ((english, "Delayed by the carrier"),
                              (french, "Retard chez le transporteur")):
        [row] = [g for g in page.find("g") if g.get("data-category") == "carrier_delay"]
        assert description in row["text"]
    # A reason the flow does not describe keeps its code, spaced.
    [row] = [g for g in english.find("g") if g.get("data-category") == "order_status"]
    assert "order status" in row["text"]


# -- the period it opens on ------------------------------------------------------------

def test_it_opens_on_the_latest_period_with_calls_when_the_last_days_have_none():
    dash = Dashboard()
    dash.clock.advance(datetime(2026, 12, 20, 9, 0, tzinfo=ZoneInfo("Europe/Paris")).timestamp()
                       - dash.clock.seconds())
    page = dash.page()
    # The last call of the log started on the 25th.
    period = page.by_id["period"]
    assert (period["data-since"], period["data-until"]) == ("2026-11-19", "2026-11-25")
    shown = analytics.Filters(since="2026-11-19", until="2026-11-26", flow="post_sale")
    assert int(page.value("calls")) == analytics.summary(dash.store.db, shown)[0]["calls"] > 0
    assert "where-calls-are" not in page.by_id


def test_an_empty_chosen_period_says_where_the_calls_are(dash):
    page = dash.page("?since=2026-10-01&until=2026-10-07")
    where = page.by_id["where-calls-are"]
    assert (where["data-first"], where["data-last"]) == ("2026-11-17", "2026-11-25")
    assert "run from Nov 17, 2026 to Nov 25, 2026" in page.text("where-calls-are")
    link = page.by_id["latest-period"]["href"]
    assert "since=2026-11-19" in link and "until=2026-11-25" in link and "flow=post_sale" in link
    assert int(dash.page("?" + link.lstrip("?")).value("calls")) > 0


# -- the comparison with the previous period ------------------------------------------

def test_each_headline_figure_is_compared_with_the_previous_period_of_the_same_length(dash):
    page = dash.page("?since=2026-11-21&until=2026-11-24")
    now = analytics.summary(dash.store.db, analytics.Filters(
        since="2026-11-21", until="2026-11-25", flow="post_sale"))[0]
    before = analytics.summary(dash.store.db, analytics.Filters(
        since="2026-11-17", until="2026-11-21", flow="post_sale"))[0]
    compared = page.by_id["compared-with"]
    assert (compared["data-since"], compared["data-until"]) == ("2026-11-17", "2026-11-20")
    for name in ("calls", "deflection_rate", "repeat_adjusted_deflection_rate", "cost_saved",
                 "transfers_answered", "avg_ivr_seconds"):
        element = page.by_id["change-" + name.replace("_", "-")]
        assert float(element["data-change"]) == pytest.approx(float(now[name]) - float(before[name]))
    calls = now["calls"] - before["calls"]
    assert page.text("change-calls") == f"{'▲' if calls > 0 else '▼'} {abs(calls)}"
    rate = now["deflection_rate"] - before["deflection_rate"]
    assert page.text("change-deflection-rate") == f"{'▲' if rate > 0 else '▼'} {abs(rate) * 100:.1f} pts"


def test_changes_are_written_in_the_operator_s_locale(dash):
    page = dash.page("?since=2026-11-21&until=2026-11-24&lang=fr")
    assert re.fullmatch(r"[▲▼] \d+,\d pts", nbsp(page.text("change-deflection-rate")))
    assert re.fullmatch(r"[▲▼] \d+,\d\d €", nbsp(page.text("change-cost-saved")))
    assert "par rapport aux 4 jours précédents" in nbsp(page.text("compared-with"))


def test_rates_are_not_compared_with_a_period_without_calls(dash):
    page = dash.page("?since=2026-11-18&until=2026-11-24")  # the 11th to the 17th: one call
    assert "change-deflection-rate" in page.by_id
    page = dash.page("?since=2026-11-16&until=2026-11-17")  # the 14th and 15th: none
    assert int(page.value("calls")) == 1
    assert page.text("change-calls") == "▲ 1"
    assert "change-deflection-rate" not in page.by_id


# -- the flow drawing ------------------------------------------------------------------

def test_the_flow_is_drawn_by_graphviz_with_each_node_s_figures(dash):
    if graph_dot.shutil.which("dot") is None:
        pytest.skip("Graphviz dot is not installed (apt-get install graphviz)")
    page = dash.page()
    [box] = [e for e in page.find("div") if e.get("data-drawn-by")]
    assert box["data-drawn-by"] == "dot"
    funnel = {row["node"]: row for row in analytics.funnel(dash.store.db, "post_sale", None, WEEK)}
    boxes = {e["data-node"]: e for e in page.nodes if e["tag"] == "g"}
    assert set(boxes) == set(dash.flow.nodes)
    assert int(boxes["main_menu"]["data-reached"]) == funnel["main_menu"]["reached"] == 73
    assert "73 reached" in boxes["main_menu"]["text"]


def test_without_graphviz_the_flow_is_drawn_by_the_own_layout(monkeypatch):
    monkeypatch.setattr(graph_dot.shutil, "which", lambda _name: None)
    page = Dashboard().page()
    [box] = [e for e in page.find("div") if e.get("data-drawn-by")]
    assert box["data-drawn-by"] == "own"
    boxes = {e["data-node"]: e for e in page.nodes if e["tag"] == "g"}
    assert int(boxes["main_menu"]["data-reached"]) == 73


def test_the_drawing_is_never_shrunk_below_readable_text():
    svg = '<svg width="2000" height="900"><text font-size="10">a</text><text font-size="20">b</text>'
    assert readable(svg).startswith('<svg style="min-width:2200px" width="2000"')


def test_the_page_keys_the_drawing_in_the_operator_s_language(dash):
    page = Page(dash.get("/dashboard?lang=fr", AUTH)[2])
    assert "résout la demande de l'appelant" in page.text("graph-key")


def test_without_graphviz_the_boxes_are_written_in_the_page_s_language(monkeypatch):
    monkeypatch.setattr(graph_dot.shutil, "which", lambda _name: None)
    dash = Dashboard()
    french = {e["data-node"]: e["text"] for e in dash.page("?lang=fr").nodes if e["tag"] == "g"}
    english = {e["data-node"]: e["text"] for e in dash.page("?lang=en").nodes if e["tag"] == "g"}
    assert "arrivés 73 · perdus 11 (15%)" in french["main_menu"]
    assert "arrivés 73 : raccroché 5, transféré 6, terminé 0, continué 62" in french["main_menu"]
    assert "reached 73 · dropped 11 (15%)" in english["main_menu"]
    assert "reached 73: hung up 5, transferred 6, ended 0, continued 62" in english["main_menu"]
