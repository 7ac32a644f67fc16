"""Batch grading of student notebooks, tamper-proof and robust to broken submissions.

``python -m course_utils.grading SUBMISSIONS`` (or ``make grade SUBMISSIONS=...``) grades every
notebook in a folder or LMS zip (:mod:`.intake`: flat, one folder per student, nbgrader's exchange,
Canvas's bulk download): each is rebuilt from the official solution notebook with only the
student's exercise cells substituted (:mod:`.restore`), executed with papermill in its own worker
process and kernel (:mod:`.execute`) on a Dask cluster (:mod:`.cluster`; a LocalCluster by
default), recorded in a ledger as it arrives (:mod:`.ledger`), and summarised in ``gradebook.csv``,
Canvas and Moodle import files (:mod:`.lms`), ``report.md``/``report.html`` and
``feedback/<student id>.md`` (:mod:`.gradebook`, :mod:`.report`).
"""

from __future__ import annotations

from pathlib import Path

from .worker import lean_imports

lean_imports()  # before nbformat is imported: this process and every Dask worker skip a 2.5 s grammar compile

from .discover import Submission, discover
from .execute import ExecSettings
from .folder import grade_folder
from .grade import Batch, GradeOptions, SubmissionGrade, grade_submission
from .gradebook import write_gradebook
from .grade import default_solutions
from .lms import CANVAS_FILE, MOODLE_FILE, lesson_columns, write_canvas, write_moodle
from .report import write_feedback, write_report_html, write_report_md, write_results_json

__all__ = [
    "grade_folder",
    "grade_submission",
    "write_outputs",
    "GradeOptions",
    "ExecSettings",
    "SubmissionGrade",
    "Batch",
    "Submission",
    "discover",
]


def write_outputs(
    batch: Batch, solutions: list[Path] | None = None, lms_columns: dict[int, str] | None = None
) -> dict[str, object]:
    """Write every output file of a graded batch; returns their paths by kind.

    ``lms_columns``: the Canvas / Moodle column name per lesson (default ``Lesson NN: slug``).
    """
    gradebook = batch.out_dir / "gradebook.csv"
    write_gradebook(batch.grades, gradebook)
    columns = lesson_columns(batch.grades, solutions or default_solutions(), lms_columns)
    return {
        "gradebook": gradebook,
        "canvas": write_canvas(
            batch.grades, columns, batch.out_dir / CANVAS_FILE, canvas_ids=batch.layout == "lms-zip"
        ),
        "moodle": write_moodle(batch.grades, columns, batch.out_dir / MOODLE_FILE),
        "report_md": write_report_md(batch),
        "report_html": write_report_html(batch),
        "feedback": write_feedback(batch),
        "results": write_results_json(batch),
    }
