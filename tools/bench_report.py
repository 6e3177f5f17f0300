"""Time the deflection report on a large synthetic call log.

    python tools/bench_report.py [--calls 1000000] [--db /tmp/ivr-report-bench.db]

Builds, once, a call log of ``--calls`` calls with about 8 node events
each (1 million calls: about 8 million events) and keeps it at ``--db``
(a later run with the same ``--calls`` reuses it; another count rebuilds
it).  The log looks like production's: the demo flow ``post_sale`` in
three versions and a smaller ``invoices`` flow in two, over 90 days of
Europe/Paris time (across the October daylight-saving change), busy
weekday hours, every outcome and transfer cause, French and English
callers, about 8 % withheld numbers, and callers who call back for the
same reason within hours or days.  A few of the latest calls are still in
progress.

Then, in the same run, it times (best of 3, on the read-only connection
``ivr-report`` uses) ``summary`` (whole log, and by reason), ``summary
--by day``, ``funnel post_sale`` and ``reasons``, and a baseline: a full
scan of the calls table (``SELECT count(*), sum(ivr_seconds) FROM
calls``).  It prints seconds and the ratio to the baseline.  The
dashboard view over the log's 90 days is timed whole, then its queries
one by one (indented).

Everything is bounded: ``--max-seconds`` (default 1800) stops a build or a
query that runs past it.  ``--build-only`` makes the log and stops
(a demo log for the docs: ``--calls 5000 --build-only``).
"""

from __future__ import annotations

import argparse
import hashlib
import heapq
import os
import random
import sqlite3
import sys
import tempfile
import time
from bisect import bisect
from datetime import date, datetime, timedelta
from itertools import accumulate
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlite_utils  # noqa: E402

from ivr.reports import analytics  # noqa: E402
from ivr.store.sqlite.migrations import MIGRATIONS, mark_first_visits  # noqa: E402
from ivr.store.sqlite.store import CallStore  # noqa: E402

TZ = ZoneInfo("Europe/Paris")
FIRST_DAY = date(2026, 9, 1)
DAYS = 90
SEED = 20261124
META_KEY = "bench_report_calls"

#: Flow versions and the day each went live.
VERSIONS = {
    "post_sale": [("3f9a1c02d4e7", 0), ("8b2e6d91a0c4", 31), ("c41d07f3e28b", 66)],
    "invoices": [("5e0b7a2c9d13", 0), ("a92c4e61f7b0", 45)],
}
FLOW_SHARE = {"post_sale": 0.85, "invoices": 0.15}

_WELCOME = [("welcome", "say", "next")]


def _menu(key: str) -> list:
    return _WELCOME + [("main_menu", "menu", key)]


_TRACK = [("find_by_phone", "lookup", "found"), ("confirm_order", "menu", "1"), ("answer", "branch", "when")]
_BY_NUMBER = [("find_by_phone", "lookup", "many"), ("several_orders", "say", "next"),
              ("ask_order_number", "input", "digits"),
              ("find_by_number", "lookup", "found"), ("answer", "branch", "when")]
_BYE = [("anything_else", "menu", "2"), ("goodbye", "hangup", None)]
_AGENT = [("agent_hours", "hours", "open"), ("agent", "transfer", "queue")]

