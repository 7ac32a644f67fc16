"""Generate student notebooks from solution notebooks, deterministically.

``solutions/NN_slug.ipynb`` is the single source of lesson NN. :func:`release` rewrites
``notebooks/NN_slug.ipynb`` from it (stubs instead of solutions, no outputs) and normalises the
solution's own metadata; :func:`stale` lists what :func:`release` would change, for CI.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbformat import NotebookNode

from ..notebook_format import MarkerError, lesson_notebooks, strip_code, strip_markdown, write_exercise, write_lesson
from .normalize import clear_outputs, normalize_metadata

__all__ = [
    "ROOT",
    "SOLUTIONS_DIR",
    "NOTEBOOKS_DIR",
    "LessonFile",
    "lesson_files",
    "student_notebook",
    "solution_notebook",
    "render",
    "release",
    "stale",
]

ROOT = Path(__file__).resolve().parents[2]
SOLUTIONS_DIR = ROOT / "solutions"
NOTEBOOKS_DIR = ROOT / "notebooks"


@dataclass(frozen=True)
class LessonFile:
    """A solution notebook and the student notebook generated from it."""

    lesson: int
    slug: str
    solution: Path
    student: Path


def lesson_files(solutions_dir: Path = SOLUTIONS_DIR, notebooks_dir: Path = NOTEBOOKS_DIR) -> list[LessonFile]:
    """Every ``NN_slug.ipynb`` in ``solutions_dir``, in lesson order (other files are ignored)."""
    return [
        LessonFile(name.lesson, name.slug, path, Path(notebooks_dir) / path.name)
        for name, path in lesson_notebooks(solutions_dir)
    ]


def render(nb: NotebookNode) -> str:
    """The exact text a notebook is stored as (one place, so every writer agrees byte for byte)."""
    text = nbformat.writes(nb, version=4)
    return text if text.endswith("\n") else text + "\n"


def solution_notebook(nb: NotebookNode, lesson: LessonFile) -> NotebookNode:
    """A normalised copy of a solution notebook (outputs kept), exercise cells stamped with their id."""
    out = normalize_metadata(copy.deepcopy(nb))
    # The grader recognises a (renamed) submission by this block.
    write_lesson(out, lesson.lesson, lesson.slug, "solution")
    for index, cell in enumerate(out.cells):
        if cell.cell_type != "code":
            continue
        _, blocks = strip_code(cell.source, f"{lesson.solution.name}, cell {index}")
        # The first block's id names the cell; the grader maps submitted cells back by it.
        write_exercise(cell, blocks[0].exercise if blocks else None)
    return out


def student_notebook(nb: NotebookNode, lesson: LessonFile) -> NotebookNode:
    """The student's version of a (normalised) solution notebook.

    Solution blocks become ``raise NotImplementedError`` stubs, solution-only markdown is removed
    (a markdown cell left empty is dropped), outputs and execution counts are cleared.
    """
    out = solution_notebook(nb, lesson)
    write_lesson(out, lesson.lesson, lesson.slug, "student")
    cells = []
    for index, cell in enumerate(out.cells):
        where = f"{lesson.solution.name}, cell {index}"
        if cell.cell_type == "code":
            cell.source, _ = strip_code(cell.source, where)
        elif cell.cell_type == "markdown":
            stripped = strip_markdown(cell.source, where)
            if not stripped.strip() and cell.source.strip():
                continue
            cell.source = stripped
        cells.append(cell)
    out.cells = cells
    return clear_outputs(out)


def _read(path: Path) -> NotebookNode:
    return nbformat.read(str(path), as_version=4)


def _expected(lesson: LessonFile) -> tuple[str, str]:
    """(solution text, student text) as release writes them."""
    nb = _read(lesson.solution)
    return render(solution_notebook(nb, lesson)), render(student_notebook(nb, lesson))


def _current(path: Path) -> str | None:
    return path.read_text(encoding="utf-8") if path.exists() else None


def release(solutions_dir: Path = SOLUTIONS_DIR, notebooks_dir: Path = NOTEBOOKS_DIR) -> list[Path]:
    """Write every student notebook and normalise every solution; return the files that changed.

    Files whose content is already right are not touched (no mtime churn, no git noise). Marker
    errors in any notebook abort before anything is written.
    """
    lessons = lesson_files(solutions_dir, notebooks_dir)
    planned = [(lesson, *_expected(lesson)) for lesson in lessons]
    changed: list[Path] = []
    Path(notebooks_dir).mkdir(parents=True, exist_ok=True)
    for lesson, solution_text, student_text in planned:
        for path, text in ((lesson.solution, solution_text), (lesson.student, student_text)):
            if _current(path) != text:
                path.write_text(text, encoding="utf-8")
                changed.append(path)
    return changed


def stale(solutions_dir: Path = SOLUTIONS_DIR, notebooks_dir: Path = NOTEBOOKS_DIR) -> list[str]:
    """Human-readable problems that ``release`` would fix (empty when everything is up to date).

    Covers student notebooks that are missing or differ from their source, solutions whose
    metadata is not normalised, and notebooks in ``notebooks_dir`` with no source at all.
    """
    problems: list[str] = []
    lessons = lesson_files(solutions_dir, notebooks_dir)
    for lesson in lessons:
        try:
            solution_text, student_text = _expected(lesson)
        except MarkerError as exc:
            problems.append(f"{lesson.solution.name}: {exc}")
            continue
        if _current(lesson.solution) != solution_text:
            problems.append(f"solutions/{lesson.solution.name}: metadata not normalised")
        current = _current(lesson.student)
        if current is None:
            problems.append(f"notebooks/{lesson.student.name}: missing")
        elif current != student_text:
            problems.append(f"notebooks/{lesson.student.name}: out of date with solutions/{lesson.solution.name}")
    sources = {lesson.student.name for lesson in lessons}
    for path in sorted(Path(notebooks_dir).glob("*.ipynb")):
        if path.name not in sources:
            problems.append(f"notebooks/{path.name}: no source in solutions/ (generated notebooks only)")
    return problems
