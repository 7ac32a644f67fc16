"""Check cells: ``check("1.2", sliding_window)`` grades an exercise and explains the verdict.

Public API:

* :func:`check` — run an exercise's cases, print the verdict, return a :class:`CheckResult`; never raises.
* :func:`results` / :func:`export_results` — every check of this session, as the grader reads them.
* :func:`exercises` — a lesson's :class:`Exercise` list (ids, titles, max points).
* :mod:`.framework` — :class:`Exercise`, :class:`Case`, :class:`CaseFailed` and helpers for
  writing ``lessonNN.py`` modules. Partial credit: fraction of cases passed × points.
"""

from __future__ import annotations

from .engine import DEFAULT_TIME_LIMIT, check, exercises, find_exercise
from .framework import (
    Case,
    CaseFailed,
    CheckBug,
    CheckError,
    Exercise,
    call,
    expect,
    expect_equal,
    shows_no_difference,
)
from .registry import export_results, reset, results
from .report import CaseResult, CheckResult

__all__ = [
    "check",
    "results",
    "export_results",
    "exercises",
    "find_exercise",
    "reset",
    "Exercise",
    "Case",
    "CaseFailed",
    "CheckBug",
    "CheckError",
    "shows_no_difference",
    "CaseResult",
    "CheckResult",
    "expect",
    "expect_equal",
    "call",
    "DEFAULT_TIME_LIMIT",
]
