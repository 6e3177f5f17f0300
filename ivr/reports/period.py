"""The figures of one period that the dashboard shows together: its
summary, its summaries by day (or hour), by contact reason and by voice
provider, each what :mod:`ivr.reports.analytics` gives alone, read in two
passes instead of eight.

The period's calls are counted once, grouped by day (or hour), reason and
provider together, and each summary adds up the groups it needs: counts
are whole numbers; sums of seconds are added with :func:`math.fsum` and
averages made again from their sums and counts, so a figure differs from
the separate query's at most in the last binary digit of a sum, far below
the tenth of a second or the cent it is shown to.  The repeat calls,
whose search reads every self-served call of the log and looks for a
later call of the same caller, are found once the same way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta

from ivr.i18n import _
from ivr.reports.analytics import (
    _TIME_ORDERED,
    _figures,
    _need_provider,
    _rank_reasons,
    _repeats,
    _summary_rows,
    summary,
)
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
    figures = _figures(db, filters, finest)
    if not figures:  # no calls: the separate queries, each on an empty range
        return PeriodFigures(
            total=summary(db, filters, costs=costs, repeat_window=repeat_window)[0],
            over_time=[], reasons=[], providers=[])
    repeats = _repeats(db, filters, finest, repeat_window)

    def grouped(dims: tuple) -> list[dict]:
        return _summary_rows(_added_up(figures, finest, dims), dims,
                             _rolled_up(repeats, finest, dims), costs)

    reasons = grouped(("reason",))
    _rank_reasons(reasons, None)
    return PeriodFigures(total=grouped(())[0], over_time=grouped((time_by,)), reasons=reasons,
                         providers=grouped(("provider",)))


#: Columns of :func:`~ivr.reports.analytics._figures` that are sums of
#: fractions (added up exactly), and averages (made again from their parts).
_FRACTIONS = ("ivr_seconds", "abandoned_queue_seconds")
_AVERAGES = {"avg_ivr_seconds": ("ivr_seconds", "ivr_seconds_count"),
             "avg_abandoned_queue_seconds": ("abandoned_queue_seconds", "abandoned_queue_count")}


def _added_up(figures: list[dict], finest: tuple, dims: tuple) -> list[dict]:
    """The rows of ``figures`` (by the groups of ``finest``) added up by
    ``dims`` (a subset of it): counts added, sums of fractions added with
    :func:`math.fsum` (no error of its own), averages made from the sums
    and counts."""
    places = [finest.index(d) for d in dims]
    groups: dict = {}
    for found in figures:
        groups.setdefault(tuple(found[f"g{i}"] for i in places), []).append(found)
    added = []
    for key, members in groups.items():
        row: dict = {f"g{i}": value for i, value in enumerate(key)}
        for column in members[0]:
            if (column.startswith("g") and column[1:].isdigit()) or column in _AVERAGES:
                continue
            values = [m[column] for m in members if m[column] is not None]
            if column in _FRACTIONS:
                row[column] = math.fsum(values) if values else None
            else:
                row[column] = sum(values) if values else None
        for average, (total, count) in _AVERAGES.items():
            row[average] = row[total] / row[count] if row[count] else None
        added.append(row)
    return added


def _rolled_up(repeats: dict, finest: tuple, dims: tuple) -> dict:
    """``repeats`` counted by groups of ``finest`` added up by ``dims``
    (a subset of it)."""
    places = [finest.index(d) for d in dims]
    rolled: dict = {}
    for group, count in repeats.items():
        key = tuple(group[i] for i in places)
        rolled[key] = rolled.get(key, 0) + count
    return rolled
