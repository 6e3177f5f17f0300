"""The dashboard's call search (``/dashboard/calls``) and call pages
(``/dashboard/calls/<call id>``), behind the dashboard's token.

The search takes the filters ``ivr-report calls`` takes (period, flow,
outcome, reason, transfer cause, exit node, failed only, caller number)
and lists the matching calls, each linked to its page; a call's page
shows the timeline ``ivr-report call`` prints, from the same functions
(:mod:`ivr.reports.timeline`).  The search form is sent with POST, so a
caller's number never lands in a URL, a log or the browser's history,
and the page never shows it back.

Pages are in the request's language (``?lang=fr``, else the browser's
``Accept-Language``), laid out to read at 390 px wide without scrolling
sideways: the results become one card per call on a narrow screen.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass
from datetime import date, timedelta
from urllib.parse import quote

from twisted.internet import defer
from twisted.logger import Logger
from twisted.web.server import NOT_DONE_YET

from ivr.i18n import Formats, language_from, use_language
from ivr.reports import analytics
from ivr.reports.call_queries import CallSearch, caller_hash, check_search
from ivr.reports.timeline import OUTCOME_NAMES, call_timeline, describe
from ivr.server.dashboard_calls_page import PAGE, words
from ivr.server.dashboard_worker import TooSlow, too_busy
from ivr.server.requests import finish_with, plain_text

__all__ = ["CallsQuery", "parse_calls_query", "render_calls"]

#: How many calls a search lists, the most recent first.
SEARCH_LIMIT = 100
_TEXT_FIELDS = ("flow", "outcome", "reason", "transfer_cause", "exit_node")
_log = Logger()


class BadCallsQuery(ValueError):
    """A search parameter the page cannot use; the message says which."""


@dataclass(frozen=True)
class CallsQuery:
    """A search as the form sends it; ``until`` is included."""

    since: date | None = None
    until: date | None = None
    flow: str | None = None
    outcome: str | None = None
    reason: str | None = None
    transfer_cause: str | None = None
    exit_node: str | None = None
    failed: bool = False
    caller: str | None = None

    def filters(self) -> analytics.Filters:
        until = self.until + timedelta(days=1) if self.until else None
        return analytics.Filters(since=self.since.isoformat() if self.since else None,
                                 until=until.isoformat() if until else None, flow=self.flow)


def parse_calls_query(args: dict[bytes, list[bytes]]) -> CallsQuery:
    """The search in ``request.args``; raises :class:`BadCallsQuery`."""
    def one(name: str) -> str | None:
        values = args.get(name.encode("ascii"))
        if not values or not values[-1].strip():
            return None
        try:
            text = values[-1].decode("utf-8").strip()
        except UnicodeDecodeError:
            raise BadCallsQuery(f"{name} is not UTF-8") from None
        if len(text) > 200 or not text.isprintable():
            raise BadCallsQuery(f"{name} is not a name the log can hold")
        return text

    values = {name: one(name) for name in _TEXT_FIELDS}
    return CallsQuery(since=_day(one("since"), "since"), until=_day(one("until"), "until"),
                      failed=one("failed") is not None, caller=one("caller"), **values)


def _day(text: str | None, name: str) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise BadCallsQuery(f"{name} must be a date as YYYY-MM-DD, not {text[:40]!r}") from None


def request_language(request) -> str:
    """``?lang=``, else the first language of ``Accept-Language`` with a
    catalogue, else the server's."""
    asked = (request.args.get(b"lang") or [b""])[-1].decode("ascii", "replace")
    if language_from(asked):
        return language_from(asked) or ""
    header = (request.getHeader(b"accept-language") or b"").decode("ascii", "replace")
    for part in header.split(","):
        lang = language_from(part.split(";")[0].strip())
        if lang:
            return lang
    return Formats().lang