#: (weight, flow, outcome, cause, reason, exit node, confirmed, hand-off, path).
#: A path lists (node, kind, branch) in order, as the engine logs them; the
#: exit node is the engine's: where the call first turned to a human (the
#: transfer node itself for a transfer by policy), else where it ended.
TEMPLATES = [
    # Self-served: the answer was given.
    (100, "post_sale", "self_served", None, "order_status", "goodbye", 1, None,
     _menu("1") + _TRACK + [("status_in_transit", "say", "next")] + _BYE),
    (60, "post_sale", "self_served", None, "order_status", "goodbye", 1, None,
     _WELCOME + [("main_menu", "menu", "no_input"), ("main_menu", "menu", "1")] + _TRACK
     + [("status_in_transit", "say", "next")] + _BYE),
    (70, "post_sale", "self_served", None, "order_status", "anything_else", 0, None,
     _menu("1") + _TRACK + [("status_out_for_delivery", "say", "next"), ("anything_else", "menu", "hangup")]),
    (100, "post_sale", "self_served", None, "order_status", "goodbye", 1, None,
     _menu("1") + _BY_NUMBER + [("status_preparing", "say", "next")] + _BYE),
    (60, "post_sale", "self_served", None, "delivery_date", "goodbye", 1, None,
     _menu("2") + _TRACK + [("status_out_for_delivery", "say", "next")] + _BYE),
    (50, "post_sale", "self_served", None, "delivery_date", "goodbye", 1, None,
     _WELCOME + [("main_menu", "menu", "no_match"), ("main_menu", "menu", "2")] + _TRACK
     + [("status_out_for_delivery", "say", "next")] + _BYE),
    (70, "post_sale", "self_served", None, "delivery_date", "goodbye", 1, None,
     _menu("2") + _BY_NUMBER + [("status_in_transit", "say", "next")] + _BYE),
    (45, "post_sale", "self_served", None, "carrier_delay", "goodbye", 1, None,
     _menu("1") + _TRACK + [("status_delayed_carrier", "say", "next")] + _BYE),
    (25, "post_sale", "self_served", None, "warehouse_delay", "goodbye", 0, None,
     _menu("2") + _TRACK + [("status_delayed_warehouse", "say", "next"),
                            ("anything_else", "menu", "no_input"), ("goodbye", "hangup", None)]),
    (15, "post_sale", "self_served", None, "order_cancelled", "goodbye", 1, None,
     _menu("1") + _TRACK + [("status_cancelled", "say", "next")] + _BYE),
    (30, "post_sale", "self_served", None, "order_status", "goodbye", 1, None,
     _menu("1") + _TRACK + [("status_delivered", "menu", "2")] + _BYE),
    # Two questions in one call: the last reason marked wins.
    (70, "post_sale", "self_served", None, "delivery_date", "goodbye", 1, None,
     _menu("1") + _TRACK + [("status_in_transit", "say", "next"), ("anything_else", "menu", "1"),
                            ("main_menu", "menu", "2")] + _TRACK
     + [("status_out_for_delivery", "say", "next")] + _BYE),
    # Transferred, for every cause.
    (55, "post_sale", "transferred", "caller_asked", "not_stated", "main_menu", 0, "queue",
     _WELCOME + [("main_menu", "menu", "escape")] + _AGENT),
    (20, "post_sale", "transferred", "caller_asked", "order_status", "confirm_order", 0, "queue",
     _menu("1") + [("find_by_phone", "lookup", "found"), ("confirm_order", "menu", "escape")] + _AGENT),
    (25, "post_sale", "transferred", "no_input", "not_stated", "main_menu", 0, "queue",
     _WELCOME + [("main_menu", "menu", "no_input")] * 3 + _AGENT),
    (20, "post_sale", "transferred", "no_match", "order_status", "ask_order_number", 0, "queue",
     _menu("1") + [("find_by_phone", "lookup", "not_found")] + [("ask_order_number", "input", "no_match")] * 3
     + _AGENT),
    (20, "post_sale", "transferred", "not_found", "order_status", "find_by_number", 0, "queue",
     _menu("1") + [("find_by_phone", "lookup", "not_found"), ("ask_order_number", "input", "digits"),
                   ("find_by_number", "lookup", "not_found"), ("count_not_found", "set", "next"),
                   ("retry_or_agent", "branch", "when"), ("order_not_found_retry", "say", "next"),
                   ("ask_order_number", "input", "digits"), ("find_by_number", "lookup", "not_found"),
                   ("count_not_found", "set", "next"), ("retry_or_agent", "branch", "else"),
                   ("order_not_found_agent", "say", "next")] + _AGENT),
    (35, "post_sale", "transferred", "policy", "parcel_lost", "agent", 0, "queue",
     _menu("1") + _TRACK + [("status_lost", "say", "next")] + _AGENT),
    (60, "post_sale", "transferred", "policy", "return_refund", "agent", 0, "queue",
     _menu("3") + _TRACK + [("return_handoff", "say", "next")] + _AGENT),
    (30, "post_sale", "transferred", "policy", "delivered_not_received", "agent", 0, "queue",
     _menu("4") + _TRACK + [("not_received_handoff", "say", "next")] + _AGENT),
    (20, "post_sale", "transferred", "closed", "return_refund", "agent_hours", 0, "callback",
     _menu("3") + _TRACK + [("return_handoff", "say", "next"), ("agent_hours", "hours", "closed"),
                            ("closed_menu", "menu", "1"), ("callback", "callback", "next"),
                            ("callback_done", "hangup", None)]),
    (8, "post_sale", "transferred", "closed", "parcel_lost", "agent_hours", 0, "voicemail",
     _menu("1") + _TRACK + [("status_lost", "say", "next"), ("agent_hours", "hours", "closed"),
                            ("closed_menu", "menu", "2"), ("voicemail", "record", "next"),
                            ("voicemail_done", "hangup", None)]),
    (10, "post_sale", "transferred", "error", "order_status", "find_by_number", 0, "queue",
     _menu("1") + [("find_by_phone", "lookup", "error"), ("ask_order_number", "input", "digits"),
                   ("find_by_number", "lookup", "error"), ("lookup_failed", "say", "next")] + _AGENT),
    (4, "post_sale", "transferred", "loop_guard", "order_status", "main_menu", 0, "queue",
     _WELCOME + [("main_menu", "menu", "9")] * 6 + _AGENT),
    (6, "post_sale", "transferred", "dial_failed", "return_refund", "agent", 0, "queue",
     _menu("3") + _TRACK + [("return_handoff", "say", "next"), ("agent_hours", "hours", "open"),
                            ("agent", "transfer", "busy")]),
    # Failed: an internal error; the caller was still put through.
    (5, "post_sale", "failed", "error", "order_status", "find_by_phone", 0, "number",
     _menu("1") + [("find_by_phone", "lookup", "error")]),
    # Abandoned: hung up before any answer.
    (25, "post_sale", "abandoned", None, "not_stated", "welcome", 0, None,
     [("welcome", "say", "hangup")]),
    (45, "post_sale", "abandoned", None, "not_stated", "main_menu", 0, None,
     _WELCOME + [("main_menu", "menu", "hangup")]),
    (25, "post_sale", "abandoned", None, "order_status", "confirm_order", 0, None,
     _menu("1") + [("find_by_phone", "lookup", "found"), ("confirm_order", "menu", "hangup")]),
    (20, "post_sale", "abandoned", None, "delivery_date", "ask_order_number", 0, None,
     _menu("2") + [("find_by_phone", "lookup", "not_found"), ("ask_order_number", "input", "hangup")]),
    # The invoices flow.
    (70, "invoices", "self_served", None, "invoice_copy", "goodbye", 1, None,
     [("welcome", "say", "next"), ("invoice_menu", "menu", "1"), ("find_account", "lookup", "found"),
      ("ask_invoice", "input", "digits"), ("find_invoice", "lookup", "found"), ("send_copy", "say", "next"),
      ("anything_else", "menu", "2"), ("goodbye", "hangup", None)]),
    (50, "invoices", "self_served", None, "payment_status", "goodbye", 1, None,
     [("welcome", "say", "next"), ("invoice_menu", "menu", "2"), ("find_account", "lookup", "found"),
      ("confirm_account", "menu", "1"), ("payment_status", "say", "next"), ("anything_else", "menu", "2"),
      ("goodbye", "hangup", None)]),
    (40, "invoices", "transferred", "caller_asked", "payment_dispute", "invoice_menu", 0, "queue",
     [("welcome", "say", "next"), ("invoice_menu", "menu", "escape"), ("agent_hours", "hours", "open"),
      ("agent", "transfer", "queue")]),
    (20, "invoices", "transferred", "not_found", "invoice_copy", "find_account", 0, "queue",
     [("welcome", "say", "next"), ("invoice_menu", "menu", "1"), ("find_account", "lookup", "not_found"),
      ("ask_account", "input", "digits"), ("find_account", "lookup", "not_found"),
      ("agent_hours", "hours", "open"), ("agent", "transfer", "queue")]),
    (20, "invoices", "abandoned", None, "not_stated", "invoice_menu", 0, None,
     [("welcome", "say", "next"), ("invoice_menu", "menu", "hangup")]),
]

