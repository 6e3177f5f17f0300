"""How ``ivr-report`` prints: tables for people, CSV and JSON for scripts.

Shared by every subcommand (:mod:`ivr.reports.cli`,
:mod:`ivr.reports.callbacks`), so none of them imports another.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from decimal import Decimal

import click

from ivr.i18n import current_language, formats
from ivr.reports import analytics
from ivr.reports.queries import ReportError


def open_log(db_path: str):
    """The call log, read-only; a clear error when it is not one."""
    try:
        return analytics.open_report_db(db_path)
    except ReportError as error:
        raise click.ClickException(str(error)) from None


def emit(rows: list[dict], fmt: str, table, csv_row) -> None:
    """Print ``rows``: ``table()`` gives the lines for people, ``csv_row(row)``
    one flat dict per row."""
    if fmt == "json":
        click.echo(as_json(rows))
    elif fmt == "csv":
        flat = [csv_row(row) for row in rows]
        out = io.StringIO()
        if flat:
            writer = csv.DictWriter(out, fieldnames=list(flat[0]), lineterminator="\n")
            writer.writeheader()
            writer.writerows(flat)
        click.echo(out.getvalue(), nl=False)
    else:
        click.echo("\n".join(table()))


def as_json(value) -> str:
    """``value`` as indented JSON, money as exact strings."""
    return json.dumps(value, indent=2, ensure_ascii=False,
                      default=lambda v: str(v) if isinstance(v, Decimal) else repr(v))


# The figures of a table are in the operator's locale ("1 404,15 €" in
# French).  English keeps the shapes it has always had ("1,404.15 EUR",
# "62.5 %"), which people's scripts and notes already read.

def percent(rate) -> str:
    """A rate (0 to 1) as a percentage with one decimal; "–" for none."""
    if rate is None:
        return "–"
    if current_language() == "en":
        return f"{rate * 100:.1f} %"
    return formats().percent(rate, 1)


def money(amount, currency: str) -> str:
    """An amount with its currency."""
    if current_language() == "en":
        return f"{amount:,.2f} {currency}"
    return formats().money(amount, currency)


def count(n) -> str:
    """A whole number with the locale's thousands separator."""
    if current_language() == "en":
        return f"{n:,}"
    return formats().number(n)


def seconds(value):
    """A duration in seconds with its decimals; None (shown "–") for none."""
    if value is None or current_language() == "en":
        return value
    return formats().number(value, 1)


def moment(text: str | None) -> str | None:
    """A local day or time as the reports take it (``2026-11-01``,
    ``2026-11-01T09:00``), in the operator's locale."""
    if not text or current_language() == "en":
        return text
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return text
    if len(text) <= 10:
        return formats().day(value.date())
    return formats().moment(value)


def table(headers: list[str], rows: list[list], text: int | set = 1) -> list[str]:
    """Aligned columns: text columns (the first ``text`` ones, or those
    whose indexes are in ``text``) to the left, figures to the right."""
    text = set(range(text)) if isinstance(text, int) else text
    cells = [[str(h) for h in headers]] + [["–" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for n, row in enumerate(cells):
        parts = [c.ljust(w) if i in text else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))]
        lines.append("  ".join(parts).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return lines
