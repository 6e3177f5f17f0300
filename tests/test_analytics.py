"""ivr.analytics: the deflection figures, the funnel and the reasons."""

import sqlite3
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlite_utils

from ivr.flow.loader import load_flow
from ivr.flow.model import TRANSFER_CAUSES
from ivr.reports import analytics
from ivr.reports.queries import Costs, Filters, ReportError
from ivr.sim.call import SimCall
from ivr.store.sqlite.migrations import count_first_visits
from ivr.store.sqlite.store import CallStore

FIXTURES = Path(__file__).parent / "fixtures"
CALLER = "+33612345678"
DAY = "2026-11-24"


class Log:
    """A call log in memory, written row by row as the server would leave it."""

    def __init__(self):
        self.store = CallStore(sqlite_utils.Database(memory=True))
        self.db = self.store.db
        self.count = 0

    def call(self, started_at=f"{DAY}T10:00:00+01:00", outcome="self_served", reason="order_status",
             caller="alice", flow="shop", version="v1", lang="fr-FR", cause=None,
             path=("welcome", "menu"), exit_node=None, ivr_seconds=60.0, confirmed=0,
             handoff_kind=None, handoff_target=None, kinds=None):
        self.count += 1
        call_id = f"CA{self.count:04d}"
        ended = outcome is not None
        self.db["calls"].insert({
            "call_id": call_id, "flow": flow, "version": version, "started_at": started_at,
            "ended_at": started_at if ended else None, "caller_hash": caller, "country": "FR",
            "lang": lang, "reason": reason, "outcome": outcome, "cause": cause,
            "confirmed": confirmed, "handoff_kind": handoff_kind, "handoff_target": handoff_target,
            "steps": len(path), "exit_node": (exit_node or path[-1]) if ended else None,
            "ivr_seconds": ivr_seconds if ended else None,
        })
        kinds = kinds or {}
        self.db["node_events"].insert_all([
            {"call_id": call_id, "seq": seq, "flow": flow, "version": version, "node": node,
             "kind": kinds.get(node, "menu" if "menu" in node else "say"), "input": None,
             "branch": None, "detail": None, "at": started_at,
             "first_visit": int(node not in path[:seq - 1])}  # as the server flags them
            for seq, node in enumerate(path, 1)])
        count_first_visits(self.db)  # and counts them
        return call_id


def only(rows):
    assert len(rows) == 1
    return rows[0]


# --- outcomes, causes, deflection ---------------------------------------------------


def test_summary_counts_every_outcome_and_every_transfer_cause():
    log = Log()
    for _ in range(3):
        log.call(outcome="self_served")
    log.call(outcome="abandoned")
    for cause in TRANSFER_CAUSES:
        log.call(outcome="transferred", cause=cause)
    log.call(outcome="transferred", cause="caller_asked")
    log.call(outcome="failed", cause="error")
    row = only(analytics.summary(log.db))
    assert row["calls"] == 3 + 1 + len(TRANSFER_CAUSES) + 1 + 1
    assert (row["self_served"], row["transferred"], row["abandoned"], row["failed"]) == (
        3, len(TRANSFER_CAUSES) + 1, 1, 1)
    # Every cause present; a failed call's cause is not a transfer's.
    assert row["causes"] == {cause: 2 if cause == "caller_asked" else 1 for cause in TRANSFER_CAUSES}
    assert "reason" not in row


def test_causes_list_every_cause_even_when_none_happened():
    log = Log()
    log.call(outcome="self_served")
    assert only(analytics.summary(log.db))["causes"] == dict.fromkeys(TRANSFER_CAUSES, 0)


def test_deflection_rate_is_self_served_over_all_ended_calls():
    log = Log()
    for outcome in ["self_served"] * 5 + ["transferred"] * 2 + ["abandoned", "failed"]:
        log.call(outcome=outcome, caller="", cause="caller_asked" if outcome != "self_served" else None)
    row = only(analytics.summary(log.db))
    assert row["deflection_rate"] == pytest.approx(5 / 9)
    assert row["repeat_calls"] == 0 and row["deflected"] == 5
    assert row["repeat_adjusted_deflection_rate"] == pytest.approx(5 / 9)


