"""What is wrong in a YAML file the product reads, and the error that carries it."""

from __future__ import annotations

from dataclasses import dataclass

from ivr.i18n import N_, _

#: How a problem's severity is shown.  Translators: editors find problems by
#: the line's shape, ``file:line:col: error: message [code]``: one word each.
SEVERITIES = {"error": N_("error"), "warning": N_("warning")}


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with a YAML file the product reads (a flow, a shop
    configuration, a scenario file) or a prompt, at a 1-based line and
    column.  An ``error`` stops the file from loading; a ``warning`` does
    not.  Problems sort by file, line and column."""

    path: str
    line: int
    column: int
    message: str
    code: str
    severity: str = "error"

    def __str__(self) -> str:
        severity = _(SEVERITIES.get(self.severity, self.severity))
        return f"{self.path}:{self.line}:{self.column}: {severity}: {self.message} [{self.code}]"


class YamlProblems(Exception):
    """A file failed its checks; ``problems`` holds every problem, sorted,
    and the message shows them one per line."""

    def __init__(self, problems: list[Problem]):
        self.problems = sorted(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class FlowError(YamlProblems):
    """A flow failed validation (warnings are listed too, when there were
    errors)."""
