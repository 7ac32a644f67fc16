"""The verdict a check cell shows: short, one line per case, details only where something failed.

:class:`CheckResult` (with its :class:`CaseResult` rows) is what one ``check()`` call found; its
``to_dict()`` is the results contract the grader reads.

Two renderings of one verdict: :func:`format_verdict` is the plain text (papermill, consoles, the
grader's feedback), :func:`verdict_html` the same facts as HTML for JupyterLab (green passed, red
failed, grey not attempted, the points, the hint folded in a ``<details>``). :func:`show` puts a
result on screen with both, so every front end picks the richest one it can render.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from typing import Any

from .framework import Exercise

__all__ = [
    "CaseResult",
    "CheckResult",
    "STATUSES",
    "format_verdict",
    "format_points",
    "verdict_html",
    "split_hint",
    "show",
    "STATUS_COLORS",
]

STATUSES = ("passed", "failed", "not_attempted", "error", "timeout")
"""The statuses of an exercise's verdict (a case may also be ``skipped``)."""


@dataclass
class CaseResult:
    """How one case went, for the verdict and the results registry."""

    name: str
    passed: bool
    message: str = ""
    outcome: str = "passed"
    """One of passed, failed, not_attempted, error, timeout, skipped."""
    hint: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "passed": self.passed, "message": self.message}


@dataclass
class CheckResult:
    """What one ``check()`` call found; ``to_dict()`` is the results contract the grader reads."""

    exercise: str
    title: str
    status: str
    points: float
    max_points: float
    cases: list[CaseResult] = field(default_factory=list)
    feedback: str = ""
    _shown_in: Any = field(default=None, repr=False, compare=False)

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def to_dict(self) -> dict[str, Any]:
        return {
            "exercise": self.exercise,
            "title": self.title,
            "status": self.status,
            "points": float(self.points),
            "max_points": float(self.max_points),
            "cases": [c.to_dict() for c in self.cases],
            "feedback": self.feedback,
        }

    def __str__(self) -> str:
        return self.feedback

    def _repr_html_(self) -> str:
        """The verdict as escaped HTML: green passed, red failed, grey not attempted, hint folded."""
        return verdict_html(self)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        """IPython's plain text: the verdict text, as papermill and consoles show it."""
        printer.text(self.feedback if not cycle else f"CheckResult({self.exercise!r})")

    def _ipython_display_(self) -> None:
        # check() already printed the verdict; when it is also the cell's last expression, showing it
        # again would print it twice. Displayed later (``result`` in another cell), show it once.
        try:
            from IPython import get_ipython

            count = getattr(get_ipython(), "execution_count", None)
        except Exception:
            count = None
        if count is None or count != self._shown_in:
            show(self)


_ICON = {"passed": "✓", "failed": "✗", "error": "✗", "timeout": "⏱", "not_attempted": "…", "skipped": "·"}


def format_points(value: float) -> str:
    """``2`` rather than ``2.0``; two decimals for partial credit."""
    return f"{value:g}" if float(value).is_integer() else f"{value:.2f}"


def format_verdict(result: CheckResult, exercise: Exercise | None, hint: str | None, hint_level: int) -> str:
    """The text of the verdict (also stored as the result's ``feedback``)."""
    head = f"Exercise {result.exercise}" + (f" · {result.title}" if result.title else "")
    score = f"({format_points(result.points)}/{format_points(result.max_points)} points)"
    total = len(result.cases)
    if result.status == "not_attempted":
        reason = next((c.message for c in result.cases if c.outcome == "not_attempted"), "")
        body = "".join(f"\n  {line}" for line in reason.splitlines())
        return f"{_ICON['not_attempted']} {head}: not attempted yet {score}{body}"
    if result.status == "passed":
        return f"{_ICON['passed']} {head}: all {total} case{'s' if total != 1 else ''} passed {score}"
    summary = _summary(result)
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


def _summary(result: CheckResult) -> str:
    """The verdict's headline after the exercise name (the same words in text and HTML)."""
    passed = sum(c.passed for c in result.cases)
    total = len(result.cases)
    return {
        "passed": f"all {total} case{'s' if total != 1 else ''} passed",
        "not_attempted": "not attempted yet",
        "failed": f"{passed} of {total} cases passed",
        "error": f"your code raised an error; {passed} of {total} cases passed",
        "timeout": f"took too long; {passed} of {total} cases passed",
    }.get(result.status, result.status)


# (border, background) per status; translucent backgrounds read on light and dark themes alike.
STATUS_COLORS: dict[str, tuple[str, str]] = {
    "passed": ("#2e7d32", "rgba(46, 125, 50, 0.10)"),
    "failed": ("#c62828", "rgba(198, 40, 40, 0.08)"),
    "error": ("#c62828", "rgba(198, 40, 40, 0.08)"),
    "timeout": ("#c62828", "rgba(198, 40, 40, 0.08)"),
    "not_attempted": ("#757575", "rgba(117, 117, 117, 0.10)"),
}
_HINT_LINE = re.compile(r"^Hint(?: \d+/\d+)?: ", re.MULTILINE)


