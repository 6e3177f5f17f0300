"""``ivr-sim``: try, test and check call flows from a terminal or in CI.

A thin layer: the library raises specific exceptions, this module turns
them into clean messages and exit codes.
"""

from __future__ import annotations

import sys
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import click
import sqlite_utils

from .demo_orders import DEMO_CALLERS, create_demo_db
from .flow import FlowError, check_flow, load_flow
from .lookups import EmbeddedOrderLookups
from .orders import OrderStore
from .scenarios import ScenarioFileError, demo_lookups, local_time, run_paths
from .sim import SimCall, listens_for

CALL_HELP = """\
At the prompt type what the caller does:

\b
  1, 123#        press keys
  say <words>    speak (e.g. "say conseiller")
  silence        say nothing until the timeout
  dial <status>  the transfer's result: completed, busy, no-answer, failed
  record         leave a voicemail
  wait <secs>    let time pass on the simulated clock
  hangup         hang up (also Ctrl-D)
"""


def _prompts_root(flow_path: Path, prompts: str | None) -> Path:
    """The prompts folder: as given, else ``prompts/`` beside the flows folder."""
    if prompts:
        return Path(prompts)
    beside = flow_path.resolve().parent.parent / "prompts"
    return beside if beside.is_dir() else Path("prompts")


def _load(flow_path: str, prompts: str | None):
    path = Path(flow_path)
    try:
        return load_flow(path, _prompts_root(path, prompts))
    except FlowError as error:
        raise click.ClickException(f"the flow is not valid:\n{error}")


@click.group()
@click.version_option(package_name="ivr-engine")
def main():
    """Try, test and check IVR call flows.

    \b
    Example:
        ivr-sim call flows/post_sale.yaml --caller +33612345678
    """


@main.command(epilog=CALL_HELP)
@click.argument("flow", type=click.Path(exists=True, dir_okay=False))
@click.option("--caller", default=DEMO_CALLERS["one_order"], show_default=True,
              help="The caller's number (E.164); 'anonymous' for a withheld number.")
@click.option("--lang", default=None, help="Force the caller's language, e.g. en-US.")
@click.option("--at", "at", default=None,
              help='Simulated local time of the call, e.g. "2026-12-24 18:30" (default: now).')
@click.option("--twiml", is_flag=True, help="Also print the TwiML a provider would receive.")
@click.option("--prompts", default=None, help="Prompts folder (default: prompts/ beside flows/).")
@click.option("--orders", "orders_db", default=None, type=click.Path(dir_okay=False),
              help="Order database (default: the demo orders, dated to the simulated day).")
def call(flow, caller, lang, at, twiml, prompts, orders_db):
    """Place an interactive call to FLOW in the terminal.

    Prints what the caller hears and the nodes the call goes through, then
    waits for what the caller does.

    \b
    Example:
        ivr-sim call flows/post_sale.yaml --caller +33612345678 --at "2026-12-24 18:30"
    """
    loaded = _load(flow, prompts)
    when = local_time(at, loaded.timezone) if at else datetime.now(ZoneInfo(loaded.timezone))
    if orders_db:
        perform = EmbeddedOrderLookups(OrderStore.open(orders_db)).perform
    else:
        perform = demo_lookups(when)
    sim = SimCall(loaded, perform, caller=caller, at=when, lang=lang)
    click.echo(f"Calling {loaded.name} (version {loaded.version}) from {caller} "
               f"at {when:%Y-%m-%d %H:%M %Z}")
    _show(sim.start(), sim, twiml)
    while not sim.ended:
        try:
            line = input("caller> ").strip()
        except EOFError:
            line = "hangup"
        turn = _act(sim, line)
        if turn is not None:
            _show(turn, sim, twiml)
    summary = sim.summary
    click.echo(f"Call ended: outcome {summary['outcome']}, reason {summary['reason']}"
               + (f", cause {summary['cause']}" if summary["cause"] else ""))


def _act(sim: SimCall, line: str):
    word, _, rest = line.partition(" ")
    if not line:
        return None
    if word == "say" and rest:
        return sim.say(rest)
    if word == "silence":
        return sim.silence()
    if word == "hangup":
        return sim.hangup()
    if word == "dial" and rest:
        return sim.dial_result(rest.strip())
    if word == "record":
        return sim.recorded()
    if word == "wait" and rest.strip().isdigit():
        sim.wait(int(rest))
        click.echo(f"(clock is now {sim.at:%Y-%m-%d %H:%M})")
        return None
    if all(c in "0123456789*#" for c in line):
        return sim.press(line)
    click.echo("Type keys (1, 123#), 'say <words>', 'silence', 'dial <status>', "
               "'record', 'wait <seconds>' or 'hangup'.")
    return None


def _show(turn, sim: SimCall, twiml: bool):
    if turn.path:
        click.secho("  path: " + " > ".join(turn.path), dim=True)
    if turn.heard:
        click.echo("  heard: " + turn.heard)
    waiting = listens_for(turn.actions)
    if waiting and not sim.ended:
        click.secho(f"  (at {sim.waiting_node}, listening for {waiting})", dim=True)
    if twiml:
        click.echo("  twiml: " + turn.twiml.decode("utf-8"))


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--prompts", default=None, help="Prompts folder (default: prompts/ beside flows/).")
def test(paths, prompts):
    """Run the scenario files in PATHS and report node coverage.

    Exits 1 when any expectation fails.

    \b
    Example:
        ivr-sim test flows/tests
    """
    try:
        report = run_paths(paths, prompts)
    except (ScenarioFileError, FlowError) as error:
        raise click.ClickException(str(error))
    for failure in report.failures:
        click.secho(f"FAIL {failure}", fg="red")
    for path, percent, missed in report.coverage():
        line = f"coverage {Path(path).name}: {percent:.0f}% of nodes"
        click.echo(line + (f"; never reached: {', '.join(missed)}" if missed else ""))
    failed = len({f.scenario for f in report.failures})
    click.echo(f"{report.scenarios - failed} passed, {failed} failed")
    sys.exit(1 if report.failures else 0)


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--prompts", default=None, help="Prompts folder (default: prompts/ beside flows/).")
def lint(paths, prompts):
    """Check flow files: print every problem as file:line:col and exit 1 if any.

    \b
    Example:
        ivr-sim lint flows/*.yaml
    """
    count = 0
    for path in paths:
        files = sorted(Path(path).glob("*.yaml")) if Path(path).is_dir() else [Path(path)]
        for file in files:
            for problem in check_flow(file, _prompts_root(file, prompts)):
                click.echo(str(problem))
                count += 1
    click.echo(f"{count} problem{'s' if count != 1 else ''}", err=True)
    sys.exit(1 if count else 0)


@main.command("demo-orders")
@click.option("--db", "db_path", required=True, type=click.Path(dir_okay=False),
              help="SQLite file to create or refresh.")
@click.option("--today", default=None, help="Date the demo story is told from (default: today).")
def demo_orders_command(db_path, today):
    """Create the demo order store: every status, several carriers, demo callers.

    \b
    Example:
        ivr-sim demo-orders --db orders.db
    """
    day = date.fromisoformat(today) if today else date.today()
    create_demo_db(sqlite_utils.Database(db_path), day)
    click.echo(f"{db_path}: demo orders as of {day}")
    for name, phone in DEMO_CALLERS.items():
        click.echo(f"  {phone:<16} {name.replace('_', ' ')}")
