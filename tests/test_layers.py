"""The package's layers: every import inside ``ivr`` points down, never up.

The table below is the architecture: each subpackage of ``ivr`` and the
subpackages it may import.  Modules directly in ``ivr`` (the package's
front door and small shared helpers) are not layers: any layer may use
the helpers, and the front door may use any layer.  An import of a
subpackage not in its row, or a cycle between subpackages, fails the test
with the offending import.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "ivr"

#: Each layer and the layers it may import, lowest first.
MAY_IMPORT = {
    "flow": set(),
    "engine": {"flow"},
    "providers": {"engine", "flow"},
    "store": {"flow"},
    "lookups": {"engine", "flow"},
    "reports": {"store", "flow"},
    "server": {"reports", "lookups", "store", "providers", "engine", "flow"},
    "sim": {"server", "reports", "lookups", "store", "providers", "engine", "flow"},
}
#: Modules directly in ``ivr`` that every layer may use.
SHARED_HELPERS = {"phone", "http_errors", "i18n", "click_i18n"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path):
    """(line, imported module) for every ``ivr`` import in ``path``,
    relative ones resolved; ``from pkg import name`` counts as ``pkg.name``
    (a submodule, or a name of ``pkg``: the layer is the same)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            for alias in node.names:
                yield node.lineno, f"{module}.{alias.name}"


def layer_of(module: str) -> str | None:
    """The layer of ``ivr.<layer>...``; None outside ``ivr`` or directly in it."""
    parts = module.split(".")
    if parts[0] != "ivr" or len(parts) < 2 or parts[1] in SHARED_HELPERS:
        return None
    return parts[1] if parts[1] in MAY_IMPORT else f"unknown:{parts[1]}"


def layer_imports():
    """(importing file, line, from layer, imported module, to layer) for
    every import from one layer into another."""
    for path in sorted(PACKAGE.rglob("*.py")):
        here = layer_of(module_name(path))
        for line, module in imports_of(path):
            there = layer_of(module)
            if here and there and there != here:
                yield path.relative_to(ROOT), line, here, module, there


def test_the_table_names_every_subpackage_of_ivr():
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert folders == set(MAY_IMPORT)


def test_ivr_holds_only_its_front_door_and_the_shared_helpers():
    modules = {p.stem for p in PACKAGE.glob("*.py")}
    assert modules <= {"__init__"} | SHARED_HELPERS


def test_the_shared_helpers_import_no_layer():
    for helper in SHARED_HELPERS:
        path = PACKAGE / f"{helper}.py"
        assert [m for _, m in imports_of(path) if layer_of(m)] == []


def test_no_layer_imports_a_layer_above_it():
    upward = [f"{path}:{line}: {here} imports {module} ({there} is not below {here})"
              for path, line, here, module, there in layer_imports()
              if there not in MAY_IMPORT.get(here, set())]
    assert upward == [], "upward imports:\n" + "\n".join(upward)


def test_the_layers_import_each_other_without_a_cycle():
    graph: dict[str, set[str]] = {}
    where: dict[tuple[str, str], str] = {}
    for path, line, here, module, there in layer_imports():
        graph.setdefault(here, set()).add(there)
        where.setdefault((here, there), f"{path}:{line}: imports {module}")
    cycles = [_describe(cycle, where) for cycle in _cycles(graph)]
    assert cycles == [], "cycles between subpackages:\n" + "\n".join(cycles)


def _cycles(graph: dict[str, set[str]]):
    """Each cycle of ``graph`` once, as a list of nodes (depth-first)."""
    seen = set()
    for start in sorted(graph):
        stack = [(start, [start])]
        while stack:
            node, path = stack.pop()
            for nxt in sorted(graph.get(node, ())):
                if nxt == start:
                    key = frozenset(path)
                    if key not in seen:
                        seen.add(key)
                        yield path
                elif nxt not in path and nxt > start:
                    stack.append((nxt, path + [nxt]))


def _describe(cycle: list[str], where: dict) -> str:
    arrows = zip(cycle, cycle[1:] + cycle[:1])
    return " -> ".join(cycle + cycle[:1]) + "".join(
        f"\n    {where[(a, b)]}" for a, b in arrows)