def test_an_empty_log_gives_one_row_of_zeros_and_no_rates():
    row = only(analytics.summary(Log().db))
    assert row["calls"] == 0 and row["self_served"] == 0
    assert row["deflection_rate"] is None and row["repeat_adjusted_deflection_rate"] is None
    assert row["avg_ivr_seconds"] is None and row["cost_saved"] == Decimal("0.00")
    assert analytics.summary(Log().db, by="reason") == []


def test_ongoing_calls_are_in_no_figure():
    log = Log()
    log.call(outcome="self_served", ivr_seconds=30)
    log.call(outcome=None, caller="alice", started_at=f"{DAY}T11:00:00+01:00")  # alice again, still talking
    row = only(analytics.summary(log.db))
    assert row["calls"] == 1
    assert row["repeat_calls"] == 0  # an ongoing call back is not (yet) a repeat
    assert row["ivr_minutes"] == 0.5
    assert [r["reason"] for r in analytics.summary(log.db, by="reason")] == ["order_status"]


def test_confirmed_answers_and_ivr_time():
    log = Log()
    log.call(confirmed=1, ivr_seconds=90)
    log.call(confirmed=0, ivr_seconds=30, caller="bob")
    log.call(outcome="transferred", cause="policy", ivr_seconds=45, caller="carol")
    row = only(analytics.summary(log.db))
    assert row["confirmed"] == 1
    assert row["avg_ivr_seconds"] == 55.0
    assert row["ivr_minutes"] == 2.75


# --- repeat-adjusted deflection -------------------------------------------------------


def test_a_self_served_caller_who_calls_back_for_the_same_reason_is_not_deflected():
    log = Log()
    log.call(caller="alice", started_at=f"{DAY}T10:00:00+01:00", outcome="self_served")
    log.call(caller="alice", started_at=f"{DAY}T15:00:00+01:00", outcome="transferred", cause="caller_asked")
    log.call(caller="bob", started_at=f"{DAY}T10:00:00+01:00", outcome="self_served")
    log.call(caller="carol", started_at=f"{DAY}T10:00:00+01:00", outcome="abandoned")
    row = only(analytics.summary(log.db))
    assert row["self_served"] == 2 and row["repeat_calls"] == 1 and row["deflected"] == 1
    assert row["deflection_rate"] == pytest.approx(2 / 4)
    assert row["repeat_adjusted_deflection_rate"] == pytest.approx(1 / 4)


def test_the_repeat_window_includes_its_last_second_and_not_the_next():
    log = Log()
    log.call(caller="in", started_at=f"{DAY}T10:00:00+01:00")
    log.call(caller="in", started_at="2026-11-25T10:00:00+01:00", outcome="abandoned")  # exactly 24 h
    log.call(caller="out", started_at=f"{DAY}T10:00:00+01:00")
    log.call(caller="out", started_at="2026-11-25T10:00:01+01:00", outcome="abandoned")  # 24 h 1 s
    row = only(analytics.summary(log.db))
    assert row["repeat_calls"] == 1
    # The same calls with a shorter window: neither is a repeat; a longer one: both.
    assert only(analytics.summary(log.db, repeat_window=timedelta(hours=23)))["repeat_calls"] == 0
    assert only(analytics.summary(log.db, repeat_window=timedelta(hours=25)))["repeat_calls"] == 2


def test_withheld_callers_are_never_repeats():
    log = Log()
    log.call(caller="", started_at=f"{DAY}T10:00:00+01:00")
    log.call(caller="", started_at=f"{DAY}T10:05:00+01:00")
    row = only(analytics.summary(log.db))
    assert row["self_served"] == 2 and row["repeat_calls"] == 0


