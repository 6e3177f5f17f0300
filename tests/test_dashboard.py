"""GET /dashboard in memory: access, the figures shown against the analytics', bad queries."""

import base64
import sqlite3
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlite_utils
from dashboard_support import Page, expected, insert_traffic
from treq.testing import StubTreq
from twisted.internet import task
from twisted.internet.testing import MemoryReactorClock
from twisted.python.usage import UsageError

from ivr.reports import analytics
from ivr.server import tap
from ivr.server.dashboard import DashboardResource, InlineReader, ThreadedReader, is_authorized
from ivr.server.registry import FlowRegistry
from ivr.server.web import build_root
from ivr.store.sqlite.store import CallStore

ROOT = Path(__file__).parent.parent
TOKEN = "s3cret-dashboard-token"
NOON_TUESDAY_24TH = datetime(2026, 11, 24, 12, 0, tzinfo=ZoneInfo("Europe/Paris")).timestamp()
WEEK = analytics.Filters(since="2026-11-18", until="2026-11-25", flow="post_sale")


class Dashboard:
    """A server's resource tree with the dashboard, over a log of known traffic."""

    def __init__(self, traffic=True, token=TOKEN):
        self.store = CallStore(sqlite_utils.Database(memory=True))
        self.registry = FlowRegistry(ROOT / "flows", ROOT / "prompts", self.store)
        self.registry.reload()
        self.flow = self.registry.current("post_sale")
        self.calls = insert_traffic(self.store.db, self.flow) if traffic else []
        self.clock = task.Clock()
        self.clock.advance(NOON_TUESDAY_24TH)
        resource = DashboardResource(token, InlineReader(self.store.db), self.clock,
                                     registry=self.registry) if token else None
        self.http = StubTreq(build_root(None, self.registry, dashboard=resource))

    def get(self, path="/dashboard", headers=None, method="GET"):
        d = self.http.request(method, "http://ivr.test" + path, headers=headers or {})
        response = self.done(d)
        return response.code, response.headers, self.done(response.text("utf-8"))

    def page(self, query="", headers=None):
        code, _headers, body = self.get("/dashboard" + query, headers or {
            "Authorization": f"Bearer {TOKEN}", "Accept-Language": "en-GB,en;q=0.8"})
        assert code == 200, body
        return Page(body)

    def done(self, d):
        results = []
        d.addBoth(results.append)
        self.http.flush()
        assert results, "the request did not finish"
        if hasattr(results[0], "raiseException"):
            results[0].raiseException()
        return results[0]


@pytest.fixture(scope="module")
def dash():
    return Dashboard()


def basic(user, password):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


# -- off unless configured, and then behind its token ----------------------------------

def test_there_is_no_dashboard_without_a_token():
    code, _headers, _body = Dashboard(token=None).get("/dashboard",
                                                      {"Authorization": f"Bearer {TOKEN}"})
    assert code == 404


@pytest.mark.parametrize("authorization", [
    None,
    "Bearer wrong-token-of-some-length",
    f"Bearer {TOKEN}x",
    f"bearer {TOKEN[:-1]}",
    basic("ops", "wrong"),
    basic(TOKEN, ""),
    "Basic " + base64.b64encode(TOKEN.encode()).decode(),  # no user:password colon
    "Basic not base64!",
    f"Token {TOKEN}",
])
def test_a_request_without_the_token_gets_401_and_a_basic_challenge(dash, authorization):
    code, headers, body = dash.get("/dashboard", {"Authorization": authorization}
                                   if authorization else None)
    assert code == 401
    assert headers.getRawHeaders("www-authenticate") == ['Basic realm="IVR dashboard", charset="UTF-8"']
    assert TOKEN not in body and "calls" not in body.lower()


def test_the_token_opens_the_page_as_bearer_or_as_basic_password_with_any_user(dash):
    for authorization in (f"Bearer {TOKEN}", f"bearer  {TOKEN} ", basic("ops", TOKEN),
                          basic("anyone at all", TOKEN)):
        code, headers, body = dash.get("/dashboard", {"Authorization": authorization})
        assert code == 200, authorization
        assert headers.getRawHeaders("content-type") == ["text/html; charset=utf-8"]
        assert "default-src 'none'" in headers.getRawHeaders("content-security-policy")[0]
        assert headers.getRawHeaders("cache-control") == ["no-store"]
        assert TOKEN not in body


def test_the_token_is_compared_whole_and_exactly():
    token = TOKEN.encode()
    assert is_authorized(b"Bearer " + token, token)
    assert is_authorized(b"Basic " + base64.b64encode(b"u:" + token), token)
    assert is_authorized(b"Basic " + base64.b64encode(b":" + token), token)
    assert not is_authorized(b"Bearer " + token[:-1], token)
    assert not is_authorized(b"Bearer " + token.upper(), token)
    assert not is_authorized(b"Bearer", token)
    assert not is_authorized(None, token)
    assert not is_authorized(b"Bearer ", b"")


