"""Grade one submission and a whole folder: discover, restore, execute, assemble the scores."""

from __future__ import annotations

import dataclasses
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .discover import Submission
from .execute import ExecSettings, Execution, execute_restored
from .lessons import LessonStructure, find_solution, identify_lesson, load_structure
from .restore import Restored, restore

from ..checks.report import STATUSES  # one list of verdict statuses, the checks' own

__all__ = ["GradeOptions", "SubmissionGrade", "Batch", "grade_submission", "fill_max", "STATUSES"]


@dataclass
class GradeOptions:
    """Everything the grader needs besides the submissions."""

    solutions: list[Path]
    out_dir: Path
    jobs: int = 1
    settings: ExecSettings = field(default_factory=ExecSettings)
    lesson: int | None = None  # force every submission to this lesson
    keep_work: bool = False
    warm_kernels: bool = True  # fork each (fresh) kernel from a pre-imported zygote; see .warm
    scheduler: str | None = None  # a running Dask cluster (tcp://host:8786); None: a LocalCluster
    workers: int = 1  # LocalCluster worker processes (each grades ``jobs`` submissions at a time)
    layout: str = "auto"  # how submissions are laid out; see .intake
    regrade: bool = False  # ignore the ledger: grade every submission again


@dataclass
class SubmissionGrade:
    """The grade of one submission, with every reason a student or instructor needs."""

    name: str
    file: str
    status: str  # "graded" | "not a notebook" | "unknown lesson" | "grader error"
    student: str = ""  # the student id from the submissions' layout (.intake); the name when empty
    student_name: str = ""
    origin: str = ""  # the file as the instructor knows it (path in the folder or zip)
    content_hash: str = ""
    lesson: int | None = None
    lesson_how: str = ""
    exercises: list[dict[str, Any]] = field(default_factory=list)  # the checks contract + "reason"
    problems: list[str] = field(default_factory=list)  # why something scored zero
    notes: list[str] = field(default_factory=list)  # remarks that cost nothing
    total: float = 0.0
    max_total: float | None = None
    seconds: float = 0.0
    executed: str | None = None

    def __post_init__(self) -> None:
        self.student = self.student or self.name

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SubmissionGrade":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class Batch:
    """All grades of one run, plus the files skipped."""

    folder: Path
    out_dir: Path
    grades: list[SubmissionGrade]
    ignored: list[Path]
    seconds: float
    skipped: list[Any] = field(default_factory=list)  # .intake.Skipped: found, deliberately not graded
    layout: str = "flat"
    reused: int = 0  # grades taken from the ledger (graded by an earlier run)
    dashboard: str | None = None


def extend_checks_path(dirs: list[Path]) -> None:
    """Make ``lessonNN.py`` modules in ``dirs`` importable as ``course_utils.checks.lessonNN`` here too."""
    try:
        import course_utils.checks as checks
    except Exception:
        return
    for d in dirs:
        if str(d) not in checks.__path__:
            checks.__path__.append(str(d))


def _parent_listing(lesson: int) -> list[dict] | None:
    """The lesson's exercises as the checks framework lists them in this process, if importable."""
    try:
        from course_utils import checks  # type: ignore[attr-defined]

        return [
            {"id": str(e.id), "title": str(getattr(e, "title", "")), "points": float(getattr(e, "points", 1.0))}
            for e in checks.exercises(lesson)
        ]
    except Exception:
        return None


def _skeleton(structure: LessonStructure | None, listing: list[dict] | None) -> list[dict[str, Any]]:
    if listing:
        return [{"exercise": e["id"], "title": e.get("title", ""), "max_points": e.get("points")} for e in listing]
    ids = structure.exercise_ids if structure else []
    return [{"exercise": i, "title": "", "max_points": None} for i in ids]


def _zeroed(skeleton: list[dict[str, Any]], status: str, reason: str) -> list[dict[str, Any]]:
    return [{**s, "status": status, "points": 0.0, "cases": [], "feedback": "", "reason": reason} for s in skeleton]


