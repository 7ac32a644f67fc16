"""``check()``: run an exercise's cases against the student's answer, print a verdict, never raise."""

from __future__ import annotations

import importlib
import inspect
import re
from types import ModuleType
from typing import Any

from . import registry
from .explain import explain
from .forbid import forbid
from .framework import MISSING, CaseFailed, CheckBug, Exercise, describe
from .report import CaseResult, CheckResult
from .report import format_verdict, show
from .runner import run_with_limit

__all__ = ["check", "exercises", "find_exercise", "lesson_module", "DEFAULT_TIME_LIMIT"]

DEFAULT_TIME_LIMIT = 30.0
"""Seconds a whole check may take before it reports "took too long"."""

_ID = re.compile(r"^\s*(\d+)\.(\w+)\s*$")


def lesson_module(lesson: int) -> ModuleType | None:
    """``course_utils.checks.lessonNN``, or ``None`` if the lesson has no checks module."""
    name = f"{__package__}.lesson{int(lesson):02d}"
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name == name:
            return None
        raise


def exercises(lesson: int) -> list[Exercise]:
    """The exercises of ``lesson`` in order (its module's ``EXERCISES``, else every ``Exercise`` it defines)."""
    module = lesson_module(lesson)
    if module is None:
        return []
    declared = getattr(module, "EXERCISES", None)
    if declared is None:
        declared = [v for v in vars(module).values() if isinstance(v, Exercise)]
    return list(declared)


def find_exercise(exercise_id: str) -> Exercise:
    """The :class:`Exercise` with this id; ``LookupError`` with a readable message otherwise."""
    m = _ID.match(str(exercise_id))
    if not m:
        raise LookupError(f'{exercise_id!r} is not an exercise id; ids look like "1.2" (lesson 1, exercise 2).')
    lesson = int(m.group(1))
    for exercise in exercises(lesson):
        if exercise.id == exercise_id.strip():
            return exercise
    raise LookupError(f"Lesson {lesson:02d} has no exercise {exercise_id!r}.")


def _case_message(failure: CaseFailed) -> str:
    lines = [failure.message] if failure.message else []
    if failure.expected is not MISSING:
        lines.append(f"expected: {describe(failure.expected)}")
    if failure.got is not MISSING:
        lines.append(f"got:      {describe(failure.got)}")
    if failure.hint:
        lines.append(f"hint: {failure.hint}")
    return "\n".join(lines)


def _status(cases: list[CaseResult]) -> str:
    outcomes = [c.outcome for c in cases]
    if all(c.passed for c in cases):
        return "passed"
    if not any(c.passed for c in cases) and "not_attempted" in outcomes and not {"failed", "timeout"} & set(outcomes):
        return "not_attempted"
    for status in ("timeout", "error"):
        if status in outcomes:
            return status
    return "failed"


def _run_cases(exercise: Exercise, answer: tuple, kw: dict, limit: float) -> list[CaseResult]:
    # The cases share the limit: each gets the CPU seconds the earlier ones left.
    spent = 0.0
    out: list[CaseResult] = []
    for index, case in enumerate(exercise.cases):
        remaining = limit - spent
        if remaining <= 0:
            out.extend(
                CaseResult(c.name, False, "not run: the time limit was used up by earlier cases", "skipped")
                for c in exercise.cases[index:]
            )
            break
        outcome = run_with_limit(_guarded(exercise, case.run), answer, kw, limit=remaining)
        spent += outcome.seconds
        if outcome.timed_out:
            out.append(
                CaseResult(
                    case.name,
                    False,
                    f"Took too long: stopped after {limit:g} s. Look for a loop whose exit condition is never "
                    "met, a retry loop with no maximum, or an await on something that never completes.",
                    "timeout",
                )
            )
            out.extend(
                CaseResult(c.name, False, "not run (an earlier case took too long)", "skipped")
                for c in exercise.cases[index + 1 :]
            )
            break
        if outcome.error is None:
            out.append(CaseResult(case.name, True))
        elif isinstance(outcome.error, CaseFailed):
            out.append(CaseResult(case.name, False, _case_message(outcome.error), "failed", outcome.error.hint))
        elif isinstance(outcome.error, CheckBug):
            out.append(
                CaseResult(case.name, False, f"The check itself is broken (not your code): {outcome.error}", "error")
            )
        else:
            why = explain(outcome.error, exercise=exercise.id, answers=answer, signature=exercise.signature)
            message = why.text + (f"\nIn your code: {why.where}" if why.where else "")
            out.append(CaseResult(case.name, False, message, why.outcome))
    return out


def _guarded(exercise: Exercise, run: Any) -> Any:
    """``run`` under :func:`~.forbid.forbid` of the exercise's ``reference`` (sync or ``async`` cases)."""
    if not exercise.reference:
        return run
    task = exercise.task or f"solve exercise {exercise.id}"

    if inspect.iscoroutinefunction(run):

        async def guarded_async(*answer: Any, **kw: Any) -> Any:
            with forbid(answer, exercise.reference, task=task):
                return await run(*answer, **kw)

        return guarded_async

    def guarded(*answer: Any, **kw: Any) -> Any:
        with forbid(answer, exercise.reference, task=task):
            return run(*answer, **kw)

    return guarded


def _shown_in() -> Any:
    try:
        from IPython import get_ipython

        return getattr(get_ipython(), "execution_count", None)
    except Exception:
        return None


def check(
    exercise_id: str, *answer: Any, time_limit: float | None = None, quiet: bool = False, **kw: Any
) -> CheckResult:
    """Check the student's ``answer`` for ``exercise_id`` (e.g. ``check("1.2", sliding_window)``).

    Prints a short verdict, records it (see :func:`course_utils.checks.results`) and returns it.
    Never raises: errors in the student's code, in the lesson's checks or a missing exercise all
    become a verdict. ``time_limit`` overrides the exercise's limit (default 30 s for the check);
    other keyword arguments are passed to every case.
    """
    exercise_id = str(exercise_id).strip()
    exercise: Exercise | None = None
    try:
        exercise = find_exercise(exercise_id)
        limit = time_limit if time_limit is not None else (exercise.time_limit or DEFAULT_TIME_LIMIT)
        cases = _run_cases(exercise, answer, kw, float(limit))
        status = _status(cases) if cases else "error"
        passed = sum(c.passed for c in cases)
        points = exercise.points * passed / len(cases) if cases else 0.0
        result = CheckResult(exercise.id, exercise.title, status, float(points), float(exercise.points), cases)
    except Exception as exc:  # the check itself is broken or the id is wrong: still a verdict
        title = exercise.title if exercise else ""
        max_points = float(exercise.points) if exercise else 0.0
        message = (
            str(exc)
            if isinstance(exc, LookupError)
            else f"The check itself failed ({type(exc).__name__}: {exc}); please tell your instructor."
        )
        result = CheckResult(
            exercise_id, title, "error", 0.0, max_points, [CaseResult("check", False, message, "error")]
        )
        result.feedback = f"✗ Exercise {exercise_id}: cannot check this answer. {message}"
    if not result.feedback:
        level = registry.failures(result.exercise)
        hint = (
            exercise.hint(level) if exercise is not None and result.status in ("failed", "error", "timeout") else None
        )
        result.feedback = format_verdict(result, exercise, hint, level)
    result._shown_in = _shown_in()
    registry.record(result)
    if not quiet:
        show(result)
    return result
