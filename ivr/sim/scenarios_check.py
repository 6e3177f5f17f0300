"""Check a scenario file's shape before any call is played.

A scenario file is read like a flow (:mod:`ivr.flow.yamlcheck`): every
problem in it (a step that does two things, an expectation nobody knows, a
time that is not one) is reported at the value at fault, all at once::

    flows/tests/x.yaml:14:9: error: unknown field 'heard'; expected one of dial, expect, ... [unknown-field]

Whether the calls then go as expected is for the run to say.
"""

from __future__ import annotations

from datetime import date, datetime

from ivr.flow.problems import YamlProblems
from ivr.flow.yamlcheck import BAD, YamlChecker

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

#: What each input's value must be (``silence`` and ``hangup`` take none).
_INPUT_VALUES = {
    "press": ((str, int), "keys such as \"123\""),
    "say": ((str, int, float), "what the caller says"),
    "dial": (str, "a transfer result such as busy"),
    "record": ((int, bool), "a number of seconds"),
    "wait": (int, "a number of seconds"),
}


class ScenarioFileError(YamlProblems):
    """A scenario file cannot be read or does not have the expected shape;
    ``problems`` lists every problem, at its line and column."""


def check_scenario_file(path: str, source: str) -> dict:
    """The data of the scenario file ``path`` whose text is ``source``, once
    its shape is right; else :class:`ScenarioFileError` listing every problem."""
    return _ScenarioChecker(path, source).check()


class _ScenarioChecker(YamlChecker):
    error = ScenarioFileError

    def __init__(self, path: str, source: str):
        self.path, self.source = path, source
        self.problems = []
        self.doc = None

    def check(self) -> dict:
        data = self.parse()
        if not isinstance(data, dict):
            self.problem((), "a scenario file must be a mapping with 'flow' and a list of "
                         "'scenarios'", "wrong-type")
            self.raise_problems()
        self.known_fields((), data, FILE_FIELDS, required=("flow", "scenarios"))
        if "flow" in data:
            self.expect(("flow",), data["flow"], str, "the path of a flow file")
        if data.get("defaults") is not None:
            self._scenario(("defaults",), data["defaults"])
        if "scenarios" in data and self.expect(("scenarios",), data["scenarios"], list,
                                               "a list of scenarios") is not BAD:
            for index, scenario in enumerate(data["scenarios"]):
                self._scenario(("scenarios", index), scenario)
        self.raise_problems()
        return data

    def _scenario(self, path, scenario) -> None:
        if self.expect(path, scenario, dict, "a scenario: a mapping with 'steps'") is BAD:
            return
        self.known_fields(path, scenario, SCENARIO_FIELDS)
        for name in ("caller", "lang"):
            if name in scenario:
                self.expect(path + (name,), scenario[name], (str, int), "text")
        if "at" in scenario:
            self._time(path + ("at",), scenario["at"])
        if "sms" in scenario and scenario["sms"] not in SMS_RESULTS:
            self.problem(path + ("sms",), f"expected {' or '.join(SMS_RESULTS)}, found "
                         f"{scenario['sms']!r}", "wrong-value")
        if scenario.get("lookups") is not None:
            self.expect(path + ("lookups",), scenario["lookups"], dict,
                        "a mapping of look-up name to answer")
        if scenario.get("end") is not None and self.expect(
                path + ("end",), scenario["end"], dict, "a mapping such as {outcome: self_served}") is not BAD:
            self.known_fields(path + ("end",), scenario["end"], END_FIELDS)
        steps = scenario.get("steps")
        if steps is not None and self.expect(path + ("steps",), steps, list, "a list of steps") is not BAD:
            for index, step in enumerate(steps):
                self._step(path + ("steps", index), step)

    def _time(self, path, value) -> None:
        if isinstance(value, (datetime, date)):
            return
        try:
            datetime.fromisoformat(str(value))
        except ValueError:
            self.problem(path, f"expected a local time such as \"2026-11-24 10:00\", found {value!r}",
                         "wrong-value")

    def _step(self, path, step) -> None:
        if isinstance(step, str):
            if step not in INPUTS:
                self.problem(path, f"expected one of {', '.join(INPUTS)}, found {step!r}", "wrong-value")
            return
        if self.expect(path, step, dict, "a step: an input such as {press: \"1\"} and an "
                       "optional 'expect'") is BAD:
            return
        self.known_fields(path, step, INPUTS + ("expect",))
        inputs = [name for name in step if name in INPUTS]
        if len(inputs) > 1:
            self.problem(path + (inputs[1],), f"a step does one thing; found {', '.join(inputs)}: "
                         "make one step of each", "wrong-value", at_key=True)
        for name in inputs:
            if name in _INPUT_VALUES and not (name == "record" and step[name] is True):
                kind, wanted = _INPUT_VALUES[name]
                self.expect(path + (name,), step[name], kind, wanted)
        expect = step.get("expect")
        if expect is not None and self.expect(path + ("expect",), expect, dict,
                                              "a mapping such as {heard: ...}") is not BAD:
            self.known_fields(path + ("expect",), expect, EXPECTATIONS)
