"""An interactive call at the terminal (``ivr-sim call``): what the caller
types, what they hear, against the engine here or a server."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import click

from ivr.flow.dates import DateError, parse_time
from ivr.flow.loader import load_flow
from ivr.flow.problems import FlowError
from ivr.reports.cli import bad_date
from ivr.sim.call import InputNotExpected, listens_for
from ivr.sim.remote import RemoteCall, RemoteError
from ivr.sim.scenarios import local_time


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


def _remote_call(flow, caller, lang, at, markup, prompts, orders_db, url, token,
                 dashboard_token=None, provider: str = "twilio"):
    """``ivr-sim call --url``: the same conversation with a running server."""
    if lang:
        raise click.UsageError("--lang cannot be used with --url: the server picks the "
                               "language from the caller's number")
    if orders_db:
        raise click.UsageError("--orders cannot be used with --url: the server uses its own orders")
    path = Path(flow)
    if path.is_file():  # the file gives the flow's name and timezone
        loaded = _load(flow, prompts)
        name, zone = path.stem, ZoneInfo(loaded.timezone)
    else:
        name, zone = flow, None
    if at:
        try:
            when = local_time(at, zone.key) if zone else parse_time(at)
        except DateError as error:
            raise bad_date("--at", error) from None
        if when.tzinfo is None:
            raise click.BadParameter("give a UTC offset (e.g. \"2026-12-24 18:30+01:00\") or "
                                     "a flow file for its timezone", param_hint="'--at'")
    else:
        when = datetime.now(zone) if zone else datetime.now().astimezone()
    sim = RemoteCall(url, name, caller=caller, at=when, token=token,
                     dashboard_token=dashboard_token, provider=provider)
    click.echo(f"Calling {name} at {url.rstrip('/')} from {caller} as {sim.call_id} "
               f"at {when:%Y-%m-%d %H:%M %Z}")
    try:
        _show(sim.start(), sim, markup)
        _converse(sim, markup)
    except RemoteError as error:
        raise click.ClickException(str(error))


def _converse(sim, markup: str | None):
    while not sim.ended:
        try:
            line = input("caller> ").strip()
        except EOFError:
            line = "hangup"
        turn = _act(sim, line)
        if turn is not None:
            _show(turn, sim, markup)
    summary = sim.summary
    click.echo(f"Call ended: outcome {summary['outcome']}, reason {summary['reason']}"
               + (f", cause {summary['cause']}" if summary["cause"] else ""))


def _act(sim, line: str):
    try:
        return _act_on(sim, line)
    except InputNotExpected as error:
        click.echo(f"({error})")
        return None


def _act_on(sim, line: str):
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


def _show(turn, sim, markup: str | None):
    """Print what a turn did; with ``markup`` (a provider's name), the
    document that provider received too."""
    if turn.path:
        click.secho("  path: " + " > ".join(turn.path), dim=True)
    if turn.heard:
        click.echo("  heard: " + turn.heard)
    for incident in turn.incidents:
        click.echo("  " + incident)
    waiting = listens_for(turn.actions)
    if waiting and not sim.ended:
        click.secho(f"  (at {sim.waiting_node}, listening for {waiting})", dim=True)
    if markup and turn.twiml:  # a live hang-up is a status callback: no document
        label = "twiml" if markup == "twilio" else markup
        click.echo(f"  {label}: " + turn.twiml.decode("utf-8"))
