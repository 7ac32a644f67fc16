"""The verdict a check cell prints: short, one line per case, details only where something failed."""

from __future__ import annotations

from .framework import CheckResult, Exercise

__all__ = ["format_verdict", "format_points"]

_ICON = {"passed": "✓", "failed": "✗", "error": "✗", "timeout": "⏱", "not_attempted": "…", "skipped": "·"}


def format_points(value: float) -> str:
    """``2`` rather than ``2.0``; two decimals for partial credit."""
    return f"{value:g}" if float(value).is_integer() else f"{value:.2f}"


def format_verdict(result: CheckResult, exercise: Exercise | None, hint: str | None, hint_level: int) -> str:
    """The text of the verdict (also stored as the result's ``feedback``)."""
    head = f"Exercise {result.exercise}" + (f" · {result.title}" if result.title else "")
    score = f"({format_points(result.points)}/{format_points(result.max_points)} points)"
    passed = sum(c.passed for c in result.cases)
    total = len(result.cases)
    if result.status == "not_attempted":
        reason = next((c.message for c in result.cases if c.outcome == "not_attempted"), "")
        body = "".join(f"\n  {line}" for line in reason.splitlines())
        return f"{_ICON['not_attempted']} {head}: not attempted yet {score}{body}"
    if result.status == "passed":
        return f"{_ICON['passed']} {head}: all {total} case{'s' if total != 1 else ''} passed {score}"
    summary = {
        "failed": f"{passed} of {total} cases passed",
        "error": f"your code raised an error; {passed} of {total} cases passed",
        "timeout": f"took too long; {passed} of {total} cases passed",
    }.get(result.status, result.status)
    lines = [f"{_ICON[result.status]} {head}: {summary} {score}"]
    shown: set[str] = set()
    for case in result.cases:
        lines.append(f"  {_ICON.get(case.outcome, '✗') if not case.passed else _ICON['passed']} {case.name}")
        if case.passed or not case.message:
            continue
        if case.message in shown:  # the same explanation for every case is noise
            lines.append("      (same as above)")
            continue
        shown.add(case.message)
        lines.extend(f"      {line}" for line in case.message.splitlines())
    if hint and exercise is not None:
        levels = len(exercise.hints)
        label = "Hint" if levels == 1 else f"Hint {min(hint_level, levels - 1) + 1}/{levels}"
        lines.append(f"{label}: {hint}")
    return "\n".join(lines)