def test_a_call_back_for_another_reason_is_not_a_repeat():
    log = Log()
    log.call(caller="alice", reason="order_status", started_at=f"{DAY}T10:00:00+01:00")
    log.call(caller="alice", reason="return_refund", started_at=f"{DAY}T11:00:00+01:00",
             outcome="transferred", cause="policy")
    assert only(analytics.summary(log.db))["repeat_calls"] == 0


def test_only_the_earlier_call_is_a_repeat_and_only_when_self_served():
    log = Log()
    log.call(caller="alice", started_at=f"{DAY}T10:00:00+01:00", outcome="transferred", cause="no_match")
    log.call(caller="alice", started_at=f"{DAY}T11:00:00+01:00", outcome="self_served")
    row = only(analytics.summary(log.db))
    assert row["repeat_calls"] == 0 and row["deflected"] == 1


def test_a_call_back_after_the_period_still_makes_a_repeat():
    log = Log()
    log.call(caller="alice", started_at="2026-11-30T20:00:00+01:00")
    log.call(caller="alice", started_at="2026-12-01T09:00:00+01:00", outcome="transferred",
             cause="caller_asked", flow="other")
    november = only(analytics.summary(log.db, Filters(since="2026-11-01", until="2026-12-01", flow="shop")))
    assert november["calls"] == 1 and november["repeat_calls"] == 1 and november["deflected"] == 0


def test_the_repeat_window_is_measured_in_real_time_across_the_autumn_clock_change():
    log = Log()
    # 10:00 CEST on the 24th to 09:30 CET on the 25th: 23.5 h on the wall, 24.5 h in fact.
    log.call(caller="autumn", started_at="2026-10-24T10:00:00+02:00")
    log.call(caller="autumn", started_at="2026-10-25T09:30:00+01:00", outcome="abandoned")
    assert only(analytics.summary(log.db))["repeat_calls"] == 0


def test_the_repeat_window_is_measured_in_real_time_across_the_spring_clock_change():
    log = Log()
    # 10:00 CET on the 28th of March to 10:30 CEST on the 29th: 24.5 h on the wall, 23.5 h in fact.
    log.call(caller="spring", started_at="2026-03-28T10:00:00+01:00")
    log.call(caller="spring", started_at="2026-03-29T10:30:00+02:00", outcome="abandoned")
    assert only(analytics.summary(log.db))["repeat_calls"] == 1


def test_in_the_repeated_hour_of_the_clock_change_the_later_call_is_the_one_after():
    log = Log()
    # 02:30 CEST (00:30 UTC) comes before 02:10 CET (01:10 UTC) although it reads later.
    log.call(caller="night", started_at="2026-10-25T02:30:00+02:00", outcome="self_served")
    log.call(caller="night", started_at="2026-10-25T02:10:00+01:00", outcome="self_served")
    rows = analytics.summary(log.db, by="hour")
    assert {r["hour"]: r["repeat_calls"] for r in rows} == {2: 1}
    first = only(analytics.summary(log.db, Filters(until="2026-10-25T02:20")))
    assert first["calls"] == 1 and first["repeat_calls"] == 0  # 02:10 CET, the later call


# --- cost saved -----------------------------------------------------------------------


def test_cost_saved_is_deflected_calls_times_agent_cost_minus_ivr_minutes():
    log = Log()
    log.call(caller="alice", started_at=f"{DAY}T10:00:00+01:00", ivr_seconds=90)
    log.call(caller="alice", started_at=f"{DAY}T12:00:00+01:00", ivr_seconds=100)  # a repeat
    log.call(caller="bob", ivr_seconds=70, outcome="transferred", cause="policy")
    row = only(analytics.summary(log.db))
    # 1 deflected x 3.00 - (260 s = 4.333 min) x 0.02 = 3.00 - 0.08666 = 2.91
    assert row["deflected"] == 1 and row["ivr_minutes"] == 4.33
    assert row["cost_saved"] == Decimal("2.91") and row["currency"] == "EUR"
    costs = Costs(agent_per_call=Decimal("5.50"), ivr_per_minute=Decimal("0.15"), currency="USD")
    row = only(analytics.summary(log.db, costs=costs))
    assert row["cost_saved"] == Decimal("4.85")  # 5.50 - 0.65
    assert row["currency"] == "USD"


