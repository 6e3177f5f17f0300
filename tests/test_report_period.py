"""ivr.reports.period: the dashboard's four summaries of a period, with the
repeat calls found once, are those the separate reports give."""

import pytest
from test_analytics import Log

from ivr.reports import analytics
from ivr.reports.period import period_figures
from ivr.reports.queries import Filters, ReportError


@pytest.fixture
def log():
    """Calls over three days, two reasons and two providers, with repeats
    in several groups, one after the period and one of another flow."""
    log = Log()
    calls = [
        ("2026-11-23T09:00:00+01:00", "self_served", "order_status", "alice", 61.3),
        ("2026-11-23T15:00:00+01:00", "self_served", "order_status", "alice", 12.2),  # repeat
        ("2026-11-23T16:00:00+01:00", "transferred", "refund", "bob", 95.7),
        ("2026-11-24T10:00:00+01:00", "self_served", "refund", "carol", 40.1),
        ("2026-11-24T11:30:00+01:00", "abandoned", "refund", "carol", 7.9),  # makes a repeat
        ("2026-11-24T23:30:00+01:00", "self_served", "order_status", "dave", 33.3),
        ("2026-11-25T08:00:00+01:00", "self_served", "order_status", "dave", 20.0),  # repeat
        ("2026-11-25T11:00:00+01:00", "self_served", "refund", "erin", 18.4),  # repeat, later
        ("2026-11-26T10:00:00+01:00", "transferred", "refund", "erin", 70.0),  # after the period
    ]
    for n, (started_at, outcome, reason, caller, seconds) in enumerate(calls):
        cause = "caller_asked" if outcome == "transferred" else None
        call_id = log.call(started_at=started_at, outcome=outcome, reason=reason, caller=caller,
                           ivr_seconds=seconds, cause=cause)
        log.db.execute("UPDATE calls SET provider = ? WHERE call_id = ?",
                       ["telnyx" if n % 3 == 0 else "twilio", call_id])
        if outcome == "transferred":
            log.db.execute("UPDATE calls SET transfer_result = 'abandoned_in_queue', queue_seconds = ? "
                           "WHERE call_id = ?", [seconds / 3, call_id])
    log.call(started_at="2026-11-24T12:00:00+01:00", flow="other", caller="alice")
    return log


def separately(db, filters, by):
    return (analytics.summary(db, filters)[0], analytics.over_time(db, filters, by),
            analytics.reasons(db, filters), analytics.summary(db, filters, "provider"))


@pytest.mark.parametrize("filters, by", [
    (Filters(since="2026-11-23", until="2026-11-26", flow="shop"), "day"),
    (Filters(flow="shop"), "day"),
    (Filters(), "day"),
    (Filters(since="2026-11-24", until="2026-11-25", flow="shop"), "hour"),
    (Filters(since="2026-11-01", until="2026-11-02", flow="shop"), "day"),  # no calls
])
def test_the_figures_are_those_of_the_separate_reports(log, filters, by):
    figures = period_figures(log.db, filters, by)
    together = (figures.total, figures.over_time, figures.reasons, figures.providers)
    assert together == separately(log.db, filters, by)


def test_the_fixture_has_repeats_in_several_groups_and_waits_in_the_queue(log):
    assert analytics.summary(log.db)[0]["avg_queue_seconds_abandoned"] == pytest.approx(27.6)
    by_day = analytics.over_time(log.db, Filters(flow="shop"))
    assert [row["repeat_calls"] for row in by_day] == [2, 2, 1, 0]


def test_the_calls_and_the_repeat_calls_are_read_once(log):
    statements = []
    log.db.conn.set_trace_callback(statements.append)
    period_figures(log.db, Filters(flow="shop"))
    log.db.conn.set_trace_callback(None)
    assert sum("count(*) AS calls" in sql for sql in statements) == 1
    assert sum("repeat_calls" in sql for sql in statements) == 1


def test_the_figures_are_by_day_or_hour_only(log):
    with pytest.raises(ReportError, match="by day or hour"):
        period_figures(log.db, Filters(), "reason")