def assemble(structure: LessonStructure, restored: Restored, run: Execution) -> list[dict[str, Any]]:
    """One entry per exercise: the check's own result where it ran, else zero with the reason."""
    skeleton = _skeleton(structure, run.listing or _parent_listing(structure.lesson))
    known = {s["exercise"] for s in skeleton}
    skeleton += [
        {"exercise": k, "title": v.get("title", ""), "max_points": v.get("max_points")}
        for k, v in run.results.items()
        if k not in known
    ]
    blocked = " ".join(p for p in run.problems) or "the notebook stopped before this check"
    out: list[dict[str, Any]] = []
    for skel in skeleton:
        ex = skel["exercise"]
        mine = [i for i, (kind, e) in enumerate(restored.roles) if e == ex]
        ex_cells = [i for i in mine if restored.roles[i][0] == "exercise"]
        chk_cells = [i for i in mine if restored.roles[i][0] == "check"]
        reasons: list[str] = []
        if ex in restored.missing:
            reasons.append("No answer cell for this exercise was found in the submission.")
        if ex in restored.flagged:
            reasons.append(
                f"Your answer cell {restored.flagged[ex]}, which exercise code has no reason to do, so it "
                "was not run; flagged for the instructor to review."
            )
        for i in ex_cells:
            c = run.cells[i]
            if c.neutralised:
                reasons.append(f"Your exercise cell {c.neutralised}; the grader skipped it and re-ran the notebook.")
            elif c.timed_out:
                reasons.append(
                    "Your exercise cell did not finish within the per-cell time limit and was interrupted (an endless loop?)."
                )
            elif c.error:
                reasons.append(f"Your exercise cell raised {c.error[0]}: {c.error[1]}".rstrip(": ") + ".")
        result = run.results.get(ex)
        if isinstance(result, dict) and result.get("status") in STATUSES:
            entry = {**skel, **result}
            entry["exercise"] = ex
            if entry.get("max_points") is None:
                entry["max_points"] = skel.get("max_points")
            if entry["status"] == "passed" and ex not in restored.flagged:
                reasons = []
        else:
            status, why = "error", ""
            for i in chk_cells:
                c = run.cells[i]
                if c.neutralised:
                    why = f"Running this check on your code {c.neutralised}; the grader skipped it and re-ran the notebook."
                elif c.timed_out:
                    status, why = (
                        "timeout",
                        "The check did not finish within the per-cell time limit (does your code loop forever or wait too long?).",
                    )
                elif c.error:
                    why = f"The check cell raised {c.error[0]}: {c.error[1]}".rstrip(": ") + "."
                elif c.status in ("not run", "running"):
                    why = f"The check did not run: {blocked}"
                if why:
                    break
            if any(run.cells[i].timed_out for i in ex_cells):
                status = "timeout"
            reasons.append(why or "The check recorded no result.")
            entry = {**skel, "status": status, "points": 0.0, "cases": [], "feedback": ""}
        mx = entry.get("max_points")
        entry["points"] = max(
            0.0, min(float(entry.get("points") or 0.0), float(mx) if mx is not None else float("inf"))
        )
        entry["reason"] = " ".join(dict.fromkeys(r for r in reasons if r))
        out.append(entry)
    return out


def grade_submission(sub: Submission, options: GradeOptions, workroot: Path) -> SubmissionGrade:
    """Grade one submission; never raises (a grader failure becomes the submission's status)."""
    started = time.monotonic()
    grade = SubmissionGrade(name=sub.name, file=sub.path.name, status="graded")
    try:
        lesson, how = identify_lesson(sub.nb, sub.path.name, options.solutions, options.lesson)
        grade.lesson, grade.lesson_how = lesson, how
        solution = find_solution(lesson, options.solutions) if lesson is not None else None
        structure = load_structure(lesson, solution) if solution is not None else None
        if sub.nb is None:
            grade.status = "not a notebook"
            grade.problems.append(sub.problem or "not a notebook")
            grade.exercises = _zeroed(
                _skeleton(structure, _parent_listing(lesson) if lesson is not None else None),
                "error",
                sub.problem or "",
            )
            return grade
        if structure is None:
            grade.status = "unknown lesson"
            if lesson is None:
                grade.problems.append(f"Could not tell which lesson this notebook is: {how}.")
            else:
                grade.problems.append(
                    f"Lesson {lesson:02d} (from {how}) has no official notebook in {', '.join(map(str, options.solutions))}."
                )
            return grade
        if sub.path.suffix.lower() != ".ipynb":
            grade.notes.append(f"Graded although the file is named {sub.path.name!r}; submit it as .ipynb next time.")
        work = workroot / sub.name
        work.mkdir(parents=True, exist_ok=True)
        executed_dir = options.out_dir / "executed"
        executed_dir.mkdir(parents=True, exist_ok=True)
        paths = {
            "results": work / "results.json",
            "exercises": work / "exercises.json",
            "pid": work / "kernel.pid",
            "executed": executed_dir / f"{sub.name}.ipynb",
        }
        restored = restore(
            structure,
            sub.nb,
            results_path=paths["results"],
            exercises_path=paths["exercises"],
            pid_path=paths["pid"],
            checks_dirs=options.settings.checks_dirs,
        )
        grade.notes += restored.notes
        run = execute_restored(restored, work, options.settings, paths=paths)
        if run.outcome == "no_kernel":
            grade.status = "grader error"  # not the student's doing: not recorded, so a rerun retries it
        grade.problems += run.problems
        grade.exercises = assemble(structure, restored, run)
        grade.executed = str(run.executed_path) if run.executed_path else None
        if run.listing is None and run.listing_error:
            grade.notes.append(f"(grader) the checks framework could not list the exercises: {run.listing_error}")
    except Exception:
        grade.status = "grader error"
        grade.problems.append("The grader failed on this submission:\n" + traceback.format_exc(limit=8))
    finally:
        grade.total = round(sum(float(e.get("points") or 0.0) for e in grade.exercises), 4)
        maxes = [e.get("max_points") for e in grade.exercises]
        grade.max_total = round(sum(float(m) for m in maxes), 4) if maxes and None not in maxes else None
        grade.seconds = round(time.monotonic() - started, 2)
    return grade


def fill_max(grades: list[SubmissionGrade]) -> None:
    """Submissions that never ran borrow max points from a graded submission of the same lesson."""
    known: dict[tuple[int | None, str], float] = {}
    for g in grades:
        for e in g.exercises:
            if e.get("max_points") is not None:
                known.setdefault((g.lesson, e["exercise"]), float(e["max_points"]))
    for g in grades:
        for e in g.exercises:
            if e.get("max_points") is None and (g.lesson, e["exercise"]) in known:
                e["max_points"] = known[(g.lesson, e["exercise"])]
        maxes = [e.get("max_points") for e in g.exercises]
        if maxes and None not in maxes:
            g.max_total = round(sum(float(m) for m in maxes), 4)


def default_solutions() -> list[Path]:
    """``solutions/`` of the project this package lives in (the editable install's checkout)."""
    return [Path(__file__).resolve().parents[2] / "solutions"]


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use: python -m course_utils.grading")
