"""Helpers shared by the check tests (tests/test_checks_*.py)."""

from __future__ import annotations

from typing import Any

import course_utils.checks as checks


def passes(exercise: str, answer: Any) -> None:
    """``answer`` must pass every case, with full points."""
    result = checks.check(exercise, answer, quiet=True)
    assert result.status == "passed" and result.points == result.max_points, result.feedback


def assert_rejected(exercise: str, answer: Any, phrase: str) -> None:
    """``answer`` must lose points, as a failure or a timeout, with ``phrase`` in the feedback."""
    result = checks.check(exercise, answer, quiet=True)
    assert result.status in ("failed", "timeout"), result.feedback
    assert result.points < result.max_points
    assert phrase in result.feedback, result.feedback


def assert_not_attempted(exercise: str, answer: Any) -> None:
    """An unedited stub scores nothing and reads as not attempted, not as a failure."""
    result = checks.check(exercise, answer, quiet=True)
    assert result.status == "not_attempted" and result.points == 0, result.feedback
