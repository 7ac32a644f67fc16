"""Which lesson a submission belongs to, and the shape of that lesson's official notebook.

The official notebook (``solutions/NN_slug.ipynb``) is the single source of truth for grading:
its exercise cells are the ones holding ``### BEGIN SOLUTION``; every other cell (check cells,
the parameters cell, prose) is official and never taken from a student.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import nbformat
from nbformat import NotebookNode

from ..notebook_format import (
    LESSON_PREFIX,
    exercise_id_in_source,
    has_solution_block,
    lesson_notebooks,
    read_exercise,
    read_lesson,
)

__all__ = [
    "OfficialCell",
    "LessonStructure",
    "load_structure",
    "find_solution",
    "identify_lesson",
    "check_ids_in_source",
    "is_check_source",
]

CHECK_RE = re.compile(r"\bcheck\(\s*[rRuU]?[\"']([^\"']+)[\"']")


def check_ids_in_source(source: str) -> list[str]:
    """Exercise ids of the ``check("id", ...)`` calls in ``source``."""
    return CHECK_RE.findall(source)


def is_check_source(source: str) -> bool:
    return bool(re.search(r"\bcheck\s*\(", source))


@dataclass
class OfficialCell:
    """One cell of the official notebook, classified."""

    index: int
    kind: str  # "exercise" | "check" | "parameters" | "other"
    exercise: str | None = None  # exercise id for exercise/check cells
    part: int = 0  # k-th exercise cell of the same exercise id


@dataclass
class LessonStructure:
    """The official notebook of a lesson and where its exercises and checks are."""

    lesson: int
    path: Path
    nb: NotebookNode
    cells: list[OfficialCell] = field(default_factory=list)

    @property
    def exercise_cells(self) -> list[OfficialCell]:
        return [c for c in self.cells if c.kind == "exercise"]

    @property
    def exercise_ids(self) -> list[str]:
        """Exercise ids in notebook order (from solution markers and check calls)."""
        seen: dict[str, None] = {}
        for c in self.cells:
            if c.exercise and c.kind in ("exercise", "check"):
                seen.setdefault(c.exercise, None)
        return list(seen)

    def exercise_of_cell(self, index: int) -> str | None:
        for c in self.cells:
            if c.index == index:
                return c.exercise
        return None


def load_structure(lesson: int, path: Path) -> LessonStructure:
    """Read an official notebook and classify its cells."""
    nb = nbformat.read(str(path), as_version=4)
    cells: list[OfficialCell] = []
    for i, cell in enumerate(nb.cells):
        src = cell.get("source", "")
        tags = cell.get("metadata", {}).get("tags", []) or []
        if has_solution_block(src):
            cells.append(OfficialCell(i, "exercise", read_exercise(cell) or exercise_id_in_source(src)))
        elif cell.cell_type == "code" and is_check_source(src):
            ids = check_ids_in_source(src)
            cells.append(OfficialCell(i, "check", ids[0] if ids else None))
        elif "parameters" in tags:
            cells.append(OfficialCell(i, "parameters"))
        else:
            cells.append(OfficialCell(i, "other"))
    # An exercise cell whose marker names no id belongs to the next check cell's exercise.
    for pos, c in enumerate(cells):
        if c.kind == "exercise" and not c.exercise:
            nxt = next((d for d in cells[pos + 1 :] if d.kind == "check" and d.exercise), None)
            c.exercise = nxt.exercise if nxt else f"cell{c.index}"
    counts: dict[str, int] = {}
    for c in cells:
        if c.kind == "exercise":
            c.part = counts.get(c.exercise or "", 0)
            counts[c.exercise or ""] = c.part + 1
    return LessonStructure(lesson, path, nb, cells)


def find_solution(lesson: int, solution_dirs: Iterable[Path]) -> Path | None:
    """The official notebook ``NN_slug.ipynb`` of ``lesson`` in the first directory that has one."""
    return available_lessons(solution_dirs).get(lesson)


def available_lessons(solution_dirs: Iterable[Path]) -> dict[int, Path]:
    """Every lesson number with an official notebook (first directory wins)."""
    found: dict[int, Path] = {}
    for d in solution_dirs:
        for name, path in lesson_notebooks(Path(d)):
            found.setdefault(name.lesson, path)
    return found


def _markdown_set(nb: NotebookNode | dict) -> set[str]:
    return {
        c.get("source", "").strip()
        for c in nb.get("cells", [])
        if c.get("cell_type") == "markdown" and len(c.get("source", "").strip()) > 20
    }


def identify_lesson(
    nb: NotebookNode | dict | None, filename: str, solution_dirs: Iterable[Path], forced: int | None = None
) -> tuple[int | None, str]:
    """Which lesson a submission is, and how that was decided.

    Order: ``--lesson``, the generator's notebook metadata, the filename prefix ``NN_``, and last
    the prose: the official notebook sharing most of its markdown cells with the submission
    (students rename files, but rarely rewrite the lesson's text).
    """
    if forced is not None:
        return forced, "--lesson"
    if nb is not None:
        lesson = read_lesson(nb)
        if lesson is not None:
            return lesson, "notebook metadata"
    m = LESSON_PREFIX.match(filename)
    if m:
        return int(m["lesson"]), f"filename prefix {m['lesson']}_"
    if nb is not None:
        mine = _markdown_set(nb)
        best, best_score = None, 0.0
        for lesson, path in available_lessons(solution_dirs).items():
            try:
                theirs = _markdown_set(nbformat.read(str(path), as_version=4))
            except Exception:
                continue
            if theirs:
                score = len(mine & theirs) / len(theirs)
                if score > best_score:
                    best, best_score = lesson, score
        if best is not None and best_score >= 0.5:
            return best, f"lesson text ({best_score:.0%} of markdown cells match)"
    return None, "no metadata, no NN_ filename prefix and no matching lesson text"
