"""Charts as SVG strings, drawn on the server for the ops dashboard.

Pure functions: data in, an ``<svg>`` document out, with no script, no
external font and no network access, so the page works offline and a
test can read every value back.  Each mark carries its data in ``data-*``
attributes (``data-value``, ``data-series``, ``data-category``...), and a
``<title>`` that a browser shows as a tooltip.  All text is escaped.

Colours are the Okabe-Ito palette, which stays distinguishable for the
common forms of colour blindness.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape
from typing import Callable, Sequence

__all__ = [
    "Bar", "Segment", "Series", "PALETTE", "bar_chart", "format_count", "format_percent",
    "line_chart", "nice_ticks", "stacked_bar_chart",
]

PALETTE = ("#0072B2", "#009E73", "#E69F00", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"
TEXT = "#1f2933"
MUTED = "#616e7c"
GRID = "#e4e7eb"
CHAR_WIDTH = 6.8  # average advance of a 12 px sans-serif character, for layout


@dataclass(frozen=True)
class Series:
    """One line of a line chart: a value (or None: no data) per x position."""

    key: str
    label: str
    values: Sequence[float | None]
    color: str = PALETTE[0]
    dashed: bool = False


@dataclass(frozen=True)
class Segment:
    """One part of the stacked bars (an outcome, say)."""

    key: str
    label: str
    color: str


@dataclass(frozen=True)
class Bar:
    """One bar: ``key`` identifies it, ``label`` is shown, ``hint`` is the tooltip."""

    key: str
    label: str
    value: float
    hint: str = ""


def format_count(value: float) -> str:
    """1234 -> '1,234'; non-integers keep one decimal."""
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.1f}"


def format_percent(value: float | None, digits: int = 1) -> str:
    """0.5 -> '50.0 %'; None (no calls) -> '–'."""
    if value is None:
        return "–"
    return f"{value * 100:.{digits}f} %"


def nice_ticks(maximum: float, count: int = 5) -> list[float]:
    """Axis ticks from 0 to a round number >= ``maximum`` (1, 2, 2.5 or 5
    times a power of ten apart), about ``count`` of them, so gridlines fall
    on values a reader can add up."""
    if maximum <= 0:
        return [0, 1]
    raw = maximum / max(count - 1, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    if maximum >= 1 and step < 1:  # counts: no fractional gridlines
        step = 1
    top = math.ceil(maximum / step - 1e-9) * step
    ticks, value = [], 0.0
    while value <= top + step / 2:
        ticks.append(round(value, 10))
        value += step
    return ticks


def line_chart(x_labels: Sequence[str], series: Sequence[Series], *, title: str,
               x_keys: Sequence[str] | None = None, y_max: float = 1.0,
               y_format: Callable[[float], str] = lambda v: format_percent(v, 0),
               width: int = 640, height: int = 280, empty_text: str = "No data") -> str:
    """A line chart with a point per x position and a line through the
    points that have a value; a missing value (None) breaks the line.
    ``x_keys`` (defaults to ``x_labels``) go into each point's ``data-x``."""
    x_keys = list(x_keys if x_keys is not None else x_labels)
    if len(x_keys) != len(x_labels) or any(len(s.values) != len(x_labels) for s in series):
        raise ValueError("every series needs one value per x label")
    left, right, top, bottom = 52, 36, 44, 40  # room for the last x label
    plot_w, plot_h = width - left - right, height - top - bottom
    n = len(x_labels)
    # Rates get quarters; anything else round numbers.
    ticks = [0, 0.25, 0.5, 0.75, 1.0] if y_max == 1.0 else nice_ticks(y_max)
    y_max = ticks[-1]

    def x_at(i: int) -> float:
        return left + (plot_w / 2 if n == 1 else plot_w * i / (n - 1))

    def y_at(v: float) -> float:
        return top + plot_h * (1 - v / y_max)

    out = [_open(width, height, title, "line")]
    out.append(_legend([(s.label, s.color, s.dashed) for s in series], left, 30, lines=True))
    for tick in ticks:
        y = y_at(tick)
        out.append(f'<line class="grid" x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" '
                   f'stroke="{GRID}" data-tick="{_num(tick)}"/>')
        out.append(_text(left - 8, y + 4, y_format(tick), anchor="end", cls="y-tick", fill=MUTED))
    out.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{top + plot_h}" y2="{top + plot_h}" '
               f'stroke="{MUTED}"/>')
    every = max(1, math.ceil(n / max(1, plot_w // 56)))  # leave ~56 px per label
    for i, label in enumerate(x_labels):
        if i % every == 0:
            out.append(_text(x_at(i), top + plot_h + 18, label, anchor="middle", cls="x-tick",
                             fill=MUTED))
    if not any(v is not None for s in series for v in s.values):
        out.append(_text(left + plot_w / 2, top + plot_h / 2, empty_text, anchor="middle",
                         cls="empty", fill=MUTED))
    for s in series:
        out.append(f'<g class="series" data-series="{_a(s.key)}">')
        run: list[str] = []
        for i, value in enumerate(list(s.values) + [None]):
            if value is None:
                if len(run) > 1:
                    dash = ' stroke-dasharray="6 4"' if s.dashed else ""
                    out.append(f'<polyline fill="none" stroke="{_a(s.color)}" stroke-width="2.5"'
                               f'{dash} points="{" ".join(run)}"/>')
                run = []
                continue
            run.append(f"{x_at(i):.1f},{y_at(value):.1f}")
        for i, value in enumerate(s.values):
            if value is None:
                continue
            out.append(
                f'<circle cx="{x_at(i):.1f}" cy="{y_at(value):.1f}" r="3.5" fill="{_a(s.color)}" '
                f'data-series="{_a(s.key)}" data-x="{_a(x_keys[i])}" data-value="{_num(value)}">'
                f'<title>{_t(s.label)}, {_t(x_labels[i])}: {_t(y_format(value))}</title></circle>')
        out.append("</g>")
    out.append("</svg>")
    return "".join(out)


def stacked_bar_chart(categories: Sequence[tuple[str, str]], segments: Sequence[Segment],
                      values: dict[str, dict[str, float]], *, title: str, width: int = 640,
                      hints: dict[str, str] | None = None, empty_text: str = "No data",
                      count_format: Callable[[float], str] = format_count) -> str:
    """Horizontal stacked bars: a row per category (``(key, label)``), a
    coloured part per segment, the row's total at its end.  ``hints``
    (by category key) are the labels' tooltips; ``count_format`` writes
    the figures (in the reader's locale)."""
    label_w = _label_width([label for _, label in categories])
    left, right, top, row_h, bar_h = label_w + 16, 56, 44, 30, 18
    height = top + max(1, len(categories)) * row_h + 34
    plot_w = width - left - right
    totals = {key: sum(values.get(key, {}).get(s.key, 0) for s in segments)
              for key, _ in categories}
    ticks = nice_ticks(max(totals.values(), default=0))
    scale = plot_w / ticks[-1]

    out = [_open(width, height, title, "stacked-bars")]
    out.append(_legend([(s.label, s.color, False) for s in segments], 16, 30))
    axis_y = top + max(1, len(categories)) * row_h
    out.append(_x_axis(ticks, left, scale, top, axis_y, count_format))
    if not categories or not any(totals.values()):
        out.append(_text(left + plot_w / 2, top + 20, empty_text, anchor="middle", cls="empty",
                         fill=MUTED))
    for row, (key, label) in enumerate(categories):
        y = top + row * row_h + (row_h - bar_h) / 2
        out.append(f'<g class="bar" data-category="{_a(key)}" data-total="{_num(totals[key])}">')
        out.append(_text(left - 8, y + bar_h / 2 + 4, _clip(label), anchor="end", cls="label",
                         fill=TEXT, hint=(hints or {}).get(key, label)))
        x = float(left)
        for s in segments:
            value = values.get(key, {}).get(s.key, 0)
            w = value * scale
            out.append(
                f'<rect x="{x:.2f}" y="{y:.1f}" width="{w:.2f}" height="{bar_h}" fill="{_a(s.color)}" '
                f'data-category="{_a(key)}" data-segment="{_a(s.key)}" data-value="{_num(value)}">'
                f'<title>{_t(label)} · {_t(s.label)}: {_t(count_format(value))}</title></rect>')
            x += w
        out.append(_text(x + 6, y + bar_h / 2 + 4, count_format(totals[key]), cls="total", fill=TEXT))
        out.append("</g>")
    out.append("</svg>")
    return "".join(out)


def bar_chart(bars: Sequence[Bar], *, title: str, color: str = PALETTE[0], width: int = 640,
              empty_text: str = "No data",
              count_format: Callable[[float], str] = format_count) -> str:
    """Horizontal bars, one per item, with the value at the end of each
    (written by ``count_format``)."""
    label_w = _label_width([b.label for b in bars])
    left, right, top, row_h, bar_h = label_w + 16, 56, 16, 28, 16
    height = top + max(1, len(bars)) * row_h + 34
    plot_w = width - left - right
    ticks = nice_ticks(max((b.value for b in bars), default=0))
    scale = plot_w / ticks[-1]

    out = [_open(width, height, title, "bars")]
    axis_y = top + max(1, len(bars)) * row_h
    out.append(_x_axis(ticks, left, scale, top, axis_y, count_format))
    if not bars or not any(b.value for b in bars):
        out.append(_text(left + plot_w / 2, top + 18, empty_text, anchor="middle", cls="empty",
                         fill=MUTED))
    for row, b in enumerate(bars):
        y = top + row * row_h + (row_h - bar_h) / 2
        w = b.value * scale
        out.append(f'<g class="bar" data-key="{_a(b.key)}" data-value="{_num(b.value)}">')
        out.append(_text(left - 8, y + bar_h / 2 + 4, _clip(b.label), anchor="end", cls="label",
                         fill=TEXT, hint=b.hint or b.label))
        out.append(f'<rect x="{left}" y="{y:.1f}" width="{w:.2f}" height="{bar_h}" '
                   f'fill="{_a(color)}" data-key="{_a(b.key)}" data-value="{_num(b.value)}">'
                   f'<title>{_t(b.hint or b.label)}: {_t(count_format(b.value))}</title></rect>')
        out.append(_text(left + w + 6, y + bar_h / 2 + 4, count_format(b.value), cls="value",
                         fill=TEXT))
        out.append("</g>")
    out.append("</svg>")
    return "".join(out)


# -- pieces -------------------------------------------------------------------------

def _open(width: int, height: int, title: str, kind: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" data-chart="{kind}" '
            f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
            f'font-family="{_a(FONT)}" font-size="12"><title>{_t(title)}</title>')


def _legend(items, x: float, y: float, *, lines: bool = False) -> str:
    """A key on one row: a stroke per line series, a swatch per bar colour."""
    out = ['<g class="legend">']
    for label, color, dashed in items:
        if lines:
            dash = ' stroke-dasharray="6 4"' if dashed else ""
            out.append(f'<line x1="{x:.0f}" x2="{x + 22:.0f}" y1="{y - 4}" y2="{y - 4}" '
                       f'stroke="{_a(color)}" stroke-width="2.5"{dash}/>')
            width = 28
        else:
            out.append(f'<rect x="{x:.0f}" y="{y - 10}" width="12" height="12" rx="2" '
                       f'fill="{_a(color)}"/>')
            width = 18
        out.append(_text(x + width, y, label, cls="legend-label", fill=TEXT))
        x += width + len(label) * CHAR_WIDTH + 22
    out.append("</g>")
    return "".join(out)


def _x_axis(ticks: list[float], left: float, scale: float, top: float, axis_y: float,
            count_format: Callable[[float], str] = format_count) -> str:
    out = []
    for tick in ticks:
        x = left + tick * scale
        out.append(f'<line class="grid" x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{axis_y}" '
                   f'stroke="{GRID}" data-tick="{_num(tick)}"/>')
        out.append(_text(x, axis_y + 16, count_format(tick), anchor="middle", cls="x-tick",
                         fill=MUTED))
    out.append(f'<line x1="{left}" x2="{left}" y1="{top}" y2="{axis_y}" stroke="{MUTED}"/>')
    return "".join(out)


def _text(x: float, y: float, text: str, *, anchor: str = "start", cls: str = "",
          fill: str = TEXT, hint: str | None = None) -> str:
    tip = f"<title>{_t(hint)}</title>" if hint and hint != text else ""
    return (f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" class="{_a(cls)}" '
            f'fill="{fill}">{tip}{_t(text)}</text>')


def _label_width(labels: Sequence[str]) -> int:
    longest = max((len(_clip(label)) for label in labels), default=4)
    return int(min(max(longest, 4) * CHAR_WIDTH, 220))


def _clip(label: str, limit: int = 30) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"


def _num(value: float) -> str:
    """A value for a data-* attribute: whole numbers as such, others in
    full (repr), so a reader gets back exactly the figure drawn."""
    value = float(value)
    return str(int(value)) if value.is_integer() else repr(value)


def _t(text) -> str:
    return escape(str(text), quote=False)


def _a(text) -> str:
    return escape(str(text), quote=True)
