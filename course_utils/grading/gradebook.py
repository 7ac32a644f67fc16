"""The gradebook: ``gradebook.csv`` has exactly one row per student and lesson (so spreadsheets can
average columns); the maximum points sit beside it in ``max_points.csv``."""

from __future__ import annotations

import csv
from pathlib import Path

from .grade import SubmissionGrade

__all__ = ["exercise_columns", "write_gradebook", "MAX_ROW", "MAX_POINTS_FILE"]

MAX_ROW = "max"
MAX_POINTS_FILE = "max_points.csv"


def exercise_columns(grades: list[SubmissionGrade]) -> list[tuple[int | None, str, str]]:
    """``(lesson, exercise id, column name)`` in lesson order, then each lesson's exercise order.

    Column names are the bare exercise ids unless two lessons in the batch share an id; then
    they are prefixed with the lesson number (``03:1.2``).
    """
    order: dict[int | None, list[str]] = {}
    for g in sorted(grades, key=lambda g: (g.lesson is None, g.lesson or 0)):
        ids = order.setdefault(g.lesson, [])
        for e in g.exercises:
            if e["exercise"] not in ids:
                ids.append(e["exercise"])
    all_ids = [i for ids in order.values() for i in ids]
    clash = len(all_ids) != len(set(all_ids))
    return [
        (lesson, ex, f"{lesson:02d}:{ex}" if clash and lesson is not None else ex)
        for lesson, ids in order.items()
        for ex in ids
    ]


def _fmt(x: float | None) -> str:
    return "" if x is None else f"{float(x):g}"


def write_gradebook(grades: list[SubmissionGrade], path: Path) -> list[str]:
    """Write ``gradebook.csv``; returns its header. Blank = exercise not part of that row's lesson.

    Raises ``ValueError`` if two grades share a student and lesson (the intake picks one).
    """
    seen: set[tuple[str, int | None]] = set()
    for g in grades:
        key = (g.student, g.lesson)
        if key in seen:
            raise ValueError(f"two grades for student {g.student!r}, lesson {g.lesson}: the gradebook holds one")
        seen.add(key)
    cols = exercise_columns(grades)
    header = ["student", "lesson"] + [c[2] for c in cols] + ["total"]
    maxima: dict[tuple[int | None, str], float | None] = {}
    for g in grades:
        for e in g.exercises:
            if e.get("max_points") is not None:
                maxima.setdefault((g.lesson, e["exercise"]), e["max_points"])
    lessons = {g.lesson for g in grades if g.exercises}
    max_row = [MAX_ROW, ""] + [_fmt(maxima.get((c[0], c[1]))) for c in cols]
    # The max total is only meaningful when the batch is a single lesson.
    single = len(lessons) == 1 and all(maxima.get((c[0], c[1])) is not None for c in cols)
    max_row.append(_fmt(sum(float(maxima[(c[0], c[1])]) for c in cols)) if single else "")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(MAX_POINTS_FILE), "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerow(max_row)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        for g in grades:
            mine = {(g.lesson, e["exercise"]): e for e in g.exercises}
            w.writerow(
                [g.student, "" if g.lesson is None else f"{g.lesson:02d}"]
                + [_fmt(mine[(c[0], c[1])]["points"]) if (c[0], c[1]) in mine else "" for c in cols]
                + [_fmt(g.total)]
            )
    return header
