"""Grades to where they go: import files for Canvas's and Moodle's gradebooks.

Canvas (``canvas_import.csv``)
    The columns of Canvas's own gradebook export, which its import reads back: ``Student``,
    ``ID``, ``SIS User ID``, ``SIS Login ID``, ``Section``, then one column per assignment,
    ``Assignment Name (assignment id)``. Canvas matches a row on the student name, the Canvas
    ``ID`` or the ``SIS User ID`` (one is enough); a column whose name matches no assignment
    creates a new assignment on import. Sources: Ohio State's CarmenCanvas guide "Import a CSV
    file to Carmen Grades" (teaching.resources.osu.edu, the required columns and the new-column
    rule) and nemogb's "Detailed Canvas Export Info" (nemogb-dev.github.io, the export's column
    names and the ``Name (id)`` assignment columns). The student id of a Canvas zip is the Canvas
    user id, so it goes to ``ID``; ids from other layouts (nbgrader, folders) are the
    institution's, so they go to ``SIS User ID``. ``Student`` holds the name only where the layout
    gives one (Canvas's ``lastfirst``), so a row never matches the wrong student by name.

Moodle (``moodle_import.csv``)
    Moodle's "Import grades from CSV" takes any header row and asks, on upload, which column
    identifies the user ("Map from") and which user field it is ("Map to": user id, username,
    ID number or email address), then which column feeds which grade item. Source: MoodleDocs
    "Grade import" (docs.moodle.org/311/en/Grade_import). The file has the student id in a column
    named ``ID number`` (as Moodle's own export names that field) and one column per lesson; on
    upload map ``ID number`` to the field the ids are (``useridnumber``, or ``username`` for
    JupyterHub or nbgrader logins) and each lesson column to its grade item.

Both hold one row per student and one column per lesson, the lesson's total points; a student with
no submission for a lesson has a blank cell (Canvas and Moodle leave the grade unchanged).
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from .grade import SubmissionGrade
from .lessons import available_lessons

__all__ = ["CANVAS_FILE", "MOODLE_FILE", "CANVAS_COLUMNS", "lesson_columns", "write_canvas", "write_moodle"]

CANVAS_FILE = "canvas_import.csv"
MOODLE_FILE = "moodle_import.csv"
CANVAS_COLUMNS = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
MOODLE_ID_COLUMN = "ID number"


def lesson_columns(
    grades: list[SubmissionGrade], solutions: list[Path], names: dict[int, str] | None = None
) -> dict[int, str]:
    """One column name per lesson in the batch: ``names[lesson]`` if given (e.g. an existing Canvas
    assignment ``"Lesson 3 (12345)"``), else ``Lesson NN: slug`` from the official notebook's name."""
    names = names or {}
    known = available_lessons(solutions)
    out: dict[int, str] = {}
    for lesson in sorted({g.lesson for g in grades if g.lesson is not None}):
        if lesson in names:
            out[lesson] = names[lesson]
            continue
        path = known.get(lesson)
        slug = re.sub(r"^\d+_", "", path.stem).replace("_", " ") if path else ""
        out[lesson] = f"Lesson {lesson:02d}: {slug}" if slug else f"Lesson {lesson:02d}"
    return out


def _points(x: float) -> str:
    return f"{float(x):g}"


def _by_student(grades: list[SubmissionGrade]) -> dict[str, dict[int, SubmissionGrade]]:
    table: dict[str, dict[int, SubmissionGrade]] = {}
    for g in grades:
        if g.lesson is not None:
            table.setdefault(g.student, {})[g.lesson] = g
    return table


def write_canvas(grades: list[SubmissionGrade], columns: dict[int, str], path: Path, *, canvas_ids: bool) -> Path:
    """``canvas_import.csv``. ``canvas_ids``: the student ids are Canvas user ids (a Canvas zip)."""
    names: dict[str, str] = {}
    for g in grades:
        names[g.student] = names.get(g.student) or g.student_name
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(CANVAS_COLUMNS + list(columns.values()))
        for student, lessons in sorted(_by_student(grades).items(), key=lambda kv: kv[0].lower()):
            ident = [student, ""] if canvas_ids else ["", student]
            marks = [_points(lessons[lesson].total) if lesson in lessons else "" for lesson in columns]
            w.writerow([names.get(student, ""), *ident, "", "", *marks])
    return path


def write_moodle(grades: list[SubmissionGrade], columns: dict[int, str], path: Path) -> Path:
    """``moodle_import.csv``: ``ID number`` and one grade column per lesson."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow([MOODLE_ID_COLUMN, *columns.values()])
        for student, lessons in sorted(_by_student(grades).items(), key=lambda kv: kv[0].lower()):
            w.writerow([student, *(_points(lessons[lesson].total) if lesson in lessons else "" for lesson in columns)])
    return path
