"""Rebuild the notebook to grade: the official notebook with the student's exercise cells in it.

Only exercise cells (cells holding ``### BEGIN SOLUTION`` in the official notebook) come from the
submission; check cells, the parameters cell and all other cells come from the official version,
so deleting or editing a check cell gains nothing. The setup cell and the final export cell are
the grader's plumbing, tagged so they are easy to tell apart in the executed notebook.

Official cells tagged ``demo`` (:data:`DEMO_TAG`) are left out: they are the lesson's
demonstrations, which no exercise, check or setup cell depends on, so they cannot change a grade
and only cost time (most of a lesson's run time). The tag is read from the official notebook
only; a submission's tags are never looked at.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbformat import NotebookNode

from ..notebook_format import read_exercise, strip_code
from .lessons import LessonStructure, OfficialCell, exercise_id_in_source, is_check_source

from .tamper import suspicious

__all__ = [
    "Restored",
    "restore",
    "stub_source",
    "match_exercise_cells",
    "is_demo",
    "SETUP_TAG",
    "EXPORT_TAG",
    "DEMO_TAG",
]

SETUP_TAG = "grader-setup"
CHECK_IMPORT = "from course_utils.checks import check  # [grader] always the official check"
EXPORT_TAG = "grader-export"
DEMO_TAG = "demo"
"""Tag of official cells the grader skips (solutions/ authors add it; see the module docstring)."""


@dataclass
class Match:
    """Where a student's answer to one official exercise cell was found."""

    source: str | None
    how: str
    cells: tuple[int, ...] = ()  # indices in the submission


@dataclass
class Restored:
    """The notebook to execute, and what each of its cells is."""

    nb: NotebookNode
    roles: list[tuple[str, str | None]]  # per cell: (kind, exercise id)
    notes: list[str] = field(default_factory=list)  # submission-level remarks for the feedback
    missing: list[str] = field(default_factory=list)  # exercise ids with no cell in the submission
    flagged: dict[str, str] = field(default_factory=dict)  # exercise id -> why its cell was not run


def stub_source(source: str, exercise: str) -> str:
    """The official exercise cell with each solution block replaced by ``raise NotImplementedError``.

    Used when a submission lacks an exercise cell: the function is then defined as a stub, so its
    check reports "not attempted" instead of failing on an undefined name.
    """
    # The generator's own stub, so a missing cell grades exactly like an untouched one. Official
    # notebooks pass authoring, so their markers always parse.
    return strip_code(source, f"exercise {exercise}")[0]


def _norm(source: str) -> str:
    return source.strip()


def match_exercise_cells(structure: LessonStructure, student: NotebookNode) -> dict[int, Match]:
    """Find the student's cell for every official exercise cell (keyed by official cell index).

    Tried in order: the generator's cell metadata, the nbformat cell id, the exercise id in a
    stub or marker, and last the position between official cells the student left untouched.
    """
    official = structure.nb.cells
    official_exercise = {c.index for c in structure.exercise_cells}
    # Copies of official non-exercise cells are never answers (they are restored from the official version).
    official_texts = {_norm(c.source) for i, c in enumerate(official) if i not in official_exercise}
    scells = student.get("cells", [])

    def candidate(j: int, cell_type: str) -> bool:
        c = scells[j]
        if c.get("cell_type") != cell_type:
            return False
        src = c.get("source", "")
        if _norm(src) in official_texts and not exercise_id_in_source(src):
            return False
        return not (is_check_source(src) and not exercise_id_in_source(src) and not read_exercise(c))

    claimed: set[int] = set()
    found: dict[int, Match] = {}

    def claim(oc: OfficialCell, j: int, how: str) -> None:
        claimed.add(j)
        found[oc.index] = Match(scells[j].get("source", ""), how, (j,))

    ex_cells = structure.exercise_cells
    # 1. metadata ids, 2. cell ids, 3. marker / stub text: each pass claims what it can.
    passes = [
        ("cell metadata", lambda oc, j: read_exercise(scells[j]) == oc.exercise),
        (
            "cell id",
            lambda oc, j: bool(official[oc.index].get("id")) and scells[j].get("id") == official[oc.index].get("id"),
        ),
        ("exercise id in the cell", lambda oc, j: exercise_id_in_source(scells[j].get("source", "")) == oc.exercise),
    ]
    for how, pred in passes:
        for oc in ex_cells:
            if oc.index in found:
                continue
            ctype = official[oc.index].cell_type
            hits = [j for j in range(len(scells)) if j not in claimed and candidate(j, ctype) and pred(oc, j)]
            # k-th official cell of an exercise takes the k-th matching student cell still free
            if hits:
                claim(oc, hits[0], how)

    # 4. position: the student cells between the nearest official cells found unchanged in the submission.
    positions: dict[str, list[int]] = {}
    for j, c in enumerate(scells):
        positions.setdefault(_norm(c.get("source", "")), []).append(j)
    official_count: dict[str, int] = {}
    for c in official:
        official_count[_norm(c.source)] = official_count.get(_norm(c.source), 0) + 1

    def anchor(i: int, step: int) -> int | None:
        k = i + step
        while 0 <= k < len(official):
            src = _norm(official[k].source)
            if k not in official_exercise and src and official_count[src] == 1 and len(positions.get(src, [])) == 1:
                return positions[src][0]
            k += step
        return None

    for oc in ex_cells:
        if oc.index in found:
            continue
        lo, hi = anchor(oc.index, -1), anchor(oc.index, +1)
        if lo is None and hi is None:
            continue
        lo = -1 if lo is None else lo
        hi = len(scells) if hi is None else hi
        if hi <= lo:
            continue
        ctype = official[oc.index].cell_type
        region = [j for j in range(lo + 1, hi) if j not in claimed and candidate(j, ctype)]
        if region:
            for j in region:
                claimed.add(j)
            found[oc.index] = Match("\n\n".join(scells[j].get("source", "") for j in region), "position", tuple(region))
    return found


