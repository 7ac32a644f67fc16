"""The check-cell framework, exercised through a fake lesson module (lesson 98)."""

from __future__ import annotations

import asyncio
import json
import sys
import time
import types

import anthropic
import httpx
import pytest

import course_utils.checks as checks
from course_utils.checks import CaseFailed, Exercise, call, expect_equal


def _build_lesson() -> types.ModuleType:
    module = types.ModuleType("course_utils.checks.lesson98")

    add = Exercise(
        "98.1", "Add two numbers", points=3, signature="add(a, b) -> int", hints=["Use the + operator.", "return a + b"]
    )

    @add.case("small numbers")
    def _(fn):
        expect_equal(fn(2, 3), 5, hint="2 + 3 is 5.")

    @add.case("negative numbers")
    def _(fn):
        expect_equal(fn(-2, -3), -5)

    @add.case("zero")
    def _(fn):
        expect_equal(fn(0, 0), 0)

    slow = Exercise("98.2", "Terminate", points=1, time_limit=1.0)

    @slow.case("returns")
    def _(fn):
        fn()

    async_ex = Exercise("98.3", "Async add", points=2)

    @async_ex.case("sync case awaiting an async answer")
    def _(fn):
        expect_equal(call(fn, 1, 2), 3)

    @async_ex.case("async case")
    async def _(fn):
        results = await asyncio.gather(*(fn(i, i) for i in range(5)))
        expect_equal(results, [0, 2, 4, 6, 8])

    broken = Exercise("98.4", "Broken check", points=1)

    @broken.case("the check has a bug")
    def _(fn):
        raise CaseFailed("wrong", expected=[1, 2], got=[2, 1], hint="Order matters.")

    module.EXERCISES = [add, slow, async_ex, broken]
    return module


@pytest.fixture(autouse=True)
def lesson98(monkeypatch):
    monkeypatch.setitem(sys.modules, "course_utils.checks.lesson98", _build_lesson())
    checks.reset()
    yield
    checks.reset()


def _rate_limited(a, b):
    request = httpx.Request("POST", "http://127.0.0.1:1/v1/messages")
    response = httpx.Response(429, request=request, headers={"retry-after": "3"})
    body = {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": "Number of requests has exceeded your rate limit"},
    }
    raise anthropic.RateLimitError("Error code: 429", response=response, body=body)


def test_passing_answer(capsys):
    result = checks.check("98.1", lambda a, b: a + b)
    assert result.status == "passed"
    assert result.points == result.max_points == 3
    assert [c.passed for c in result.cases] == [True, True, True]
    printed = capsys.readouterr().out
    assert "✓" in printed and "98.1" in printed
    assert printed.strip() == result.feedback


def test_wrong_answer_shows_expected_got_hint_and_partial_credit():
    result = checks.check("98.1", lambda a, b: abs(a) + abs(b))
    assert result.status == "failed"
    assert result.points == pytest.approx(2.0)  # 2 of 3 cases x 3 points
    failing = [c for c in result.cases if not c.passed]
    assert [c.name for c in failing] == ["negative numbers"]
    assert "expected: -5" in failing[0].message and "got:      5" in failing[0].message
    assert "Hint 1/2: Use the + operator." in result.feedback


def test_wrong_type_is_reported():
    result = checks.check("98.1", lambda a, b: str(a + b))
    assert result.status == "failed"
    assert "wrong type" in result.cases[0].message


def test_stub_is_not_attempted():
    def add(a, b):
        raise NotImplementedError("Exercise 98.1: Use +.")

    result = checks.check("98.1", add)
    assert result.status == "not_attempted"
    assert result.points == 0
    assert "not attempted yet" in result.feedback
    assert "`add` still raises NotImplementedError" in result.feedback


def test_sdk_error_is_explained_without_traceback():
    result = checks.check("98.1", _rate_limited)
    assert result.status == "error"
    message = result.cases[0].message
    assert "429 rate_limit_error" in message and "backoff" in message
    assert "Traceback" not in result.feedback
    assert "In your code: test_checks_framework.py" in message and "raise anthropic.RateLimitError" in message


def test_wrong_signature_is_explained():
    result = checks.check("98.1", lambda a: a)
    assert result.status == "error"
    assert "could not call" in result.cases[0].message and "add(a, b) -> int" in result.cases[0].message


