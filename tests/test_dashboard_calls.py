"""The dashboard's call search and call pages, in memory, behind its token."""

from datetime import date
from urllib.parse import urlencode

import pytest
from test_call_timeline import played_log
from test_web import CA1, CA2, NO_ORDER, ONE_ORDER, SILENT
from treq.testing import StubTreq
from twisted.internet import task
from twisted.web.resource import Resource

from ivr.reports.queries import open_report_db
from ivr.server.dashboard import DashboardResource, InlineReader, Query, View, render_page

TOKEN = "s3cret-dashboard-token"
BEARER = {"Authorization": f"Bearer {TOKEN}"}


class CallPages:
    """The dashboard over a log of calls played through the handler."""

    def __init__(self, db_path):
        self.db = open_report_db(db_path)
        root = Resource()
        root.putChild(b"dashboard", DashboardResource(TOKEN, InlineReader(self.db), task.Clock()))
        self.http = StubTreq(root)

    def request(self, method, path, headers=None, form=None):
        headers = dict(BEARER if headers is None else headers)
        data = None
        if form is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            data = urlencode(form).encode()
        d = self.http.request(method, "http://ivr.test" + path, headers=headers, data=data)
        response = self.done(d)
        return response.code, self.done(response.text("utf-8"))

    def done(self, d):
        results = []
        d.addBoth(results.append)
        self.http.flush()
        assert results, "the request did not finish"
        if hasattr(results[0], "raiseException"):
            results[0].raiseException()
        return results[0]


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    return CallPages(played_log(tmp_path_factory.mktemp("dashboard_calls")))


@pytest.mark.parametrize("path", ["/dashboard/calls", f"/dashboard/calls/{CA1}"])
def test_the_call_pages_need_the_token(pages, path):
    code, body = pages.request("GET", path, headers={})
    assert code == 401 and CA1 not in body
    code, _body = pages.request("GET", path, headers={"Authorization": "Bearer wrong-token-wrong"})
    assert code == 401


def test_the_search_lists_every_call_with_a_link_to_its_page(pages):
    code, body = pages.request("GET", "/dashboard/calls")
    assert code == 200
    assert 'data-value="3"' in body
    for call_id in (CA1, CA2, SILENT):
        assert f'href="/dashboard/calls/{call_id}?lang=en"' in body


@pytest.mark.parametrize("form, expected", [
    ({"outcome": "failed"}, {SILENT}),
    ({"failed": "1"}, {SILENT}),
    ({"reason": "in_transit_on_time"}, {CA1}),
    ({"transfer_cause": "caller_asked"}, {CA1}),
    ({"exit_node": "main_menu"}, {CA1}),
    ({"caller": ONE_ORDER}, {CA1}),
    ({"caller": NO_ORDER, "since": "2026-11-24", "until": "2026-11-24"}, {CA2, SILENT}),
])
def test_the_search_form_filters_the_calls(pages, form, expected):
    code, body = pages.request("POST", "/dashboard/calls", form=form)
    assert code == 200, body
    listed = {call_id for call_id in (CA1, CA2, SILENT) if f'data-call="{call_id}"' in body}
    assert listed == expected


def test_the_callers_number_is_not_shown_back(pages):
    _code, body = pages.request("POST", "/dashboard/calls", form={"caller": ONE_ORDER})
    assert ONE_ORDER not in body and ONE_ORDER[3:] not in body
    assert 'id="by-caller"' in body


def test_a_misspelt_filter_is_shown_above_the_form_with_a_suggestion(pages):
    code, body = pages.request("POST", "/dashboard/calls", form={"reason": "parcel_lst"})
    assert code == 400
    assert "--reason: no such value &#39;parcel_lst&#39;; did you mean &#39;parcel_lost&#39;?" in body
    assert 'name="reason" value="parcel_lst"' in body


def test_a_bad_date_is_refused_with_its_reason(pages):
    code, body = pages.request("GET", "/dashboard/calls?since=24/11/2026")
    assert code == 400 and body == "since must be a date as YYYY-MM-DD, not '24/11/2026'\n"


def test_a_calls_page_shows_its_timeline(pages):
    code, body = pages.request("GET", f"/dashboard/calls/{CA1}")
    assert code == 200
    assert body.count("<li data-node=") == 12
    assert '<li data-node="main_menu"><span class="when">+0:07</span>' in body
    assert "je voudrais parler a un conseiller (score=1.00 margin=1.00)" in body
    assert "in_transit_on_time (Parcel on its way, on time)" in body
    assert ONE_ORDER[3:] not in body


def test_a_failed_calls_page_says_why_the_fail_safe_fired(pages):
    _code, body = pages.request("GET", f"/dashboard/calls/{SILENT}")
    assert "<dt>Fail-safe</dt><dd>UndefinedError: &#39;str object&#39; has no attribute &#39;status&#39;</dd>" in body


def test_an_unknown_call_is_404_with_a_hint(pages):
    code, body = pages.request("GET", "/dashboard/calls/CAnope")
    assert code == 404
    assert "No call &#39;CAnope&#39; in this log; list calls with: ivr-report calls --since" in body


def test_the_pages_speak_the_browsers_language(pages):
    headers = {**BEARER, "Accept-Language": "fr-FR,fr;q=0.9,en;q=0.5"}
    _code, body = pages.request("GET", f"/dashboard/calls/{CA1}", headers=headers)
    assert '<html lang="fr">' in body
    assert "<dt>Motif</dt><dd>in_transit_on_time (Colis en route, dans les délais)</dd>" in body
    assert "<h2>Déroulé</h2>" in body
    _code, body = pages.request("GET", "/dashboard/calls?lang=fr")
    assert "Trouver un appel" in body and "Appels en échec seulement" in body


def test_the_call_pages_take_no_other_method_or_path(pages):
    assert pages.request("POST", f"/dashboard/calls/{CA1}", form={})[0] == 405
    assert pages.request("DELETE", "/dashboard/calls")[0] == 405
    assert pages.request("GET", f"/dashboard/calls/{CA1}/more")[0] == 404


def test_the_dashboard_links_to_the_search():
    page = render_page(View(query=Query().resolved(date(2026, 11, 24)), flows=[]))
    assert '<a id="find-call" href="dashboard/calls">' in page


def test_a_did_you_mean_is_in_the_pages_language_and_the_language_stays_with_the_request(pages):
    _code, body = pages.request("POST", "/dashboard/calls", form={"reason": "parcel_lst", "lang": "fr"})
    assert "--reason : aucune valeur &#39;parcel_lst&#39; ; vouliez-vous dire &#39;parcel_lost&#39; ?" in body
    _code, body = pages.request("POST", "/dashboard/calls", form={"reason": "parcel_lst"})
    assert "did you mean &#39;parcel_lost&#39;?" in body
