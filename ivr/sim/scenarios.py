"""Scripted calls with expectations: the flow author's test files.

A scenario file names a flow and lists calls: who calls and when, what
they press or say at each turn, what they should hear, where the call
should be, and how it should end (outcome, reason, cause, transfer).
See docs/ivr-sim.md for the format.  Running them also measures node
coverage: which nodes of each flow some scenario reached.

With a server URL the same files are played against a running server
(:class:`ivr.sim.remote.RemoteCall`) instead of the engine in this process;
scenarios that force look-up answers or a language cannot be, and are
reported as skipped.  Texts are never sent: they show in what the caller
heard, and ``sms: failed`` makes them fail.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import sqlite_utils

from ivr.flow.dates import parse_time
from ivr.flow.loader import load_flow
from ivr.flow.yamlcheck import read_text
from ivr.lookups.demo_orders import create_demo_db
from ivr.lookups.embedded import EmbeddedOrderLookups
from ivr.phone import mask
from ivr.providers.fake_call import SendFn
from ivr.server.sms import RecordingSms
from ivr.sim.call import InputNotExpected, SimCall, SimTurn, incidents
from ivr.sim.remote import RemoteCall
from ivr.sim.scenarios_check import (
    END_FIELDS,
    EXPECTATIONS,
    INPUTS,
    SMS_RESULTS,
    ScenarioFileError,
    check_scenario_file,
)


@dataclass
class Failure:
    scenario: str
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.scenario}: {self.where}: {self.message}"


@dataclass
class Report:
    """Everything a run of scenario files found."""

    scenarios: int = 0
    failures: list = field(default_factory=list)
    skipped: list = field(default_factory=list)  # (scenario, why)
    reached: dict = field(default_factory=dict)  # flow path -> set of nodes
    flows: dict = field(default_factory=dict)    # flow path -> Flow

    def coverage(self):
        """(flow path, percent, nodes never reached) for every flow run."""
        for path, flow in sorted(self.flows.items()):
            nodes = set(flow.nodes)
            reached = self.reached.get(path, set()) & nodes
            yield path, 100.0 * len(reached) / len(nodes), sorted(nodes - reached)


def scenario_files(paths) -> list[Path]:
    """The scenario files named by ``paths`` (folders are searched for *.yaml)."""
    files = []
    for path in map(Path, paths):
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*.y*ml") if p.is_file()))
        else:
            files.append(path)
    return files


@dataclass
class Server:
    """A running server to play scenarios against (``ivr-sim test --url``)."""

    url: str
    token: str | None = None
    flow: str | None = None   # the flow's name there; default: the flow file's stem
    #: Read ``/calls/<sid>`` with it (a server without a provider token).
    dashboard_token: str | None = None
    #: The provider whose fake plays the calls (:mod:`ivr.providers.registry`).
    provider: str = "twilio"
    #: Carries the requests instead of HTTP (see :class:`ivr.sim.remote.RemoteCall`).
    transport: SendFn | None = None


def run_paths(paths, prompts_root=None, url: str | None = None, token: str | None = None,
              flow_name: str | None = None, report: Report | None = None,
              dashboard_token: str | None = None, provider: str = "twilio",
              transport: SendFn | None = None) -> Report:
    """Run every scenario in the files under ``paths``: in this process, or
    against the server at ``url`` as ``provider`` plays calls (signed with
    ``token``, its secret, if given; its call details read with
    ``dashboard_token``; carried by ``transport`` instead of HTTP if given).

    Raises :class:`ivr.sim.remote.RemoteError` when the server cannot be
    reached or refuses a request."""
    report = report or Report()
    server = Server(url, token, flow_name, dashboard_token, provider, transport) if url else None
    for path in scenario_files(paths):
        run_file(path, prompts_root, report, server)
    return report


def run_file(path: Path, prompts_root, report: Report, server: Server | None = None) -> Report:
    """Run the scenarios of the file at ``path`` into ``report``.  A file of
    the wrong shape raises :class:`ScenarioFileError` before any call, with
    every problem at its line and column."""
    def nodes_of(flow_file: str):
        return _flow(path, flow_file, prompts_root, report).nodes

    spec = check_scenario_file(str(path), read_text(path, ScenarioFileError), nodes_of)
    flow = _flow(path, spec["flow"], prompts_root, report)
    key = str((path.parent / spec["flow"]).resolve())
    defaults = spec.get("defaults") or {}
    for scenario in spec["scenarios"]:
        scenario = {**defaults, **scenario}
        name = f"{path}: {scenario.get('name', '(unnamed)')}"
        report.scenarios += 1
        why = server and cannot_run_remotely(scenario)
        if why:
            report.skipped.append((name, why))
            continue
        remote = server and replace(server, flow=server.flow or Path(spec["flow"]).stem)
        failures, reached = run_scenario(flow, scenario, name, remote)
        report.failures.extend(failures)
        report.reached.setdefault(key, set()).update(reached)
    return report


def _flow(path: Path, flow_file: str, prompts_root, report: Report):
    """The flow a scenario file at ``path`` names, loaded once per run."""
    flow_path = (path.parent / flow_file).resolve()
    root = Path(prompts_root) if prompts_root else flow_path.parent.parent / "prompts"
    key = str(flow_path)
    if key not in report.flows:
        report.flows[key] = load_flow(flow_path, root)
    return report.flows[key]


def local_time(text, timezone: str) -> datetime:
    """``"2026-12-24 18:30"`` (or another form :mod:`ivr.flow.dates` reads)
    in the flow's timezone, as an aware datetime.  Raises
    :class:`ivr.flow.dates.DateError`, which says the form to use."""
    moment = parse_time(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(timezone))
    return moment


def demo_lookups(at: datetime, mocks: dict | None = None):
    """Look-ups over the demo orders as of ``at``; ``mocks`` forces answers
    by look-up name (``{orders_by_phone: error}``)."""
    store = create_demo_db(sqlite_utils.Database(memory=True), at.date())
    embedded = EmbeddedOrderLookups(store)

    def perform(lookup, now):
        mock = (mocks or {}).get(lookup.what)
        if mock is None:
            return embedded.perform(lookup, now)
        if isinstance(mock, str):
            mock = {"status": mock}
        return {"data": {}, "error": "forced by the scenario" if mock["status"] == "error" else None,
                **mock}

    return perform


def cannot_run_remotely(scenario: dict) -> str | None:
    """Why a scenario cannot be played against a live server, if it cannot."""
    if scenario.get("lookups"):
        return "forces look-up answers (lookups:), which a live server cannot be told"
    if scenario.get("lang"):
        return "forces a language (lang:), which a provider's request cannot carry"
    if scenario.get("sms"):
        return "forces the texts' result (sms:), which a live server cannot be told"
    return None


def run_scenario(flow, scenario: dict, name: str, server: Server | None = None):
    """Play one scenario, in this process or against ``server``; returns
    (failures, nodes reached)."""
    at = local_time(scenario.get("at", "2026-11-24 10:00"), flow.timezone)
    caller = str(scenario.get("caller", "+33612345678"))
    if server:
        call = RemoteCall(server.url, server.flow or flow.name, caller=caller, at=at,
                          token=server.token, dashboard_token=server.dashboard_token,
                          provider=server.provider, transport=server.transport)
    else:
        wanted = scenario.get("sms", "sent")
        if wanted not in SMS_RESULTS:
            return [Failure(name, "sms", f"expected {' or '.join(SMS_RESULTS)}, "
                            f"found {wanted!r}")], set()
        # Texts are kept and shown, never sent; ``sms: failed`` fails them all.
        sms = RecordingSms(fail="forced by the scenario" if wanted == "failed" else None)
        call = SimCall(flow, demo_lookups(at, scenario.get("lookups")), caller=caller, at=at,
                       lang=scenario.get("lang"), send_sms=sms.send)
    failures: list[Failure] = []
    turn = call.start()
    for index, step in enumerate(scenario.get("steps") or [], start=1):
        if isinstance(step, str):
            step = {step: True}
        inputs = [k for k in step if k in INPUTS]
        unknown = [k for k in step if k not in INPUTS and k != "expect"]
        if unknown or len(inputs) > 1:
            failures.append(Failure(name, f"step {index}", f"expected one of {', '.join(INPUTS)} "
                                    f"and an optional 'expect', found {', '.join(step)}"))
            break
        if inputs and inputs[0] != "wait" and call.ended:
            failures.append(Failure(name, f"step {index} ({inputs[0]})",
                                    f"the call already ended at {call.state['node']!r}"))
            break
        if inputs:
            try:
                turn = _play(call, inputs[0], step[inputs[0]]) or turn
            except InputNotExpected as error:
                failures.append(Failure(name, f"step {index} ({inputs[0]})", str(error)))
                break
        failures.extend(Failure(name, f"turn {turn.number} ({turn.input})", problem)
                        for problem in check_turn(turn, call, step.get("expect") or {}))
    if (scenario.get("end") or server) and not call.ended:
        call.hangup()  # what the caller does when the script runs out
    if scenario.get("end"):
        failures.extend(Failure(name, "end of call", problem)
                        for problem in check_end(call.summary, scenario["end"]))
    reached = {e["node"] for t in call.turns for e in t.node_events}
    return _with_incidents(failures, call), reached


def _with_incidents(failures: list[Failure], call) -> list[Failure]:
    """The failures, the last one saying why the call went wrong when it
    did (the fail-safe's cause, a text not sent): often why it failed."""
    found = [incident for turn in call.turns for incident in incidents(turn.node_events)]
    if not failures or not found:
        return failures
    last = failures[-1]
    return failures[:-1] + [Failure(last.scenario, last.where,
                                    "\n    ".join([last.message, *found]))]


def _play(call: SimCall | RemoteCall, kind: str, value) -> SimTurn | None:
    if kind == "press":
        return call.press(str(value))
    if kind == "say":
        return call.say(str(value))
    if kind == "silence":
        return call.silence()
    if kind == "hangup":
        return call.hangup()
    if kind == "dial":
        return call.dial_result(str(value))
    if kind == "record":
        return call.recorded(int(value) if value is not True else 20)
    call.wait(int(value))
    return None


def check_turn(turn: SimTurn, call: SimCall | RemoteCall, expect: dict) -> list[str]:
    """What in ``turn`` differs from ``expect``; each problem shows both."""
    problems = []
    heard = turn.heard
    folded = heard.casefold()
    for text in _as_list(expect.get("heard")):
        if str(text).casefold() not in folded:
            problems.append(f"expected to hear {text!r}\n    heard: {heard}")
    for text in _as_list(expect.get("not_heard")):
        if str(text).casefold() in folded:
            problems.append(f"expected not to hear {text!r}\n    heard: {heard}")
    node = call.state["node"]
    if "node" in expect and expect["node"] != node:
        problems.append(f"expected the call at node {expect['node']!r}, found {node!r}"
                        f"\n    path: {' > '.join(turn.path)}")
    path = turn.path
    wanted = _as_list(expect.get("path"))
    if wanted and not _in_order(wanted, path):
        problems.append(f"expected the path to go through {' > '.join(wanted)}"
                        f"\n    path: {' > '.join(path)}")
    for text in _as_list(expect.get("twiml")):
        if str(text) not in turn.twiml.decode("utf-8"):
            problems.append(f"expected the TwiML to contain {text!r}\n    twiml: {turn.twiml.decode()}")
    unknown = set(expect) - set(EXPECTATIONS)
    if unknown:
        problems.append(f"unknown expectation {', '.join(sorted(unknown))}; expected heard, "
                        "not_heard, node, path or twiml")
    return problems


def check_end(summary: dict, expect: dict) -> list[str]:
    actual = {
        "outcome": summary["outcome"], "reason": summary["reason"], "cause": summary["cause"],
        "confirmed": summary["confirmed"],
        "transfer": (summary["handoff"] or {}).get("target"),
        "handoff": (summary["handoff"] or {}).get("kind"),
    }
    wanted = expect.get("transfer")
    if actual["handoff"] == "callback" and wanted is not None and actual["transfer"] == mask(str(wanted)):
        actual["transfer"] = wanted  # a server shows the number to call back masked
    problems = [f"expected {k} {v!r}, found {actual[k]!r}"
                for k, v in expect.items() if k in actual and actual[k] != v]
    unknown = set(expect) - set(END_FIELDS)
    if unknown:
        problems.append(f"unknown end field {', '.join(sorted(unknown))}; expected {', '.join(END_FIELDS)}")
    return problems


def _as_list(value) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _in_order(wanted: list, path: list) -> bool:
    remaining = iter(path)
    return all(any(node == w for node in remaining) for w in wanted)
