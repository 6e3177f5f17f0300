"""The reports on PostgreSQL: the same seeded traffic played into an SQLite
log and a PostgreSQL one gives every report exactly the same figures, as
library calls and as ``ivr-report`` prints them."""

import json
from collections import Counter
from datetime import date
from pathlib import Path

import pytest
import sqlite_utils
from click.testing import CliRunner

from ivr.reports import analytics
from ivr.reports.callbacks import callback_requests
from ivr.reports.cli import main as report
from ivr.reports.queries import Filters, ReportError, open_report_db
from ivr.reports.timeline import call_timeline
from ivr.server.registry import FlowRegistry
from ivr.sim.traffic import generate
from ivr.store.postgres.store import PostgresCallStore
from ivr.store.sqlite.callbacks import stored_caller_key
from ivr.store.sqlite.reads import flows_with_calls, reasons_of_latest_version

ROOT = Path(__file__).parent.parent
FLOW = ROOT / "flows" / "post_sale.yaml"
#: Three weeks across the change of clocks (25 October) and a holiday.
START, DAYS, CALLS, SEED = date(2026, 10, 22), 21, 300, 2026
KEY = b"r" * 32

#: Periods and scopes each report is asked for.
FILTERS = [
    Filters(),
    Filters(since="2026-10-24", until="2026-10-27"),
    Filters(since="2026-10-25T01:30", until="2026-11-02T18:00"),
    Filters(flow="post_sale"),
    Filters(flow="no_such_flow"),
]


@pytest.fixture(scope="module")
def logs(tmp_path_factory, postgres_server_dsn):
    """The same traffic in an SQLite file and in a PostgreSQL schema: the
    two logs, opened as the reports open them, the flow version, their
    locations, and the number of a caller who called most (not withheld)."""
    from postgres_support import fresh_schema

    path = tmp_path_factory.mktemp("reports") / "ivr.db"
    with fresh_schema(postgres_server_dsn) as dsn:
        traffic = generate(FLOW, path, calls=CALLS, seed=SEED, start=START, days=DAYS)
        # Both logs keep the same caller key, so the callers' hashes match.
        sqlite_db = sqlite_utils.Database(path)
        key = stored_caller_key(sqlite_db)
        sqlite_db.close()
        first = PostgresCallStore.connect(dsn)
        first.db.execute("UPDATE meta SET value = ? WHERE key = 'caller_hash_key'", [key.hex()])
        first.close()
        store = PostgresCallStore.connect(dsn)
        try:
            registry = FlowRegistry(ROOT / "flows", ROOT / "prompts", store)
            registry.reload()
            generate(registry, store, calls=CALLS, seed=SEED, start=START, days=DAYS)
        finally:
            store.close()
        sqlite_log, postgres_log = open_report_db(path), open_report_db(dsn)
        try:
            frequent = Counter(call.caller for call in traffic.plan
                               if call.caller.startswith("+")).most_common(1)[0][0]
            yield sqlite_log, postgres_log, traffic.expected.version, (str(path), dsn), frequent
        finally:
            sqlite_log.close()
            postgres_log.close()


def both(logs, function, *args, **kwargs):
    sqlite_log, postgres_log = logs[:2]
    return function(sqlite_log, *args, **kwargs), function(postgres_log, *args, **kwargs)


def test_the_traffic_landed_in_both_logs(logs):
    on_sqlite, on_postgres = both(logs, analytics.summary)
    assert on_sqlite[0]["calls"] == CALLS
    assert on_postgres == on_sqlite


@pytest.mark.parametrize("filters", FILTERS, ids=repr)
@pytest.mark.parametrize("by", [None, *analytics.DIMENSIONS])
def test_summaries_are_the_same(logs, filters, by):
    on_sqlite, on_postgres = both(logs, analytics.summary, filters, by)
    assert on_postgres == on_sqlite


