"""Same code, same grade: every time-dependent check gives the same verdict while its CPU is contended.

Checks run on virtual time against an in-process simulator (``course_utils.checks.sim``), so a
verdict can depend only on the answer and the seed. This test proves it the way an instructor's
laptop would break it: a CPU burner on the checks' own core (a spinning subprocess pinned with the
checks to one core, ended by PID) while the right and wrong answers of every time-dependent exercise
are checked, once on a calm machine and once while the burner spins; verdicts, points, per-case
outcomes and messages must be identical (and the solution passes, the wrong answers fail, so the
comparison is not between identical errors).
"""

from __future__ import annotations

import os
import subprocess
import sys
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import pytest

import course_utils.checks as checks
import test_checks_lesson02 as t2
import test_checks_lesson03 as t3
import test_checks_lesson04 as t4
import test_checks_lesson05 as t5
import test_checks_lesson06 as t6
import test_checks_lesson07 as t7
import test_checks_lesson08 as t8

pytestmark = pytest.mark.load

# Exercise -> the answers whose verdicts must not move: the solution and the wrong answers whose
# rejection depends on time (rates, overlap, timeouts, cancellation, polling schedules).
ANSWERS: dict[str, list[Callable[..., Any]]] = {
    "2.3": [t2.bounded_relay, t2.unbounded_queue, t2.never_cancels_reader, t2.keeps_sending],
    "2.4": [t2.relay_text, t2.never_closes],
    "3.1": [t3.bounded_map, t3.sequential, t3.batches_of_limit],
    "3.2": [t3.collect_outcomes, t3.no_timeout, t3.sequential_with_timeouts],
    "3.3": [t3.run_workers, t3.task_per_item],
    "3.4": [t3.dispatch, t3.bucket_started_before_connecting, t3.bucket_at_80_percent],
    "4.2": [t4.poll_until_ended, t4.no_deadline, t4.uncapped_doubling, t4.shrinking_waits],
    "5.2": [t5.call_with_retries, t5.deadline_checked_after_sleep, t5.jitter_without_growth, t5.uncapped],
    "5.3": [t5.CircuitBreaker, t5.NoHalfOpen, t5.HalfOpenLetsEverythingThrough],
    "6.4": [t6.route, t6.always(t6.CHEAP)],  # each answer runs the hidden set: the cheapest wrong one
    "6.5": [t6.SpendGuard, t6.CheckThenSpend, t6.NeverSettles, t6.ReleasesOnAnyError],
    "7.1": [t7.TenantRateLimiter, t7.OneGlobalBucket, t7.NeverRefills, t7.RefusalResetsTheClock],
    "7.4": [t7.TenantBudget, t7.CheckThenAct, t7.NeverSettles, t7.SwallowsTheError],
    "8.1": [
        t8.handle_event,
        t8.ack_first,
        t8.in_memory_set,
        t8.no_rollback,
    ],  # redelivery after the idle timeout, a restart
    "8.3": [
        t8.answer_event,
        t8.model_call_outside_the_inbox,
        t8.answers_the_latest_message,
    ],  # 8.1 composed with a model call on a simulator: the ledger after restarts and redeliveries
    "8.4": [t8.wire_pipeline, t8.wire_too_few_workers],  # a load test: p95 time to first token
}
ALSO_CORRECT: dict[str, list[Callable[..., Any]]] = {
    # Correct alternatives whose verdict depends on what virtual time covers (issue 27, class 3): tenacity's
    # deadline stop reads time.monotonic(); a GCRA limiter waits to the microsecond.
    "5.2": [t5.call_with_idiomatic_tenacity],
    "7.1": [t7.GcraLimiter],
}


def _verdict(exercise: str, answer: Callable[..., Any]) -> tuple[Any, ...]:
    result = checks.check(exercise, answer, quiet=True)
    # The messages too: a verdict's text must not change from run to run (a set printed in hash order did).
    return result.status, result.points, tuple((c.name, c.outcome, c.message) for c in result.cases)


@contextmanager
def burners() -> Iterator[list[subprocess.Popen]]:
    """This process's core shared with a spinning process while the block runs; ended by PID.

    This process (the thread running the checks, and every thread it starts) is pinned to one core
    and one burner is pinned to the same core, so the checks get at most half a core, preempted
    every scheduler slice: harder on them than one burner per core (three processes on two cores
    gave them two thirds), and the other cores, where ``make test`` runs the other test files,
    are left alone. The affinity is restored afterwards. Where a process cannot be pinned (macOS),
    one burner per core, as before.
    """
    pin = hasattr(os, "sched_setaffinity")
    before = os.sched_getaffinity(0) if pin else set()
    core = {min(before)} if pin else set()
    procs: list[subprocess.Popen] = []
    try:
        if pin:
            os.sched_setaffinity(0, core)
        for _ in range(1 if pin else os.cpu_count() or 2):
            procs.append(subprocess.Popen([sys.executable, "-c", "while True: pass"]))
            if pin:
                os.sched_setaffinity(procs[-1].pid, core)
        yield procs
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()
        if pin:
            os.sched_setaffinity(0, before)


def _shares_our_core(proc: subprocess.Popen) -> bool:
    return not hasattr(os, "sched_getaffinity") or os.sched_getaffinity(proc.pid) == os.sched_getaffinity(0)


@pytest.mark.parametrize("exercise", sorted(ANSWERS))
def test_verdicts_are_identical_under_load(exercise):
    solution, *wrong = ANSWERS[exercise]
    correct = [solution, *ALSO_CORRECT.get(exercise, [])]
    answers = [*ANSWERS[exercise], *ALSO_CORRECT.get(exercise, [])]
    calm = [_verdict(exercise, answer) for answer in answers]
    with burners() as procs:
        loaded = [_verdict(exercise, answer) for answer in answers]
        assert all(p.poll() is None for p in procs), "the CPU burner must run until the last check ends"
        assert all(_shares_our_core(p) for p in procs), "the burner shares the checks' core"
    for answer, alone, busy in zip(answers, calm, loaded):
        assert busy == alone, (exercise, answer.__name__, alone, busy)
        expected = ("passed",) if answer in correct else ("failed", "timeout")
        assert alone[0] in expected, (exercise, answer.__name__, alone)
