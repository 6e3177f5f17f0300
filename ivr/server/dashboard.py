"""``GET /dashboard``: the ops dashboard, one HTML page drawn on the server.

What an ops lead opens every morning: for a period and a flow, how many
calls the IVR took, how many it answered (deflection, and deflection once
callers who called back for the same reason are discounted), what that
saved, where callers went to a human and why, and the flow drawn with each
node's traffic and drop-off.  The figures are :mod:`ivr.reports.analytics`'s, the
same ones the CLI report prints.

The page is off unless the server has a dashboard token; with one, every
request must carry it (``Authorization: Bearer <token>``, or HTTP Basic
with any user name and the token as password, which a browser prompts
for).  It is self-contained: inline CSS and SVG, no script, no external
font or stylesheet, so it works on a network with no way out.

The queries run in the reactor's thread pool on their own read-only
SQLite connection, so a slow report never delays a call's turn.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta, timezone
from typing import Any, Callable
from zoneinfo import ZoneInfo

import sqlite_utils
from markupsafe import Markup
from twisted.internet import defer, threads
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from ivr.flow.model import OUTCOMES, TRANSFER_CAUSES
from ivr.reports import analytics, charts, graph, graph_svg
from ivr.server.dashboard_page import _TEMPLATE, format_day, format_duration, format_money
from ivr.server.requests import finish_with, plain_text
from ivr.store.sqlite.reads import flows_with_calls, reasons_of_latest_version

__all__ = ["BadQuery", "DashboardResource", "InlineReader", "Query", "ThreadedReader",
           "check_dashboard_token", "is_authorized", "make_dashboard", "parse_query"]

#: The longest period a page may cover: a day-by-day chart of a year.
MAX_DAYS = 366
#: The default period, ending today.
DEFAULT_DAYS = 7
#: The shortest token accepted: 16 random characters are not guessed.
MIN_TOKEN_LENGTH = 16
#: How many of the funnel's worst nodes the table lists.
WORST_NODES = 5
REALM = 'Basic realm="IVR dashboard", charset="UTF-8"'
OUTCOME_LABELS = {"self_served": "Self-served", "transferred": "Transferred",
                  "abandoned": "Abandoned", "failed": "Failed"}
OUTCOME_COLORS = {"self_served": "#009E73", "transferred": "#0072B2",
                  "abandoned": "#E69F00", "failed": "#D55E00"}
CAUSE_LABELS = {"caller_asked": "Caller asked", "no_input": "No input", "no_match": "No match",
                "not_found": "Order not found", "closed": "Closed", "error": "Error",
                "loop_guard": "Loop guard", "policy": "Policy (by design)",
                "dial_failed": "Dial failed", "callback": "Callback requested"}
# What the browser may load: nothing but the page's own inline styles.
SECURITY_HEADERS = {
    b"content-security-policy": b"default-src 'none'; style-src 'unsafe-inline'; "
                                b"img-src data:; form-action 'self'; frame-ancestors 'none'",
    b"x-content-type-options": b"nosniff",
    b"referrer-policy": b"no-referrer",
    b"cache-control": b"no-store",
}
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}\Z")


class BadQuery(ValueError):
    """A query parameter the page cannot use; the message says which and why."""


@dataclass(frozen=True)
class Query:
    """What the page shows: days ``since`` to ``until``, both included, of
    ``flow`` (None: the flow with the most calls).  No dates: the last
    :data:`DEFAULT_DAYS` days, which :meth:`resolved` fixes once the flow,
    and so its timezone, is known."""

    since: date | None = None
    until: date | None = None
    flow: str | None = None

    @property
    def days(self) -> int:
        return (self.until - self.since).days + 1

    def resolved(self, today: date) -> "Query":
        if self.since is not None:
            return self
        return replace(self, since=today - timedelta(days=DEFAULT_DAYS - 1), until=today)

    def filters(self, flow: str) -> analytics.Filters:
        # The analytics' until is exclusive: the day after the last one shown.
        return analytics.Filters(since=self.since.isoformat(),
                                 until=(self.until + timedelta(days=1)).isoformat(), flow=flow)


def parse_query(args: dict[bytes, list[bytes]]) -> Query:
    """The page's query from ``request.args``; raises :class:`BadQuery`.

    ``since`` and ``until`` are dates (YYYY-MM-DD), both included.  With
    only one, the period is :data:`DEFAULT_DAYS` days from or to it; with
    neither, the last :data:`DEFAULT_DAYS` days (see :meth:`Query.resolved`)."""
    def one(name: str) -> str | None:
        values = args.get(name.encode("ascii"))
        if not values or not values[-1].strip():
            return None
        try:
            return values[-1].decode("utf-8").strip()
        except UnicodeDecodeError:
            raise BadQuery(f"{name} is not UTF-8") from None

    flow = one("flow")
    if flow is not None and (len(flow) > 200 or not flow.isprintable()):
        raise BadQuery("flow must be a flow name")
    since, until = _date(one("since"), "since"), _date(one("until"), "until")
    if since is None and until is None:
        return Query(flow=flow)
    if until is None:
        until = since + timedelta(days=DEFAULT_DAYS - 1)
    if since is None:
        since = until - timedelta(days=DEFAULT_DAYS - 1)
    if until < since:
        raise BadQuery(f"until ({until.isoformat()}) is before since ({since.isoformat()})")
    if (until - since).days + 1 > MAX_DAYS:
        raise BadQuery(f"the period covers {(until - since).days + 1} days; "
                       f"at most {MAX_DAYS} fit on the page")
    return Query(since, until, flow)


def _date(text: str | None, name: str) -> date | None:
    if text is None:
        return None
    if not _DATE.match(text):
        raise BadQuery(f"{name} must be a date as YYYY-MM-DD, not {text[:40]!r}")
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise BadQuery(f"{name} is not a valid date: {text!r}") from None


def is_authorized(header: bytes | None, token: bytes) -> bool:
    """Whether an ``Authorization`` header carries ``token``: as a Bearer
    token, or as the password of HTTP Basic credentials (any user name).
    Compared in constant time; digests first, so not even the token's
    length shows in the timing."""
    if not header or not token:
        return False
    scheme, _, value = header.strip().partition(b" ")
    value = value.strip()
    if scheme.lower() == b"bearer":
        given = value
    elif scheme.lower() == b"basic":
        try:
            decoded = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return False
        _user, colon, given = decoded.partition(b":")
        if not colon:
            return False
    else:
        return False
    return hmac.compare_digest(hashlib.sha256(given).digest(), hashlib.sha256(token).digest())


class ThreadedReader:
    """Runs report functions in the reactor's thread pool: called with a
    function of the database, on a read-only connection opened for it and
    closed after; :meth:`call` for other pure work (drawing the page).

    One report function at a time: views asked for together wait their
    turn rather than each taking a thread (and a core) from the turns."""

    def __init__(self, path: str, reactor):
        self.path, self.reactor = path, reactor
        self.one_at_a_time = defer.DeferredSemaphore(1)

    def __call__(self, function: Callable[[sqlite_utils.Database], Any]) -> defer.Deferred:
        return self.one_at_a_time.run(self.call, self._run, function)

    def call(self, function: Callable, *args) -> defer.Deferred:
        return threads.deferToThreadPool(self.reactor, self.reactor.getThreadPool(),
                                         function, *args)

    def _run(self, function):
        db = analytics.open_report_db(self.path)
        try:
            return function(db)
        finally:
            db.close()


class InlineReader:
    """Runs a report function at once on a given database (tests, or an
    in-memory log)."""

    def __init__(self, db: sqlite_utils.Database):
        self.db = db

    def __call__(self, function: Callable[[sqlite_utils.Database], Any]) -> defer.Deferred:
        return defer.maybeDeferred(function, self.db)

    def call(self, function: Callable, *args) -> defer.Deferred:
        return defer.maybeDeferred(function, *args)


def check_dashboard_token(token: str) -> None:
    """Refuse a token a browser or a proxy would mangle, or one short
    enough to guess; raises :class:`twisted.python.usage.UsageError`."""
    from twisted.python.usage import UsageError

    if not token.isascii() or not token.isprintable() or any(c.isspace() for c in token):
        raise UsageError("--dashboard-token must be printable ASCII without spaces")
    if len(token) < MIN_TOKEN_LENGTH:
        raise UsageError(f"--dashboard-token must be at least {MIN_TOKEN_LENGTH} characters "
                         f"(make one with: python -c 'import secrets; "
                         f"print(secrets.token_urlsafe(24))')")


def make_dashboard(token: str | None, db_path: str, registry, reactor) -> "DashboardResource | None":
    """The dashboard of a server on the call log ``db_path``; None (no
    ``/dashboard`` at all) without a token."""
    if not token:
        return None
    return DashboardResource(token, ThreadedReader(db_path, reactor), reactor, registry=registry)


class DashboardResource(Resource):
    """``GET /dashboard[?since=YYYY-MM-DD&until=YYYY-MM-DD&flow=name]``."""

    isLeaf = True
    log = Logger()

    def __init__(self, token: str, reader: Callable, clock, *, registry=None,
                 costs: analytics.Costs = analytics.Costs()):
        super().__init__()
        if not token:
            raise ValueError("the dashboard needs a token")
        self.token = token.encode("utf-8")
        self.reader, self.clock, self.registry, self.costs = reader, clock, registry, costs

    def render(self, request):
        for name, value in SECURITY_HEADERS.items():
            request.setHeader(name, value)
        if not is_authorized(request.getHeader(b"authorization"), self.token):
            # Say why without echoing anything the client sent.
            self.log.info("dashboard: {why} from {peer}", why="no credentials"
                          if not request.getHeader(b"authorization") else "wrong credentials",
                          peer=getattr(request.getClientAddress(), "host", "?"))
            request.setHeader(b"www-authenticate", REALM.encode("ascii"))
            return plain_text(request, 401, "the dashboard needs its token "
                                            "(Bearer, or Basic with the token as password)")
        if request.postpath and any(request.postpath):
            return plain_text(request, 404, "no such page: the dashboard is /dashboard")
        if request.method not in (b"GET", b"HEAD"):
            request.setHeader(b"allow", b"GET, HEAD")
            return plain_text(request, 405, "the dashboard is read with GET")
        return super().render(request)

    def render_GET(self, request):
        try:
            query = parse_query(request.args)
        except BadQuery as error:
            return plain_text(request, 400, str(error))
        today = self._today_by_flow()
        result = self.reader(lambda db: gather(db, query, self.costs, today))
        # The flow object comes from the registry, on the reactor's thread;
        # drawing and the page are pure, back in the pool.
        result.addCallback(lambda view: self.reader.call(draw, view, self._flow_of(view)))

        def rendered(page):
            request.setHeader(b"content-type", b"text/html; charset=utf-8")
            finish_with(request, page.encode("utf-8"))

        def failed(failure):
            if failure.check(defer.CancelledError):
                return None
            if failure.check(BadQuery, analytics.ReportError):
                finish_with(request, plain_text(request, 400, str(failure.value)))
            else:
                self.log.failure("dashboard failed", failure)
                finish_with(request, plain_text(request, 500, "the dashboard could not be drawn; "
                                                               "see the server log"))

        result.addCallback(rendered).addErrback(failed)
        request.notifyFinish().addErrback(lambda _: result.cancel())
        return NOT_DONE_YET

    def _today_by_flow(self) -> Callable[[str | None], date]:
        """Today by the server's clock, in a flow's timezone (the one its
        calls are logged in; UTC for a flow no longer loaded).  Read now,
        so the function can run in another thread."""
        now = self.clock.seconds()
        zones = {}
        if self.registry is not None:
            zones = {name: self.registry.current(name).timezone for name in self.registry.versions()}
        return lambda flow: datetime.fromtimestamp(
            now, ZoneInfo(zones[flow]) if flow in zones else timezone.utc).date()

    def _flow_of(self, view: "View"):
        """The flow version the page draws; None when unknown or its YAML no
        longer loads."""
        if self.registry is None or not view.flow or not view.version:
            return None
        return self.registry.version(view.flow, view.version)


# -- figures ------------------------------------------------------------------------

@dataclass
class View:
    """Everything the page shows, gathered from the log."""

    query: Query
    flows: list[str]
    flow: str | None = None
    version: str | None = None
    total: dict = field(default_factory=dict)
    timeline: list[dict] = field(default_factory=list)  # {"key", "label", row or None}
    by_hour: bool = False
    reasons: list[dict] = field(default_factory=list)
    #: The summary rows by voice provider, most calls first.
    providers: list[dict] = field(default_factory=list)
    funnel: list[dict] = field(default_factory=list)
    reason_labels: dict = field(default_factory=dict)
    graph_svg: Markup | None = None


def gather(db, query: Query, costs: analytics.Costs,
           today: Callable[[str | None], date]) -> View:
    """The page's figures for ``query``; raises :class:`BadQuery` for a flow
    that has no calls.  ``today(flow)`` ends the default period."""
    flows = flows_with_calls(db)
    if query.flow is not None and query.flow not in flows:
        known = ", ".join(sorted(flows)) or "none yet"
        raise BadQuery(f"no calls logged for flow {query.flow!r} (flows with calls: {known})")
    flow = query.flow or (flows[0] if flows else None)
    query = query.resolved(today(flow))
    view = View(query=query, flows=sorted(flows), flow=flow)
    if not flows:
        return view
    filters = query.filters(view.flow)
    view.total = analytics.summary(db, filters, costs=costs)[0]
    view.by_hour = query.days == 1
    view.timeline = _timeline(analytics.over_time(
        db, filters, by="hour" if view.by_hour else "day", costs=costs), query, view.by_hour)
    view.reasons = analytics.reasons(db, filters, costs=costs)
    view.providers = analytics.summary(db, filters, "provider", costs=costs)
    if view.total["calls"]:
        view.version = analytics.funnel_version(db, view.flow, None, filters)
        view.funnel = analytics.funnel(db, view.flow, view.version, filters)
    view.reason_labels = _reason_labels(db, view.flow, view.version)
    return view


def _reason_labels(db, flow: str, version: str | None) -> dict[str, str]:
    """The flow's reason descriptions (``reasons:`` in its YAML), for
    tooltips: those of ``version`` as the store kept it, else of the
    version seen last."""
    reasons = reasons_of_latest_version(db, flow, version)
    return {str(k): str(v) for k, v in reasons.items()}


def _timeline(rows: list[dict], query: Query, by_hour: bool) -> list[dict]:
    """One slot per day (or hour) of the period, with its row or None, so
    days without calls show as gaps rather than being skipped."""
    # by_hour: a one-day period, so the hour of day is the hour of that day.
    found = {row["hour"] if by_hour else row["day"]: row for row in rows}
    if by_hour:
        day = query.since.isoformat()
        return [{"key": f"{day}T{h:02d}", "label": f"{h:02d}:00", "row": found.get(h)}
                for h in range(24)]
    slots = []
    for i in range(query.days):
        day = query.since + timedelta(days=i)
        slots.append({"key": day.isoformat(), "label": day.strftime("%a %d %b").replace(" 0", " "),
                      "row": found.get(day.isoformat())})
    return slots


# -- the page -----------------------------------------------------------------------


def _charts(view: View) -> dict[str, Markup]:
    if not view.flow:
        return {}
    labels = [slot["label"] for slot in view.timeline]
    keys = [slot["key"] for slot in view.timeline]

    def values(name):
        return [slot["row"][name] if slot["row"] and slot["row"]["calls"] else None
                for slot in view.timeline]

    timeline = charts.line_chart(
        labels, [
            charts.Series("deflection_rate", "Deflection", values("deflection_rate"), "#0072B2"),
            charts.Series("repeat_adjusted_deflection_rate", "Repeat-adjusted deflection",
                          values("repeat_adjusted_deflection_rate"), "#CC79A7", dashed=True),
        ], x_keys=keys, width=1240, height=300,
        title="Deflection by " + ("hour" if view.by_hour else "day"),
        empty_text="No calls in this period")
    reasons = sorted(view.reasons, key=lambda r: (-r["calls"], r["reason"]))
    outcomes = charts.stacked_bar_chart(
        [(r["reason"], r["reason"].replace("_", " ")) for r in reasons],
        [charts.Segment(o, OUTCOME_LABELS.get(o, o), OUTCOME_COLORS.get(o, "#777")) for o in OUTCOMES],
        {r["reason"]: {o: r[o] for o in OUTCOMES} for r in reasons},
        title="Outcomes by reason", width=610, hints=view.reason_labels,
        empty_text="No calls in this period")
    causes = view.total.get("causes", {}) if view.total else {}
    bars = [charts.Bar(c, CAUSE_LABELS.get(c, c), causes[c], hint=c)
            for c in sorted(causes, key=lambda c: (-causes[c], TRANSFER_CAUSES.index(c)
                                                   if c in TRANSFER_CAUSES else 99, c))
            if causes[c]]
    transfers = charts.bar_chart(bars, title="Transfer causes", color="#0072B2", width=610,
                                 empty_text="No transfers in this period")
    return {"timeline": Markup(timeline), "outcomes": Markup(outcomes),
            "causes": Markup(transfers)}


def draw(view: View, flow) -> str:
    """The page, with ``flow`` (the version the funnel is of, or None)
    drawn with each node's traffic."""
    if flow is not None:
        view.graph_svg = Markup(graph_svg.to_svg(graph.build_graph(flow), stats=view.funnel))
    return render_page(view)


def render_page(view: View) -> str:
    """The dashboard as an HTML document."""
    total = view.total or {}
    currency = total.get("currency", "EUR")
    worst = [row for row in view.funnel if row["dropped"]][:WORST_NODES]
    return _TEMPLATE.render(
        view=view, total=total, charts=_charts(view), worst=worst,
        since=view.query.since, until=view.query.until,
        period=f"{format_day(view.query.since)} – {format_day(view.query.until)}"
        if view.query.days > 1 else format_day(view.query.since),
        cost_saved=format_money(total.get("cost_saved"), currency), currency=currency,
        pct=charts.format_percent, count=charts.format_count, duration=format_duration,
        outcome_labels=OUTCOME_LABELS, outcome_colors=OUTCOME_COLORS)


