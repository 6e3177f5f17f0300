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

The queries run in a worker process of the lowest CPU priority on their
own read-only connection (:mod:`ivr.server.dashboard_worker`), so a slow
report never delays a call's turn.
"""

from __future__ import annotations

import base64
import binascii
import contextvars
import hashlib
import hmac
import pickle
import re
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta, timezone
from typing import Any, Callable
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import sqlite_utils
from markupsafe import Markup
from twisted.internet import defer, threads
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from ivr.flow.model import OUTCOMES
from ivr.i18n import LOCALES, Formats, _, use_language
from ivr.reports import analytics, graph, graph_dot, graph_svg
from ivr.reports.period import PeriodFigures, period_figures
from ivr.server.dashboard_calls import render_calls
from ivr.server.dashboard_charts import OUTCOME_COLORS, page_charts
from ivr.server.dashboard_drawing import opening_on
from ivr.server.dashboard_locale import (
    OUTCOME_LABELS,
    change_text,
    changes,
    choose_language,
    figures_line,
    graph_key,
    page_texts,
    previous_period,
)
from ivr.server.dashboard_page import _TEMPLATE, format_duration, format_money
from ivr.server.dashboard_worker import ProcessReader, TooSlow, too_busy
from ivr.server.requests import finish_with, plain_text
from ivr.store.sqlite.reads import days_with_calls, flows_with_calls, reasons_of_latest_version

__all__ = ["BadQuery", "DashboardResource", "InlineReader", "Query", "ThreadedReader",
           "check_dashboard_token", "is_authorized", "make_dashboard", "parse_query"]

#: The longest period a page may cover: a day-by-day chart of a year.
MAX_DAYS = 366
#: The default period, ending today.
DEFAULT_DAYS = 7
#: The shortest token accepted: 16 random characters are not guessed.
MIN_TOKEN_LENGTH = 16
#: The smallest text of the flow drawing on screen, in px: it is never drawn smaller.
MIN_TEXT_PX = 11
#: Each language by its own name, for the page's language links.
LANGUAGE_NAMES = {"en": "English", "fr": "Français"}
#: How many of the funnel's worst nodes the table lists.
WORST_NODES = 5
REALM = 'Basic realm="IVR dashboard", charset="UTF-8"'
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


def _arg(args: dict[bytes, list[bytes]], name: bytes) -> str | None:
    """The last value of a query parameter as text; None when absent or not UTF-8."""
    values = args.get(name)
    try:
        return values[-1].decode("utf-8") if values else None
    except UnicodeDecodeError:
        return None


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
    function of the database (and its other arguments), on a read-only
    connection opened for it and closed after; :meth:`call` for other pure
    work (drawing the page).  The server uses a
    :class:`~ivr.server.dashboard_worker.ProcessReader` instead, which runs
    them in a process of its own.

    One report function at a time: views asked for together wait their
    turn rather than each taking a thread (and a core) from the turns."""

    def __init__(self, path: str, reactor):
        self.path, self.reactor = path, reactor
        self.one_at_a_time = defer.DeferredSemaphore(1)

    def __call__(self, function: Callable[..., Any], *args) -> defer.Deferred:
        return self.one_at_a_time.run(self.call, self._run, function, *args)

    def call(self, function: Callable, *args) -> defer.Deferred:
        return threads.deferToThreadPool(self.reactor, self.reactor.getThreadPool(),
                                         function, *args)

    def _run(self, function, *args):
        db = analytics.open_report_db(self.path)
        try:
            return function(db, *args)
        finally:
            db.close()


class InlineReader:
    """Runs a report function at once on a given database (tests, or an
    in-memory log).  The job and its result are pickled and unpickled on
    the way, as they are to and from the server's worker process, so a job
    that could not cross to it fails here too."""

    def __init__(self, db: sqlite_utils.Database):
        self.db = db

    def __call__(self, function: Callable[..., Any], *args) -> defer.Deferred:
        return defer.maybeDeferred(self._run, pickle.dumps((function, args)), True)

    def _run(self, job: bytes, reads: bool) -> Any:
        function, args = pickle.loads(job)
        return pickle.loads(pickle.dumps(function(self.db, *args) if reads else function(*args)))

    def call(self, function: Callable, *args) -> defer.Deferred:
        return defer.maybeDeferred(self._run, pickle.dumps((function, args)), False)


def check_dashboard_token(token: str) -> None:
    """Refuse a token a browser or a proxy would mangle, or one short
    enough to guess; raises :class:`twisted.python.usage.UsageError`."""
    from twisted.python.usage import UsageError

    if not token.isascii() or not token.isprintable() or any(c.isspace() for c in token):
        raise UsageError(_("--dashboard-token must be printable ASCII without spaces"))
    if len(token) < MIN_TOKEN_LENGTH:
        raise UsageError(_("--dashboard-token must be at least {length} characters (make one with: "
                           "python -c 'import secrets; print(secrets.token_urlsafe(24))')").format(
                               length=MIN_TOKEN_LENGTH))


