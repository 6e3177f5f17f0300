"""``ivr-report call``: one call's timeline; and the search options
``ivr-report calls`` takes (outcome, reason, transfer cause, exit node,
failed only, caller number).

The command is registered on the ``ivr-report`` group at the end of
:mod:`ivr.reports.cli`; :func:`search_options` decorates ``calls`` there.
"""

from __future__ import annotations

import click

from ivr.click_i18n import OperatorCommand, language_chosen
from ivr.i18n import Formats, _
from ivr.reports.call_queries import CallSearch, caller_hash, check_search
from ivr.reports.output import as_json, open_log
from ivr.reports.timeline import call_timeline, describe

__all__ = ["call", "lang_option", "search_from_options", "search_options"]


def search_options(f):
    """--outcome, --reason, --transfer-cause, --exit-node, --failed, --caller."""
    options = [
        click.option("--outcome", default=None,
                     help="Only calls with this outcome: self_served, transferred, abandoned, failed."),
        click.option("--reason", default=None, help="Only calls counted under this reason."),
        click.option("--transfer-cause", default=None,
                     help="Only transfers for this cause, e.g. caller_asked or no_input."),
        click.option("--exit-node", default=None, help="Only calls that left the flow at this node."),
        click.option("--failed", is_flag=True, default=False,
                     help="Only failed calls: the fail-safe fired or an internal error ended them."),
        click.option("--caller", default=None, metavar="NUMBER",
                     help="Only the calls of this number, found by its keyed hash (never printed)."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def search_from_options(db, flow: str | None, outcome, reason, transfer_cause, exit_node,
                        failed, caller) -> CallSearch:
    """The search the options ask for, checked against the log (a
    misspelt value gets a "did you mean"); raises ReportError."""
    search = CallSearch(outcome=outcome or None, reason=reason or None,
                        transfer_cause=transfer_cause or None, exit_node=exit_node or None,
                        failed=bool(failed),
                        caller_hash=caller_hash(db, caller) if caller else None)
    check_search(db, search, flow)
    return search


def lang_option(f):
    """--lang: the language headings are printed in (default: from LANG)."""
    return click.option("--lang", default=None, metavar="LANG", is_eager=True, callback=language_chosen,
                        help="fr or en (default: from LANG, LC_ALL, LANGUAGE).")(f)


@click.command(cls=OperatorCommand)
@click.argument("call_id")
@click.option("--db", "db_path", default="ivr.db", show_default=True,
              type=click.Path(dir_okay=False),
              help="The call log the server writes (opened read-only).")
@click.option("--json", "as_json_output", is_flag=True, default=False,
              help="The timeline as JSON, for scripts.")
@lang_option
def call(call_id, db_path, as_json_output, lang):
    """One call from end to end: when it started, its flow and version,
    every node it reached with its time, what was said and heard, look-ups,
    transfers, the outcome and reason, and why the fail-safe fired.

    The caller's number is never printed.

    \b
    Example:
        ivr-report call CA0123456789abcdef0123456789abcdef --db ivr.db
    """
    from ivr.reports.cli import reporting  # the group's module imports this one

    reporting(_print_call)(call_id, db_path, as_json_output, lang)


def _print_call(call_id, db_path, as_json_output, lang):
    # --lang's callback chose the language (without it, the group's).
    db = open_log(db_path)
    try:
        timeline = call_timeline(db, call_id)
    finally:
        db.close()
    if as_json_output:
        click.echo(as_json(timeline))
        return
    for line in timeline_lines(describe(timeline, Formats())):
        click.echo(line)


def timeline_lines(described: dict) -> list[str]:
    """The described timeline as text: the facts aligned, then each step
    with its time, node and what happened there, indented."""
    width = max(len(label) for label, _text in described["facts"])
    lines = [f"{label + ':':<{width + 1}} {text}" for label, text in described["facts"]]
    lines += ["", _("Timeline") + ":"]
    for step in described["steps"]:
        lines.append(f"  {step['offset']:>6}  {step['node']} ({step['kind']})")
        lines += [f"{'':10}{label}: {text}" for label, text in step["lines"]]
    return lines