def split_hint(feedback: str) -> tuple[str, str | None, str | None]:
    """``(verdict without the hint, hint label, hint text)`` from a :func:`format_verdict` text.

    The hint is the verdict's last part (``Hint: ...`` or ``Hint 2/3: ...``, possibly several lines);
    ``(feedback, None, None)`` when there is none.
    """
    # Case messages and reasons are indented in the text, so the first unindented "Hint" is the hint.
    match = _HINT_LINE.search(feedback)
    if match is None:
        return feedback, None, None
    start = match.start()
    label, _, text = feedback[start:].partition(": ")
    return feedback[:start].rstrip("\n"), label, text


def verdict_html(result: CheckResult) -> str:
    """The verdict as a self-contained HTML fragment (inline styles: no stylesheet to install).

    Every piece of text is escaped: case messages quote the student's own values and exceptions.
    """
    esc = html.escape
    border, background = STATUS_COLORS.get(result.status, STATUS_COLORS["failed"])
    icon = _ICON.get(result.status, "✗")
    head = f"Exercise {result.exercise}" + (f" · {result.title}" if result.title else "")
    points = f"{format_points(result.points)}/{format_points(result.max_points)} points"
    _, hint_label, hint = split_hint(result.feedback)
    summary = _summary(result)
    first_line = result.feedback.split("\n", 1)[0]
    if result.feedback and summary not in first_line:
        # A verdict engine.check() wrote itself (e.g. "cannot check this answer"): show its words.
        summary = first_line.split(": ", 1)[-1]
    parts = [
        f'<div class="course-check course-check-{esc(result.status)}" '
        f'style="border-left: 5px solid {border}; background: {background}; padding: 6px 12px; '
        f'margin: 4px 0; border-radius: 3px; line-height: 1.45;">',
        f'<div style="display: flex; justify-content: space-between; gap: 1em;">'
        f'<span><span style="color: {border}; font-weight: bold;">{esc(icon)}</span> '
        f"<strong>{esc(head)}</strong>: {esc(summary)}</span>"
        f'<span class="course-check-points" style="white-space: nowrap; font-weight: bold; color: {border};">'
        f"{esc(points)}</span></div>",
    ]
    if result.status == "not_attempted":
        reason = next((c.message for c in result.cases if c.outcome == "not_attempted"), "")
        if reason:
            parts.append(f'<div style="opacity: 0.8; white-space: pre-wrap;">{esc(reason)}</div>')
    elif result.status != "passed" or len(result.cases) > 1:
        parts.append('<ul style="margin: 4px 0; padding-left: 1.4em; list-style: none;">')
        shown: set[str] = set()
        for case in result.cases:
            mark = _ICON["passed"] if case.passed else _ICON.get(case.outcome, "✗")
            color = STATUS_COLORS["passed"][0] if case.passed else STATUS_COLORS.get(case.outcome, (border,))[0]
            item = f'<li><span style="color: {color};">{esc(mark)}</span> {esc(case.name)}'
            if not case.passed and case.message:
                if case.message in shown:  # the same explanation for every case is noise
                    item += ' <span style="opacity: 0.7;">(same as above)</span>'
                else:
                    shown.add(case.message)
                    item += (
                        '<pre style="margin: 2px 0 4px 0; padding: 4px 8px; white-space: pre-wrap; '
                        f'background: transparent; border: none;">{esc(case.message)}</pre>'
                    )
            parts.append(item + "</li>")
        parts.append("</ul>")
    if hint:
        parts.append(
            f'<details style="margin-top: 4px;"><summary style="cursor: pointer;">{esc(hint_label or "Hint")}'
            f'</summary><div style="white-space: pre-wrap; padding: 2px 0 2px 1em;">{esc(hint)}</div></details>'
        )
    parts.append("</div>")
    return "".join(parts)


def show(result: CheckResult) -> None:
    """Put ``result`` on screen: HTML and plain text in a kernel (the front end picks), else print.

    In a kernel this publishes one ``display_data`` output with ``text/html`` and ``text/plain``, so
    JupyterLab shows the coloured verdict and papermill, nbconvert and consoles the text. Outside
    IPython it prints the text, as ``check()`` always did.
    """
    shell: Any = None
    try:
        from IPython import get_ipython

        shell = get_ipython()
    except ImportError:
        pass
    if shell is None:
        print(result.feedback)
        return
    from IPython.display import display

    display({"text/plain": result.feedback, "text/html": verdict_html(result)}, raw=True)
