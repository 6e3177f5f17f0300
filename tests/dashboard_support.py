"""For the dashboard's tests: a week of known traffic on the demo flow,
and a reader of the page.

Calls are written straight into the log (``calls`` and ``node_events``),
along paths that exist in flows/post_sale.yaml, so the figures are known
without running the engine: :func:`expected` counts them from the same
list, independently of :mod:`ivr.analytics`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from html.parser import HTMLParser
from zoneinfo import ZoneInfo

from ivr.store.sqlite.migrations import mark_first_visits

PARIS = ZoneInfo("Europe/Paris")
FIRST_DAY = datetime(2026, 11, 18, tzinfo=PARIS)  # a Wednesday; the week ends Tuesday 24th
DAYS = 7
CALLS_PER_DAY = (9, 12, 10, 14, 11, 4, 13)

# name: (reason, outcome, cause, confirmed, seconds with the IVR, path of (node, branch), exit node)
PATHS = {
    "status_ok": ("order_status", "self_served", None, 1, 70, [
        ("welcome", None), ("main_menu", "1"), ("find_by_phone", "found"), ("confirm_order", "1"),
        ("answer", None), ("status_in_transit", None), ("anything_else", "2"),
        ("goodbye", None)], "goodbye"),
    "delivery_ok": ("delivery_date", "self_served", None, 0, 64, [
        ("welcome", None), ("main_menu", "2"), ("find_by_phone", "found"), ("confirm_order", "1"),
        ("answer", None), ("status_out_for_delivery", None), ("anything_else", "no_input"),
        ("goodbye", None)], "goodbye"),
    "delayed": ("carrier_delay", "self_served", None, 0, 58, [
        ("welcome", None), ("main_menu", "1"), ("find_by_phone", "found"), ("confirm_order", "1"),
        ("answer", None), ("status_delayed_carrier", None), ("anything_else", "hangup")],
        "anything_else"),
    "asked_agent": ("not_stated", "transferred", "caller_asked", 0, 18, [
        ("welcome", None), ("main_menu", "0"), ("agent_hours", "open"), ("agent", None)],
        "main_menu"),
    "not_found": ("order_status", "transferred", "not_found", 0, 95, [
        ("welcome", None), ("main_menu", "1"), ("find_by_phone", "not_found"),
        ("ask_order_number", "123456"), ("find_by_number", "not_found"), ("count_not_found", None),
        ("retry_or_agent", None), ("order_not_found_retry", None), ("ask_order_number", "234567"),
        ("find_by_number", "not_found"), ("count_not_found", None), ("retry_or_agent", None),
        ("order_not_found_agent", None), ("agent_hours", "open"), ("agent", None)],
        "order_not_found_agent"),
    "return": ("return_refund", "transferred", "policy", 0, 40, [
        ("welcome", None), ("main_menu", "3"), ("find_by_phone", "found"), ("confirm_order", "1"),
        ("answer", None), ("return_handoff", None), ("agent_hours", "open"), ("agent", None)],
        "return_handoff"),
    "hangup_menu": ("not_stated", "abandoned", None, 0, 9, [
        ("welcome", None), ("main_menu", "hangup")], "main_menu"),
    "hangup_number": ("order_status", "abandoned", None, 0, 33, [
        ("welcome", None), ("main_menu", "1"), ("find_by_phone", "not_found"),
        ("ask_order_number", "hangup")], "ask_order_number"),
    "lookup_error": ("delivery_date", "failed", "error", 0, 41, [
        ("welcome", None), ("main_menu", "2"), ("find_by_phone", "not_found"),
        ("ask_order_number", "345678"), ("find_by_number", "error"), ("lookup_failed", None),
        ("agent_hours", "open"), ("agent", None)], "lookup_failed"),
}
# How often each path comes up, in the order calls of a day cycle through them.
MIX = (["status_ok"] * 4 + ["delivery_ok"] * 2
       + ["delayed", "asked_agent", "asked_agent", "not_found", "return", "hangup_menu",
          "hangup_number", "lookup_error", "status_ok", "delivery_ok"])


@dataclass(frozen=True)
class Call:
    call_id: str
    started: datetime
    caller_hash: str
    path: str

    @property
    def reason(self):
        return PATHS[self.path][0]

    @property
    def outcome(self):
        return PATHS[self.path][1]


def week_of_calls() -> list[Call]:
    """The week's calls, plus one the day before and one the day after it
    (outside the period, but the one after makes a call of the last day a
    repeat) and callers who call back the same day for the same reason."""
    calls = []
    for day in range(DAYS):
        first_status_caller = None
        for i in range(CALLS_PER_DAY[day]):
            path = MIX[(i * 5 + day * 3) % len(MIX)]
            started = FIRST_DAY + timedelta(days=day, hours=8, minutes=12 + i * 41)
            caller = f"caller-{day}-{i}"
            if path == "status_ok" and first_status_caller is None:
                first_status_caller = caller
            elif path in ("not_found", "hangup_number") and first_status_caller:
                # Called back: the earlier self-served call was not deflected.
                caller, first_status_caller = first_status_caller, None
            if i == 5:
                caller = ""  # a withheld number is never a repeat
            calls.append(Call(f"CA{day:02d}{i:03d}", started, caller, path))
    last = [c for c in calls if c.started.date() == (FIRST_DAY + timedelta(days=DAYS - 1)).date()
            and c.path == "delivery_ok" and c.caller_hash][-1]
    calls.append(Call("CAafter", last.started + timedelta(hours=20), last.caller_hash, "lookup_error"))
    calls.append(Call("CAbefore", FIRST_DAY - timedelta(hours=3), "caller-before", "status_ok"))
    return calls


def insert_traffic(db, flow) -> list[Call]:
    """Write the week's calls on ``flow`` (the demo flow, loaded) into ``db``,
    and one call still in progress; return the ended calls."""
    calls = week_of_calls()
    call_rows, events = [], []
    for call in calls:
        reason, outcome, cause, confirmed, seconds, path, exit_node = PATHS[call.path]
        at = call.started
        for seq, (node, branch) in enumerate(path):
            assert node in flow.nodes, node
            events.append({"call_id": call.call_id, "seq": seq, "flow": flow.name,
                           "version": flow.version, "node": node, "kind": flow.nodes[node].kind,
                           "input": None, "branch": branch, "detail": None,
                           "at": at.isoformat()})
            at += timedelta(seconds=seconds / len(path))
        call_rows.append({
            "call_id": call.call_id, "flow": flow.name, "version": flow.version,
            "started_at": call.started.isoformat(),
            "ended_at": (call.started + timedelta(seconds=seconds + 30)).isoformat(),
            "caller_hash": call.caller_hash, "country": "FR", "lang": "fr-FR", "reason": reason,
            "outcome": outcome, "cause": cause, "confirmed": confirmed,
            "handoff_kind": "queue" if outcome in ("transferred", "failed") else None,
            "handoff_target": "post-sale" if outcome in ("transferred", "failed") else None,
            "steps": len(path), "provider_status": "completed", "duration_s": seconds + 30,
            "exit_node": exit_node, "ivr_seconds": float(seconds)})
    ongoing = FIRST_DAY + timedelta(days=2, hours=11)
    call_rows.append({"call_id": "CAongoing", "flow": flow.name, "version": flow.version,
                      "started_at": ongoing.isoformat(), "caller_hash": "caller-x",
                      "reason": "order_status", "steps": 2, "confirmed": 0})
    events.append({"call_id": "CAongoing", "seq": 0, "flow": flow.name, "version": flow.version,
                   "node": "welcome", "kind": "say", "at": ongoing.isoformat()})
    db["calls"].insert_all(call_rows)
    db["node_events"].insert_all(events)
    mark_first_visits(db)  # as the server flags them when it writes events one by one
    return calls


def expected(calls: list[Call], since=FIRST_DAY, until=FIRST_DAY + timedelta(days=DAYS)) -> dict:
    """The figures of the calls started in [since, until), counted here."""
    inside = [c for c in calls if since <= c.started < until]
    self_served = [c for c in inside if c.outcome == "self_served"]
    repeats = [c for c in self_served if c.caller_hash and any(
        o.caller_hash == c.caller_hash and o.reason == c.reason
        and timedelta(0) < o.started - c.started <= timedelta(hours=24) for o in calls)]
    seconds = [PATHS[c.path][4] for c in inside]
    counts = {o: sum(c.outcome == o for c in inside)
              for o in ("self_served", "transferred", "abandoned", "failed")}
    return {
        "calls": len(inside), **counts, "repeat_calls": len(repeats),
        "deflection_rate": len(self_served) / len(inside),
        "repeat_adjusted_deflection_rate": (len(self_served) - len(repeats)) / len(inside),
        "avg_ivr_seconds": sum(seconds) / len(seconds),
        "cost_saved": round((len(self_served) - len(repeats)) * 3.00 - sum(seconds) / 60 * 0.02, 2),
        "causes": {cause: sum(PATHS[c.path][2] == cause and c.outcome == "transferred"
                              for c in inside)
                   for cause in ("caller_asked", "not_found", "policy")},
    }


class Page(HTMLParser):
    """Elements of a page by id, and the rows/boxes carrying ``data-node``."""

    def __init__(self, html: str):
        super().__init__()
        self.by_id, self.nodes, self.open, self.all = {}, [], [], []
        self.feed(html)

    def handle_starttag(self, tag, attrs, closed=False):
        element = {"tag": tag, **{k: v or "" for k, v in attrs}, "text": ""}
        self.all.append(element)
        if "id" in element:
            self.by_id[element["id"]] = element
        if "data-node" in element:
            self.nodes.append(element)
        if not closed and tag not in ("input", "meta", "br", "img"):
            self.open.append(element)

    def handle_startendtag(self, tag, attrs):  # <line/> in SVG
        self.handle_starttag(tag, attrs, closed=True)

    def handle_endtag(self, tag):
        while self.open:
            if self.open.pop()["tag"] == tag:
                break

    def handle_data(self, data):
        for element in self.open:
            element["text"] += data

    def value(self, element_id: str) -> str:
        return self.by_id[element_id]["data-value"]

    def text(self, element_id: str) -> str:
        return self.by_id[element_id]["text"].strip()

    def find(self, tag, **data):
        return [e for e in self.all if e["tag"] == tag
                and all(e.get("data-" + k.replace("_", "-")) == v for k, v in data.items())]
