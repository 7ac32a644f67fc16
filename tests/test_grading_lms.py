"""Grades to where they go: the Canvas and Moodle import files, and the ledger a rerun reads.

The formats are those documented in :mod:`course_utils.grading.lms` (Canvas: the gradebook
export's columns, ``Student, ID, SIS User ID, SIS Login ID, Section`` then one column per
assignment; Moodle: a header row, one user-identifier column and one column per grade item).
"""

from __future__ import annotations

import csv
from pathlib import Path

from course_utils.grading.execute import ExecSettings
from course_utils.grading.folder import fingerprint
from course_utils.grading.grade import GradeOptions, SubmissionGrade
from course_utils.grading.ledger import Ledger
from course_utils.grading.lms import CANVAS_COLUMNS, lesson_columns, write_canvas, write_moodle

FIXTURE_SOLUTIONS = Path(__file__).resolve().parent / "fixtures" / "grading_lesson" / "solutions"


def _g(student: str, lesson: int | None, total: float, name: str = "") -> SubmissionGrade:
    return SubmissionGrade(
        name=f"{student}-{lesson}", file="x.ipynb", status="graded", student=student, student_name=name,
        lesson=lesson, total=total, max_total=4,
    )  # fmt: skip


def _rows(path: Path) -> list[list[str]]:
    return list(csv.reader(open(path, encoding="utf-8", newline="")))


GRADES = [
    _g("340934", 99, 4, "smithbob"),
    _g("334244", 99, 1.5, "wellslane"),
    _g("334244", 42, 2),
    _g("999", None, 0),  # not a notebook: no lesson, no LMS grade
]


def test_lesson_columns_default_and_override() -> None:
    assert lesson_columns(GRADES, [FIXTURE_SOLUTIONS]) == {42: "Lesson 42", 99: "Lesson 99: fixture"}
    assert lesson_columns(GRADES, [FIXTURE_SOLUTIONS], {99: "Lesson 99 (12345)"})[99] == "Lesson 99 (12345)"


def test_canvas_import_has_the_export_columns_and_canvas_ids(tmp_path: Path) -> None:
    columns = {99: "Lesson 99 (12345)", 42: "Lesson 42"}
    rows = _rows(write_canvas(GRADES, columns, tmp_path / "c.csv", canvas_ids=True))
    assert rows[0] == CANVAS_COLUMNS + ["Lesson 99 (12345)", "Lesson 42"]
    assert rows[0][:5] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
    assert rows[1:] == [
        ["wellslane", "334244", "", "", "", "1.5", "2"],
        ["smithbob", "340934", "", "", "", "4", ""],  # no lesson 42 submission: blank, not zero
    ]


def test_canvas_import_puts_institution_ids_in_sis_user_id(tmp_path: Path) -> None:
    rows = _rows(write_canvas([_g("alice", 99, 3)], {99: "L99"}, tmp_path / "c.csv", canvas_ids=False))
    assert rows[1] == ["", "", "alice", "", "", "3"]  # no name known: never matched by a guessed name


def test_moodle_import_id_number_and_one_column_per_lesson(tmp_path: Path) -> None:
    rows = _rows(write_moodle(GRADES, {99: "Lesson 99: fixture", 42: "Lesson 42"}, tmp_path / "m.csv"))
    assert rows == [
        ["ID number", "Lesson 99: fixture", "Lesson 42"],
        ["334244", "1.5", "2"],
        ["340934", "4", ""],
    ]


def test_ledger_keeps_grades_across_runs_by_hash_and_fingerprint(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    grade = _g("alice", 99, 3).to_dict()
    with Ledger(path) as ledger:
        ledger.put("h1", "fp", grade, "alice.ipynb")
        ledger.put("h1", "fp", grade, "alice.ipynb")  # the same key twice is still one record
    with Ledger(path) as ledger:
        assert ledger.count() == 1
        got, executed = ledger.get("h1", "fp")
        assert SubmissionGrade.from_dict(got).total == 3 and executed == "alice.ipynb"
        assert ledger.get("h1", "other conditions") is None
        assert ledger.get("h2", "fp") is None


def test_fingerprint_changes_with_what_decides_a_grade(tmp_path: Path) -> None:
    def fp(**params) -> str:
        settings = ExecSettings(parameters={"provider": "simulator", "seed": 0, "time_scale": 0.02, **params})
        return fingerprint(GradeOptions(solutions=[FIXTURE_SOLUTIONS], out_dir=tmp_path, settings=settings))

    assert fp() == fp()
    assert fp() != fp(seed=1)
    assert fp() != fp(time_scale=1.0)
