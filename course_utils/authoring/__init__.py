"""Authoring pipeline: one solution notebook per lesson, student notebooks generated from it.

``python -m course_utils.authoring release`` writes ``notebooks/`` from ``solutions/``;
``python -m course_utils.authoring check`` fails when ``notebooks/`` is stale. See
:mod:`.markers` for the marker syntax and :mod:`.normalize` for what metadata is kept.
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
from .markers import MarkerError, SolutionBlock, strip_code, strip_markdown
from .normalize import KERNELSPEC, LANGUAGE_INFO, clear_outputs, normalize_metadata

__all__ = [
    "release",
    "stale",
    "render",
    "student_notebook",
    "solution_notebook",
    "lesson_files",
    "LessonFile",
    "MarkerError",
    "SolutionBlock",
    "strip_code",
    "strip_markdown",
    "normalize_metadata",
    "clear_outputs",
    "KERNELSPEC",
    "LANGUAGE_INFO",
    "SOLUTIONS_DIR",
    "NOTEBOOKS_DIR",
]