def test_cost_saved_is_negative_when_nothing_is_deflected():
    log = Log()
    log.call(outcome="transferred", cause="caller_asked", ivr_seconds=600)
    assert only(analytics.summary(log.db))["cost_saved"] == Decimal("-0.20")


# --- dimensions -----------------------------------------------------------------------


def dimension_log():
    log = Log()
    log.call(reason="order_status", flow="shop", version="v1", lang="fr-FR",
             started_at="2026-11-23T23:30:00+01:00", caller="a")
    log.call(reason="order_status", flow="shop", version="v2", lang="en-US",
             started_at="2026-11-24T00:30:00+01:00", caller="b", outcome="abandoned")
    log.call(reason="return_refund", flow="shop", version="v2", lang="fr-FR",
             started_at="2026-11-24T09:15:00+01:00", caller="c", outcome="transferred", cause="policy")
    log.call(reason="invoice_copy", flow="billing", version="b1", lang="fr-FR",
             started_at="2026-11-24T09:45:00-05:00", caller="d")
    return log


@pytest.mark.parametrize("by, expected", [
    ("reason", [("order_status", 2, 1), ("invoice_copy", 1, 1), ("return_refund", 1, 0)]),
    ("flow", [("shop", 3, 1), ("billing", 1, 1)]),
    ("version", [("v2", 2, 0), ("b1", 1, 1), ("v1", 1, 1)]),
    ("language", [("fr-FR", 3, 2), ("en-US", 1, 0)]),
    # The caller's local day and hour, whatever the offset.
    ("day", [("2026-11-23", 1, 1), ("2026-11-24", 3, 1)]),
    ("hour", [(0, 1, 0), (9, 2, 1), (23, 1, 1)]),
])
def test_summary_by_each_dimension(by, expected):
    rows = analytics.summary(dimension_log().db, by=by)
    assert [(r[by], r["calls"], r["self_served"]) for r in rows] == expected


def test_rows_by_version_name_their_flow():
    rows = analytics.summary(dimension_log().db, by="version")
    assert {r["version"]: r["flow"] for r in rows} == {"v1": "shop", "v2": "shop", "b1": "billing"}


def test_an_unknown_dimension_is_refused():
    with pytest.raises(ReportError, match=r"unknown dimension 'week': expected one of reason, flow, "
                                          r"version, language, day, hour"):
        analytics.summary(Log().db, by="week")


def test_over_time_is_by_day_or_hour_in_time_order():
    log = dimension_log()
    assert [r["day"] for r in analytics.over_time(log.db)] == ["2026-11-23", "2026-11-24"]
    assert [r["hour"] for r in analytics.over_time(log.db, by="hour")] == [0, 9, 23]
    with pytest.raises(ReportError, match="by day or hour"):
        analytics.over_time(log.db, by="reason")


# --- period and filters -----------------------------------------------------------------


def period_log():
    log = Log()
    for started_at in ["2026-10-31T23:59:59+01:00", "2026-11-01T00:00:00+01:00",
                       "2026-11-15T12:00:00+01:00", "2026-11-30T23:59:59+01:00",
                       "2026-12-01T00:00:00+01:00"]:
        log.call(started_at=started_at, caller="")
    return log


@pytest.mark.parametrize("since, until, count", [
    ("2026-11-01", "2026-12-01", 3),  # from local midnight to local midnight, excluded
    ("2026-11-01", None, 4),
    (None, "2026-11-01", 1),
    ("2026-11-15T12:00", "2026-11-15T12:00:01", 1),
    ("2026-11-15 12:00:01", None, 2),
    (None, None, 5),
])
def test_the_period_compares_local_times(since, until, count):
    row = only(analytics.summary(period_log().db, Filters(since=since, until=until)))
    assert row["calls"] == count