def render_calls(resource, request):
    """Answer ``/dashboard/calls[/<call id>]`` for the dashboard
    ``resource`` (its reader runs the queries), once it has checked the token."""
    path = [segment for segment in request.postpath[1:] if segment]
    fmt = Formats(request_language(request))
    if len(path) > 1:
        return plain_text(request, 404, "no such page: a call is /dashboard/calls/<call id>")
    if request.method not in (b"GET", b"HEAD", b"POST") or (path and request.method == b"POST"):
        request.setHeader(b"allow", b"GET, HEAD, POST" if not path else b"GET, HEAD")
        return plain_text(request, 405, "the call pages are read with GET; the search is sent with POST")
    base = "/" + "/".join(p.decode("utf-8", "replace") for p in request.prepath)
    if path:
        call_id = path[0].decode("utf-8", "replace")
        work = resource.reader(_page_in_language, _call_page, call_id, fmt.lang, base)
    else:
        try:
            query = parse_calls_query(request.args)
        except BadCallsQuery as error:
            return plain_text(request, 400, str(error))
        work = resource.reader(_page_in_language, _search_page, query, fmt.lang, base)
    _finish(request, work)
    return NOT_DONE_YET


def _page_in_language(db, page, subject, lang: str, base: str) -> tuple[int, str]:
    """``page(db, subject, fmt, base)`` with the library's messages (a "did
    you mean", an unknown call) in the operator's language ``lang``, in a
    context of its own so no other request or thread changes language.  A
    job the dashboard's reader can send to its worker process."""
    fmt = Formats(lang)

    def run():
        use_language(fmt.lang)
        return page(db, subject, fmt, base)

    return contextvars.copy_context().run(run)


def _finish(request, work: defer.Deferred) -> None:
    def rendered(answer):
        code, page = answer
        request.setResponseCode(code)
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        finish_with(request, page.encode("utf-8"))

    def failed(failure):
        if failure.check(defer.CancelledError):
            return None
        if failure.check(TooSlow):
            return finish_with(request, too_busy(request))
        _log.failure("dashboard call page failed", failure)
        finish_with(request, plain_text(request, 500, "the page could not be drawn; see the server log"))

    work.addCallback(rendered).addErrback(failed)
    request.notifyFinish().addErrback(lambda _: work.cancel())


# -- the pages ---------------------------------------------------------------------

def _call_page(db, call_id: str, fmt: Formats, base: str) -> tuple[int, str]:
    try:
        timeline = call_timeline(db, call_id)
    except analytics.ReportError as error:
        return 404, PAGE.render(t=fmt.gettext, w=words(fmt), lang=fmt.lang, base=base, error=str(error),
                                 title=fmt.gettext("Call not found"))
    return 200, PAGE.render(t=fmt.gettext, w=words(fmt), lang=fmt.lang, base=base, call=describe(timeline, fmt),
                             title=fmt.gettext("Call {call_id}").format(call_id=call_id))


def _search_page(db, query: CallsQuery, fmt: Formats, base: str) -> tuple[int, str]:
    """The form and the calls it finds; a search the log cannot match
    (a misspelt reason...) shows its message above the form, with 400."""
    rows, error = [], None
    try:
        search = CallSearch(outcome=query.outcome, reason=query.reason,
                            transfer_cause=query.transfer_cause, exit_node=query.exit_node,
                            failed=query.failed,
                            caller_hash=caller_hash(db, query.caller) if query.caller else None)
        check_search(db, search, query.flow)
        rows = analytics.calls(db, query.filters(), SEARCH_LIMIT, search)
    except analytics.ReportError as error_:
        error = str(error_)
    page = PAGE.render(t=fmt.gettext, w=words(fmt), lang=fmt.lang, base=base, query=query, rows=rows,
                        error=error, searched=True, outcomes=OUTCOME_NAMES, quote=quote,
                        title=fmt.gettext("Find a call"), limit=SEARCH_LIMIT)
    return (400 if error else 200), page
