"""The process-wide record of check results (what the grader exports) and failure counts (hints)."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

from .report import CheckResult

__all__ = ["record", "results", "export_results", "failures", "reset"]

_lock = threading.Lock()
_results: dict[str, CheckResult] = {}
_failures: dict[str, int] = {}


def record(result: CheckResult) -> None:
    """Keep ``result`` as the latest for its exercise; count it if it did not pass."""
    with _lock:
        _results[result.exercise] = result
        if result.status in ("failed", "error", "timeout"):
            _failures[result.exercise] = _failures.get(result.exercise, 0) + 1


def failures(exercise: str) -> int:
    """How many earlier checks of ``exercise`` in this kernel session did not pass."""
    with _lock:
        return _failures.get(exercise, 0)


def results() -> dict[str, dict[str, Any]]:
    """Exercise id -> the latest result as a plain dict (the grading contract), in first-checked order."""
    with _lock:
        return {exercise: result.to_dict() for exercise, result in _results.items()}


def export_results(path: str | os.PathLike[str]) -> Path:
    """Write :func:`results` as JSON to ``path`` (UTF-8, indented) and return the path."""
    target = Path(path)
    target.write_text(json.dumps(results(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return target


def reset() -> None:
    """Forget all results and failure counts (a fresh kernel session, or between tests)."""
    with _lock:
        _results.clear()
        _failures.clear()
