"""What a flow asks that a provider cannot do as asked (each dialect's
:meth:`ivr.providers.dialect.Dialect.gaps`), as lint problems at the node's
position: ``ivr-sim lint --provider NAME`` (or ``all``)."""

from __future__ import annotations

from pathlib import Path

from ivr.flow import yamlpos
from ivr.flow.loader import load_flow
from ivr.flow.problems import FlowError, Problem
from ivr.providers.registry import Provider, provider, providers


def chosen_providers(name: str) -> list[Provider]:
    """The provider called ``name``, or every provider for ``all``;
    ``KeyError`` names the known ones."""
    return list(providers().values()) if name == "all" else [provider(name)]


def gap_problems(flow_path: Path, prompts_root: Path, chosen: list[Provider]) -> list[Problem]:
    """One warning per gap of each ``chosen`` provider's dialect for the
    flow at ``flow_path``, at its node (or field) in the file, sorted.  A
    flow that does not load has none (its own problems say why)."""
    try:
        flow = load_flow(flow_path, prompts_root, rehearse=False)
    except FlowError:
        return []
    doc = yamlpos.load(Path(flow_path).read_text(encoding="utf-8"))
    problems = []
    for one in chosen:
        for gap in one.dialect().gaps(flow):
            where = ("nodes", gap.node) + ((gap.field,) if gap.field else ())
            pos = doc.key_pos(where)
            problems.append(Problem(str(flow_path), pos.line, pos.column,
                                    f"{one.name}: {gap.message}", gap.code, "warning"))
    return sorted(problems)
