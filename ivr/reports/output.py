"""How ``ivr-report`` prints: tables for people, CSV and JSON for scripts.

Shared by every subcommand (:mod:`ivr.reports.cli`,
:mod:`ivr.reports.callbacks`), so none of them imports another.
"""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal

import click

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


def percent(rate) -> str:
    return "–" if rate is None else f"{rate * 100:.1f} %"


def money(amount, currency: str) -> str:
    return f"{amount:,.2f} {currency}"


def count(n) -> str:
    return f"{n:,}"


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
