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
    """pytest params named ``solutions/01_x.ipynb``. No notebooks is a failure, never a skip: a test
    that skips when the course is missing could never fail (issue 30)."""
    if not paths:  # an error at collection: the run is red
        raise RuntimeError("no notebooks found in solutions/ or notebooks/: the notebook tests cannot run")
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
