"""Check verdicts on screen: coloured, escaped HTML for JupyterLab, the same text everywhere else."""

from __future__ import annotations

import html
import sys
import types

import IPython
import IPython.display
import pytest
from IPython.core.formatters import HTMLFormatter, PlainTextFormatter

import course_utils.checks as checks
from course_utils.checks import CaseFailed, Exercise, expect_equal
from course_utils.checks.report import CaseResult, CheckResult
from course_utils.checks.report import STATUS_COLORS, format_verdict, show, split_hint, verdict_html

EVIL = "<script>alert('x')</script> & <b>bold</b>"


def _lesson() -> types.ModuleType:
    module = types.ModuleType("course_utils.checks.lesson96")
    add = Exercise("96.1", "Add <two> numbers", points=2, hints=["Use the + operator.", "return a + b"])

    @add.case("small numbers")
    def _(fn):
        expect_equal(fn(2, 3), 5)

    @add.case("echo the answer")
    def _(fn):
        got = fn(0, 0)
        if got != 0:
            raise CaseFailed("zero plus zero", expected=0, got=got, hint=EVIL)

    module.EXERCISES = [add]
    return module


@pytest.fixture(autouse=True)
def lesson96(monkeypatch):
    monkeypatch.setitem(sys.modules, "course_utils.checks.lesson96", _lesson())
    checks.reset()
    yield
    checks.reset()


def test_passed_is_green_with_points():
    result = checks.check("96.1", lambda a, b: a + b, quiet=True)
    page = result._repr_html_()
    assert "course-check-passed" in page and STATUS_COLORS["passed"][0] in page
    assert "2/2 points" in page and "all 2 cases passed" in page
    assert "<details" not in page  # nothing to hint at


def test_failed_is_red_with_case_details_and_a_folded_hint():
    result = checks.check("96.1", lambda a, b: a - b + 1, quiet=True)  # 2-3+1 = 0 and 0-0+1 = 1: both wrong
    page = verdict_html(result)
    assert result.status == "failed"
    assert "course-check-failed" in page and STATUS_COLORS["failed"][0] in page
    assert "0/2 points" in page and "0 of 2 cases passed" in page
    assert "<details" in page and "<summary" in page and "Hint 1/2" in page and "Use the + operator." in page
    assert "expected: 5" in page


def test_not_attempted_is_grey():
    def stub(a, b):
        raise NotImplementedError("Exercise 96.1: Use +.")

    result = checks.check("96.1", stub, quiet=True)
    page = verdict_html(result)
    assert result.status == "not_attempted"
    assert "course-check-not_attempted" in page and STATUS_COLORS["not_attempted"][0] in page
    assert "not attempted yet" in page and "0/2 points" in page


def test_student_text_is_escaped():
    result = checks.check("96.1", lambda a, b: EVIL if a == 0 else a + b, quiet=True)
    page = verdict_html(result)
    assert "<script>" not in page and "<b>bold</b>" not in page
    assert html.escape(EVIL) in page or html.escape(repr(EVIL)) in page
    assert "Add &lt;two&gt; numbers" in page  # titles are escaped too


def test_a_verdict_engine_wrote_itself_keeps_its_words():
    result = CheckResult("9.9", "", "error", 0.0, 0.0, [CaseResult("check", False, "no such exercise", "error")])
    result.feedback = "✗ Exercise 9.9: cannot check this answer. no such <exercise>"
    page = verdict_html(result)
    assert "cannot check this answer. no such &lt;exercise&gt;" in page


def test_plain_text_is_the_verdict_text():
    result = checks.check("96.1", lambda a, b: a - b + 1, quiet=True)
    assert IPython.lib.pretty.pretty(result) == result.feedback
    assert PlainTextFormatter()(result) == result.feedback
    assert HTMLFormatter()(result) == verdict_html(result)


def test_split_hint_takes_the_unindented_hint_line():
    text = "✗ Exercise 1.1: 0 of 1 cases passed (0/1 points)\n  ✗ case\n      Hint: not this one\nHint 2/3: this one\nand more"
    body, label, hint = split_hint(text)
    assert label == "Hint 2/3" and hint == "this one\nand more"
    assert body.endswith("not this one")
    assert split_hint("✓ Exercise 1.1: all 1 case passed (1/1 points)")[1:] == (None, None)


def test_verdict_text_is_unchanged_by_the_html():
    result = checks.check("96.1", lambda a, b: a + b, quiet=True)
    assert result.feedback == format_verdict(result, _lesson().EXERCISES[0], None, 0)


def test_show_prints_outside_ipython(capsys, monkeypatch):
    monkeypatch.setattr(IPython, "get_ipython", lambda: None)
    result = checks.check("96.1", lambda a, b: a + b, quiet=True)
    show(result)
    assert capsys.readouterr().out.strip() == result.feedback


def test_show_publishes_html_and_text_in_a_kernel(monkeypatch, capsys):
    published = []
    monkeypatch.setattr(IPython, "get_ipython", lambda: object())
    monkeypatch.setattr(IPython.display, "display", lambda obj, raw=False: published.append((obj, raw)))
    result = checks.check("96.1", lambda a, b: a * b, quiet=True)
    show(result)
    assert capsys.readouterr().out == ""
    [(bundle, raw)] = published
    assert raw is True
    assert bundle["text/plain"] == result.feedback
    assert bundle["text/html"] == verdict_html(result)
