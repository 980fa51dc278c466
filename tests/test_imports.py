"""The house: no import circles among sweep's modules, and each part imports only the parts below it.

Every import statement counts, wherever it is: at module level, inside a function (the lazy imports that keep
torch out of bad-input checks) and under `if TYPE_CHECKING:`. A function-level import that closes a circle
still means a lower part reaches back into a higher one. An import names the module it names: `from sweep
import axes` is an edge to sweep.axes; `from sweep.report import build_report` to sweep.report (its
`__init__`). The parent package Python initialises first is not counted as an edge: sweep.report's
`__init__` imports its build module lazily, and counting it would make every report module a circle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import sweep

SRC = Path(sweep.__file__).resolve().parent.parent


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted((SRC / "sweep").rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imports(name: str, source: str, modules: dict[str, Path], *, is_package: bool = False) -> set[str]:
    """The sweep modules `name` imports anywhere in its source (the nearest enclosing module of a dotted name)."""
    package = name if is_package else name.rpartition(".")[0]
    named: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            named.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from . import x / from ..y import z
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                named.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
    found = set()
    for target in named:
        while target and target not in modules:
            target = target.rpartition(".")[0]
        if target and target != name:
            found.add(target)
    return found


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Each import circle as a path a -> b -> ... -> a (one per strongly connected group; Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [_path_through(graph, group) for group in groups]


def _path_through(graph: dict[str, set[str]], group: list[str]) -> list[str]:
    """One concrete circle inside a strongly connected group, for the failure message."""
    start, members = group[0], set(group)
    trail, seen = [start], {start}
    while True:
        nxt = sorted(graph[trail[-1]] & members)
        if start in nxt and len(trail) > 1:
            return [*trail, start]
        unseen = [n for n in nxt if n not in seen]
        if not unseen:
            return [*trail, "..."]
        trail.append(unseen[0])
        seen.add(unseen[0])


def test_the_circle_finder_sees_a_circle_closed_by_a_function_level_import():
    modules = {"sweep.cli.app": Path(), "sweep.running.runner": Path(), "sweep.report": Path(),
               "sweep.report.data": Path()}
    source = ("import os\nfrom sweep.running import runner\nfrom . import data\n\n"
              "def f():\n    from sweep.cli.app import EXIT\n    import sweep.report.data.x\n")
    assert _imports("sweep.report.probe", source, modules) == {"sweep.running.runner", "sweep.cli.app",
                                                                "sweep.report.data"}
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert _circles({"a": {"b"}, "b": set()}) == []


def test_sweep_modules_import_each_other_without_circles():
    modules = _modules()
    assert {"sweep.running.runner", "sweep.models.pipeline", "sweep.report.build"} <= set(modules)
    graph = _graph(modules)
    assert "sweep.models.checks" in graph["sweep.planning.plan"]  # sanity: the graph sees function-level imports
    circles = _circles(graph)
    assert not circles, "import circles: " + "; ".join(" -> ".join(c) for c in circles)


def _graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    return {name: _imports(name, path.read_text(encoding="utf-8"), modules, is_package=path.name == "__init__.py")
            for name, path in modules.items()}


# The parts, highest first: a part may import itself and the parts after it, never one before it
# (docs/architecture.md draws them). The entry points may import anything.
ENTRIES = {"sweep.__main__", "sweep.compare", "sweep.multirun", "sweep.report.__main__"}
PARTS = ("cli", "running", "planning", "report", "rundir", "models", "axes", "files", "prompts", "leaves")
LEAVES = {"sweep", "sweep.errors", "sweep.paths", "sweep.atomic", "sweep.naming", "sweep.resume", "sweep.safe_log"}


def _part(module: str) -> str:
    if module in LEAVES:
        return "leaves"
    part = module.split(".")[1]
    assert part in PARTS, f"{module} is in no part of the house: put it in one (tests/test_imports.py PARTS)"
    return part


def _climbs(graph: dict[str, set[str]]) -> list[str]:
    """Every import that reaches a part above the importer's own (`a -> b (planning -> running)`)."""
    bad = []
    for name, targets in sorted(graph.items()):
        if name in ENTRIES:
            continue
        for target in sorted(targets):
            if PARTS.index(_part(target)) < PARTS.index(_part(name)):
                bad.append(f"{name} -> {target} ({_part(name)} -> {_part(target)})")
    return bad


def test_the_part_checker_sees_an_import_that_climbs():
    graph = {"sweep.planning.grid": {"sweep.running.runner", "sweep.axes"}, "sweep.running.runner": set(),
             "sweep.axes": set(), "sweep.compare": {"sweep.cli.commands"}, "sweep.cli.commands": set()}
    assert _climbs(graph) == ["sweep.planning.grid -> sweep.running.runner (planning -> running)"]


def test_each_part_imports_only_the_parts_below_it():
    modules = _modules()
    assert len([m for m in modules if m.count(".") == 1 and not (SRC / "sweep" / m.split(".")[1]).is_dir()]) <= 10
    climbs = _climbs(_graph(modules))
    assert not climbs, "imports that climb: " + "; ".join(climbs)


def test_old_module_names_still_import_for_one_release():
    import importlib

    import sweep

    assert "sweep.runner" in sweep._MOVED
    for old, new in sweep._MOVED.items():
        assert importlib.import_module(old) is importlib.import_module(new), old