@pytest.mark.parametrize(
    "exc, phrase",
    [
        (TimeoutError("deadline"), "waited longer than its own limit"),
        (asyncio.TimeoutError(), "waited longer than its own limit"),
        (AssertionError("x > 0"), "An assert in your code failed (x > 0)"),
        (
            anthropic.APIConnectionError(request=httpx.Request("POST", "http://127.0.0.1:1/v1/messages")),
            "could not reach the API",
        ),
        (anthropic.APITimeoutError(request=httpx.Request("POST", "http://127.0.0.1:1/v1/messages")), "timed out"),
        (KeyError("text"), "Your code raised KeyError"),
    ],
)
def test_other_errors_are_explained(exc, phrase):
    def answer(a, b):
        raise exc

    result = checks.check("98.1", answer)
    assert result.status == "error"
    assert phrase in result.cases[0].message


def test_infinite_loop_times_out_within_the_limit():
    def spin():
        while True:
            pass

    # Code that never yields fails on any machine: the wall-clock safety net gives the verdict.
    result = checks.check("98.2", spin)
    assert result.status == "timeout"
    assert result.points == 0
    assert "took too long" in result.feedback.lower()


def test_blocking_answer_times_out_with_explicit_limit():
    result = checks.check("98.1", lambda a, b: time.sleep(30), time_limit=1)
    assert result.status == "timeout"
    assert [c.outcome for c in result.cases] == ["timeout", "skipped", "skipped"]


def test_async_answer_from_inside_a_running_loop():
    async def add(a, b):
        await asyncio.sleep(0.01)
        return a + b

    async def notebook_cell():
        # The kernel thread already runs a loop: check() must not try to use or nest it.
        asyncio.get_running_loop()
        return checks.check("98.3", add)

    result = asyncio.run(notebook_cell())
    assert result.status == "passed", result.feedback


def test_async_infinite_wait_times_out():
    async def add(a, b):
        await asyncio.Event().wait()

    result = checks.check("98.3", add, time_limit=1)
    assert result.status == "timeout"


def test_async_answer_past_the_virtual_limit_times_out_deterministically():
    async def add(a, b):
        await asyncio.sleep(10 * 3600)  # ten virtual hours: past the limit, at the same moment everywhere
        return a + b

    result = checks.check("98.3", add)
    assert result.status == "timeout", result.feedback
    assert result.points == 0 and "simulated" in result.feedback


def test_async_answer_sleeping_long_costs_no_wall_time():
    async def add(a, b):
        await asyncio.sleep(600)  # ten virtual minutes
        return a + b

    assert checks.check("98.3", add).status == "passed"


@pytest.mark.parametrize(
    "exercise_id, answer",
    [
        ("98.9", len),  # no such exercise
        ("nonsense", len),  # not an id
        ("97.1", len),  # no such lesson
        ("98.1", None),  # not even a function
        ("98.1", lambda a, b: sys.exit(1)),  # SystemExit is a BaseException
    ],
)
def test_check_never_raises(exercise_id, answer):
    result = checks.check(exercise_id, answer)
    assert result.status == "error"
    assert result.feedback


def test_hints_escalate_within_the_session():
    wrong = lambda a, b: a - b
    feedback = [checks.check("98.1", wrong).feedback for _ in range(3)]
    assert "Hint 1/2: Use the + operator." in feedback[0]
    assert "Hint 2/2: return a + b" in feedback[1]
    assert "Hint 2/2: return a + b" in feedback[2]
    checks.reset()
    assert "Hint 1/2" in checks.check("98.1", wrong).feedback


def test_case_hint_and_expected_got_from_case_failed():
    result = checks.check("98.4", len)
    assert result.status == "failed"
    assert "expected: [1, 2]" in result.cases[0].message and "hint: Order matters." in result.cases[0].message


def test_results_contract_and_export(tmp_path):
    checks.check("98.1", lambda a, b: a + b, quiet=True)
    checks.check("98.2", lambda: None, quiet=True)
    checks.check("98.1", lambda a, b: a * b, quiet=True)  # the latest result wins
    data = checks.results()
    assert list(data) == ["98.1", "98.2"]
    entry = data["98.1"]
    assert set(entry) == {"exercise", "title", "status", "points", "max_points", "cases", "feedback"}
    assert entry["exercise"] == "98.1" and entry["title"] == "Add two numbers"
    assert entry["status"] == "failed" and isinstance(entry["points"], float) and entry["max_points"] == 3.0
    assert all(set(c) == {"name", "passed", "message"} for c in entry["cases"])
    path = checks.export_results(tmp_path / "results.json")
    assert json.loads(path.read_text(encoding="utf-8")) == data


def test_exercises_lists_a_lesson():
    listed = checks.exercises(98)
    assert [e.id for e in listed] == ["98.1", "98.2", "98.3", "98.4"]
    assert [e.points for e in listed] == [3, 1, 2, 1]
    assert checks.exercises(97) == []


def test_result_is_not_displayed_twice():
    result = checks.check("98.1", lambda a, b: a + b, quiet=True)
    assert str(result) == result.feedback
