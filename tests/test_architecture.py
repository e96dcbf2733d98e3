"""The shape of the code (issue 10): import direction, no import cycles, short functions, no fmt markers.

Read from the source with ``ast`` alone, so these tests judge the tree even when it does not
import. An *import* here is an ``import`` or ``from ... import`` statement that runs: at module
level or inside a function or method (a lazy import is still an edge of the graph). Imports
under ``if TYPE_CHECKING:`` (or ``typing.TYPE_CHECKING``) are for the type checker only and
do not count; their ``else:`` branch does. Imports by computed name (``importlib`` in the
executor registry and in ``tea``'s lazy attributes) are not visible to ``ast`` and are not
judged. ``from pkg import name`` is an import of ``pkg.name`` when that is a module of ours,
else of ``pkg``; a package's ``__init__.py`` is the module ``pkg``.
"""

from __future__ import annotations

import ast
import tokenize
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from itertools import pairwise
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("tea", "executors", "remote")
MAX_FUNCTION_LINES = 80
MAX_WALK_LINES = 60


@dataclass(frozen=True)
class Import:
    """One import statement of one of our modules, resolved to the module it loads."""

    source: str
    target: str
    path: str
    line: int
    function: str | None

    def where(self) -> str:
        inside = f" (inside {self.function})" if self.function else ""
        return f"{self.path}:{self.line}: {self.source} imports {self.target}{inside}"


def fail_if(problems: list[str], title: str) -> None:
    """Fail with ``title`` and one problem per line (no repr of the list)."""
    if problems:
        pytest.fail(title + "\n".join(problems), pytrace=False)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def modules() -> dict[str, Path]:
    """Every module of the three packages, by dotted name."""
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "__pycache__" not in path.parts:
                found[module_name(path)] = path
    return found


@cache
def parsed(name: str) -> ast.Module:
    path = modules()[name]
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def is_type_checking(test: ast.expr) -> bool:
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


def ours(dotted: str) -> str | None:
    """The most specific module of ours that ``dotted`` names, or None for a foreign one."""
    parts = dotted.split(".")
    if parts[0] not in PACKAGES:
        return None
    while len(parts) > 1 and ".".join(parts) not in modules():
        parts.pop()
    return ".".join(parts)


def base_of(node: ast.ImportFrom, source: str) -> str:
    """The absolute module a ``from`` import reads from (relative imports resolved)."""
    if not node.level:
        return node.module or ""
    package = source.split(".")
    if modules()[source].name != "__init__.py":
        package.pop()
    package = package[: len(package) - (node.level - 1)]
    return ".".join([*package, node.module] if node.module else package)


def targets(node: ast.Import | ast.ImportFrom, source: str) -> Iterator[str]:
    if isinstance(node, ast.Import):
        for alias in node.names:
            yield alias.name
        return
    base = base_of(node, source)
    for alias in node.names:
        submodule = f"{base}.{alias.name}"
        yield submodule if submodule in modules() else base


