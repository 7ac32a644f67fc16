"""Restart & Run All for solution notebooks, so their stored outputs come from a clean run."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Iterator

import nbformat
from nbclient import NotebookClient

from .generate import lesson_files, render, solution_notebook

__all__ = ["execute_solutions"]


def execute_solutions(
    solutions_dir: Path, names: list[str] | None = None, *, timeout: int = 120
) -> Iterator[tuple[Path, float]]:
    """Execute the selected solution notebooks in place with a fresh ``python3`` kernel.

    ``names`` selects by file name or lesson number; empty means all. Stops at the first error
    (nbclient raises ``CellExecutionError``), leaving that notebook unchanged on disk.
    """
    wanted = set(names or [])
    for lesson in lesson_files(solutions_dir):
        if wanted and not (
            {lesson.solution.name, lesson.solution.stem, str(lesson.lesson), f"{lesson.lesson:02d}"} & wanted
        ):
            continue
        nb = nbformat.read(str(lesson.solution), as_version=4)
        started = time.perf_counter()
        NotebookClient(
            nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(lesson.solution.parent)}}
        ).execute()
        seconds = time.perf_counter() - started
        lesson.solution.write_text(render(solution_notebook(nb, lesson)), encoding="utf-8")
        yield lesson.solution, seconds
