"""``ivr-sim``: try, test and check call flows from a terminal or in CI.

A thin layer: the library raises specific exceptions, this module turns
them into clean messages and exit codes.
"""

from __future__ import annotations

import os
import sys
from datetime import date, datetime
from importlib import resources
from pathlib import Path
from zoneinfo import ZoneInfo

import click
import sqlite_utils

from ivr.click_i18n import OperatorGroup, language_chosen, speak_click_in_operator_language
from ivr.flow.dates import DateError, parse_day
from ivr.flow.loader import check_flow
from ivr.flow.problems import FlowError
from ivr.i18n import _, formats, ngettext
from ivr.lookups.demo_orders import DEMO_CALLERS, create_demo_db
from ivr.lookups.embedded import EmbeddedOrderLookups
from ivr.lookups.orders import OrderStore
from ivr.providers.registry import provider as registered
from ivr.providers.registry import providers
from ivr.reports.cli import LOCAL_TIME, bad_date
from ivr.reports.graph import FORMATS as GRAPH_FORMATS
from ivr.reports.graph import build_graph
from ivr.reports.graph_render import render as render_graph
from ivr.sim.call import SimCall
from ivr.sim.conversation import _converse, _load, _prompts_root, _remote_call, _show
from ivr.sim.junit import write_junit
from ivr.sim.progress import progress
from ivr.sim.provider_lint import chosen_providers, gap_problems
from ivr.sim.remote import RemoteError
from ivr.sim.scenarios import ScenarioFileError, demo_lookups, local_time, run_paths
from ivr.sim.utterances import UtteranceFileError, confusion_table, percent, play_set


class _Day(click.ParamType):
    """A day (``2026-11-02``, or an unambiguous ``13/11/2026``): a bad one
    is a one-line error saying the form to use."""

    name = "DATE"

    def convert(self, value, param, ctx):
        try:
            return parse_day(value)
        except DateError as error:
            raise bad_date(param, error) from None


DAY = _Day()

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

