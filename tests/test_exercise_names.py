"""Exercise names belong to the student (issue 27, classes 1 and 6), in every lesson.

* No import binds an exercise's name: the library's answer under the exercise's name would pass
  its check, or the stub would hide the import a demo needs.
* No demo cell uses an exercise's name, before or after the exercise: after "Run All" the name is
  the stub (``NotImplementedError``), then the student's answer, which need not have the library's
  interface (lesson 06's section 7 broke on exercise 6.5's ``SpendGuard`` both ways).

An exercise cell (one that defines an exercise name) may use earlier exercises' names: 5.2 retries
on the student's own ``is_retryable``.
"""

from __future__ import annotations

import ast
import re

import pytest

from _notebooks import ALL, params, read

_CHECK = re.compile(r"""\bcheck\(\s*["'](\d+\.\w+)["']\s*,\s*([A-Za-z_]\w*)""")


def _code_cells(path):
    for index, cell in enumerate(read(path).cells):
        if cell.cell_type == "code":
            source = "\n".join(line for line in cell.source.splitlines() if not line.lstrip().startswith(("%", "!")))
            yield index, source, ast.parse(source)


def _exercise_names(path) -> dict[str, str]:
    return {m.group(2): m.group(1) for _, source, _ in _code_cells(path) for m in _CHECK.finditer(source)}


def test_the_exercise_names_are_found():
    names = {name for path in ALL for name in _exercise_names(path)}
    assert {"is_retryable", "CircuitBreaker", "SpendGuard", "compress", "TenantBudget", "handle_event"} <= names


@pytest.mark.parametrize("path", params(ALL))
def test_no_import_binds_an_exercise_name(path):
    names = _exercise_names(path)
    bound = []
    for index, _, tree in _code_cells(path):
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for alias in node.names:
                    name = (alias.asname or alias.name).split(".")[0]
                    if name in names:
                        bound.append(f"cell {index} imports {name} (exercise {names[name]})")
    assert not bound, bound


@pytest.mark.parametrize("path", params(ALL))
def test_no_demo_cell_uses_an_exercise_name(path):
    names = _exercise_names(path)
    used = []
    for index, source, tree in _code_cells(path):
        defines = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
        if defines & set(names) or _CHECK.search(source):
            continue  # an exercise cell or a check cell
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and node.id in names:
                used.append(f"cell {index} uses {node.id} (exercise {names[node.id]})")
    assert not used, sorted(set(used))
