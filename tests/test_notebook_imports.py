"""Notebooks import only what a package exports (issue 12): no reaching into a package's modules.

A lesson's notebook may import ``course_utils`` and its top-level packages and modules
(``course_utils.concurrency``, ``course_utils.progress``), and only names those list in
``__all__``. What a notebook needs is public, exported and documented; internals can then move.
"""

from __future__ import annotations

import ast
import importlib

import pytest

from _notebooks import ALL, params, read


def _imports(path):
    for cell in read(path).cells:
        if cell.cell_type != "code":
            continue
        source = "\n".join(line for line in cell.source.splitlines() if not line.lstrip().startswith(("%", "!")))
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("course_utils"):
                yield node.module, [alias.name for alias in node.names]
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("course_utils"):
                        yield alias.name, []


@pytest.mark.parametrize("path", params(ALL))
def test_notebook_imports_only_exported_names_of_packages(path):
    problems = []
    for module, names in _imports(path):
        if module.count(".") > 1:
            problems.append(f"{module}: a module inside a package; import from {'.'.join(module.split('.')[:2])}")
            continue
        exported = getattr(importlib.import_module(module), "__all__", None)
        for name in names:
            if exported is not None and name not in exported and not _is_submodule(module, name):
                problems.append(f"from {module} import {name}: not in {module}.__all__")
    assert not problems, problems


def _is_submodule(package: str, name: str) -> bool:
    try:
        importlib.import_module(f"{package}.{name}")
        return True
    except ImportError:
        return False
