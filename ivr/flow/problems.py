"""What is wrong in a YAML file the product reads, and the error that carries it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with a flow, at a 1-based line and column.  An
    ``error`` stops the flow from loading; a ``warning`` does not."""

    path: str
    line: int
    column: int
    message: str
    code: str
    severity: str = "error"

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}: {self.severity}: {self.message} [{self.code}]"


class FlowError(Exception):
    """A flow failed validation; ``problems`` holds every problem, sorted
    (warnings too, when there were errors)."""

    def __init__(self, problems: list[Problem]):
        self.problems = sorted(problems)
        super().__init__("\n".join(str(p) for p in self.problems))