def make_dashboard(token: str | None, db_path: str, registry, reactor) -> "DashboardResource | None":
    """The dashboard of a server on the call log ``db_path``; None (no
    ``/dashboard`` at all) without a token."""
    if not token:
        return None
    return DashboardResource(token, ProcessReader(db_path, reactor), reactor, registry=registry)


class DashboardResource(Resource):
    """``GET /dashboard[?since=YYYY-MM-DD&until=YYYY-MM-DD&flow=name&lang=fr|en]``."""

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
        if request.postpath and request.postpath[0] == b"calls":
            return render_calls(self, request)  # the call search and call pages
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
        lang = choose_language(_arg(request.args, b"lang"),
                               (request.getHeader(b"accept-language") or b"").decode("latin-1"))
        today = self._today_by_flow()
        result = self.reader(gather_view, query, self.costs, today, lang)
        # The flow's graph comes from the registry, on the reactor's thread;
        # drawing and the page are pure, back with the reader.
        result.addCallback(lambda view: self.reader.call(draw, view, self._graph_of(view)))

        def rendered(page):
            request.setHeader(b"content-type", b"text/html; charset=utf-8")
            request.setHeader(b"content-language", lang.encode("ascii"))
            request.setHeader(b"vary", b"Accept-Language, Authorization")
            finish_with(request, page.encode("utf-8"))

        def failed(failure):
            if failure.check(defer.CancelledError):
                return None
            if failure.check(BadQuery, analytics.ReportError):
                finish_with(request, plain_text(request, 400, str(failure.value)))
            elif failure.check(TooSlow):
                finish_with(request, too_busy(request))
            else:
                self.log.failure("dashboard failed", failure)
                finish_with(request, plain_text(request, 500, "the dashboard could not be drawn; "
                                                               "see the server log"))

        result.addCallback(rendered).addErrback(failed)
        request.notifyFinish().addErrback(lambda _: result.cancel())
        return NOT_DONE_YET

    def _today_by_flow(self) -> "TodayByFlow":
        """Today by the server's clock, in a flow's timezone.  Read now, so
        the function can run in another thread or process."""
        zones = {}
        if self.registry is not None:
            zones = {name: self.registry.current(name).timezone for name in self.registry.versions()}
        return TodayByFlow(self.clock.seconds(), zones)

    def _graph_of(self, view: "View") -> graph.FlowGraph | None:
        """The graph of the flow version the page draws; None when unknown
        or its YAML no longer loads."""
        if self.registry is None or not view.flow or not view.version:
            return None
        flow = self.registry.version(view.flow, view.version)
        return graph.build_graph(flow) if flow is not None else None


# -- figures ------------------------------------------------------------------------

@dataclass(frozen=True)
class TodayByFlow:
    """The date at ``now`` (seconds since the epoch) in a flow's timezone
    (``zones``: the one its calls are logged in; UTC for a flow no longer
    loaded)."""

    now: float
    zones: dict[str, str]

    def __call__(self, flow: str | None) -> date:
        zone = ZoneInfo(self.zones[flow]) if flow in self.zones else timezone.utc
        return datetime.fromtimestamp(self.now, zone).date()


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
    #: The operator's language: ``en`` or ``fr``.
    lang: str = "en"
    #: The first and last days (ISO) with ended calls of the flow, any period.
    first_day: str | None = None
    last_day: str | None = None
    #: The figures of the period of the same length just before.
    previous: dict = field(default_factory=dict)
    #: What drew the flow: ``dot`` (Graphviz) or ``own`` (the built-in layout).
    graph_drawn_by: str = ""


def gather(db, query: Query, costs: analytics.Costs,
           today: Callable[[str | None], date]) -> View:
    """The page's figures for ``query``; raises :class:`BadQuery` for a flow
    that has no calls.  ``today(flow)`` ends the default period."""
    flows = flows_with_calls(db)
    if query.flow is not None and query.flow not in flows:
        known = ", ".join(sorted(flows)) or "none yet"
        raise BadQuery(f"no calls logged for flow {query.flow!r} (flows with calls: {known})")
    flow = query.flow or (flows[0] if flows else None)
    chosen = query.since is not None
    query = query.resolved(today(flow))
    view = View(query=query, flows=sorted(flows), flow=flow)
    if not flows:
        return view
    view.first_day, view.last_day = days_with_calls(db, flow)
    figures = _period_figures(db, query, flow, costs)
    if not figures.total["calls"] and not chosen and view.last_day:
        # Open on the latest period that has calls rather than on an empty one.
        last = date.fromisoformat(view.last_day)
        query = replace(query, since=last - timedelta(days=query.days - 1), until=last)
        view.query = query
        figures = _period_figures(db, query, flow, costs)
    filters = query.filters(view.flow)
    before = previous_period(query.since, query.until)
    view.previous = analytics.summary(db, replace(query, since=before[0], until=before[1])
                                      .filters(flow), costs=costs)[0]
    view.by_hour = query.days == 1
    view.total = figures.total
    view.timeline = _timeline(figures.over_time, query, view.by_hour)
    view.reasons = figures.reasons
    view.providers = figures.providers
    if view.total["calls"]:
        view.version = analytics.funnel_version(db, view.flow, None, filters)
        view.funnel = analytics.funnel(db, view.flow, view.version, filters)
    view.reason_labels = _reason_labels(db, view.flow, view.version)
    return view