@pytest.mark.parametrize("filters", FILTERS, ids=repr)
@pytest.mark.parametrize("by", [None, "day", "language", "hour"])
def test_reasons_are_the_same(logs, filters, by):
    assert both(logs, analytics.reasons, filters, by)[1] == both(logs, analytics.reasons, filters, by)[0]


@pytest.mark.parametrize("by", ["day", "hour"])
def test_figures_over_time_are_the_same(logs, by):
    on_sqlite, on_postgres = both(logs, analytics.over_time, Filters(), by)
    assert len(on_sqlite) > 1 and on_postgres == on_sqlite


@pytest.mark.parametrize("filters", FILTERS[:4], ids=repr)
def test_funnels_are_the_same(logs, filters):
    on_sqlite, on_postgres = both(logs, analytics.funnel, "post_sale", None, filters)
    assert on_sqlite and on_postgres == on_sqlite


def test_versions_and_their_errors_are_the_same(logs):
    version = logs[2]
    assert both(logs, analytics.funnel_version, "post_sale", version[:6]) == (version, version)
    for flow, prefix in (("post_sale", "zzz"), ("no_such_flow", None)):
        messages = []
        for log in logs[:2]:
            with pytest.raises(ReportError) as error:
                analytics.funnel_version(log, flow, prefix)
            messages.append(str(error.value))
        assert messages[0] == messages[1]


@pytest.mark.parametrize("filters", FILTERS, ids=repr)
def test_call_lists_are_the_same(logs, filters):
    on_sqlite, on_postgres = both(logs, analytics.calls, filters, limit=1000)
    assert on_postgres == on_sqlite


def test_callback_requests_and_the_flows_read_are_the_same(logs):
    on_sqlite, on_postgres = both(logs, callback_requests, "log")
    assert on_sqlite and on_postgres == on_sqlite
    assert both(logs, flows_with_calls)[1] == both(logs, flows_with_calls)[0] == ["post_sale"]
    assert (both(logs, reasons_of_latest_version, "post_sale", None)[1]
            == both(logs, reasons_of_latest_version, "post_sale", None)[0] != {})