def test_the_period_is_local_time_whatever_the_offset():
    log = Log()
    log.call(started_at="2026-11-24T08:00:00-05:00", caller="")  # 13:00 UTC
    log.call(started_at="2026-11-24T10:00:00+01:00", caller="")  # 09:00 UTC
    rows = analytics.summary(log.db, Filters(since="2026-11-24T09:00"))
    assert only(rows)["calls"] == 1


@pytest.mark.parametrize("since, until, message", [
    ("yesterday", None, "since 'yesterday' is not a time: expected a date like 2026-11-01"),
    ("2026-13-01", None, "since '2026-13-01' is not a time"),
    (None, "2026-11-01T10:00+01:00", r"until '2026-11-01T10:00\+01:00' has a UTC offset"),
    ("2026-11-02", "2026-11-01", r"the period is empty: until \(2026-11-01\) is not after since \(2026-11-02\)"),
    ("2026-11-01", "2026-11-01", "the period is empty"),
])
def test_a_bad_period_is_refused(since, until, message):
    with pytest.raises(ReportError, match=message):
        analytics.summary(Log().db, Filters(since=since, until=until))


def test_flow_and_version_prefix_filters():
    log = dimension_log()
    assert only(analytics.summary(log.db, Filters(flow="shop")))["calls"] == 3
    assert only(analytics.summary(log.db, Filters(flow="shop", version="v")))["calls"] == 3
    assert only(analytics.summary(log.db, Filters(version="v2")))["calls"] == 2
    assert only(analytics.summary(log.db, Filters(flow="nope")))["calls"] == 0


def test_a_non_positive_repeat_window_is_refused():
    with pytest.raises(ReportError, match="repeat window"):
        analytics.summary(Log().db, repeat_window=timedelta(0))


# --- reasons ----------------------------------------------------------------------------


def test_reasons_are_ranked_by_volume_and_by_repeat_adjusted_deflection():
    log = Log()
    for i in range(4):  # order_status: 4 calls, 3 self-served of which 1 repeat: 2/4
        log.call(reason="order_status", caller="alice" if i < 2 else f"o{i}",
                 started_at=f"{DAY}T1{i}:00:00+01:00",
                 outcome="self_served" if i < 3 else "abandoned")
    for i in range(2):  # delivery_date: 2 calls, both deflected: 2/2
        log.call(reason="delivery_date", caller=f"d{i}")
    for i in range(2):  # return_refund: 2 calls, none deflected: 0/2
        log.call(reason="return_refund", caller=f"r{i}", outcome="transferred", cause="policy")
    log.call(reason="parcel_lost", caller="p", outcome="transferred", cause="policy")  # 0/1
    rows = analytics.reasons(log.db)
    assert [(r["reason"], r["volume_rank"], r["deflection_rank"]) for r in rows] == [
        ("order_status", 1, 2),
        ("delivery_date", 2, 1),
        ("return_refund", 2, 3),  # ties share a rank
        ("parcel_lost", 4, 3),
    ]
    assert rows[0]["repeat_calls"] == 1 and rows[0]["repeat_adjusted_deflection_rate"] == 0.5


def test_reasons_by_flow_are_ranked_within_each_flow():
    log = Log()
    log.call(flow="shop", reason="order_status", caller="")
    log.call(flow="shop", reason="order_status", caller="")
    log.call(flow="shop", reason="return_refund", caller="", outcome="transferred", cause="policy")
    log.call(flow="billing", reason="invoice_copy", caller="")
    rows = analytics.reasons(log.db, by="flow")
    assert [(r["flow"], r["reason"], r["volume_rank"], r["deflection_rank"]) for r in rows] == [
        ("shop", "order_status", 1, 1), ("shop", "return_refund", 2, 2),
        ("billing", "invoice_copy", 1, 1)]


# --- funnel -----------------------------------------------------------------------------


