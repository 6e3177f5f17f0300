"""Check a scenario file's shape before any call is played.

A scenario file is read like a flow (:mod:`ivr.flow.yamlcheck`): every
problem in it (a step that does two things, an expectation nobody knows, a
time that is not one) is reported at the value at fault, all at once::

    flows/tests/x.yaml:14:9: error: unknown field 'heard'; expected one of dial, expect, ... [unknown-field]

Whether the calls then go as expected is for the run to say.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from ivr.flow.dates import DateError, parse_time
from ivr.flow.problems import YamlProblems
from ivr.flow.suggest import closest
from ivr.flow.yamlcheck import BAD, YamlChecker
from ivr.i18n import N_, _

#: What a step can do: one input each.
INPUTS = ("press", "say", "silence", "hangup", "dial", "record", "wait")
#: What ``sms:`` may say of a scenario's texts.
SMS_RESULTS = ("sent", "failed")
#: What ``end:`` can compare.
END_FIELDS = ("outcome", "reason", "cause", "transfer", "handoff", "confirmed")
#: What a step's ``expect:`` can check.
EXPECTATIONS = ("heard", "not_heard", "node", "path", "twiml")
#: The fields of a scenario (and of ``defaults``).
SCENARIO_FIELDS = ("name", "caller", "at", "lang", "lookups", "sms", "steps", "end")
#: The fields at the top of a scenario file.
FILE_FIELDS = ("flow", "defaults", "scenarios")

#: The messages of this module, one sentence each with named values.
MESSAGES = {
    "not-a-mapping": N_("a scenario file must be a mapping with 'flow' and a list of 'scenarios'"),
    "unknown-step": N_("expected one of {expected}, found {found!r}"),
    "unknown-step-suggest": N_("unknown step {found!r}: did you mean {suggestion!r}? (expected one "
                            "of {expected})"),
    "sms": N_("expected {expected}, found {found!r}"),
    "two-inputs": N_("a step does one thing; found {found}: make one step of each"),
    "unknown-node": N_("the flow has no node {name!r}"),
    "unknown-node-suggest": N_("the flow has no node {name!r}; did you mean {suggestion!r}?"),
}

#: What each input's value must be (``silence`` and ``hangup`` take none).
_INPUT_VALUES = {
    "press": ((str, int), N_("keys such as \"123\"")),
    "say": ((str, int, float), N_("what the caller says")),
    "dial": (str, N_("a transfer result such as busy")),
    "record": ((int, bool), N_("a number of seconds")),
    "wait": (int, N_("a number of seconds")),
}


class ScenarioFileError(YamlProblems):
    """A scenario file cannot be read or does not have the expected shape;
    ``problems`` lists every problem, at its line and column."""


def check_scenario_file(path: str, source: str, nodes_of=None) -> dict:
    """The data of the scenario file ``path`` whose text is ``source``, once
    its shape is right; else :class:`ScenarioFileError` listing every problem.

    ``nodes_of(flow)``, when given, returns the node names of the file's
    ``flow:`` (it is called only once the shape is right): the nodes its
    steps expect (``node:``, ``path:``) must be among them."""
    return _ScenarioChecker(path, source).check(nodes_of)


class _ScenarioChecker(YamlChecker):
    error = ScenarioFileError

    def __init__(self, path: str, source: str):
        self.path, self.source = path, source
        self.problems = []
        self.doc = None

    def check(self, nodes_of=None) -> dict:
        data = self.parse()
        if not isinstance(data, dict):
            self.problem((), _(MESSAGES["not-a-mapping"]), "wrong-type")
            self.raise_problems()
        self.known_fields((), data, FILE_FIELDS, required=("flow", "scenarios"))
        if "flow" in data:
            self.expect(("flow",), data["flow"], str, N_("the path of a flow file"))
        if data.get("defaults") is not None:
            self._scenario(("defaults",), data["defaults"])
        if "scenarios" in data and self.expect(("scenarios",), data["scenarios"], list,
                                               N_("a list of scenarios")) is not BAD:
            for index, scenario in enumerate(data["scenarios"]):
                self._scenario(("scenarios", index), scenario)
        self.raise_problems()
        if nodes_of is not None:
            self._expected_nodes(data, set(nodes_of(data["flow"])))
            self.raise_problems()
        return data

    def _expected_nodes(self, data, names: set) -> None:
        """Each node a step expects (``node:``, ``path:``) is one of ``names``."""
        scenarios: list[tuple[tuple, Any]] = [(("defaults",), data.get("defaults") or {})]
        scenarios += [(("scenarios", i), s) for i, s in enumerate(data["scenarios"])]
        for path, scenario in scenarios:
            for index, step in enumerate(scenario.get("steps") or ()):
                expect = step.get("expect") if isinstance(step, dict) else None
                if not isinstance(expect, dict):
                    continue
                at = path + ("steps", index, "expect")
                wanted: list[tuple[tuple, Any]] = [(at + ("node",), expect.get("node"))]
                route = expect.get("path")
                if isinstance(route, list):
                    wanted += [(at + ("path", i), name) for i, name in enumerate(route)]
                else:
                    wanted.append((at + ("path",), route))
                for where, name in wanted:
                    if isinstance(name, str) and name not in names:
                        self._unknown_node(where, name, names)

    def _unknown_node(self, where, name: str, names: set) -> None:
        suggestion = closest(name, names)
        message = _(MESSAGES["unknown-node-suggest" if suggestion else "unknown-node"])
        self.problem(where, message.format(name=name, suggestion=suggestion), "unknown-node")

    def _scenario(self, path, scenario) -> None:
        if self.expect(path, scenario, dict, N_("a scenario: a mapping with 'steps'")) is BAD:
            return
        self.known_fields(path, scenario, SCENARIO_FIELDS)
        for name in ("caller", "lang"):
            if name in scenario:
                self.expect(path + (name,), scenario[name], (str, int), N_("text"))
        if "at" in scenario:
            self._time(path + ("at",), scenario["at"])
        if "sms" in scenario and scenario["sms"] not in SMS_RESULTS:
            self.problem(path + ("sms",), _(MESSAGES["sms"]).format(
                expected=" or ".join(SMS_RESULTS), found=scenario["sms"]), "wrong-value")
        if scenario.get("lookups") is not None:
            self.expect(path + ("lookups",), scenario["lookups"], dict,
                        N_("a mapping of look-up name to answer"))
        if scenario.get("end") is not None and self.expect(
                path + ("end",), scenario["end"], dict, N_("a mapping such as {outcome: self_served}")) is not BAD:
            self.known_fields(path + ("end",), scenario["end"], END_FIELDS)
        steps = scenario.get("steps")
        if steps is not None and self.expect(path + ("steps",), steps, list, N_("a list of steps")) is not BAD:
            for index, step in enumerate(steps):
                self._step(path + ("steps", index), step)

    def _time(self, path, value) -> None:
        if isinstance(value, (datetime, date)):
            return
        try:
            parse_time(value)
        except DateError as error:
            self.problem(path, str(error), "wrong-value")

    def _step(self, path, step) -> None:
        if isinstance(step, str):
            if step not in INPUTS:
                suggestion = closest(step, INPUTS)
                message = _(MESSAGES["unknown-step-suggest" if suggestion else "unknown-step"])
                self.problem(path, message.format(expected=", ".join(INPUTS), found=step,
                                                  suggestion=suggestion), "wrong-value")
            return
        if self.expect(path, step, dict, N_("a step: an input such as {press: \"1\"} and an "
                          "optional 'expect'")) is BAD:
            return
        self.known_fields(path, step, INPUTS + ("expect",))
        inputs = [name for name in step if name in INPUTS]
        if len(inputs) > 1:
            self.problem(path + (inputs[1],), _(MESSAGES["two-inputs"]).format(found=", ".join(inputs)),
                         "wrong-value", at_key=True)
        for name in inputs:
            if name in _INPUT_VALUES and not (name == "record" and step[name] is True):
                kind, wanted = _INPUT_VALUES[name]
                self.expect(path + (name,), step[name], kind, wanted)
        expect = step.get("expect")
        if expect is not None and self.expect(path + ("expect",), expect, dict,
                                              N_("a mapping such as {heard: ...}")) is not BAD:
            self.known_fields(path + ("expect",), expect, EXPECTATIONS)
