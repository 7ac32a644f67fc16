"""Run one case of student code in a worker thread, within a time limit.

The notebook kernel's thread already runs an event loop, so student code never runs there: each
case gets a daemon thread, and ``async`` code gets a private event loop inside that thread. That
loop runs on virtual time (:func:`course_utils.clock.virtual_loop`): sleeps, timeouts, SDK retry
waits and the in-process simulator's latency cost no wall time, and an answer that waits too long
meets :data:`VIRTUAL_LIMIT` at the same virtual moment on every machine.

The ``limit`` is only a safety net for code that never yields (a busy loop), which fails on any
machine. It counts this process's CPU time, so a machine loaded by other processes does not turn a
slow pass into a timeout; code that blocks without computing meets a wall-clock limit
(``limit * WALL_FACTOR``) instead. When either passes, the check reports a timeout at once; the
worker is then asked to stop (its asyncio tasks are cancelled and an exception is injected into a
busy Python loop) and abandoned.
"""

from __future__ import annotations

import asyncio
import ctypes
import inspect
import os
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from ..mock_provider import use_reply_scenario
from .framework import VIRTUAL_LIMIT, loop_of_thread, private_loop

__all__ = ["RunOutcome", "run_with_limit", "private_loop", "CheckAbandoned", "VIRTUAL_LIMIT", "WALL_FACTOR"]


class CheckAbandoned(BaseException):
    """Injected into a worker that ran past its time limit. A ``BaseException`` so that student
    code's ``except Exception`` cannot swallow it."""


@dataclass
class RunOutcome:
    """What a worker produced: a value, an exception, or nothing in time."""

    value: Any = None
    error: BaseException | None = None
    timed_out: bool = False
    seconds: float = 0.0


class _Worker(threading.Thread):
    def __init__(self, fn: Callable[..., Any], args: tuple, kwargs: dict) -> None:
        super().__init__(name="course-check", daemon=True)
        self.fn, self.args, self.kwargs = fn, args, kwargs
        self.outcome = RunOutcome()

    def run(self) -> None:
        try:
            # Verdicts must not depend on the grader's environment: replies are plain (the models'
            # default shapes, thinking blocks included, never a refusal or pause_turn) unless a case
            # pins another reply scenario itself (COURSE_REPLY_SCENARIO is for running notebooks).
            with use_reply_scenario("plain"):
                value = self.fn(*self.args, **self.kwargs)
                if inspect.isawaitable(value):  # an ``async def`` case
                    with private_loop() as loop:
                        value = loop.run_until_complete(_await(value))
            self.outcome.value = value
        except CheckAbandoned:
            pass
        except BaseException as exc:  # noqa: BLE001 - everything the student raises is reported
            self.outcome.error = exc

    def stop(self) -> None:
        """Best effort: cancel asyncio work, then interrupt pure-Python loops."""
        loop = loop_of_thread(self.ident)
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(_cancel_all, loop)
            except RuntimeError:
                pass
        if self.ident is not None and self.is_alive():
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(self.ident), ctypes.py_object(CheckAbandoned))


async def _await(awaitable: Any) -> Any:
    return await awaitable


def _cancel_all(loop: asyncio.AbstractEventLoop) -> None:
    for task in asyncio.all_tasks(loop):
        task.cancel()


WALL_FACTOR = 6.0
"""A case that computes nothing (blocked on a lock, ``time.sleep``) is stopped after ``limit`` times this
many seconds of wall-clock time; one that computes, after ``limit`` seconds of CPU time."""


def run_with_limit(fn: Callable[..., Any], args: tuple = (), kwargs: dict | None = None, *, limit: float) -> RunOutcome:
    """Run ``fn(*args, **kwargs)`` in a worker thread; give up after ``limit`` seconds of this process's CPU time.

    CPU time, not wall-clock time: on a machine busy with other processes (a CI runner, a grading
    cluster) the same case takes many times longer on the wall clock but the same CPU time, so the
    verdict does not depend on the load. Code that waits without computing (a blocking sleep, a
    deadlock) uses no CPU; it is stopped after ``limit * WALL_FACTOR`` seconds of wall-clock time.
    ``RunOutcome.seconds`` is the CPU time used.
    """
    worker = _Worker(fn, args, kwargs or {})
    cpu_started, wall_started = time.process_time(), time.perf_counter()
    worker.start()
    limit = max(limit, 0.0)
    while True:
        cpu_left = limit - (time.process_time() - cpu_started)
        wall_left = limit * WALL_FACTOR - (time.perf_counter() - wall_started)
        if cpu_left <= 0 or wall_left <= 0:
            break
        # CPU time runs no faster than the wall clock times the cores: waiting cpu_left / cores
        # cannot overshoot the budget by more than a poll.
        worker.join(min(wall_left, max(cpu_left / _CORES, 0.05), 0.5))
        if not worker.is_alive():
            worker.outcome.seconds = time.process_time() - cpu_started
            return worker.outcome
    if not worker.is_alive():  # finished at the very end of the budget
        worker.outcome.seconds = time.process_time() - cpu_started
        return worker.outcome
    worker.stop()
    worker.join(0.2)  # usually enough for the injected exception to land
    return RunOutcome(timed_out=True, seconds=time.process_time() - cpu_started)


_CORES = max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))
