"""The reference shortcut scores 0 through ``make grade`` (issue 27, class 1).

A student who binds the library's own answer to the exercise's name (an import, an alias, a
subclass with the exercise's interface) handed in through the grader gets 0 for that exercise,
while the lesson's other exercises are graded as usual (their stubs: not attempted).
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from course_utils.grading.__main__ import main

ROOT = Path(__file__).resolve().parents[1]

SHORTCUTS = {
    "05_idempotency_retries": {
        "5.1": ("def is_retryable", "from course_utils.resilience import is_retryable\n"),
        "5.3": (
            "class CircuitBreaker",
            "import course_utils.resilience\n\nCircuitBreaker = course_utils.resilience.CircuitBreaker\n",
        ),
        "5.4": (
            "async def idempotent_call",
            "from course_utils.resilience import Idempotent, IdempotencyStore\n\n_IDEM = Idempotent(IdempotencyStore())\n\n\n"
            "async def idempotent_call(cache, key, body, generate):\n    return await _IDEM.acall(key, body, generate)\n",
        ),
    },
    "06_cost_optimization": {
        "6.2": ("def cache_key", "from course_utils.cost import cache_key\n"),
        "6.3": ("def compress", "import course_utils.cost as cost_lib\n\ncompress = cost_lib.compress\n"),
        "6.5": (
            "class SpendGuard",
            "from course_utils.cost import SpendGuard as _LibraryGuard\n\n\nclass SpendGuard(_LibraryGuard):\n"
            "    async def call(self, client, body):\n        return await self.create(client, **body)\n",
        ),
    },
}


def _with_shortcuts(lesson: str, folder: Path) -> Path:
    notebook = nbformat.read(str(ROOT / "notebooks" / f"{lesson}.ipynb"), as_version=4)
    replaced = set()
    for cell in notebook.cells:
        for exercise, (stub_starts, shortcut) in SHORTCUTS[lesson].items():
            if cell.cell_type == "code" and stub_starts in cell.source and "check(" not in cell.source:
                cell.source = shortcut
                replaced.add(exercise)
    assert replaced == set(SHORTCUTS[lesson]), f"stub cells not found: {set(SHORTCUTS[lesson]) - replaced}"
    path = folder / f"{lesson}-shortcut.ipynb"
    nbformat.write(notebook, str(path))
    return path


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """Both lessons' shortcut notebooks handed in together and graded in one run of the grader;
    results.json's submissions by name."""
    folder = tmp_path_factory.mktemp("subs")
    for lesson in SHORTCUTS:
        _with_shortcuts(lesson, folder)
    assert main([str(folder), "--quiet", "--timeout-per-notebook", "600"]) == 0
    results = json.loads((folder / "graded" / "results.json").read_text())
    return {s["name"]: s for s in results["submissions"]}


@pytest.mark.notebooks
@pytest.mark.parametrize("lesson", list(SHORTCUTS))
def test_the_reference_shortcut_scores_zero_through_the_grader(graded: dict[str, dict], lesson: str) -> None:
    submission = graded[f"{lesson}-shortcut"]
    by_id = {e["exercise"]: e for e in submission["exercises"]}
    for exercise in SHORTCUTS[lesson]:
        graded_exercise = by_id[exercise]
        assert graded_exercise["points"] == 0, json.dumps(graded_exercise, indent=1)[:2000]
        assert graded_exercise["status"] == "failed", json.dumps(graded_exercise, indent=1)[:2000]
    assert submission["total"] == 0
