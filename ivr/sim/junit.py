"""``ivr-sim test --junit FILE``: the scenarios' results as JUnit XML,
the report format CI services read (one ``<testsuite>`` per scenario
file, one ``<testcase>`` per scenario, its failures with their message,
skipped ones marked so, each with the seconds it took)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

__all__ = ["junit_xml", "write_junit"]


def junit_xml(report) -> ET.ElementTree:
    """The JUnit document of ``report`` (an :class:`ivr.sim.scenarios.Report`)."""
    failures = defaultdict(list)
    for failure in report.failures:
        failures[failure.scenario].append(failure)
    skipped = dict(report.skipped)
    files: dict[str, list] = defaultdict(list)
    for name, file, seconds in report.cases:
        files[file].append((name, seconds))
    root = ET.Element("testsuites", name="ivr-sim test")
    for file, cases in files.items():
        suite = ET.SubElement(root, "testsuite", name=file, tests=str(len(cases)),
                              failures=str(sum(bool(failures[n]) for n, _s in cases)),
                              errors="0", skipped=str(sum(n in skipped for n, _s in cases)),
                              time=_seconds(sum(s for _n, s in cases)))
        for name, seconds in cases:
            case = ET.SubElement(suite, "testcase", classname=Path(file).stem,
                                 name=name.removeprefix(f"{file}: "), time=_seconds(seconds))
            if name in skipped:
                ET.SubElement(case, "skipped", message=skipped[name])
            for failure in failures[name]:
                element = ET.SubElement(case, "failure", message=failure.message)
                element.text = f"{failure.where}: {failure.message}"
    root.set("tests", str(len(report.cases)))
    root.set("failures", str(sum(bool(failures[name]) for name, _f, _s in report.cases)))
    root.set("errors", "0")
    root.set("skipped", str(sum(name in skipped for name, _f, _s in report.cases)))
    root.set("time", _seconds(sum(seconds for _n, _f, seconds in report.cases)))
    ET.indent(root)
    return ET.ElementTree(root)


def write_junit(report, path) -> None:
    """Write the JUnit document of ``report`` to ``path`` (UTF-8)."""
    junit_xml(report).write(path, encoding="utf-8", xml_declaration=True)


def _seconds(value: float) -> str:
    return f"{value:.3f}"