def test_other_methods_and_sub_paths_are_refused(dash):
    auth = {"Authorization": f"Bearer {TOKEN}"}
    code, headers, _body = dash.get("/dashboard", auth, method="POST")
    assert (code, headers.getRawHeaders("allow")) == (405, ["GET, HEAD"])
    assert dash.get("/dashboard/other", auth)[0] == 404
    assert dash.get("/dashboard/other")[0] == 401  # nothing is told before the token


def test_the_token_option_defaults_to_the_environment_and_must_be_long(monkeypatch):
    monkeypatch.delenv("IVR_DASHBOARD_TOKEN", raising=False)
    options = tap.Options()
    options.parseOptions([])
    assert options["dashboard-token"] is None
    monkeypatch.setenv("IVR_DASHBOARD_TOKEN", TOKEN)
    options = tap.Options()
    options.parseOptions([])
    assert options["dashboard-token"] == TOKEN
    with pytest.raises(UsageError, match="at least 16 characters"):
        tap.Options().parseOptions(["--dashboard-token", "short"])
    with pytest.raises(UsageError, match="without spaces"):
        tap.Options().parseOptions(["--dashboard-token", "a token with spaces in it"])


@pytest.mark.parametrize("token, mounted", [(None, False), (TOKEN, True)])
def test_the_server_mounts_the_dashboard_only_with_a_token(tmp_path, monkeypatch, token, mounted):
    monkeypatch.delenv("IVR_DASHBOARD_TOKEN", raising=False)
    options = tap.Options()
    options.parseOptions(["--db", str(tmp_path / "ivr.db"), "--flows", str(ROOT / "flows"),
                          "--prompts", str(ROOT / "prompts"), "--listen", "tcp:0:interface=127.0.0.1"]
                         + (["--dashboard-token", token] if token else []))
    reactor = MemoryReactorClock()
    top = tap.makeService(options, reactor)
    top.startService()
    try:
        [(_port, site, _backlog, _interface)] = reactor.tcpServers
        assert (b"dashboard" in site.resource.children) is mounted
        if mounted:
            assert isinstance(site.resource.children[b"dashboard"], DashboardResource)
    finally:
        top.stopService()


def test_the_dashboard_reads_the_log_through_a_connection_that_cannot_write(tmp_path):
    store = CallStore.open(tmp_path / "ivr.db")
    store.db["calls"].insert({"call_id": "CA1", "flow": "f", "version": "v",
                              "started_at": "2026-11-24T10:00:00+01:00", "outcome": "abandoned",
                              "reason": "not_stated", "confirmed": 0})
    reader = ThreadedReader(str(tmp_path / "ivr.db"), reactor=None)
    assert reader._run(lambda db: db.execute("SELECT count(*) FROM calls").fetchone()[0]) == 1
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        reader._run(lambda db: db.execute("DELETE FROM calls"))
    assert store.db.execute("SELECT count(*) FROM calls").fetchone()[0] == 1


# -- the figures -----------------------------------------------------------------------

def test_by_default_the_page_shows_the_last_seven_days_by_the_server_clock(dash):
    page = dash.page()
    assert (page.by_id["period"]["data-since"], page.by_id["period"]["data-until"]) == (
        "2026-11-18", "2026-11-24")
    assert page.by_id["since"]["value"] == "2026-11-18"
    assert page.by_id["until"]["value"] == "2026-11-24"
    assert "Nov 18, 2026 – Nov 24, 2026 (7 days, both included)" in page.text("period")


def test_the_headline_figures_are_the_analytics_figures_of_the_known_traffic(dash):
    page = dash.page()
    figures = analytics.summary(dash.store.db, WEEK)[0]
    known = expected(dash.calls)
    assert int(page.value("calls")) == figures["calls"] == known["calls"] == 73
    for outcome in ("self_served", "transferred", "abandoned", "failed"):
        assert int(page.value(f"outcome-{outcome}")) == figures[outcome] == known[outcome]
    assert float(page.value("deflection-rate")) == figures["deflection_rate"] == pytest.approx(
        known["deflection_rate"])
    assert float(page.value("repeat-adjusted-deflection-rate")) == figures[
        "repeat_adjusted_deflection_rate"] == pytest.approx(known["repeat_adjusted_deflection_rate"])
    assert int(page.value("repeat-calls")) == figures["repeat_calls"] == known["repeat_calls"] == 6
    assert page.value("cost-saved") == str(figures["cost_saved"]) == f"{known['cost_saved']:.2f}"
    assert page.by_id["cost-saved"]["data-currency"] == "EUR"
    assert float(page.value("avg-ivr-time")) == figures["avg_ivr_seconds"] == pytest.approx(
        known["avg_ivr_seconds"], abs=0.05)


