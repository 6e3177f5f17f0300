"""What the reports read: the report figures index, the funnel of a period that
holds a whole flow version, and the dashboard's queries kept off the reactor."""

from datetime import timedelta
from pathlib import Path

import pytest
import sqlite_utils
from dashboard_support import DAYS, FIRST_DAY, insert_traffic
from twisted.python.failure import Failure

from ivr.reports import analytics
from ivr.server.dashboard import ThreadedReader
from ivr.server.registry import FlowRegistry
from ivr.store.sqlite.migrations import REPORT_FIGURES_INDEX
from ivr.store.sqlite.store import CallStore

ROOT = Path(__file__).parent.parent
#: What only the funnel that reads each call's events asks.
CALL_BY_CALL = "max(e.kind)"


class QueryLog:
    """The report log ``db``, noting every SELECT the reports send it."""

    def __init__(self, db: sqlite_utils.Database):
        self.db, self.sent = db, []
        self.query_of_db = db.query
        db.query = self.query  # type: ignore[method-assign]

    def query(self, sql, params=None):
        self.sent.append((sql, params or {}))
        return self.query_of_db(sql, params)

    def plan(self, sql: str, params) -> str:
        return " | ".join(row[3] for row in self.db.execute(f"EXPLAIN QUERY PLAN {sql}", params))


@pytest.fixture
def traffic():
    """The demo flow's week of calls, one still in progress, in a migrated log."""
    store = CallStore(sqlite_utils.Database(memory=True))
    registry = FlowRegistry(ROOT / "flows", ROOT / "prompts", store)
    registry.reload()
    flow = registry.current("post_sale")
    insert_traffic(store.db, flow)
    return store.db, flow


def a_period_holding_every_call():
    # The traffic has a call the evening before its first day and one after its last.
    return analytics.Filters(since=(FIRST_DAY - timedelta(days=1)).date().isoformat(),
                             until=(FIRST_DAY + timedelta(days=30)).date().isoformat(),
                             flow="post_sale")


def test_a_flows_figures_over_a_period_are_read_from_the_covering_index_alone(traffic):
    db, _flow = traffic
    log = QueryLog(db)
    analytics.summary(db, a_period_holding_every_call(), "reason")
    figures = [(sql, params) for sql, params in log.sent if "count(*) FILTER" in sql]
    assert figures
    for sql, params in figures:
        plan = log.plan(sql, params)
        assert f"COVERING INDEX {REPORT_FIGURES_INDEX}" in plan, plan


def test_a_period_holding_the_whole_version_counts_its_funnel_on_the_flagged_events(traffic,
                                                                                    monkeypatch):
    db, flow = traffic
    period = a_period_holding_every_call()
    log = QueryLog(db)
    fast = analytics.funnel(db, "post_sale", flow.version, period)
    assert not any(CALL_BY_CALL in sql for sql, _params in log.sent)
    # The same period read call by call, as a period that cuts the version is.
    monkeypatch.setattr(analytics, "_version_within", lambda *args: False)
    slow = analytics.funnel(db, "post_sale", flow.version, period)
    assert any(CALL_BY_CALL in sql for sql, _params in log.sent)
    assert fast == slow
    assert sum(row["reached"] for row in fast) > 0


@pytest.mark.parametrize("period", [
    # The traffic's first call is the evening before its first day; its last the day after.
    analytics.Filters(since=FIRST_DAY.date().isoformat(), flow="post_sale"),
    analytics.Filters(until=(FIRST_DAY + timedelta(days=DAYS)).date().isoformat(), flow="post_sale"),
])
def test_a_period_that_cuts_the_version_reads_each_of_its_calls(traffic, period):
    db, flow = traffic
    log = QueryLog(db)
    analytics.funnel(db, "post_sale", flow.version, period)
    assert any(CALL_BY_CALL in sql for sql, _params in log.sent)


class RecordingPool:
    """A thread pool that runs nothing until told: what was handed to it."""

    def __init__(self):
        self.waiting = []

    def callInThreadWithCallback(self, on_result, function, *args, **kwargs):  # noqa: N802
        self.waiting.append((on_result, function, args, kwargs))

    def run_next(self):
        on_result, function, args, kwargs = self.waiting.pop(0)
        try:
            result = function(*args, **kwargs)
        except Exception:  # noqa: BLE001 - handed on, as Twisted's pool does
            on_result(False, Failure())
        else:
            on_result(True, result)


class PoolReactor:
    def __init__(self):
        self.pool = RecordingPool()

    def getThreadPool(self):  # noqa: N802 - Twisted's name
        return self.pool

    def callFromThread(self, function, *args, **kwargs):  # noqa: N802 - Twisted's name
        function(*args, **kwargs)


def test_the_dashboards_queries_go_to_the_thread_pool_one_view_at_a_time(tmp_path):
    CallStore.open(tmp_path / "ivr.db")
    reactor = PoolReactor()
    reader = ThreadedReader(str(tmp_path / "ivr.db"), reactor)
    ran = []

    def figures(name):
        return lambda db: ran.append((name, db.execute("SELECT count(*) FROM calls").fetchone()[0]))

    done = []
    for name in ("first", "second"):
        reader(figures(name)).addCallback(lambda _, name=name: done.append(name))
    assert ran == [] and len(reactor.pool.waiting) == 1  # nothing on the caller's thread
    reactor.pool.run_next()
    assert ran == [("first", 0)] and done == ["first"]
    assert len(reactor.pool.waiting) == 1  # the second view's turn only now
    reactor.pool.run_next()
    assert ran == [("first", 0), ("second", 0)] and done == ["first", "second"]
    assert reactor.pool.waiting == []


def test_a_view_that_fails_lets_the_next_one_run(tmp_path):
    CallStore.open(tmp_path / "ivr.db")
    reactor = PoolReactor()
    reader = ThreadedReader(str(tmp_path / "ivr.db"), reactor)
    failed = reader(lambda db: db.execute("SELECT no_such_figure FROM calls"))
    after = reader(lambda db: "drawn")
    reactor.pool.run_next()
    reactor.pool.run_next()
    assert "no such column" in str(failed.result.value)
    failed.addErrback(lambda _: None)
    assert after.result == "drawn"
