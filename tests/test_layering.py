"""The lesson order is the dependency order: a lesson package imports only earlier lessons and the foundation.

Lesson 03's dispatcher and lesson 04's poller once imported lesson 05's retry policy; the shared
primitives now live in the foundation (``course_utils.retries``), and this test keeps it so.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "course_utils"
LESSON_OF = {
    "context": 1,
    "streaming": 2,
    "concurrency": 3,
    "batch": 4,
    "resilience": 5,
    "cost": 6,
    "tenancy": 7,
    "architecture": 8,
}


def imported_packages(path: Path, source: str | None = None) -> set[str]:
    """The top-level ``course_utils`` subpackages the module at ``path`` imports (absolute or relative)."""
    tree = ast.parse(path.read_text() if source is None else source, filename=str(path))
    package_parts = path.relative_to(ROOT).parts[:-1]  # e.g. ("concurrency",)
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(package_parts[: len(package_parts) - (node.level - 1)])
                target = base + (node.module.split(".") if node.module else [])
                if target:
                    found.add(target[0])
                else:  # "from .. import x": x are top-level modules or packages
                    found.update(alias.name for alias in node.names)
            elif node.module and node.module.startswith("course_utils."):
                found.add(node.module.split(".")[1])
            elif node.module == "course_utils":
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("course_utils."):
                    found.add(alias.name.split(".")[1])
    return found


@pytest.mark.parametrize("package", sorted(LESSON_OF, key=LESSON_OF.get))
def test_a_lesson_package_imports_no_later_lesson(package):
    later = {name for name, n in LESSON_OF.items() if n > LESSON_OF[package]}
    offenders = {
        str(path.relative_to(ROOT)): sorted(imported_packages(path) & later)
        for path in sorted((ROOT / package).rglob("*.py"))
        if imported_packages(path) & later
    }
    assert offenders == {}, f"lesson {LESSON_OF[package]:02d} ({package}) imports later lessons: {offenders}"


def test_the_foundation_imports_no_lesson():
    lessons = set(LESSON_OF)
    foundation = [p for p in ROOT.glob("*.py")] + list((ROOT / "retries").rglob("*.py"))
    foundation += list((ROOT / "mock_provider").rglob("*.py"))
    offenders = {str(p.relative_to(ROOT)): sorted(imported_packages(p) & lessons) for p in foundation}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_parser_sees_the_imports_it_exists_for():
    """The tests above could pass by not seeing imports: the parser finds each form."""
    module = ROOT / "concurrency" / "dispatcher.py"
    source = (
        "from ..resilience.policy import RetryPolicy\n"
        "from .. import tenancy\n"
        "from .buckets import Demand\n"
        "import course_utils.cost.pricing\n"
        "from course_utils.architecture import x\n"
    )
    assert imported_packages(module, source) == {"resilience", "tenancy", "concurrency", "cost", "architecture"}


def _module_graph() -> dict[str, set[str]]:
    """course_utils module -> the course_utils modules it imports anywhere (TYPE_CHECKING included)."""
    modules: dict[str, Path] = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package[: len(package) - (node.level - 1)]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                for alias in node.names:
                    full = f"{target}.{alias.name}"
                    deps.add(full if full in modules else target)
            elif isinstance(node, ast.Import):
                deps.update(alias.name for alias in node.names)
        graph[name] = {d for d in deps if d in modules and d != name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_circular_imports():
    """Handlers depend on the simulator's core, never the reverse; checks.framework on nothing in checks."""
    assert _cycles(_module_graph()) == []


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_checks_framework_depends_on_nothing_in_checks():
    """Lesson authors import it; the engine, the report and the runner import it, not the reverse."""
    deps = _module_graph()["course_utils.checks.framework"]
    assert {d for d in deps if d.startswith("course_utils.checks")} == set()