def test_the_headline_figures_are_written_for_people(dash):
    page = dash.page()
    assert page.text("calls") == "73"
    assert page.text("deflection-rate") == "60.3%"
    assert page.text("repeat-adjusted-deflection-rate") == "52.1%"
    assert page.text("cost-saved") == "€112.63"
    assert page.text("avg-ivr-time") == "56 s"


def test_deflection_by_day_plots_each_day_of_the_period(dash):
    page = dash.page()
    rows = {row["day"]: row for row in analytics.over_time(dash.store.db, WEEK, by="day")}
    for series in ("deflection_rate", "repeat_adjusted_deflection_rate"):
        points = {c["data-x"]: float(c["data-value"]) for c in page.find("circle", series=series)}
        assert points == {day: row[series] for day, row in rows.items()}
        assert len(points) == 7


def test_a_one_day_period_plots_deflection_by_hour(dash):
    page = dash.page("?since=2026-11-21&until=2026-11-21")
    day = analytics.Filters(since="2026-11-21", until="2026-11-22", flow="post_sale")
    rows = analytics.over_time(dash.store.db, day, by="hour")
    points = {c["data-x"]: float(c["data-value"]) for c in page.find("circle", series="deflection_rate")}
    assert points == {f"2026-11-21T{row['hour']:02d}": row["deflection_rate"] for row in rows}
    assert int(page.value("calls")) == analytics.summary(dash.store.db, day)[0]["calls"] == 14
    assert "Deflection by hour" in page.by_id["timeline"]["text"]


def test_outcomes_by_reason_and_transfer_causes_are_the_analytics_counts(dash):
    page = dash.page()
    for row in analytics.reasons(dash.store.db, WEEK):
        for outcome in ("self_served", "transferred", "abandoned", "failed"):
            [part] = page.find("rect", category=row["reason"], segment=outcome)
            assert float(part["data-value"]) == row[outcome]
    causes = analytics.summary(dash.store.db, WEEK)[0]["causes"]
    shown = {bar["data-key"]: float(bar["data-value"]) for bar in page.find("rect")
             if bar.get("data-key")}
    assert shown == {cause: n for cause, n in causes.items() if n}
    assert shown == expected(dash.calls)["causes"]


def test_the_flow_graph_shows_each_nodes_traffic_and_drop_off(dash):
    page = dash.page()
    funnel = {row["node"]: row for row in analytics.funnel(dash.store.db, "post_sale", None, WEEK)}
    boxes = {e["data-node"]: e for e in page.nodes if e["tag"] == "g"}
    assert set(boxes) == set(dash.flow.nodes)
    for name, box in boxes.items():
        row = funnel.get(name, {"reached": 0, "dropped": 0})
        assert (int(box["data-reached"]), int(box["data-dropped"])) == (row["reached"], row["dropped"])
    assert int(boxes["main_menu"]["data-reached"]) == 73


def test_the_worst_drop_off_nodes_are_listed_worst_first(dash):
    page = dash.page()
    funnel = analytics.funnel(dash.store.db, "post_sale", None, WEEK)
    rows = [e for e in page.nodes if e["tag"] == "tr"]
    assert [(r["data-node"], int(r["data-dropped"])) for r in rows] == [
        (row["node"], row["dropped"]) for row in funnel if row["dropped"]][:5]
    assert rows[0]["data-node"] == "main_menu"


def test_the_page_loads_nothing_from_anywhere(dash):
    _code, _headers, body = dash.get("/dashboard", {"Authorization": f"Bearer {TOKEN}"})
    lowered = body.lower()
    assert "<script" not in lowered and "<link" not in lowered and "@import" not in lowered
    assert "src=" not in lowered and "url(http" not in lowered and 'href="http' not in lowered


def test_an_empty_log_gets_a_page_that_says_so():
    page = Dashboard(traffic=False).page()
    assert "No calls logged yet" in page.text("no-calls")


def test_names_from_the_log_are_escaped():
    dash = Dashboard()
    dash.store.db["calls"].insert({"call_id": "CAx", "flow": "<b>evil</b>", "version": "v1",
                                   "started_at": "2026-11-20T10:00:00+01:00", "confirmed": 0,
                                   "reason": "<i>why</i>", "outcome": "abandoned"})
    _code, _headers, body = dash.get("/dashboard?flow=%3Cb%3Eevil%3C%2Fb%3E",
                                     {"Authorization": f"Bearer {TOKEN}"})
    assert "<b>evil</b>" not in body and "<i>why</i>" not in body
    assert "&lt;b&gt;evil&lt;/b&gt;" in body and "&lt;i&gt;why&lt;/i&gt;" in body


