"""The code's shape, checked from its source with ``ast`` (nothing is imported):

* no import circle among the modules of ``app/``, ``stripe_sandbox/``, ``github_sandbox/``,
  ``bench/`` and ``wsgi.py``, counting every
  import: top-level, inside functions and under ``if TYPE_CHECKING:`` (a cycle hidden in a
  function is still a cycle);
* every module of ``app/``, ``stripe_sandbox/`` and ``github_sandbox/`` under ~400 lines and
  every function under ~60;
* the product never imports the GitHub stand-in (development and tests start it).
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("app", "stripe_sandbox", "github_sandbox", "bench")
MODULES = ("wsgi.py",)
# "about 400 / about 60": a little slack, so the check fails on growth, not on one more line
MAX_MODULE_LINES = 420
MAX_FUNCTION_LINES = 60


def module_files() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the checked packages."""
    found: dict[str, Path] = {path[:-3]: ROOT / path for path in MODULES}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def imported_modules(name: str, path: Path, known: set[str]) -> set[str]:
    """The checked modules that ``name`` imports anywhere in its source."""
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                out.add(candidate if candidate in known else base)
    return {m for m in out if m in known and m != name}


@functools.cache  # read once per run: the parametrized rules would parse every module each
def import_graph() -> dict[str, set[str]]:
    files = module_files()
    known = set(files)
    return {name: imported_modules(name, path, known) for name, path in files.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
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
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycles() -> None:
    assert cycles(import_graph()) == []


def test_the_check_sees_a_cycle_hidden_in_a_function(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("import pkg.b\n")
    (tmp_path / "b.py").write_text("def f():\n    from . import a\n")
    known = {"pkg.a", "pkg.b"}
    graph = {
        "pkg.a": imported_modules("pkg.a", tmp_path / "a.py", known),
        "pkg.b": imported_modules("pkg.b", tmp_path / "b.py", known),
    }
    assert cycles(graph) == [["pkg.a", "pkg.b"]]


def test_the_sandbox_engine_does_not_import_its_routes() -> None:
    graph = import_graph()
    engine = [m for m in graph if m.startswith("stripe_sandbox.billing")]
    assert engine
    for module in engine:
        upward = {
            m
            for m in graph[module]
            if m.startswith(("stripe_sandbox.resources", "stripe_sandbox.hosted"))
            or m in ("stripe_sandbox.api", "stripe_sandbox.sandbox")
        }
        assert not upward, f"{module} imports {upward}"


def test_the_app_never_imports_the_github_stand_in() -> None:
    graph = import_graph()
    offenders = {
        module: sorted(m for m in imported if m.startswith("github_sandbox"))
        for module, imported in graph.items()
        if module.startswith("app") or module == "wsgi"
    }
    assert not {module: found for module, found in offenders.items() if found}
    assert any(m.startswith("github_sandbox") for m in graph)  # the check sees the package


@pytest.mark.parametrize(
    "name",
    sorted(m for m in module_files() if m.startswith(("app", "stripe_sandbox", "github_sandbox"))),
)
def test_module_and_function_sizes(name: str) -> None:
    path = module_files()[name]
    source = path.read_text()
    lines = len(source.splitlines())
    assert lines <= MAX_MODULE_LINES, f"{name}: {lines} lines (split it by what it does)"
    long = [
        f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert not long, f"{name}: functions over {MAX_FUNCTION_LINES} lines: {long}"