#: Share of calls from withheld numbers; share of callers, by outcome, who
#: call again for the same reason, on average CALL_BACK_AFTER seconds later
#: (exponentially distributed: about 3 in 4 of them within 24 hours).
WITHHELD = 0.08
CALL_BACK = {"self_served": 0.2, "transferred": 0.08, "abandoned": 0.3, "failed": 0.3}
CALL_BACK_AFTER = 16 * 3600
CALLERS = 400_000
#: Calls an hour, relative, by local hour of day (the shop's support hours).
HOUR_WEIGHTS = [0, 0, 0, 0, 0, 0, 1, 3, 8, 12, 12, 11, 8, 9, 11, 11, 10, 9, 7, 5, 3, 2, 1, 0]


def build(path: Path, n_calls: int, deadline: float) -> None:
    """Write the synthetic log of ``n_calls`` calls to ``path`` (replaced)."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    store = CallStore(sqlite_utils.Database(path))  # the schema, through the migrations
    db = store.db
    conn = db.conn
    _stop_at(conn, deadline)
    db.execute("PRAGMA journal_mode = OFF")
    db.execute("PRAGMA synchronous = OFF")
    # Indexes are rebuilt once the rows are in: sorting once beats
    # inserting millions of keys one by one.
    indexes = [row["sql"] for row in db.query(
        "SELECT sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
        "AND tbl_name IN ('calls', 'node_events')")]
    for name in [row["name"] for row in db.query(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
            "AND tbl_name IN ('calls', 'node_events')")]:
        db.execute(f"DROP INDEX {name}")
    started = time.monotonic()
    conn.execute("BEGIN")
    conn.execute("CREATE TEMP TABLE gen_paths (template INTEGER, seq INTEGER, node TEXT, kind TEXT, "
                 "branch TEXT, PRIMARY KEY (template, seq))")
    conn.executemany("INSERT INTO gen_paths VALUES (?, ?, ?, ?, ?)", [
        (t, seq, node, kind, branch)
        for t, template in enumerate(TEMPLATES) for seq, (node, kind, branch) in enumerate(template[8], 1)])
    conn.execute("CREATE TEMP TABLE gen_templates (template INTEGER PRIMARY KEY, outcome TEXT, cause TEXT, "
                 "reason TEXT, exit_node TEXT, confirmed INTEGER, handoff_kind TEXT, steps INTEGER)")
    conn.executemany("INSERT INTO gen_templates VALUES (?, ?, ?, ?, ?, ?, ?, ?)", [
        (t, outcome, cause, reason, exit_node, confirmed, handoff, len(path))
        for t, (_, _, outcome, cause, reason, exit_node, confirmed, handoff, path) in enumerate(TEMPLATES)])
    conn.execute("CREATE TEMP TABLE gen_calls (call_id TEXT, flow TEXT, version TEXT, started_at TEXT, "
                 "caller_hash TEXT, country TEXT, lang TEXT, template INTEGER, ivr_seconds INTEGER, "
                 "agent_seconds INTEGER, ongoing INTEGER)")
    conn.executemany("INSERT INTO gen_calls VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                     _generate(n_calls))
    ended_at = _plus_seconds("g.started_at", "g.ivr_seconds + g.agent_seconds")
    conn.execute(f"""
        INSERT INTO calls (call_id, flow, version, started_at, ended_at, caller_hash, country, lang,
                           reason, outcome, cause, confirmed, handoff_kind, handoff_target, steps,
                           provider_status, duration_s, exit_node, ivr_seconds)
        SELECT g.call_id, g.flow, g.version, g.started_at,
               CASE WHEN g.ongoing THEN NULL ELSE {ended_at} END,
               g.caller_hash, g.country, g.lang, t.reason,
               CASE WHEN g.ongoing THEN NULL ELSE t.outcome END,
               CASE WHEN g.ongoing THEN NULL ELSE t.cause END,
               t.confirmed, t.handoff_kind,
               CASE t.handoff_kind WHEN 'queue' THEN 'post-sale' WHEN 'number' THEN '+33100000099'
                                   WHEN 'callback' THEN g.caller_hash END,
               t.steps, CASE WHEN g.ongoing THEN 'in-progress' ELSE 'completed' END,
               CASE WHEN g.ongoing THEN NULL ELSE g.ivr_seconds + g.agent_seconds END,
               CASE WHEN g.ongoing THEN NULL ELSE t.exit_node END,
               CASE WHEN g.ongoing THEN NULL ELSE g.ivr_seconds END
        FROM gen_calls g JOIN gen_templates t ON t.template = g.template ORDER BY g.rowid""")
    # Events spread over the call's time with the IVR; a call in progress
    # has reached its first two nodes.
    event_at = _plus_seconds(
        "g.started_at", "p.seq * g.ivr_seconds / (SELECT max(seq) FROM gen_paths q WHERE q.template = g.template)")
    conn.execute(f"""
        INSERT INTO node_events (call_id, seq, flow, version, node, kind, input, branch, detail, at)
        SELECT g.call_id, p.seq, g.flow, g.version, p.node, p.kind,
               CASE p.branch WHEN 'digits' THEN '100234' END, p.branch, NULL, {event_at}
        FROM gen_calls g JOIN gen_paths p ON p.template = g.template
        WHERE NOT g.ongoing OR p.seq <= 2
        ORDER BY g.rowid, p.seq""")
    mark_first_visits(db)
    conn.execute("DROP TABLE gen_calls")
    conn.execute("DROP TABLE gen_paths")
    conn.execute("DROP TABLE gen_templates")
    conn.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE "
                 "SET value = excluded.value", [META_KEY, _fingerprint(n_calls)])
    conn.execute("COMMIT")
    inserted = time.monotonic()
    for sql in indexes:
        db.execute(sql)
    db.execute("PRAGMA journal_mode = DELETE")
    events = db.execute("SELECT count(*) FROM node_events").fetchone()[0]
    conn.close()
    print(f"built {path}: {n_calls:,} calls, {events:,} node events "
          f"(rows {inserted - started:.0f} s, indexes {time.monotonic() - inserted:.0f} s)")


def _plus_seconds(started_at: str, seconds: str) -> str:
    """SQL: the local time ``seconds`` after ``started_at``, with its offset."""
    return (f"strftime('%Y-%m-%dT%H:%M:%S', substr({started_at}, 1, 19), '+' || ({seconds}) || ' seconds')"
            f" || substr({started_at}, 20)")


def _generate(n_calls: int):
    """The calls, in time order, as gen_calls rows."""
    rng = random.Random(SEED)
    by_flow_reason: dict = {}
    weights: dict = {}
    for t, template in enumerate(TEMPLATES):
        by_flow_reason.setdefault((template[1], template[4]), []).append(t)
        weights.setdefault(template[1], []).append((t, template[0]))
    flow_pick = {flow: (list(zip(*pairs))[0], list(accumulate(list(zip(*pairs))[1])))
                 for flow, pairs in weights.items()}
    hours = list(accumulate(HOUR_WEIGHTS))
    # Weekdays busier than Saturdays, Sundays quiet.
    days = list(accumulate([{5: 0.5, 6: 0.15}.get((FIRST_DAY + timedelta(d)).weekday(), 1.0)
                            for d in range(DAYS)]))
    starts = sorted(
        (bisect(days, rng.random() * days[-1]), bisect(hours, rng.random() * hours[-1]),
         rng.randrange(3600)) for _ in range(n_calls))
    offsets: dict = {}
    # Callers who will call back: (when, caller, flow, reason), soonest first.
    # The next call starting after ``when`` is theirs.
    pending: list = []
    ongoing_from = n_calls - max(1, n_calls // 5000)
    for i, (day, hour, second) in enumerate(starts):
        if (day, hour) not in offsets:
            local = datetime.combine(FIRST_DAY + timedelta(day), datetime.min.time()).replace(hour=hour)
            offset = local.replace(tzinfo=TZ).strftime("%z")
            offsets[day, hour] = (local.strftime("%Y-%m-%dT%H:"), f"{offset[:3]}:{offset[3:]}")
        prefix, offset = offsets[day, hour]
        started_at = f"{prefix}{second // 60:02d}:{second % 60:02d}{offset}"
        now = day * 86400 + hour * 3600 + second
        if pending and pending[0][0] <= now:
            _, caller, flow, reason = heapq.heappop(pending)
            template = rng.choice(by_flow_reason[flow, reason])
        else:
            flow = "post_sale" if rng.random() < FLOW_SHARE["post_sale"] else "invoices"
            ids, cumulative = flow_pick[flow]
            template = ids[bisect(cumulative, rng.random() * cumulative[-1])]
            caller = "" if rng.random() < WITHHELD else _caller_hash(rng.randrange(CALLERS))
        outcome, reason = TEMPLATES[template][2], TEMPLATES[template][4]
        if caller and rng.random() < CALL_BACK[outcome]:
            heapq.heappush(pending, (now + int(rng.expovariate(1 / CALL_BACK_AFTER)), caller, flow, reason))
        version = [v for v, first in VERSIONS[flow] if first <= day][-1]
        english = flow == "post_sale" and rng.random() < 0.2
        steps = len(TEMPLATES[template][8])
        yield (f"CA{i:032x}", flow, version, started_at, caller, "US" if english else "FR",
               "en-US" if english else "fr-FR", template, steps * 9 + rng.randrange(20),
               rng.randrange(120, 600) if outcome in ("transferred", "failed") else 0,
               1 if i >= ongoing_from else 0)


def _caller_hash(number: int) -> str:
    return hashlib.sha256(f"caller-{number}".encode()).hexdigest()


def _stop_at(conn: sqlite3.Connection, deadline: float) -> None:
    """Interrupt any statement still running at ``deadline`` (monotonic)."""
    conn.set_progress_handler(lambda: 1 if time.monotonic() > deadline else 0, 100_000)


def _fingerprint(n_calls: int) -> str:
    """What a log is built from: a log made by another generator is rebuilt."""
    recipe = repr((n_calls, SEED, FIRST_DAY, DAYS, VERSIONS, FLOW_SHARE, TEMPLATES, WITHHELD, CALL_BACK,
                   CALL_BACK_AFTER, CALLERS, HOUR_WEIGHTS))
    return f"{n_calls} {hashlib.sha256(recipe.encode()).hexdigest()[:16]}"


def is_cached(path: Path, n_calls: int) -> bool:
    """Whether the log at ``path`` is this generator's log of ``n_calls`` calls."""
    if not path.is_file():
        return False
    try:
        db = sqlite_utils.Database(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True))
        row = next(iter(db.query("SELECT value FROM meta WHERE key = ?", [META_KEY])), None)
        stale = bool(MIGRATIONS.pending(db))  # built with an older schema
        db.close()
    except sqlite3.Error:
        return False
    return bool(row) and row["value"] == _fingerprint(n_calls) and not stale


