"""Shared helpers of the notebook tests: which notebooks exist and how to read their cells."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))
STUDENTS = sorted((ROOT / "notebooks").glob("*.ipynb"))
ALL = SOLUTIONS + STUDENTS


def params(paths: list[Path]) -> list:
    """pytest params named ``solutions/01_x.ipynb``; a single skipped param when there are none,
    so an empty course skips cleanly instead of erroring on an empty parametrization."""
    if not paths:
        return [pytest.param(None, marks=pytest.mark.skip(reason="no notebooks yet"), id="no-notebooks")]
    return [pytest.param(p, id=f"{p.parent.name}/{p.name}") for p in paths]


def read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(str(path), as_version=4)


def is_solution(path: Path) -> bool:
    return path.parent.name == "solutions"


def output_text(output: dict) -> str:
    """All text an output shows (stream text, every text-like MIME type, tracebacks)."""
    parts: list[str] = []
    if "text" in output:
        parts.append("".join(output["text"]))
    for mime, value in output.get("data", {}).items():
        if mime.startswith("text/") or mime.endswith("json"):
            parts.append(value if isinstance(value, str) else str(value))
    parts.extend(output.get("traceback", []))
    return "\n".join(parts)
