"""The figures of one period that the dashboard shows together: its
summary, its summaries by day (or hour), by contact reason and by voice
provider, each what :mod:`ivr.reports.analytics` gives alone.

What it saves: the repeat calls.  Finding them reads every self-served
call of the log and looks for a later call of the same caller, the
costliest part of a summary; here they are found once, grouped by day (or
hour), reason and provider together, and each summary adds up its own
groups from these (whole counts, so the figures are those of the
separate queries exactly).  The other figures still come from one pass
over the period per summary, so that every sum is the database's own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from ivr.i18n import _
from ivr.reports.analytics import _TIME_ORDERED, _grouped, _need_provider, _rank_reasons, _repeats
from ivr.reports.queries import Costs, Filters, ReportError

__all__ = ["PeriodFigures", "period_figures"]


@dataclass(frozen=True)
class PeriodFigures:
    """The dashboard's figures of one period."""

    #: :func:`~ivr.reports.analytics.summary`'s one row.
    total: dict
    #: :func:`~ivr.reports.analytics.over_time`'s rows.
    over_time: list[dict]
    #: :func:`~ivr.reports.analytics.reasons`'s rows, ranked.
    reasons: list[dict]
    #: :func:`~ivr.reports.analytics.summary`'s rows by provider.
    providers: list[dict]


def period_figures(db, filters: Filters = Filters(), time_by: str = "day", *,
                   costs: Costs = Costs(),
                   repeat_window: timedelta = timedelta(hours=24)) -> PeriodFigures:
    """The summary of ``filters``, and its rows by ``time_by`` (``day`` or
    ``hour``), by reason and by provider, with the repeat calls counted
    in one query for all four."""
    if time_by not in _TIME_ORDERED:
        raise ReportError(_("over_time is by day or hour, not {by!r}").format(by=time_by))
    finest = (time_by, "reason", "provider")
    _need_provider(db, filters, finest)
    if repeat_window <= timedelta(0):
        raise ReportError(_("the repeat window must be longer than zero"))
    repeats = _repeats(db, filters, finest, repeat_window)

    def grouped(dims: tuple) -> list[dict]:
        return _grouped(db, filters, dims, costs, repeat_window, _rolled_up(repeats, finest, dims))

    reasons = grouped(("reason",))
    _rank_reasons(reasons, None)
    return PeriodFigures(total=grouped(())[0], over_time=grouped((time_by,)), reasons=reasons,
                         providers=grouped(("provider",)))


def _rolled_up(repeats: dict, finest: tuple, dims: tuple) -> dict:
    """``repeats`` counted by groups of ``finest`` added up by ``dims``
    (a subset of it)."""
    places = [finest.index(d) for d in dims]
    rolled: dict = {}
    for group, count in repeats.items():
        key = tuple(group[i] for i in places)
        rolled[key] = rolled.get(key, 0) + count
    return rolled