def best_of(runs: int, fn) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--db", type=Path, default=Path(tempfile.gettempdir()) / "ivr-report-bench.db")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--max-seconds", type=float, default=1800)
    parser.add_argument("--build-only", action="store_true")
    args = parser.parse_args(argv)
    deadline = time.monotonic() + args.max_seconds
    try:
        return run(args, deadline)
    except sqlite3.OperationalError as error:
        if "interrupted" not in str(error):
            raise
        print(f"stopped: past --max-seconds {args.max_seconds:g}", file=sys.stderr)
        return 1


def run(args, deadline: float) -> int:
    """Build (or reuse) the log, then time the reports on it."""
    if is_cached(args.db, args.calls):
        print(f"using {args.db} ({args.calls:,} calls, built earlier)")
    else:
        build(args.db, args.calls, deadline)
    if args.build_only:
        return 0
    db = analytics.open_report_db(args.db)
    _stop_at(db.conn, deadline)
    size = os.path.getsize(args.db)
    counts = next(iter(db.query("SELECT count(*) AS calls FROM calls")))
    events = next(iter(db.query("SELECT count(*) AS events FROM node_events")))
    print(f"log: {counts['calls']:,} calls, {events['events']:,} node events, {size / 1e9:.2f} GB")
    last_day = next(iter(db.query("SELECT max(substr(started_at, 1, 10)) AS day FROM calls")))["day"]
    last_week = analytics.Filters(since=(date.fromisoformat(last_day) - timedelta(days=6)).isoformat())
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}, "
          f"SQLite {sqlite3.sqlite_version}")
    # What the dashboard reads for the log's whole span (since inclusive, until exclusive).
    quarter = analytics.Filters(since=FIRST_DAY.isoformat(),
                                until=(FIRST_DAY + timedelta(days=DAYS)).isoformat(), flow="post_sale")
    scan = "SELECT count(*), sum(ivr_seconds) FROM calls"
    baseline = best_of(args.runs, lambda: db.execute(scan).fetchall())
    cases = [
        ("summary", lambda: analytics.summary(db)),
        ("summary --by reason", lambda: analytics.summary(db, by="reason")),
        ("summary --by day", lambda: analytics.summary(db, by="day")),
        ("funnel post_sale", lambda: analytics.funnel(db, "post_sale")),
        ("funnel, last 7 days", lambda: analytics.funnel(db, "post_sale", filters=last_week)),
        ("reasons", lambda: analytics.reasons(db)),
        ("summary, 90 days, flow", lambda: analytics.summary(db, quarter)),
        ("funnel, 90 days", lambda: analytics.funnel(db, "post_sale", filters=quarter)),
        ("dashboard, 90 days", lambda: dashboard_view(db)),
    ]
    # The dashboard view's own queries, each alone (the view runs them all).
    cases += [(f"  {name}", fn) for name, fn in dashboard_queries(db, quarter)]
    print(f"{'query':<24} {'best s':>8} {'x baseline':>11}")
    print(f"{'baseline (full scan)':<24} {baseline:>8.2f} {1:>11.1f}")
    for name, fn in cases:
        seconds = best_of(args.runs, fn)
        print(f"{name:<24} {seconds:>8.2f} {seconds / baseline:>11.1f}")
    db.close()
    return 0