def _period_figures(db, query: Query, flow: str, costs: analytics.Costs) -> PeriodFigures:
    """The period's summary and its rows by day (by hour for one day), by
    reason and by provider."""
    return period_figures(db, query.filters(flow), "hour" if query.days == 1 else "day", costs=costs)


def gather_view(db, query: Query, costs: analytics.Costs, today: Callable[[str | None], date],
                lang: str) -> View:
    """:func:`gather`'s view, to be shown in ``lang``."""
    return replace(gather(db, query, costs, today), lang=lang)


def _reason_labels(db, flow: str, version: str | None) -> dict:
    """The flow's reason descriptions (``reasons:`` in its YAML: a text, or
    one per language): those of ``version`` as the store kept it, else of
    the version seen last."""
    reasons = reasons_of_latest_version(db, flow, version)
    return {str(k): v for k, v in reasons.items()}


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


def draw(view: View, flow_graph: graph.FlowGraph | None) -> str:
    """The page, with ``flow_graph`` (:func:`ivr.reports.graph.build_graph`
    of the version the funnel is of, or None) drawn with each node's
    traffic: by Graphviz when it is installed, by the built-in layout
    otherwise."""
    if flow_graph is not None:
        # The drawing's words in the page's language, not the server's.
        contextvars.copy_context().run(_draw_graph, view, flow_graph)
    return render_page(view)


def _draw_graph(view: View, flow_graph: graph.FlowGraph) -> None:
    use_language(view.lang)
    fmt = Formats(view.lang)
    drawing = graph_dot.dot_svg(flow_graph, view.funnel, figures_line=figures_line(fmt))
    view.graph_drawn_by = "dot" if drawing else "own"
    if drawing is None:
        drawing = graph_svg.to_svg(flow_graph, stats=view.funnel, legend=False)
    view.graph_svg = Markup(opening_on(readable(drawing), flow_graph.start))


def readable(svg: str, smallest_px: float = MIN_TEXT_PX) -> str:
    """``svg`` never drawn smaller than its smallest text stays readable
    (``smallest_px`` on screen): a minimum width in proportion, so on a
    narrow page the drawing scrolls sideways in its box instead."""
    sizes = [float(size) for size in re.findall(r'font-size="([\d.]+)"', svg)]
    width = re.search(r'<svg[^>]*?\swidth="([\d.]+)', svg)
    if not sizes or not width:
        return svg
    least = float(width.group(1)) * smallest_px / min(sizes)
    return svg.replace("<svg ", f'<svg style="min-width:{least:.0f}px" ', 1)


def render_page(view: View) -> str:
    """The dashboard as an HTML document, in the view's language."""
    fmt = Formats(view.lang)
    total = view.total or {}
    currency = total.get("currency", "EUR")
    worst = [row for row in view.funnel if row["dropped"]][:WORST_NODES]
    before = previous_period(view.query.since, view.query.until)
    differences = changes(total, view.previous) if total else {}
    last = date.fromisoformat(view.last_day) if view.last_day else view.query.until

    def link(**changed) -> str:
        wanted = {"flow": view.flow, "since": view.query.since, "until": view.query.until,
                  "lang": view.lang, **changed}
        return "?" + urlencode({k: str(v) for k, v in wanted.items() if v is not None})

    return _TEMPLATE.render(
        view=view, lang=view.lang, t=page_texts(fmt, view, total, before), total=total,
        charts=page_charts(view, fmt), worst=worst, since=view.query.since, until=view.query.until,
        previous=before, changes=differences, link=link,
        change_texts={name: change_text(fmt, name, d, currency)
                      for name, d in differences.items() if d is not None},
        latest_since=last - timedelta(days=view.query.days - 1),
        cost_saved=format_money(total.get("cost_saved"), currency, fmt), currency=currency,
        pct=lambda v: "–" if v is None else fmt.percent(v), count=fmt.number,
        duration=format_duration, outcomes=OUTCOMES,
        outcome_labels={o: fmt.gettext(label) for o, label in OUTCOME_LABELS.items()},
        outcome_colors=OUTCOME_COLORS, graph_key=graph_key(fmt, graph.heat_colour, graph.NOT_REACHED),
        languages=[(code, LANGUAGE_NAMES[code]) for code in LOCALES])
