"""Spotting exercise cells that reach into the grading machinery.

Checks run in the same kernel as the student's code (as in nbgrader and otter-grader), so code in
an exercise cell *could* rewrite them. Restoring the official check cells stops the easy edits;
this scan stops the rest that matter in practice: an exercise cell that imports or touches the
checks, the grader, the interpreter's module table or frames, or hides code in ``exec``/``eval``,
is not run at all. The exercise scores zero with a reason that asks the instructor to look.
"""

from __future__ import annotations

import ast

__all__ = ["suspicious"]

_FORBIDDEN_MODULES = ("course_utils.checks", "course_utils.grading", "gc", "ctypes", "builtins", "importlib")
_FORBIDDEN_NAMES = {"__builtins__", "__import__", "exec", "eval", "compile", "globals", "check"}
_FORBIDDEN_ATTRS = {"__globals__", "__code__", "__closure__", "f_globals", "f_locals", "f_back", "modules"}


def _module_hit(name: str) -> bool:
    return any(name == m or name.startswith(m + ".") for m in _FORBIDDEN_MODULES)


def suspicious(source: str) -> str | None:
    """Why this exercise cell must not run, or None if it only does ordinary work."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None  # it will fail on its own, with its own error
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _module_hit(alias.name):
                    return f"imports {alias.name}"
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if _module_hit(module):
                return f"imports from {module}"
            if module == "course_utils" and any(a.name in ("checks", "grading") for a in node.names):
                return "imports course_utils.checks or course_utils.grading"
        elif isinstance(node, ast.Name) and node.id in _FORBIDDEN_NAMES:
            return f"uses {node.id}"
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name in _FORBIDDEN_NAMES:
            return f"defines {node.name}"
        elif isinstance(node, ast.alias) and (node.asname or "") in _FORBIDDEN_NAMES:
            return f"imports something as {node.asname}"
        elif isinstance(node, ast.Attribute):
            if node.attr in _FORBIDDEN_ATTRS:
                return f"touches .{node.attr}"
            if (
                node.attr in ("checks", "grading")
                and isinstance(node.value, ast.Name)
                and node.value.id == "course_utils"
            ):
                return f"touches course_utils.{node.attr}"
    return None