def dashboard_view(db) -> None:
    """The figures of one dashboard page over the log's 90 days of
    ``post_sale`` (what ``GET /dashboard?since=...&until=...`` reads)."""
    from ivr.server.dashboard import Query, gather

    last = FIRST_DAY + timedelta(days=DAYS - 1)
    gather(db, Query(FIRST_DAY, last, "post_sale"), analytics.Costs(), lambda _flow: last)


def dashboard_queries(db, quarter: analytics.Filters) -> list:
    """(name, function) of each query the dashboard view over ``quarter``
    runs, but for the small look-ups (its flows, days, reason texts)."""
    from ivr.reports.period import period_figures
    from ivr.server.dashboard_locale import previous_period

    since, until = previous_period(FIRST_DAY, FIRST_DAY + timedelta(days=DAYS - 1))
    before = analytics.Filters(since=since.isoformat(), until=(until + timedelta(days=1)).isoformat(),
                               flow=quarter.flow)
    return [
        ("period figures", lambda: period_figures(db, quarter)),
        ("previous period", lambda: analytics.summary(db, before)),
        ("funnel version", lambda: analytics.funnel_version(db, "post_sale", None, quarter)),
        ("funnel", lambda: analytics.funnel(db, "post_sale", None, quarter)),
    ]


if __name__ == "__main__":
    sys.exit(main())
