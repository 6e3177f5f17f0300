"""What is wrong in a YAML file the product reads, and the error that carries it."""

from __future__ import annotations

from dataclasses import dataclass


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
        return f"{self.path}:{self.line}:{self.column}: {self.severity}: {self.message} [{self.code}]"


class YamlProblems(Exception):
    """A file failed its checks; ``problems`` holds every problem, sorted,
    and the message shows them one per line."""

    def __init__(self, problems: list[Problem]):
        self.problems = sorted(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class FlowError(YamlProblems):
    """A flow failed validation (warnings are listed too, when there were
    errors)."""