def funnel_log():
    log = Log()
    kinds = {"welcome": "say", "menu": "menu", "lookup": "lookup", "answer": "say", "agent": "transfer"}
    call = lambda path, outcome, **kw: log.call(path=path, outcome=outcome, kinds=kinds, caller="", **kw)
    call(["welcome"], "abandoned")                                            # hung up at welcome
    call(["welcome", "menu"], "abandoned")                                    # hung up at the menu
    call(["welcome", "menu", "menu", "agent"], "transferred", cause="caller_asked", exit_node="menu")
    call(["welcome", "menu", "agent"], "transferred", cause="no_input", exit_node="menu")
    call(["welcome", "menu", "lookup", "answer"], "self_served")              # ended at answer
    call(["welcome", "menu", "lookup", "agent"], "failed", cause="error", exit_node="lookup")
    call(["welcome", "menu", "lookup", "answer"], None)                       # still talking
    return log


def test_funnel_counts_where_calls_left_each_node():
    rows = {r["node"]: r for r in analytics.funnel(funnel_log().db, "shop")}
    assert {n: (r["reached"], r["hung_up"], r["transferred"], r["ended"], r["continued"], r["dropped"])
            for n, r in rows.items()} == {
        "welcome": (6, 1, 0, 0, 5, 1),
        "menu": (5, 1, 2, 0, 2, 3),  # reached twice by one call: counted once
        "lookup": (2, 0, 1, 0, 1, 1),  # a failed call counts as transferred
        "answer": (1, 0, 0, 1, 0, 0),
        "agent": (3, 0, 0, 0, 3, 0),
    }
    assert rows["menu"]["kind"] == "menu" and rows["agent"]["kind"] == "transfer"
    assert rows["menu"]["drop_off_rate"] == pytest.approx(3 / 5)


def test_funnel_rows_come_worst_drop_off_first():
    rows = analytics.funnel(funnel_log().db, "shop")
    # menu drops 3; lookup (1 of 2) before welcome (1 of 6); then no drop, by name.
    assert [r["node"] for r in rows] == ["menu", "lookup", "welcome", "agent", "answer"]


def test_funnel_of_a_period_counts_only_its_calls():
    log = funnel_log()
    log.call(path=["welcome"], outcome="abandoned", started_at="2026-12-02T10:00:00+01:00", caller="")
    log.call(path=["welcome", "menu"], outcome=None, started_at="2026-12-02T11:00:00+01:00", caller="")
    rows = analytics.funnel(log.db, "shop", filters=Filters(since="2026-12-01"))
    assert [(r["node"], r["reached"], r["hung_up"]) for r in rows] == [("welcome", 1, 1)]
    everything = {r["node"]: r["reached"] for r in analytics.funnel(log.db, "shop")}
    assert everything["welcome"] == 7 and everything["menu"] == 5


def test_funnel_takes_the_latest_version_with_calls_or_the_one_asked():
    log = Log()
    log.call(version="aaa111", started_at=f"{DAY}T10:00:00+01:00", path=["old"])
    log.call(version="bbb222", started_at=f"{DAY}T11:00:00+01:00", path=["new"])
    log.call(version="aaa111", started_at=f"{DAY}T09:00:00+01:00", path=["old"])
    log.call(version="ccc333", started_at=f"{DAY}T12:00:00+01:00", path=["newest"], outcome=None)
    assert analytics.funnel_version(log.db, "shop") == "bbb222"
    assert [r["node"] for r in analytics.funnel(log.db, "shop")] == ["new"]
    assert [r["node"] for r in analytics.funnel(log.db, "shop", "aaa")] == ["old"]
    assert analytics.funnel_version(log.db, "shop", filters=Filters(until=f"{DAY}T10:30")) == "aaa111"
    assert [r["node"] for r in analytics.funnel(log.db, "shop", filters=Filters(version="aaa1"))] == ["old"]


def test_funnel_of_an_unknown_flow_names_the_flows_with_calls():
    log = Log()
    log.call(flow="post_sale")
    log.call(flow="billing")
    with pytest.raises(ReportError, match=r"flow 'shop' has no calls \(flows with calls: billing, post_sale\)"):
        analytics.funnel(log.db, "shop")
    with pytest.raises(ReportError, match=r"flow 'post_sale' has no calls in that period"):
        analytics.funnel(log.db, "post_sale", filters=Filters(since="2027-01-01"))


