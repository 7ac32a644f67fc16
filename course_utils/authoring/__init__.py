"""Authoring pipeline: one solution notebook per lesson, student notebooks generated from it.

``python -m course_utils.authoring release`` writes ``notebooks/`` from ``solutions/``;
``python -m course_utils.authoring check`` fails when ``notebooks/`` is stale. See
:mod:`course_utils.notebook_format` for the marker syntax and metadata, :mod:`.normalize` for what
metadata a released notebook keeps.
"""

from __future__ import annotations

from .generate import (
    NOTEBOOKS_DIR,
    SOLUTIONS_DIR,
    LessonFile,
    lesson_files,
    release,
    render,
    solution_notebook,
    stale,
    student_notebook,
)
from .normalize import clear_outputs, normalize_metadata

__all__ = [
    "release",
    "stale",
    "render",
    "student_notebook",
    "solution_notebook",
    "lesson_files",
    "LessonFile",
    "normalize_metadata",
    "clear_outputs",
    "SOLUTIONS_DIR",
    "NOTEBOOKS_DIR",
]
