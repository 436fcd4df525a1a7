"""The package's modules import one another without a circle, and each imports on its own.

The graph is read from the source (every ``import`` statement, those inside functions too: a
lazy import hides a circle from the interpreter, not from a reader). An edge goes to the module
named, not to the packages above it, as Python resolves ``from a.b import c`` to ``a.b.c`` when
that is a module and to ``a.b`` otherwise.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "mape_unlearn"


def module_files(src: Path = SRC, package: str = PACKAGE) -> dict[str, Path]:
    """Every module of ``package`` under ``src``, by dotted name (a package by its own)."""
    modules = {}
    for path in sorted((src / package).rglob("*.py")):
        parts = path.relative_to(src).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    return modules


def _targets(node: ast.AST, module: str, is_package: bool, modules: Iterable[str]) -> set[str]:
    """The project modules an import statement names (relative imports resolved): for
    ``from a.b import c``, ``a.b.c`` when that is a module, else ``a.b``."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names} & set(modules)
    if not isinstance(node, ast.ImportFrom):
        return set()
    base = node.module or ""
    if node.level:
        anchor = module.split(".")
        anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
        base = ".".join([*anchor, base] if base else anchor)
    named = {f"{base}.{alias.name}" for alias in node.names}
    return {name if name in modules else base for name in named} & set(modules)


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Project module -> the project modules it imports."""
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), str(path))
        is_package = path.name == "__init__.py"
        targets = (_targets(node, name, is_package, modules) for node in ast.walk(tree))
        graph[name] = set().union(*targets) - {name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One circle through each strongly connected group of modules (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for target in sorted(graph.get(module, ())):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            group = []
            while not group or group[-1] != module:
                group.append(stack.pop())
            if len(group) > 1:
                found.append(sorted(group))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return found


def test_the_walk_finds_a_circle_it_is_shown(tmp_path: Path) -> None:
    """The walk itself: a lazy import closing a circle counts, a package's own import does not."""
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("from pkg.sub.b import B\n")
    (package / "a.py").write_text("from pkg.sub import b\n")
    (package / "sub" / "b.py").write_text("B = 1\ndef f():\n    from pkg import a\n")
    (package / "c.py").write_text("from . import a\nfrom .sub.b import B\n")
    graph = import_graph(module_files(tmp_path, "pkg"))
    assert graph["pkg.c"] == {"pkg.a", "pkg.sub.b"}
    assert cycles(graph) == [["pkg.a", "pkg.sub.b"]]


def test_the_package_has_no_import_circle() -> None:
    graph = import_graph(module_files())
    assert len(graph) > 50  # the walk saw the package
    assert cycles(graph) == []


def test_every_module_imports_in_a_fresh_interpreter() -> None:
    """Settings first, as Kedro imports it, then every other module of the package."""
    names = ["mape_unlearn.settings", *sorted(module_files())]
    code = "import importlib\n" + "".join(f"importlib.import_module({n!r})\n" for n in names)
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