def test_funnel_of_an_unknown_or_ambiguous_version_is_refused():
    log = Log()
    log.call(version="abc111")
    log.call(version="abc222")
    with pytest.raises(ReportError, match=r"flow 'shop' has no version 'zzz' \(its versions: abc111, abc222\)"):
        analytics.funnel(log.db, "shop", "zzz")
    with pytest.raises(ReportError, match=r"version 'abc' of flow 'shop' is ambiguous \(abc111, abc222\)"):
        analytics.funnel(log.db, "shop", "abc")


def test_funnel_of_a_log_from_before_the_counts_is_counted_from_the_flagged_events():
    log = funnel_log()
    counted = analytics.funnel(log.db, "shop")
    log.db.execute("DROP TABLE node_reached")  # a log the server has not brought up to date
    assert analytics.funnel(log.db, "shop") == counted


def test_funnel_works_on_a_log_without_the_report_indexes():
    log = funnel_log()
    log.db.execute("DROP INDEX idx_calls_repeat")
    assert [r["node"] for r in analytics.funnel(log.db, "shop")] == [
        "menu", "lookup", "welcome", "agent", "answer"]
    assert only(analytics.summary(log.db))["calls"] == 6


# --- recent calls -------------------------------------------------------------------------


def test_calls_lists_the_newest_first_with_ongoing_ones_and_no_caller_details():
    log = Log()
    log.call(started_at=f"{DAY}T09:00:00+01:00", outcome="transferred", cause="closed",
             handoff_kind="callback", handoff_target="hash-of-the-callback-number")
    log.call(started_at=f"{DAY}T10:00:00+01:00", outcome="transferred", cause="caller_asked",
             handoff_kind="queue", handoff_target="post-sale")
    log.call(started_at=f"{DAY}T11:00:00+01:00", outcome=None)
    rows = analytics.calls(log.db)
    assert [r["started_at"][11:16] for r in rows] == ["11:00", "10:00", "09:00"]
    assert rows[0]["outcome"] is None
    assert [r["handoff_target"] for r in rows] == [None, "post-sale", None]
    assert "country" not in rows[0] and rows[0]["caller_hash"] == "alice"
    assert len(analytics.calls(log.db, limit=2)) == 2
    assert len(analytics.calls(log.db, Filters(since=f"{DAY}T09:30"))) == 2
    with pytest.raises(ReportError, match="limit"):
        analytics.calls(log.db, limit=0)


# --- opening a log ------------------------------------------------------------------------


def test_open_report_db_does_not_create_a_missing_file(tmp_path):
    path = tmp_path / "missing.db"
    with pytest.raises(ReportError, match=r"missing.db: no such file"):
        analytics.open_report_db(path)
    assert not path.exists()


def test_open_report_db_refuses_a_file_that_is_not_sqlite(tmp_path):
    path = tmp_path / "notes.db"
    path.write_text("not a database, just some notes\n" * 10)
    with pytest.raises(ReportError, match=r"notes.db: not an SQLite database"):
        analytics.open_report_db(path)


def test_open_report_db_refuses_an_sqlite_file_without_the_call_log(tmp_path):
    path = tmp_path / "orders.db"
    sqlite_utils.Database(path)["orders"].insert({"number": 1})
    with pytest.raises(ReportError, match=r"orders.db: not an IVR call log \(no calls or node_events table\)"):
        analytics.open_report_db(path)


def test_open_report_db_asks_to_upgrade_a_log_of_an_older_version(tmp_path):
    path = tmp_path / "old.db"
    db = sqlite_utils.Database(path)
    db.execute("CREATE TABLE calls (call_id TEXT PRIMARY KEY, outcome TEXT)")
    db.execute("CREATE TABLE node_events (call_id TEXT, seq INTEGER)")
    db.close()
    with pytest.raises(ReportError, match=r"old.db: a call log of an older version \(no exit_node column\): "
                                          r"start ivr-serve on it once"):
        analytics.open_report_db(path)