def is_demo(cell: NotebookNode | dict, kind: str) -> bool:
    """Whether the grader skips this official cell: tagged :data:`DEMO_TAG` and not graded itself.

    Exercise, check and parameters cells always run, whatever their tags say, so a mis-tagged
    cell can cost time but never a grade.
    """
    tags = (cell.get("metadata", {}) or {}).get("tags") or []
    return DEMO_TAG in tags and kind not in ("exercise", "check", "parameters")


def _code_cell(source: str, tag: str) -> NotebookNode:
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["tags"] = [tag]
    return cell


def setup_source(
    lesson: int, results_path: Path, exercises_path: Path, pid_path: Path, checks_dirs: list[Path] | None = None
) -> str:
    """Kernel-side plumbing run before the lesson: record the kernel pid (so the grader can kill a
    hung kernel), make extra ``lessonNN.py`` check folders importable as ``course_utils.checks.lessonNN``,
    list the lesson's exercises, and export results after every cell so a later crash cannot lose
    checks that already ran."""
    dirs = [str(d) for d in checks_dirs or []]
    return f"""# Grader setup (added by course_utils.grading; not part of the lesson).
def __grader_setup():
    import json, os
    import course_utils.checks
    for extra in {dirs!r}:
        if extra not in course_utils.checks.__path__:
            course_utils.checks.__path__.append(extra)
    with open({str(pid_path)!r}, "w") as f:
        f.write(str(os.getpid()))
    results_path = {str(results_path)!r}

    def export(*_args, **_kwargs):
        try:
            import course_utils.checks as checks
            checks.export_results(results_path + ".tmp")
            os.replace(results_path + ".tmp", results_path)
        except Exception:
            pass

    try:
        import course_utils.checks as checks
        listing = [{{"id": str(e.id), "title": str(getattr(e, "title", "")), "points": float(getattr(e, "points", 1.0))}}
                   for e in checks.exercises({lesson})]
    except Exception as exc:
        listing = {{"error": f"{{type(exc).__name__}}: {{exc}}"}}
    with open({str(exercises_path)!r}, "w") as f:
        json.dump(listing, f)
    get_ipython().events.register("post_run_cell", export)

__grader_setup()
del __grader_setup"""


def export_source(results_path: Path) -> str:
    return (
        "# Grader export (added by course_utils.grading).\n"
        "import course_utils.checks\n"
        f"course_utils.checks.export_results({str(results_path)!r})"
    )


def restore(
    structure: LessonStructure,
    student: NotebookNode,
    *,
    results_path: Path,
    exercises_path: Path,
    pid_path: Path,
    checks_dirs: list[Path] | None = None,
    skip_demo: bool = True,
) -> Restored:
    """The official notebook with the student's exercise cells substituted, plus grader plumbing.

    With ``skip_demo`` (the default) official cells tagged :data:`DEMO_TAG` are left out.
    """
    matches = match_exercise_cells(structure, student)
    nb = copy.deepcopy(structure.nb)
    nb.metadata.pop("papermill", None)
    roles: list[tuple[str, str | None]] = []
    notes: list[str] = []
    missing: list[str] = []
    flagged: dict[str, str] = {}
    kept: list[NotebookNode] = []
    for oc, cell in zip(structure.cells, nb.cells):
        if skip_demo and is_demo(cell, oc.kind):
            continue
        kept.append(cell)
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        if oc.kind == "exercise":
            m = matches.get(oc.index)
            if m is None:
                cell.source = stub_source(cell.source, oc.exercise or "?")
                if oc.exercise not in missing:
                    missing.append(oc.exercise or "?")
                how = "missing"
            else:
                cell.source = m.source or ""
                how = m.how
                why = suspicious(cell.source)
                if why:
                    # Never run code that reaches into the checks; grade it as not attempted, flagged.
                    flagged[oc.exercise or "?"] = why
                    cell.source = stub_source(structure.nb.cells[oc.index].source, oc.exercise or "?")
                    how = "flagged"
            cell.metadata["grading"] = {"exercise": oc.exercise, "from_submission": how}
        elif oc.kind == "check" and cell.cell_type == "code":
            # An exercise cell may rebind `check`; the official one is re-imported right before use.
            cell.source = f"{CHECK_IMPORT}\n{cell.source}"
        roles.append((oc.kind, oc.exercise))
    nb.cells = kept
    for ex in missing:
        notes.append(f"Exercise {ex}: no answer cell found in the submission (graded as not attempted).")
    used = {j for m in matches.values() for j in m.cells}
    official_texts = {_norm(x.source) for x in structure.nb.cells}
    extra = sum(
        1
        for j, c in enumerate(student.get("cells", []))
        if j not in used
        and c.get("cell_type") == "code"
        and _norm(c.get("source", ""))
        and _norm(c.get("source", "")) not in official_texts
    )
    if extra > 0:
        notes.append(
            f"{extra} code cell(s) outside the exercise cells differ from the official notebook; "
            "they are not graded (the official cells are used)."
        )
    nb.cells.insert(
        0, _code_cell(setup_source(structure.lesson, results_path, exercises_path, pid_path, checks_dirs), SETUP_TAG)
    )
    roles.insert(0, ("setup", None))
    nb.cells.append(_code_cell(export_source(results_path), EXPORT_TAG))
    roles.append(("export", None))
    for ex, why in flagged.items():
        notes.append(
            f"Exercise {ex}: the answer cell {why}, which exercise code has no reason to do; "
            "it was not run and scores zero. Flagged for the instructor to review."
        )
    return Restored(nb, roles, notes, missing, flagged)
