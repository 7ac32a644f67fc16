"""Same code, same grade, whatever the grader's environment says about reply shapes (issue 13 item 3).

``COURSE_REPLY_SCENARIO=hostile`` makes a quarter of replies refusals and every reply think: the
way to run a notebook against what the current models can return. Checks must not inherit it:
their verdicts compare exact texts and token counts, so the runner pins plain replies for every
case. Here the reference answer of every exercise of lessons 00-04, and of every exercise of lessons
05-07 whose check calls the simulator, still passes under ``hostile``.
"""

from __future__ import annotations

import pytest

import course_utils.checks as checks
import test_checks_lesson00 as t0
import test_checks_lesson01 as t1
import test_checks_lesson02 as t2
import test_checks_lesson03 as t3
import test_checks_lesson04 as t4
import test_checks_lesson05 as t5
import test_checks_lesson06 as t6
import test_checks_lesson07 as t7
import test_checks_lesson08 as t8
from course_utils.mock_provider import REPLY_SCENARIOS

SOLUTIONS = {
    "0.1": t0.first_request,
    "0.2": t0.request_cost,
    "1.1": t1.count_request_tokens,
    "1.2": t1.sliding_window,
    "1.3": t1.compact,
    "1.4": t1.place_breakpoints,
    "2.1": t2.parse_sse,
    "2.2": t2.stream_metrics,
    "2.3": t2.bounded_relay,
    "2.4": t2.relay_text,
    "3.1": t3.bounded_map,
    "3.2": t3.collect_outcomes,
    "3.3": t3.run_workers,
    "3.4": t3.dispatch,
    "4.1": t4.build_batches,
    "4.2": t4.poll_until_ended,
    "4.3": t4.join_and_triage,
    "4.4": t4.resubmit_failures,
    "5.2": t5.call_with_retries,
    "5.4": t5.idempotent_call,
    "5.5": t5.make_handler,
    "6.3": t6.compress,
    "6.4": t6.route,
    "6.5": t6.SpendGuard,
    "7.4": t7.TenantBudget,
    "7.5": t7.tenant_charges,
    "8.2": t8.build_request,
    "8.3": t8.answer_event,
    "8.4": t8.wire_pipeline,
}


def test_the_hostile_scenario_exists_and_is_hostile():
    hostile = REPLY_SCENARIOS["hostile"]
    assert hostile["refusal"] > 0 and hostile["thinking_by_default"] == "always"


@pytest.mark.parametrize("exercise", sorted(SOLUTIONS))
def test_reference_passes_under_the_hostile_reply_scenario(exercise, monkeypatch):
    monkeypatch.setenv("COURSE_REPLY_SCENARIO", "hostile")
    result = checks.check(exercise, SOLUTIONS[exercise], quiet=True)
    assert result.status == "passed", result.feedback