def test_open_report_db_reads_a_log_the_server_is_writing(tmp_path):
    path = tmp_path / "ivr.db"
    store = CallStore.open(path)  # WAL mode, left open like a running server
    store.db["calls"].insert({"call_id": "CA1", "flow": "shop", "version": "v1",
                              "started_at": f"{DAY}T10:00:00+01:00", "reason": "order_status",
                              "outcome": "self_served", "ivr_seconds": 30})
    db = analytics.open_report_db(path)
    assert only(analytics.summary(db))["calls"] == 1
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        db.execute("DELETE FROM calls")
    db.close()
    store.close()


# --- the real thing -------------------------------------------------------------------------


def test_calls_played_through_the_engine_and_saved_by_the_store_are_reported():
    flow = load_flow(FIXTURES / "shop.yaml", FIXTURES / "prompts")
    store = CallStore(sqlite_utils.Database(memory=True))
    at = datetime(2026, 11, 24, 10, 0, tzinfo=ZoneInfo("Europe/Paris"))
    found = {"status": "found", "data": {"order": {"number": "100234", "status": "in_transit",
                                                   "carrier_name": "Colissimo"}}}

    def play(call_id, when, *keys):
        sim = SimCall(flow, lambda request, now: found, caller=CALLER, at=when, call_id=call_id)
        turns = [sim.start()] + [sim.press(k) for k in keys]
        for turn in turns:  # as the server saves each turn
            store.save_turn(call_id, turn.number, sim.state, turn.twiml, turn.node_events,
                            sim.summary, CALLER)
        return sim.summary

    first = play("CA1", at, "1", "100234", "1")  # the order's status: self-served
    again = play("CA2", at + timedelta(hours=3), "1", "0")  # calls back, asks for an agent
    assert (first["outcome"], again["outcome"]) == ("self_served", "transferred")
    assert first["reason"] == again["reason"] == "order_status"
    row = only(analytics.summary(store.db))
    assert row["calls"] == 2 and row["self_served"] == 1 and row["repeat_calls"] == 1
    assert row["causes"]["caller_asked"] == 1
    nodes = {r["node"]: r for r in analytics.funnel(store.db, "shop")}
    assert nodes["hello"]["reached"] == 2
    assert nodes["ask_number"]["transferred"] == 1  # where the caller pressed 0
    assert nodes["bye"]["ended"] == 1


def test_texts_sent_are_counted_per_reason_from_real_calls():
    from ivr.engine.state import call_summary
    from ivr.sim.scenarios import demo_lookups

    demo = load_flow(Path(__file__).parent.parent / "flows" / "post_sale.yaml",
                     Path(__file__).parent.parent / "prompts")
    store = CallStore(sqlite_utils.Database(memory=True))
    at = datetime(2026, 11, 24, 10, 0, tzinfo=ZoneInfo("Europe/Paris"))
    warehouse = "+33639980012"  # one order late at the warehouse: no tracking link
    calls = ((CALLER, ["1", "3", "2"]), (CALLER, ["1", "2"]), (warehouse, ["1", "2"]))
    for number, (caller, keys) in enumerate(calls, 1):
        call = SimCall(demo, demo_lookups(at), caller=caller, at=at, call_id=f"CA{number}")
        call.start()
        for key in keys:
            call.press(key)
        events = [e for turn in call.turns for e in turn.node_events]
        store.save_turn(call.call_id, len(keys), call.state, b"<Response/>", events,
                        call_summary(call.state), caller)
    rows = {r["reason"]: r for r in analytics.summary(store.db, by="reason")}
    assert rows["in_transit_on_time"]["calls"] == 2 and rows["in_transit_on_time"]["sms_sent"] == 1
    assert rows["warehouse_delay"]["sms_sent"] == 0
    assert only(analytics.summary(store.db))["sms_sent"] == 1
