"""A failure message names a real difference: never "4 events instead of 4" (issue 14, class 6).

The guard lives in the checks framework (``CaseFailed`` refuses such a message in strict mode),
and strict mode is on under the test suite, so every lesson's wrong-answer tests, 00 to 08, fail
on a message that compares two equal values: the check reports itself as broken ("error"), and
``assert_rejected`` wants "failed".
"""

from __future__ import annotations

import pytest

import course_utils.checks as checks
from course_utils.checks import framework
from course_utils.checks.framework import MISSING, CaseFailed, CheckBug, Exercise, shows_no_difference


def test_strict_mode_is_on_under_the_test_suite():
    assert framework.STRICT()


@pytest.mark.parametrize(
    "message, expected, got",
    [
        ("parsed: 4 events instead of 4; first difference at event 2", MISSING, MISSING),
        ("1,200 tokens instead of 1,200 tokens", MISSING, MISSING),
        ("wrong count", 4, 4),
        ("wrong text", "abc", "abc"),
        ("", [("delta", "x")], [("delta", "x")]),
    ],
)
def test_a_failure_that_names_no_difference_is_detected(message, expected, got):
    assert shows_no_difference(message, expected, got)
    with pytest.raises(CheckBug):
        CaseFailed(message, expected=expected, got=got)


@pytest.mark.parametrize(
    "message, expected, got",
    [
        ("parsed: 4 events instead of 40", MISSING, MISSING),
        ("3 events instead of 4", MISSING, MISSING),
        ("wrong type: expected a int, got a float", 5, 5.0),  # the type is the difference, and prints
        ("wrong count", 4, 5),
        ("the relay took 0.80 s", "at most 0.60 s", "0.80 s"),
        ("no request reached the API", "1 request", "0 requests"),
    ],
)
def test_a_real_difference_passes(message, expected, got):
    assert shows_no_difference(message, expected, got) is None
    CaseFailed(message, expected=expected, got=got)


def test_outside_strict_mode_the_message_is_shown(monkeypatch):
    monkeypatch.setattr(framework, "STRICT", lambda: False)
    failure = CaseFailed("4 events instead of 4", expected=4, got=4)
    assert failure.message == "4 events instead of 4"


def test_a_check_that_builds_such_a_message_reports_itself_broken(monkeypatch):
    exercise = Exercise("0.99", "A broken check", points=1)

    @exercise.case("compares a count with itself")
    def _(fn):
        got = fn()
        raise CaseFailed(f"{got} events instead of {got}")

    from course_utils.checks import engine

    monkeypatch.setattr(engine, "find_exercise", lambda exercise_id: exercise)
    result = checks.check("0.99", lambda: 4, quiet=True)
    assert result.status == "error" and result.points == 0
    assert "The check itself is broken (not your code)" in result.feedback
    assert "compares a number with itself" in result.feedback


def test_expect_equal_never_reports_equal_values():
    framework.expect_equal(3, 3)
    with pytest.raises(CaseFailed) as info:
        framework.expect_equal(3, "3", "wrong count")
    assert "wrong type" in info.value.message


def test_every_lesson_with_checks_has_check_tests_for_every_exercise():
    """The rule's test half, inherited by lessons 05-08: a lesson that declares exercises has
    ``tests/test_checks_lessonNN.py``, and it names every exercise in a test that the solution
    passes and in one that rejects wrong answers."""
    import re
    from pathlib import Path

    tests = Path(__file__).parent
    for lesson in range(0, 10):
        exercises = checks.exercises(lesson)
        if not exercises:
            continue
        path = tests / f"test_checks_lesson{lesson:02d}.py"
        assert path.exists(), f"lesson {lesson:02d} has checks but no {path.name}"
        source = path.read_text(encoding="utf-8")
        for exercise in exercises:
            key = exercise.id.replace(".", "_")
            names = set(re.findall(rf"def (test_{key}\w*)", source))
            assert any("pass" in n or "accepted" in n for n in names), f"{exercise.id}: no test that a solution passes"
            assert any("rejected" in n or "caught" in n for n in names) or (
                f'"{exercise.id}"' in source and "assert_rejected" in source
            ), f"{exercise.id}: no wrong-answer test"


def test_every_failure_of_lessons_05_to_08_hints_at_its_cause():
    """Issue 27, class 4: a failure names the difference it saw (the strict guard above) and hints at the
    cause; a message without a hint leaves the student with a difference and no cause. Every ``expect``,
    ``expect_equal`` and ``CaseFailed`` of lessons 05-08 passes ``hint=`` (``None`` only where the message
    itself is the whole story)."""
    import ast
    import importlib
    from pathlib import Path

    missing = []
    for lesson in range(5, 9):
        module = importlib.import_module(f"course_utils.checks.lesson{lesson:02d}")
        top = Path(module.__file__)
        # A lesson's checks are a module (lessonNN.py) or a package with one module per exercise (lessonNN/).
        paths = sorted(top.parent.glob("*.py")) if hasattr(module, "__path__") else [top]
        failures = 0
        for path in paths:
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                is_failure = isinstance(node, ast.Call) and getattr(node.func, "id", "") in (
                    "expect",
                    "expect_equal",
                    "CaseFailed",
                )
                failures += is_failure
                if is_failure and "hint" not in {k.arg for k in node.keywords}:
                    missing.append(f"{path.relative_to(top.parents[1])}:{node.lineno}")
        assert failures > 0, f"found no failure in lesson {lesson:02d}'s checks: the walk missed its modules"
    assert not missing, missing