@pytest.mark.parametrize("command", [
    ["summary"], ["summary", "--by", "reason"], ["summary", "--by", "day", "--format", "csv"],
    ["reasons", "--since", "2026-10-25", "--until", "2026-11-01"], ["funnel", "post_sale"],
    ["calls", "--limit", "50", "--format", "json"], ["callbacks", "--format", "json"],
])
def test_ivr_report_prints_the_same_on_both(logs, command):
    printed = []
    for location in logs[3]:
        result = CliRunner().invoke(report, [*command, "--db", location], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        printed.append(result.output)
    assert printed[1] == printed[0]


def _printed_on_both(logs, command: list[str]) -> list[str]:
    printed = []
    for location in logs[3]:
        result = CliRunner().invoke(report, [*command, "--db", location], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        printed.append(result.output)
    return printed


@pytest.mark.parametrize("search", [
    ["--outcome", "transferred"], ["--reason", "parcel_lost"], ["--transfer-cause", "caller_asked"],
    ["--exit-node", "agent"], ["--caller", None],
], ids=lambda search: search[0])
def test_call_searches_print_the_same_on_both(logs, search):
    search = [value or logs[4] for value in search]  # None: the most frequent caller's number
    printed = _printed_on_both(logs, ["calls", "--limit", "1000", "--format", "json", *search])
    assert len(json.loads(printed[0])) > 0 and printed[1] == printed[0]


def test_each_call_s_timeline_is_the_same_on_both(logs):
    sqlite_log, _postgres_log = logs[:2]
    rows = analytics.calls(sqlite_log, Filters(), limit=1000)
    assert len(rows) == CALLS
    for row in rows:
        on_sqlite, on_postgres = both(logs, call_timeline, row["call_id"])
        assert on_postgres == on_sqlite, row["call_id"]
    one_of_each = {row["outcome"]: row["call_id"] for row in rows}
    for call_id in one_of_each.values():
        printed = _printed_on_both(logs, ["call", call_id])
        assert call_id in printed[0] and printed[1] == printed[0]


def test_a_postgresql_url_that_cannot_be_reached_is_a_clear_error():
    result = CliRunner().invoke(
        report, ["summary", "--db", "postgresql://nobody:secret@127.0.0.1:1/none?connect_timeout=2"])
    assert result.exit_code == 1
    assert "postgresql://nobody:***@127.0.0.1:1/none" in result.output
    assert "cannot connect" in result.output and "secret" not in result.output


def test_a_database_without_a_call_log_is_refused(postgres_dsn):
    with pytest.raises(ReportError, match="not an IVR call log"):
        open_report_db(postgres_dsn)


@pytest.mark.parametrize("query", ["", "?since=2026-10-22&until=2026-11-12", "?since=2026-10-25&until=2026-10-26",
                                   "/calls?outcome=transferred&since=2026-10-22&until=2026-11-12"])
def test_the_dashboard_shows_the_same_page_on_both(logs, query):
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from treq.testing import StubTreq
    from twisted.internet import task

    from ivr.server.dashboard import DashboardResource, InlineReader
    from ivr.server.web import build_root

    token = "t" * 32
    registry = FlowRegistry(ROOT / "flows", ROOT / "prompts")
    registry.reload()
    pages = []
    for log in logs[:2]:
        clock = task.Clock()
        clock.advance(datetime(2026, 11, 12, 12, tzinfo=ZoneInfo("Europe/Paris")).timestamp())
        resource = DashboardResource(token, InlineReader(log), clock, registry=registry)
        http = StubTreq(build_root(None, registry, dashboard=resource))
        got = []
        http.request("GET", "http://ivr.test/dashboard" + query,
                     headers={"Authorization": f"Bearer {token}"}).addCallback(
            lambda response: response.text("utf-8")).addBoth(got.append)
        http.flush()
        assert isinstance(got[0], str) and "post_sale" in got[0], got
        pages.append(got[0])
        assert clock.getDelayedCalls() == []
    assert pages[1] == pages[0]


def test_forget_and_purge_erase_from_a_postgresql_log(postgres_dsn):
    from test_call_store_protocol import CALLER, make_state, save

    store = PostgresCallStore.connect(postgres_dsn)
    try:
        save(store, make_state("CA1", ended=True))
        save(store, make_state("CA2", ended=True, caller="+33699999999", vars={}))
    finally:
        store.close()
    forget = CliRunner().invoke(report, ["forget", "--number", CALLER, "--db", postgres_dsn],
                                catch_exceptions=False)
    assert forget.exit_code == 0 and forget.output.startswith("erased 2 rows: 1 calls, ")
    purge = CliRunner().invoke(report, ["purge", "--older-than-days", "1", "--db", postgres_dsn],
                               catch_exceptions=False)
    assert purge.exit_code == 0 and purge.output.startswith("erased 2 rows: 1 calls, ")
    log = open_report_db(postgres_dsn)
    try:
        assert list(log.query("SELECT call_id FROM calls")) == []
    finally:
        log.close()


def test_the_dashboard_s_worker_reads_both_logs_as_the_server_s_own_process_does(logs):
    import io
    import pickle
    import struct

    from ivr.server.dashboard import Query, TodayByFlow, gather_view
    from ivr.server.dashboard_worker import serve

    job = (gather_view, Query(date(2026, 10, 22), date(2026, 11, 12)), analytics.Costs(),
           TodayByFlow(0.0, {}), "en")
    views = []
    for log, location in zip(logs[:2], logs[3]):
        body = pickle.dumps((job[0], job[1:], True))
        answers = io.BytesIO()
        serve(location, io.BytesIO(struct.pack(">I", len(body)) + body), answers)
        kind, view = pickle.loads(answers.getvalue()[4:])
        assert kind == "result" and view == gather_view(log, *job[1:])
        views.append(view)
    assert views[0] == views[1] and views[0].total["calls"]