# -- bad queries ------------------------------------------------------------------------

@pytest.mark.parametrize("query, message", [
    ("?since=2026-13-01", "since is not a valid date: '2026-13-01'"),
    ("?since=yesterday", "since must be a date as YYYY-MM-DD, not 'yesterday'"),
    ("?until=24/11/2026", "until must be a date as YYYY-MM-DD, not '24/11/2026'"),
    ("?since=2026-11-24&until=2026-11-20", "until (2026-11-20) is before since (2026-11-24)"),
    ("?since=2024-01-01&until=2026-01-01", "the period covers 732 days; at most 366 fit on the page"),
    ("?flow=billing", "no calls logged for flow 'billing' (flows with calls: post_sale)"),
    ("?flow=%FF", "flow is not UTF-8"),
])
def test_a_bad_query_gets_400_with_the_reason(dash, query, message):
    code, headers, body = dash.get("/dashboard" + query, {"Authorization": f"Bearer {TOKEN}"})
    assert (code, body) == (400, message + "\n")
    assert headers.getRawHeaders("content-type") == ["text/plain; charset=utf-8"]


def test_a_period_with_no_calls_shows_zero_calls_and_no_rate(dash):
    page = dash.page("?since=2026-10-01&until=2026-10-07")
    assert page.value("calls") == "0"
    assert page.value("deflection-rate") == "" and page.text("deflection-rate") == "–"
    assert not page.find("circle", series="deflection_rate")
    assert "No calls in this period" in page.by_id["timeline"]["text"]


def test_since_alone_shows_seven_days_from_it(dash):
    page = dash.page("?since=2026-11-10")
    assert page.by_id["period"]["data-until"] == "2026-11-16"


def test_today_is_the_flows_today_not_the_servers():
    dash = Dashboard()
    # 23:30 UTC on the 24th is already 00:30 on the 25th in Paris.
    dash.clock.advance(datetime(2026, 11, 24, 23, 30, tzinfo=ZoneInfo("UTC")).timestamp()
                       - dash.clock.seconds())
    page = dash.page()
    assert page.by_id["period"]["data-until"] == "2026-11-25"
    assert page.by_id["period"]["data-since"] == "2026-11-19"


def test_head_answers_like_get_without_a_body(dash):
    code, headers, body = dash.get("/dashboard", {"Authorization": f"Bearer {TOKEN}"}, method="HEAD")
    assert (code, body) == (200, "")
    assert headers.getRawHeaders("content-type") == ["text/html; charset=utf-8"]


def test_transfers_show_answered_and_queue_abandonment():
    dash = Dashboard()
    transferred = [c.call_id for c in dash.calls if c.outcome == "transferred"
                   and WEEK.since <= c.started.date().isoformat() < WEEK.until]
    abandoned, answered = transferred[:3], transferred[3:]
    db = dash.store.db
    for n, call_id in enumerate(abandoned):
        db.execute("UPDATE calls SET transfer_result = 'abandoned_in_queue', queue_seconds = ? "
                   "WHERE call_id = ?", [60 + 30 * n, call_id])  # 60, 90, 120 s
    for call_id in answered:
        db.execute("UPDATE calls SET transfer_result = 'answered' WHERE call_id = ?", [call_id])
    page = dash.page()
    assert int(page.value("transfers-answered")) == len(answered)
    assert int(page.value("queue-abandoned")) == 3
    assert float(page.value("queue-abandonment-rate")) == pytest.approx(3 / len(transferred))
    assert int(page.value("transfers-unanswered")) == 0
    assert page.text("transfers-note").startswith(
        f"3 hung up in the queue ({3 / len(transferred):.1%})")
    assert "after 1 min 30 s on average" in page.text("transfers-note")


def test_the_page_shows_the_calls_by_provider_as_the_analytics_count_them():
    dash = Dashboard()
    dash.store.db.execute("UPDATE calls SET provider = 'twilio'")
    dash.store.db.execute("UPDATE calls SET provider = 'telnyx' WHERE rowid % 3 = 0")
    rows = analytics.summary(dash.store.db, WEEK, "provider")
    assert {row["provider"] for row in rows} == {"twilio", "telnyx"}
    page = dash.page()
    shown = {row["data-provider"]: int(row["data-calls"]) for row in page.find("tr")
             if "data-provider" in row}
    assert shown == {row["provider"]: row["calls"] for row in rows}
    assert sum(shown.values()) == expected(dash.calls)["calls"]
