"""Grade a whole batch: read the submissions' layout, skip what the ledger already holds, grade
the rest on Dask, and record each grade the moment it arrives."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable

from .cluster import GradeJob, GradeOutcome, dashboard, dask_client, run_jobs
from .discover import Submission
from .grade import Batch, GradeOptions, SubmissionGrade, default_solutions, extend_checks_path, fill_max
from .intake import read_intake
from .ledger import LEDGER_FILE, Ledger
from .lessons import available_lessons

__all__ = ["grade_folder", "fingerprint", "LEDGER_VERSION"]

LEDGER_VERSION = 1
"""Bumped when the grader's own logic changes what a grade is, so old ledger rows are not reused."""


def fingerprint(options: GradeOptions) -> str:
    """What else, besides the submission's bytes, decides its grade: same fingerprint, same grade."""
    s = options.settings
    lessons = available_lessons(options.solutions or default_solutions())
    data = {
        "version": LEDGER_VERSION,
        "parameters": s.parameters,
        "cell_timeout": s.cell_timeout,
        "notebook_timeout": s.notebook_timeout,
        "max_output_bytes": s.max_output_bytes,
        "lesson": options.lesson,
        "solutions": {str(k): hashlib.sha256(p.read_bytes()).hexdigest() for k, p in sorted(lessons.items())},
    }
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:32]


def _identify(grade: SubmissionGrade, sub: Submission) -> SubmissionGrade:
    """The grade as this run's layout names it (the same bytes may have come under another name)."""
    grade.name, grade.student, grade.student_name = sub.name, sub.student, sub.student_name
    grade.origin, grade.content_hash, grade.file = sub.origin, sub.content_hash, sub.path.name
    grade.notes = [*sub.notes, *grade.notes]
    return grade


def grade_folder(
    folder: Path,
    options: GradeOptions,
    progress: Callable[[SubmissionGrade, int, int], None] | None = None,
    announce: Callable[[str], None] | None = None,
) -> Batch:
    """Grade every submission in ``folder`` (any layout of :mod:`.intake`, or a zip) on Dask.

    One grade per student and lesson; grades already in the ledger for the same content and
    conditions are reused (unless ``options.regrade``); the batch survives any single submission.
    ``progress`` gets each grade as it arrives; ``announce`` gets one-line messages (the dashboard).
    """
    started = time.monotonic()
    say = announce or (lambda _msg: None)
    extend_checks_path(options.settings.checks_dirs)
    out = options.out_dir
    out.mkdir(parents=True, exist_ok=True)
    executed_dir = out / "executed"
    unpack = Path(tempfile.mkdtemp(prefix="grading-intake-"))
    grades: dict[str, SubmissionGrade] = {}
    reused = 0
    link = None
    try:
        intake = read_intake(
            Path(folder),
            options.solutions or default_solutions(),
            unpack,
            layout=options.layout,
            forced_lesson=options.lesson,
            exclude=out,
        )
        subs = {s.name: s for s in intake.submissions}
        total = len(subs)
        fp = fingerprint(options)
        with Ledger(out / LEDGER_FILE) as ledger:

            def record(sub: Submission, grade: SubmissionGrade) -> None:
                grades[sub.name] = grade
                if progress:
                    progress(grade, len(grades), total)

            todo: list[Submission] = []
            for sub in intake.submissions:
                hit = None if options.regrade else ledger.get(sub.content_hash, fp)
                if hit is None:
                    todo.append(sub)
                    continue
                grade = _identify(SubmissionGrade.from_dict(hit[0]), sub)
                grade.executed = _place_executed(executed_dir, hit[1], sub.name)
                reused += 1
                record(sub, grade)
            if reused:
                say(f"{reused} submission(s) already graded with the same content (ledger {out / LEDGER_FILE})")

            def on_outcome(job: GradeJob, outcome: GradeOutcome) -> None:
                sub = subs[job.name]
                grade = outcome.grade
                executed = None
                if outcome.executed is not None:
                    executed_dir.mkdir(parents=True, exist_ok=True)
                    path = executed_dir / f"{sub.name}.ipynb"
                    path.write_text(outcome.executed, encoding="utf-8")
                    executed = path.name
                    grade.executed = str(path)
                if grade.status != "grader error":  # the grader's own failures are retried next run
                    ledger.put(sub.content_hash, fp, grade.to_dict(), executed)
                record(sub, _identify(grade, sub))

            if todo:
                # The options travel to the workers; solutions None means each worker's own checkout.
                shipped = dataclasses.replace(options, solutions=options.solutions or None)
                jobs = [GradeJob(s.name, s.path.name, s.path.read_bytes(), shipped) for s in todo]
                keys = [f"grade-{s.name}-{s.content_hash[:16]}" for s in todo]
                with dask_client(options.scheduler, options.workers, options.jobs) as client:
                    link = dashboard(client)
                    say(f"Dask dashboard: {link}" if link else "Dask dashboard: not running (it needs bokeh)")
                    run_jobs(client, jobs, keys, on_outcome, options.settings if options.warm_kernels else None)
    finally:
        shutil.rmtree(unpack, ignore_errors=True)
    ordered = sorted(grades.values(), key=lambda g: (g.student.lower(), g.lesson is None, g.lesson or 0, g.name))
    fill_max(ordered)
    return Batch(
        Path(folder),
        out,
        ordered,
        intake.ignored,
        round(time.monotonic() - started, 2),
        skipped=intake.skipped,
        layout=intake.layout,
        reused=reused,
        dashboard=link,
    )


def _place_executed(executed_dir: Path, recorded: str | None, name: str) -> str | None:
    """The executed notebook of a reused grade, under this run's name."""
    if not recorded:
        return None
    source, target = executed_dir / recorded, executed_dir / f"{name}.ipynb"
    if source.is_file() and source != target:
        shutil.copyfile(source, target)
    return str(target) if target.is_file() else None
