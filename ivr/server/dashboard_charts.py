"""The dashboard's charts, in the operator's language: deflection over
the period, outcomes by contact reason, transfer causes.

Each chart is drawn twice, wide and narrow: the page shows the one that
fits the screen (a phone gets text it can read rather than a wide chart
shrunk), and only the wide one carries the figures in ``data-*``
attributes, so each figure is in the page once.
"""

from __future__ import annotations

import re
from datetime import date
from typing import TYPE_CHECKING

from markupsafe import Markup

from ivr.flow.model import OUTCOMES, TRANSFER_CAUSES
from ivr.i18n import Formats
from ivr.reports import charts
from ivr.server.dashboard_locale import CAUSE_LABELS, OUTCOME_LABELS, reason_label, short_day

if TYPE_CHECKING:
    from ivr.server.dashboard import View

__all__ = ["OUTCOME_COLORS", "page_charts"]

OUTCOME_COLORS = {"self_served": "#009E73", "transferred": "#0072B2",
                  "abandoned": "#E69F00", "failed": "#D55E00"}


def page_charts(view: "View", fmt: Formats) -> dict[str, Markup]:
    """The three charts, each drawn wide and narrow (the page shows the one
    that fits the screen; only the wide one carries the figures as data)."""
    if not view.flow:
        return {}
    return {name: Markup(f'<div class="wide-chart">{wide}</div>'
                         f'<div class="narrow-chart" aria-hidden="true">{_without_data(narrow)}</div>')
            for name, wide, narrow in (
                ("timeline", _timeline_chart(view, fmt, 1240), _timeline_chart(view, fmt, 420)),
                ("outcomes", _outcomes_chart(view, fmt, 610), _outcomes_chart(view, fmt, 420)),
                ("causes", _causes_chart(view, fmt, 610), _causes_chart(view, fmt, 420)))}


def _timeline_chart(view: "View", fmt: Formats, width: int) -> str:
    keys = [slot["key"] for slot in view.timeline]
    labels = [slot["label"] if view.by_hour else short_day(fmt, date.fromisoformat(slot["key"]))
              for slot in view.timeline]

    def values(name):
        return [slot["row"][name] if slot["row"] and slot["row"]["calls"] else None
                for slot in view.timeline]

    return charts.line_chart(
        labels, [
            charts.Series("deflection_rate", fmt.gettext("Deflection"),
                          values("deflection_rate"), "#0072B2"),
            charts.Series("repeat_adjusted_deflection_rate",
                          fmt.gettext("Repeat-adjusted deflection"),
                          values("repeat_adjusted_deflection_rate"), "#CC79A7", dashed=True),
        ], x_keys=keys, width=width, height=300 if width > 600 else 260,
        y_format=lambda v: fmt.percent(v, 0),
        title=fmt.gettext("Deflection by hour") if view.by_hour else fmt.gettext("Deflection by day"),
        empty_text=fmt.gettext("No calls in this period."))


def _outcomes_chart(view: "View", fmt: Formats, width: int) -> str:
    reasons = sorted(view.reasons, key=lambda r: (-r["calls"], r["reason"]))
    return charts.stacked_bar_chart(
        [(r["reason"], reason_label(fmt, r["reason"], view.reason_labels)) for r in reasons],
        [charts.Segment(o, fmt.gettext(OUTCOME_LABELS.get(o, o)), OUTCOME_COLORS.get(o, "#777"))
         for o in OUTCOMES],
        {r["reason"]: {o: r[o] for o in OUTCOMES} for r in reasons},
        title=fmt.gettext("Outcomes by reason"), width=width,
        hints={r["reason"]: r["reason"] for r in reasons}, count_format=fmt.number,
        empty_text=fmt.gettext("No calls in this period."))


def _causes_chart(view: "View", fmt: Formats, width: int) -> str:
    causes = view.total.get("causes", {}) if view.total else {}
    bars = [charts.Bar(c, fmt.gettext(CAUSE_LABELS.get(c, c)), causes[c], hint=c)
            for c in sorted(causes, key=lambda c: (-causes[c], TRANSFER_CAUSES.index(c)
                                                   if c in TRANSFER_CAUSES else 99, c))
            if causes[c]]
    return charts.bar_chart(bars, title=fmt.gettext("Transfer causes"), color="#0072B2",
                            width=width, count_format=fmt.number,
                            empty_text=fmt.gettext("No transfers in this period."))


def _without_data(svg: str) -> str:
    # The narrow copy shows the same figures; tests and scripts read the wide one.
    return re.sub(r' data-[a-z-]+="[^"]*"', "", svg)