class _Collector(ast.NodeVisitor):
    """Gathers the imports of one module, skipping type-checking-only blocks."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.path = str(modules()[source].relative_to(ROOT))
        self.functions: list[str] = []
        self.found: list[Import] = []

    def visit_If(self, node: ast.If) -> None:
        if is_type_checking(node.test):
            for statement in node.orelse:
                self.visit(statement)
        else:
            self.generic_visit(node)

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.functions.append(node.name)
        self.generic_visit(node)
        self.functions.pop()

    visit_FunctionDef = _function
    visit_AsyncFunctionDef = _function

    def _import(self, node: ast.Import | ast.ImportFrom) -> None:
        function = ".".join(self.functions) or None
        for dotted in targets(node, self.source):
            target = ours(dotted)
            if target is not None:
                self.found.append(Import(self.source, target, self.path, node.lineno, function))

    visit_Import = _import
    visit_ImportFrom = _import


@cache
def imports() -> tuple[Import, ...]:
    """Every run-time import among our modules, in file and line order."""
    found: list[Import] = []
    for name in modules():
        collector = _Collector(name)
        collector.visit(parsed(name))
        found += collector.found
    return tuple(found)


def strongly_connected(edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm: the components with more than one module, each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return sorted(components)


def shortest_cycle(start: str, members: set[str], edges: dict[str, set[str]]) -> list[str]:
    """A shortest path start -> ... -> start inside one strongly connected component."""
    came_from: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for nxt in sorted(edges[node] & members):
            if nxt == start:
                path = [node]
                while path[-1] != start:
                    path.append(came_from[path[-1]])
                return [*reversed(path), start]
            if nxt not in came_from:
                came_from[nxt] = node
                queue.append(nxt)
    raise AssertionError(f"{start} is not on a cycle")


def describe_cycle(component: list[str], edges: dict[str, set[str]]) -> str:
    cycle = shortest_cycle(component[0], set(component), edges)
    lines = [f"cycle among {len(component)} modules: {', '.join(component)}; for example:"]
    for source, target in pairwise(cycle):
        first = next(i for i in imports() if i.source == source and i.target == target)
        lines.append(f"    {first.where()}")
    return "\n".join(lines)


def test_no_import_cycle_among_our_modules() -> None:
    """No module of tea/, executors/ or remote/ reaches itself through imports."""
    edges: dict[str, set[str]] = {name: set() for name in modules()}
    for imp in imports():
        if imp.target in modules() and imp.target != imp.source:
            edges[imp.source].add(imp.target)
    cycles = [describe_cycle(component, edges) for component in strongly_connected(edges)]
    fail_if(cycles, "import cycles:\n")


def in_package(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


CONCRETE_BACKENDS = ("remote", "executors.thread", "executors.process", "executors.dask")
ENGINE_ENTRY_POINTS = ("tea.cli", "tea._cli_hosts", "tea._entry")


def test_engine_never_imports_a_concrete_backend() -> None:
    """tea/, outside its CLI entry points, reaches backends only through the executors registry."""
    bad = [
        imp.where()
        for imp in imports()
        if in_package(imp.source, "tea")
        and imp.source not in ENGINE_ENTRY_POINTS
        and any(in_package(imp.target, backend) for backend in CONCRETE_BACKENDS)
    ]
    fail_if(bad, "the engine imports a concrete backend:\n")


def test_executors_import_only_tea_errors() -> None:
    """executors/ uses nothing of tea but tea.errors."""
    bad = [
        imp.where()
        for imp in imports()
        if in_package(imp.source, "executors") and in_package(imp.target, "tea") and imp.target != "tea.errors"
    ]
    fail_if(bad, "executors/ imports tea beyond tea.errors:\n")


# The frozen binary's main script sits above everything (like a ``__main__``): it
# dispatches to the worker or to the CLI, so it may name ``tea.cli``.
_MAIN_SCRIPTS = frozenset({"remote._entry"})


def test_remote_imports_only_public_tea_errors_and_executors() -> None:
    """remote/ uses tea's public top level (the package itself), tea.errors and executors only."""
    bad = [
        imp.where()
        for imp in imports()
        if in_package(imp.source, "remote")
        and imp.source not in _MAIN_SCRIPTS
        and in_package(imp.target, "tea")
        and imp.target not in ("tea", "tea.errors")
    ]
    fail_if(bad, "remote/ imports tea internals:\n")


def functions(name: str) -> Iterator[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    """Every function and method of a module (nested ones too), with its qualified name."""

    def walk(node: ast.AST, prefix: str) -> Iterator[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                yield prefix + child.name, child
                yield from walk(child, f"{prefix}{child.name}.")
            elif isinstance(child, ast.ClassDef):
                yield from walk(child, f"{prefix}{child.name}.")
            else:
                yield from walk(child, prefix)

    return walk(parsed(name), "")


def length(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines from ``def`` to the function's last line (decorators not counted)."""
    assert node.end_lineno is not None
    return node.end_lineno - node.lineno + 1


def test_no_function_over_80_lines() -> None:
    """No function or method of the three packages is longer than 80 lines."""
    bad = [
        f"{modules()[name].relative_to(ROOT)}:{node.lineno}: {qualname} is {length(node)} lines"
        for name in modules()
        for qualname, node in functions(name)
        if length(node) > MAX_FUNCTION_LINES
    ]
    fail_if(bad, f"functions over {MAX_FUNCTION_LINES} lines:\n")


def test_runner_walk_is_short() -> None:
    """The runner's main loop, ``walk`` in tea/runner.py, is at most 60 lines."""
    walks = [(qualname, node) for qualname, node in functions("tea.runner") if node.name == "walk"]
    assert walks, "tea/runner.py defines no function named walk"
    bad = [
        f"tea/runner.py:{node.lineno}: {qualname} is {length(node)} lines"
        for qualname, node in walks
        if length(node) > MAX_WALK_LINES
    ]
    fail_if(bad, f"walk over {MAX_WALK_LINES} lines:\n")


FORMATTER_MARKERS = ("fmt: skip", "fmt: off", "fmt: on")
SOURCE_DIRS = (*PACKAGES, "tests", "benchmarks")


def test_no_formatter_markers() -> None:
    """No ``# fmt: skip`` / ``off`` / ``on`` comment: ruff format is not adopted, so they mean nothing."""
    bad = []
    for top in SOURCE_DIRS:
        for path in sorted((ROOT / top).rglob("*.py")):
            with tokenize.open(path) as source:
                for token in tokenize.generate_tokens(source.readline):
                    if token.type == tokenize.COMMENT and any(m in token.string for m in FORMATTER_MARKERS):
                        bad.append(f"{path.relative_to(ROOT)}:{token.start[0]}: {token.string}")
    fail_if(bad, "formatter markers:\n")