With --url the call goes to a running server instead, as the provider's
webhook requests; --at needs that server started with --simulated-clock.
"""

URL_HELP = ("Play against the server at this base URL (e.g. http://127.0.0.1:8080) "
            "instead of in this process.")
TOKEN_HELP = "Auth token to sign requests with (X-Twilio-Signature), for a server that checks them."
SECRET_HELP = ("With --url: the secret the provider signs requests with (default: the "
               "provider's environment variable, e.g. $TWILIO_AUTH_TOKEN); see docs/providers.md.")
PROVIDER_HELP = "With --url: the provider whose requests play the call (default: twilio)."
DASHBOARD_TOKEN_HELP = ("The server's dashboard token, to read the call's details "
                        "(GET /calls/<sid>) from a server without a provider auth token.")


#: The help of the group's --lang (the operator's language, not the caller's).
OPERATOR_LANG_HELP = ("The language ivr-sim speaks: fr or en (default: from LANG, LC_ALL; "
                      "English unless French).")


speak_click_in_operator_language()


@click.group(cls=OperatorGroup)
# Click would word this help in the language of the moment of import: English, translated when shown.
@click.version_option(package_name="ivr-engine", help="Show the version and exit.")
@click.option("--lang", "operator_lang", default=None, metavar="LANG", help=OPERATOR_LANG_HELP,
              is_eager=True, callback=language_chosen)
def main(operator_lang):
    """Try, test and check IVR call flows.

    \b
    Example:
        ivr-sim call flows/post_sale.yaml --caller +33612345678
        ivr-sim --lang fr lint flows/post_sale.yaml
    """
    # The language is chosen by --lang's callback, before --help is shown.


@main.command(epilog=CALL_HELP)
@click.argument("flow", type=click.Path(dir_okay=False))
@click.option("--caller", default=DEMO_CALLERS["one_order"], show_default=True,
              help="The caller's number (E.164); 'anonymous' for a withheld number.")
@click.option("--lang", default=None, help="Force the caller's language, e.g. en-US.")
@click.option("--at", "at", default=None,
              help='Simulated local time of the call, e.g. "2026-12-24 18:30" (default: now).')
@click.option("--markup", type=click.Choice(sorted(providers())), default=None,
              help="Also print the document this provider would receive for each turn.")
@click.option("--twiml", is_flag=True, help="Same as --markup twilio.")
@click.option("--prompts", default=None, help="Prompts folder (default: prompts/ beside flows/).")
@click.option("--orders", "orders_db", default=None, type=click.Path(dir_okay=False),
              help="Order database (default: the demo orders, dated to the simulated day).")
@click.option("--url", default=None, help=URL_HELP)
@click.option("--auth-token", envvar="TWILIO_AUTH_TOKEN", default=None, show_envvar=True,
              help=TOKEN_HELP)
@click.option("--dashboard-token", envvar="IVR_DASHBOARD_TOKEN", default=None, show_envvar=True,
              help=DASHBOARD_TOKEN_HELP)
@click.option("--provider", "provider_name", type=click.Choice(sorted(providers())),
              default=None, help=PROVIDER_HELP)
@click.option("--secret", default=None, help=SECRET_HELP)
def call(flow, caller, lang, at, markup, twiml, prompts, orders_db, url, auth_token,
         dashboard_token, provider_name, secret):
    """Place an interactive call to FLOW in the terminal.

    Prints what the caller hears and the nodes the call goes through, then
    waits for what the caller does.  With --url, FLOW may also be the name
    of a flow the server has loaded.

    \b
    Example:
        ivr-sim call flows/post_sale.yaml --caller +33612345678 --at "2026-12-24 18:30"

    \b
    Against a running server:
        ivr-sim call --url http://127.0.0.1:8080 post_sale --caller +14155550123

    \b
    Showing what Telnyx would receive:
        ivr-sim call flows/post_sale.yaml --markup telnyx
    """
    markup = markup or ("twilio" if twiml else None)
    if url:
        name = provider_name or markup or "twilio"
        return _remote_call(flow, caller, lang, at, markup, prompts, orders_db, url,
                            _secret(name, secret, auth_token), dashboard_token, name)
    if not Path(flow).is_file():
        raise click.BadParameter(_("file {flow!r} does not exist.").format(flow=flow), param_hint="'FLOW'")
    loaded = _load(flow, prompts)
    try:
        when = local_time(at, loaded.timezone) if at else datetime.now(ZoneInfo(loaded.timezone))
    except DateError as error:
        raise bad_date("--at", error) from None
    if orders_db:
        perform = EmbeddedOrderLookups(OrderStore.open(orders_db)).perform
    else:
        perform = demo_lookups(when)
    sim = SimCall(loaded, perform, caller=caller, at=when, lang=lang,
                  provider=markup or provider_name or "twilio")
    click.echo(_("Calling {flow} (version {version}) from {caller} at {when}").format(
        flow=loaded.name, version=loaded.version, caller=caller,
        when=f"{when:%Y-%m-%d %H:%M %Z}"))
    _show(sim.start(), sim, markup)
    _converse(sim, markup)


def _secret(provider_name: str, secret: str | None, auth_token: str | None) -> str | None:
    """The secret to sign ``provider_name``'s requests with: ``--secret``,
    else Twilio's ``--auth-token``, else the provider's environment variable."""
    if secret:
        return secret
    if provider_name == "twilio" and auth_token:
        return auth_token
    return os.environ.get(registered(provider_name).secret_env) or None


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--prompts", default=None, help="Prompts folder (default: prompts/ beside flows/).")
@click.option("--url", default=None, help=URL_HELP)
@click.option("--auth-token", envvar="TWILIO_AUTH_TOKEN", default=None, show_envvar=True,
              help=TOKEN_HELP)
@click.option("--flow", "flow_name", default=None,
              help="With --url: the flow's name on the server (default: the stem of each "
                   "scenario file's flow:).")
@click.option("--dashboard-token", envvar="IVR_DASHBOARD_TOKEN", default=None, show_envvar=True,
              help=DASHBOARD_TOKEN_HELP)
@click.option("--provider", "provider_name", type=click.Choice(sorted(providers())),
              default="twilio", show_default=True, help=PROVIDER_HELP)
@click.option("--secret", default=None, help=SECRET_HELP)
@click.option("--junit", "junit_path", default=None, type=click.Path(dir_okay=False),
              help="Also write the results as JUnit XML to this file, for CI (one test case "
                   "per scenario).")
def test(paths, prompts, url, auth_token, flow_name, dashboard_token, provider_name, secret,
         junit_path):
    """Run the scenario files in PATHS and report node coverage.

    Exits 1 when any expectation fails.  With --url the scenarios are
    played against a running server, as the provider would (scenarios
    with lookups: or lang: are skipped; at: needs the server started with
    --simulated-clock).

    \b
    Example:
        ivr-sim test flows/tests

    \b
    In CI, with a report the CI service shows:
        ivr-sim test flows/tests --junit results/scenarios.xml

    \b
    Against a running server (which shows call details only to its
    dashboard token or a signed request: set $IVR_DASHBOARD_TOKEN or
    --auth-token):
        ivr-sim test --url http://127.0.0.1:8080 flows/tests

    \b
    As Telnyx would play them (the server serves every provider):
        ivr-sim test --url http://127.0.0.1:8080 --provider telnyx flows/tests
    """
    try:
        report = run_paths(paths, prompts, url=url, token=_secret(provider_name, secret, auth_token),
                           flow_name=flow_name, dashboard_token=dashboard_token,
                           provider=provider_name)
    except (ScenarioFileError, FlowError, RemoteError) as error:
        raise click.ClickException(str(error))
    if junit_path:
        try:
            write_junit(report, junit_path)
        except OSError as error:
            raise click.ClickException(f"cannot write {junit_path}: {error.strerror or error}")
    for name, why in report.skipped:
        click.echo(_("SKIP {scenario}: {why}").format(scenario=name, why=why))
    for name, where, why in report.gap_steps:
        click.echo(_("SKIP {scenario}: {step}: {why}").format(scenario=name, step=where, why=why))
    for failure in report.failures:
        click.secho(_("FAIL {failure}").format(failure=failure), fg="red")
    for path, share, missed in report.coverage():
        if missed:
            line = _("coverage {file}: {share} of nodes; never reached: {missed}")
        else:
            line = _("coverage {file}: {share} of nodes")
        click.echo(line.format(file=Path(path).name, share=formats().percent(share / 100, 0),
                               missed=", ".join(missed)))
    failed = len({f.scenario for f in report.failures})
    skipped = len(report.skipped)
    passed = report.scenarios - failed - skipped
    if url or skipped:
        click.echo(_("{passed} passed, {failed} failed, {skipped} skipped").format(
            passed=passed, failed=failed, skipped=skipped))
    else:
        click.echo(_("{passed} passed, {failed} failed").format(passed=passed, failed=failed))
    sys.exit(1 if report.failures else 0)


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--prompts", default=None, help="Prompts folder (default: prompts/ beside flows/).")
@click.option("--provider", "provider_name", default=None,
              help="Also warn of what this provider (or 'all') cannot do as the flow asks, "
                   f"at the node ({', '.join(providers())}).")
def lint(paths, prompts, provider_name):
    """Check flow files: print every problem as file:line:col and exit 1 if
    any is an error (warnings alone exit 0).

    \b
    Example:
        ivr-sim lint flows/*.yaml
        ivr-sim lint --provider all flows/post_sale.yaml
    """
    try:
        chosen = chosen_providers(provider_name) if provider_name else []
    except KeyError as error:
        raise click.BadParameter(error.args[0], param_hint="'--provider'") from None
    count = warnings = 0
    for path in paths:
        files = sorted(Path(path).glob("*.yaml")) if Path(path).is_dir() else [Path(path)]
        for file in files:
            root = _prompts_root(file, prompts)
            for problem in check_flow(file, root) + gap_problems(file, root, chosen):
                click.echo(str(problem))
                count += 1
                warnings += problem.severity == "warning"
    # The problems (standard output) must all be out before the count
    # (standard error): in a CI log both go to one pipe, in this order.
    sys.stdout.flush()
    click.echo(_problem_count(count, warnings), err=True)
    sys.stderr.flush()
    sys.exit(1 if count > warnings else 0)


def _problem_count(count: int, warnings: int) -> str:
    """"3 problems (1 warning)", in the operator's language."""
    if not warnings:
        template = ngettext("{count} problem", "{count} problems", count)
    elif warnings == 1:
        template = ngettext("{count} problem ({warnings} warning)", "{count} problems ({warnings} warning)",
                            count)
    else:  # count >= warnings >= 2
        template = _("{count} problems ({warnings} warnings)")
    return template.format(count=count, warnings=warnings)


@main.command("schema")
@click.argument("kind", type=click.Choice(["flow", "scenario"]))
def schema_command(kind):
    """Print the JSON Schema of a flow file or a scenario file, for an
    editor to check and complete them as you type (docs/flow-language.md).

    \b
    Example:
        ivr-sim schema flow > .vscode/flow.schema.json
    """
    schema = resources.files("ivr.flow").joinpath(f"schema/{kind}.schema.json")
    click.echo(schema.read_text(encoding="utf-8"), nl=False)


@main.command("utterances")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--part", type=click.Choice(["all", "tuning", "held_out"]), default="all",
              help="Play only the tuning or only the held-out phrasings (default: all).")
@click.option("--quiet", is_flag=True, help="Print only the accuracies, not the tables and misses.")
def utterances_command(paths, part, quiet):
    """Play utterance sets against their menus: confusion table and accuracy.

    Each FILE names a flow, a language, a menu and a threshold, and lists
    phrasings with the choice they mean (flows/utterances/ has the demo
    flow's).  Exits 1 when the tuning or held-out accuracy of any set is
    under its threshold.

    \b
    Example:
        ivr-sim utterances flows/utterances/*.yaml
    """
    files = [f for p in paths for f in (sorted(Path(p).glob("*.yaml")) if Path(p).is_dir() else [Path(p)])]
    failed = False
    totals: dict = {}
    for file, result in _played_sets(files):
        shown = {"all": None, "tuning": False, "held_out": True}[part]
        if shown is not None:
            result.played = result.part(shown)
        tuning, held = result.accuracy(result.part(False)), result.accuracy(result.part(True))
        ok = result.passed
        failed |= not ok
        for name, played in (("tuning", result.part(False)), ("held_out", result.part(True))):
            right, count = totals.get((result.lang, name), (0, 0))
            totals[result.lang, name] = (right + sum(p.right for p in played), count + len(played))
        verdict = _("PASS {file} ({node}, {lang}): tuning {tuning}, held-out {held}, threshold {threshold}") \
            if ok else _("FAIL {file} ({node}, {lang}): tuning {tuning}, held-out {held}, threshold {threshold}")
        click.echo(verdict.format(file=file, node=result.node, lang=result.lang, tuning=percent(tuning),
                                  held=percent(held), threshold=percent(result.threshold)))
        if quiet:
            continue
        click.echo(confusion_table(result))
        for p in result.played:
            if not p.right or p.confirmed:
                click.echo("  " + _played_line(p))
    for (lang, name), (right, count) in sorted(totals.items()):
        if count:
            click.echo(f"{lang} {name}: {right}/{count} = {percent(right / count)}")
    sys.exit(1 if failed else 0)


def _played_sets(files):
    """(file, result) for each utterance set in ``files``, all played
    before any is printed, under a progress bar."""
    results = []
    with progress(len(files), _("Playing utterance sets")) as advance:
        for file in files:
            try:
                results.append((file, play_set(file)))
            except (UtteranceFileError, FlowError) as error:
                raise click.ClickException(str(error))
            advance(1)
    return results


def _played_line(p) -> str:
    """A phrasing that missed or needed a confirmation: what it meant, what it got."""
    mark = "ok  " if p.right else "MISS"  # a column marker, the same in every language
    if p.confirmed:
        template = _("{mark} {say!r}: meant {meant}, confirms {got} ({detail})")
    else:
        template = _("{mark} {say!r}: meant {meant}, got {got} ({detail})")
    line = template.format(mark=mark, say=p.say, meant=p.meant, got=p.got, detail=p.detail)
    return line + (" " + _("[held out]") if p.held_out else "")


@main.command("demo-orders")
@click.option("--db", "db_path", required=True, type=click.Path(dir_okay=False),
              help="SQLite file to create or refresh.")
@click.option("--today", default=None, type=DAY, help="Date the demo story is told from (default: today).")
def demo_orders_command(db_path, today):
    """Create the demo order store: every status, several carriers, demo callers.

    \b
    Example:
        ivr-sim demo-orders --db orders.db
    """
    day = today or date.today()
    create_demo_db(sqlite_utils.Database(db_path), day)
    click.echo(_("{db}: demo orders as of {day}").format(db=db_path, day=day))
    for name, phone in DEMO_CALLERS.items():
        click.echo(f"  {phone:<16} {name.replace('_', ' ')}")


#: The format ``ivr-sim graph -o FILE`` writes when --format is not given.
GRAPH_SUFFIXES = {".dot": "dot", ".gv": "dot", ".mmd": "mermaid", ".mermaid": "mermaid",
                  ".svg": "svg"}


@main.command("graph")
@click.argument("flow", type=click.Path(exists=True, dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(GRAPH_FORMATS), default=None,
              help="dot (Graphviz), mermaid or svg (default: from the -o suffix, else dot).")
@click.option("--stats", "stats_db", default=None, type=click.Path(dir_okay=False),
              help="Call log (e.g. ivr.db): show on each node how many calls reached it "
                   "and how many were lost there.")
@click.option("--since", default=None, type=LOCAL_TIME,
              help="With --stats: calls from this local date or time on, e.g. 2026-11-01.")
@click.option("--until", default=None, type=LOCAL_TIME, help="With --stats: calls before this local date or time.")
@click.option("--version", "version", default=None,
              help="With --stats: the flow version, or a prefix of it (default: the latest "
                   "version with calls).")
@click.option("-o", "--output", default=None, type=click.Path(dir_okay=False),
              help="Write to this file instead of standard output.")
@click.option("--prompts", default=None, help="Prompts folder (default: prompts/ beside flows/).")
def graph_command(flow, fmt, stats_db, since, until, version, output, prompts):
    """Draw FLOW: every node and every way out of it.

    Edges carry the key, look-up result or condition that takes them;
    dashed edges are retries run out, dotted ones the escape to a human.
    With --stats each node shows how many calls reached it and how many
    were lost there (hung up or transferred), filled on a heat scale by
    drop-off rate.

    \b
    Example:
        ivr-sim graph flows/post_sale.yaml --format mermaid

    \b
    The funnel from the call log, as an SVG:
        ivr-sim graph flows/post_sale.yaml --stats ivr.db --since 2026-11-01 -o post_sale.svg
    """
    if not stats_db and (since or until or version):
        raise click.UsageError(_("--since, --until and --version need --stats"))
    if fmt is None:
        fmt = GRAPH_SUFFIXES.get(Path(output).suffix.lower(), "dot") if output else "dot"
    loaded = _load(flow, prompts)
    stats = _funnel_rows(loaded, stats_db, since, until, version) if stats_db else None
    text = render_graph(build_graph(loaded), fmt, stats)
    if not output:
        click.echo(text, nl=False)
        return
    try:
        Path(output).write_text(text, encoding="utf-8")
    except OSError as error:
        raise click.ClickException(_("cannot write {file}: {error}").format(file=output,
                                                                            error=error.strerror or error))
    click.echo(_("{file}: {flow} as {format}").format(file=output, flow=loaded.name, format=fmt), err=True)


def _funnel_rows(flow, db_path, since, until, version):
    """The funnel of ``flow`` in the call log, and a note when its figures
    are for another version than the file's."""
    from ivr.reports import analytics  # only --stats reads the call log
    try:
        db = analytics.open_report_db(db_path)
        filters = analytics.Filters(since=since, until=until)
        chosen = analytics.funnel_version(db, flow.name, version, filters)
        rows = analytics.funnel(db, flow.name, chosen, filters)
    except analytics.ReportError as error:
        raise click.ClickException(str(error))
    if chosen != flow.version:
        click.echo(_("note: the figures are for version {chosen} of {flow}; {file} is version {version}").format(
            chosen=chosen, flow=flow.name, file=flow.path, version=flow.version), err=True)
    return rows


@main.command()
@click.argument("flow", type=click.Path(dir_okay=False))
@click.option("--db", "db_path", required=True, type=click.Path(dir_okay=False),
              help="SQLite call log to fill: created with the demo orders when missing, else added to.")
@click.option("--calls", "count", required=True, type=click.IntRange(min=1), help="How many calls to play.")
@click.option("--seed", required=True, type=int, help="The same seed plays the same calls.")
@click.option("--start", default=None, type=DAY,
              help="First day of the period, e.g. 2026-11-02 (default; Armistice Day, "
                   "11 November, is a public holiday).")
@click.option("--days", default=14, show_default=True, type=click.IntRange(1, 28),
              help="Length of the period; calls start at any hour of it, nights and Sundays included.")
@click.option("--expect-out", default=None, type=click.Path(dir_okay=False),
              help="Where to write the expected figures (default: the database path with the "
                   "suffix .expected.json).")
@click.option("--prompts", default=None, help="Prompts folder (default: prompts/ beside flows/).")
@click.option("--provider", "provider_names", multiple=True,
              type=click.Choice([*sorted(providers()), "all"]),
              help="The provider whose requests play the calls (default: twilio); given more "
                   "than once, or 'all', the providers play the calls in turn.  The same seed "
                   "plays the same calls whatever the provider.")
def traffic(flow, db_path, count, seed, start, days, expect_out, prompts, provider_names):
    """Play a seeded mix of callers into a call log, and write the figures
    a report over it must show.

    Every call goes through the server's own code (webhooks, status
    callbacks, the call log) on a simulated clock.  What each kind of
    caller does and how their call must end is written down by hand, so
    the expected figures do not come from the engine.  FLOW is the demo
    flow file, whose callers and orders the mix is written for.

    \b
    Example:
        ivr-sim traffic flows/post_sale.yaml --db /tmp/traffic.db --calls 3000 --seed 7
        ivr-report summary --db /tmp/traffic.db --format json

    \b
    The same calls as Telnyx plays them, then shared by every provider:
        ivr-sim traffic flows/post_sale.yaml --db /tmp/telnyx.db --calls 3000 --seed 7 --provider telnyx
        ivr-sim traffic flows/post_sale.yaml --db /tmp/mix.db --calls 3000 --seed 7 --provider all
        ivr-report summary --db /tmp/mix.db --by provider
    """
    import time

    from ivr.sim import traffic as gen  # only this command plays traffic

    if not Path(flow).is_file():
        raise click.BadParameter(_("file {flow!r} does not exist.").format(flow=flow), param_hint="'FLOW'")
    first_day = start
    before = _calls_in(db_path)
    began = time.perf_counter()
    try:
        with progress(count, _("Playing calls")) as advance:
            played = gen.generate(flow, db_path, calls=count, seed=seed, start=first_day,
                                  days=days, prompts=prompts, progress=advance,
                                  providers=_traffic_providers(provider_names))
    except FlowError as error:
        raise click.ClickException(_("the flow is not valid:\n{problems}").format(problems=error))
    except gen.TrafficError as error:
        raise click.ClickException(str(error))
    took = time.perf_counter() - began
    expected = played.expected
    out = Path(expect_out) if expect_out else Path(db_path).with_suffix(".expected.json")
    try:
        expected.write(out)
    except OSError as error:
        raise click.ClickException(_("cannot write {file}: {error}").format(file=out, error=error.strerror or error))
    number = formats().number
    click.echo(_("Played {calls} calls to {flow} (version {version}) into {db} in {took} s ({rate} calls/s)").format(
        calls=number(expected.calls), flow=expected.flow, version=expected.version, db=db_path,
        took=number(took, 1), rate=number(expected.calls / took)))
    click.echo("  " + _("from {start}, {days} days, seed {seed}").format(start=expected.start, days=days, seed=seed))
    click.echo("  " + _("played by {providers}").format(providers=", ".join(expected.providers)))
    if before:
        click.echo("  " + _("note: {db} already held {calls} calls; reports over it count them too, so they "
                            "show more than the figures below").format(db=db_path, calls=number(before)))
    _show_expected(expected)
    click.echo(_("Expected figures written to {file}").format(file=out))


def _traffic_providers(names: tuple[str, ...]) -> tuple[str, ...]:
    """The providers ``--provider`` names, in the order given, each once:
    every registered one for ``all``, Twilio when none is named."""
    if "all" in names:
        return tuple(providers())
    return tuple(dict.fromkeys(names)) or ("twilio",)


def _calls_in(db_path: str) -> int:
    if not Path(db_path).is_file():
        return 0
    db = sqlite_utils.Database(db_path)
    try:
        if "calls" not in db.table_names():
            return 0
        return next(iter(db.query("SELECT count(*) AS n FROM calls")))["n"]
    finally:
        db.close()


def _show_expected(expected) -> None:
    fmt = formats()
    number, percent = fmt.number, fmt.percent
    click.echo(_("Callers:"))
    for name, n in sorted(expected.behaviours.items(), key=lambda item: (-item[1], item[0])):
        click.echo(f"  {number(n):>6}  {name}")
    click.echo(_("Expected figures:"))
    click.echo("  " + _("outcomes: {counts}").format(
        counts=", ".join(f"{k} {number(v)}" for k, v in expected.outcomes.items())))
    click.echo("  " + _("transferred by cause: {counts}").format(
        counts=", ".join(f"{k} {number(v)}" for k, v in expected.causes.items() if v)))
    click.echo("  " + _("self-served {self_served}, repeat calls {repeats}, deflected {deflected} ({share} "
                        "repeat-adjusted deflection)").format(
        self_served=number(expected.outcomes["self_served"]), repeats=number(expected.repeat_calls),
        deflected=number(expected.deflected), share=percent(expected.deflected / expected.calls)))
    headings = (_("reason"), _("calls"), _("self"), _("transf"), _("aband"), _("repeat"))
    click.echo("  " + f"{headings[0]:<24} " + " ".join(f"{h:>6}" for h in headings[1:]))
    for reason, row in expected.reasons.items():
        figures = (row["calls"], row["self_served"], row["transferred"], row["abandoned"], row["repeat_calls"])
        click.echo(f"  {reason:<24} " + " ".join(f"{number(n):>6}" for n in figures))
    transferred = expected.outcomes["transferred"]
    share = percent(expected.transferred_without_reason / transferred) if transferred else "–"
    click.echo("  " + _("no reason stated: {before} ended before stating one, {without} transferred without "
                        "one ({share} of transferred calls)").format(
        before=number(expected.ended_before_reason), without=number(expected.transferred_without_reason),
        share=share))
    rate = expected.queue_abandonment_rate
    waited = expected.avg_queue_seconds_abandoned
    click.echo("  " + _("transfers: answered {answered}, abandoned in the queue {abandoned} ({rate} of those "
                        "who waited, after {waited} s on average), unanswered {unanswered}").format(
        answered=number(expected.transfers_answered), abandoned=number(expected.queue_abandoned),
        rate="–" if rate is None else percent(rate), waited="–" if waited is None else waited,
        unanswered=number(expected.transfers_unanswered)))
    click.echo("  " + _("worst drop-off node: {node}").format(node=expected.worst_drop_off))
