"""Batch grading of student notebooks, tamper-proof and robust to broken submissions.

``python -m course_utils.grading SUBMISSIONS`` (or ``make grade SUBMISSIONS=...``) grades every
notebook in a folder: each is rebuilt from the official solution notebook with only the student's
exercise cells substituted (:mod:`.restore`), executed with papermill in its own worker process and
kernel (:mod:`.execute`), and summarised in ``gradebook.csv``, ``report.md``/``report.html`` and
``feedback/<name>.md`` (:mod:`.gradebook`, :mod:`.report`).
"""

from __future__ import annotations

from .discover import Submission, discover
from .execute import ExecSettings
from .grade import Batch, GradeOptions, SubmissionGrade, grade_folder, grade_submission
from .gradebook import write_gradebook
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


def write_outputs(batch: Batch) -> dict[str, object]:
    """Write every output file of a graded batch; returns their paths by kind."""
    gradebook = batch.out_dir / "gradebook.csv"
    write_gradebook(batch.grades, gradebook)
    return {
        "gradebook": gradebook,
        "report_md": write_report_md(batch),
        "report_html": write_report_html(batch),
        "feedback": write_feedback(batch),
        "results": write_results_json(batch),
    }
