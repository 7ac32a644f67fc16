"""The vocabulary of a lesson's check module: :class:`Exercise`, :class:`Case`, :class:`CaseFailed`.

A lesson module (``course_utils/checks/lessonNN.py``, or a package ``lessonNN/`` with one module per
exercise, as otter-grader keeps one file per question) declares its exercises and their cases::

    from .framework import Exercise, expect_equal

    window = Exercise("1.2", "Sliding window", points=3,
                      signature="sliding_window(turns, budget) -> list",
                      hints=["Start from the newest turn.", "Count each turn with tokens.count_text ..."])

    @window.case("keeps the newest turns that fit")
    def _(sliding_window):
        expect_equal(sliding_window(TURNS, 100), TURNS[-3:], hint="The oldest turns go first.")

    EXERCISES = [window]

A case receives whatever the notebook passed to ``check(id, ...)`` and either returns (passed) or
raises :class:`CaseFailed` (a wrong answer). Any other exception came from the student's code and
is explained to them. Cases may be ``async def``; they run on a private event loop in a worker
thread, never on the notebook kernel's loop.

Scoring: an exercise is worth ``points``; partial credit is the fraction of cases passed times
``points`` (3 of 4 cases on a 2-point exercise scores 1.5).

The rule every lesson's checks follow (issue 14; lessons 05-08 inherit it):

* **Every term of the contract is observed.** For each sentence of the exercise (its markdown and
  its docstring) some case fails an answer that breaks that sentence and only that one. Grade
  behaviour where the contract is about behaviour (the probe's ledger: how many requests, which
  model, which tokens), not the return value alone.
* **Inputs the answer could change are checked after the call** (a mutation check: give the answer
  a deep copy, compare it with the original afterwards, with :func:`expect_unchanged`).
* **Empty input, the contract's edge inputs, and property cases.** An empty list, a budget that fits
  exactly, bare ``\r`` line endings, a float-unfriendly price: the inputs the contract names or real
  data has, not only ones where a wrong answer happens to agree. Where the contract holds for all
  inputs, draw many (a seeded generator in the check, ``hypothesis`` in the tests) and compare with
  the reference.
* **Bounds come from the contract, never from what the answer did** (not "calls + maxsize" when
  ``calls`` is the answer's own behaviour). Select ledger rows by what they are (endpoint, key,
  skill), never by position.
* **Messages state the observed difference and hint at the observed cause.** A failure never
  compares two equal values ("4 events instead of 4"): :class:`CaseFailed` refuses to be built with
  an ``expected`` and a ``got`` that print the same, or a message of the form "N x instead of N", in
  strict mode (:data:`STRICT`: on under the test suite and with ``COURSE_CHECKS_STRICT=1``), so
  every lesson's wrong-answer tests catch such a message.
* **The library's own answer scores nothing** (issue 27): an exercise whose reference lives in
  ``course_utils`` declares it (``reference={"resilience.is_retryable": ...}``) and every case runs
  under :func:`~.forbid.forbid`: the reference itself, an alias, a subclass, a thin wrapper or a call
  into it is refused. Import cells never bind an exercise's name (``tests/test_exercise_names.py``).
* **Every failure hints at its cause** (``hint=``; ``tests/test_check_messages.py`` holds lessons 05-08
  to it), and prints the same on every run (no set in hash order, no echo of the answer's random values).
* **In ``tests/test_checks_lessonNN.py``**: the solution and at least one correct alternative
  written differently pass; plausible wrong answers, written as a student would from the contract,
  are rejected with the phrase that names their mistake; the unedited stub is "not attempted".
"""

from __future__ import annotations

import asyncio
import inspect
import os
import re
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from ..clock import shutdown_loop, virtual_loop
from ..errors import CourseError

__all__ = [
    "CheckError",
    "CaseFailed",
    "Case",
    "Exercise",
    "MISSING",
    "expect",
    "expect_equal",
    "expect_unchanged",
    "case_now",
    "call",
    "run_awaitable",
    "private_loop",
    "loop_of_thread",
    "VIRTUAL_LIMIT",
    "track_tasks",
    "describe",
    "CheckBug",
    "STRICT",
    "shows_no_difference",
]


class _Missing:
    def __repr__(self) -> str:
        return "<not given>"


MISSING: Any = _Missing()
"""Placeholder for ``expected``/``got`` when a failure has nothing meaningful to show."""


def _strict() -> bool:
    return os.environ.get("COURSE_CHECKS_STRICT", "") not in ("", "0") or "PYTEST_CURRENT_TEST" in os.environ


STRICT: Callable[[], bool] = _strict
"""Whether a failure that shows no difference is a :class:`CheckBug` (the test suite, or
``COURSE_CHECKS_STRICT=1``). In a student's notebook the message is shown as it is."""


class CheckError(CourseError):
    """Base of the checks' own exceptions: :class:`CaseFailed` (a wrong answer) and :class:`CheckBug`.

    (:class:`~.runner.CheckAbandoned` stays a ``BaseException``, so that student code cannot catch it.)
    """


class CheckBug(CheckError):
    """A check built a failure message that names no difference: a bug in the check, not in the answer."""


_SAME_COUNT = re.compile(
    r"(?<![\w.,])(\d[\d,.]*)\s+([a-z][\w()-]*(?:\s[a-z][\w()-]*)?)\s+instead of\s+\1(?![\d,.]*\d)(?:\s+\2)?\b",
    re.IGNORECASE,
)


def shows_no_difference(message: str = "", expected: Any = MISSING, got: Any = MISSING) -> str | None:
    """Why a failure with this ``message``, ``expected`` and ``got`` tells the student nothing, or ``None``.

    Two cases: ``expected`` and ``got`` print the same (:func:`describe`), or the message compares
    a number with itself ("4 events instead of 4").
    """
    if expected is not MISSING and got is not MISSING and describe(expected) == describe(got):
        return f"expected and got print the same ({describe(expected, 80)})"
    match = _SAME_COUNT.search(message or "")
    if match:
        return f"the message compares a number with itself ({match.group(0)!r})"
    return None


class CaseFailed(CheckError, AssertionError):
    """The student's answer is wrong in this case: what was expected, what came back, and a hint.

    Subclasses ``AssertionError`` so a case can also be written with plain ``assert`` statements,
    but raise this for a useful message. In strict mode (:data:`STRICT`) a failure that shows no
    difference (:func:`shows_no_difference`) raises :class:`CheckBug` instead.
    """

    def __init__(self, message: str = "", *, expected: Any = MISSING, got: Any = MISSING, hint: str | None = None):
        if STRICT():
            why = shows_no_difference(message, expected, got)
            if why:
                raise CheckBug(f"a failure message that names no difference: {why}; message: {message!r}")
        self.message = message
        self.expected = expected
        self.got = got
        self.hint = hint
        super().__init__(message or f"expected {expected!r}, got {got!r}")


@dataclass
class Case:
    """One graded scenario: ``run(*answer, **kw)`` returns normally (pass) or raises :class:`CaseFailed`."""

    name: str
    run: Callable[..., Any]


@dataclass
class Exercise:
    """A graded exercise: its cases, its worth and its hints (a nudge first, then more specific)."""

    id: str
    title: str
    points: float = 1.0
    cases: list[Case] = field(default_factory=list)
    hints: list[str] = field(default_factory=list)
    signature: str | None = None
    """How the check calls the answer, e.g. ``"first_request(client, question) -> str"``; quoted when
    the student's function has the wrong signature."""
    time_limit: float | None = None
    """Seconds for the whole check; ``None`` uses the framework default (30 s)."""
    reference: dict[str, Any] = field(default_factory=dict)
    """The library's own answer (display name -> function or class): every case runs under
    :func:`~.forbid.forbid`, so the reference itself, an alias, a subclass, a thin wrapper or a call
    into it scores nothing."""
    task: str = ""
    """Completes "the exercise is to ... without the library" in a refusal (with ``reference``)."""

    @property
    def lesson(self) -> int:
        return int(self.id.split(".", 1)[0])

    def case(self, name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator: append the function as a case named ``name`` (cases run in declaration order)."""

        def register(fn: Callable[..., Any]) -> Callable[..., Any]:
            self.cases.append(Case(name, fn))
            return fn

        return register

    def hint(self, level: int) -> str | None:
        """The hint for the ``level``-th failure (0-based), staying on the last one once exhausted."""
        if not self.hints:
            return None
        return self.hints[min(level, len(self.hints) - 1)]


def expect(
    condition: Any, message: str = "", *, expected: Any = MISSING, got: Any = MISSING, hint: str | None = None
) -> None:
    """Raise :class:`CaseFailed` unless ``condition`` is true."""
    if not condition:
        raise CaseFailed(message, expected=expected, got=got, hint=hint)


def expect_equal(got: Any, expected: Any, message: str = "", *, hint: str | None = None) -> None:
    """Raise :class:`CaseFailed` unless ``got == expected`` (and of the expected type for exact types)."""
    # For scalars a wrong type is its own mistake (e.g. "5" for 5), worth naming explicitly.
    wrong_type = type(expected) in (bool, int, float, str) and type(got) is not type(expected)
    if wrong_type and not (isinstance(expected, float) and isinstance(got, int)):
        kind = f"wrong type: expected a {type(expected).__name__}, got a {type(got).__name__}"
        raise CaseFailed(
            f"{message}: {kind}" if message else kind,
            expected=expected,
            got=got,
            hint=hint,
        )
    if got != expected:
        raise CaseFailed(message, expected=expected, got=got, hint=hint)


def expect_unchanged(before: Any, after: Any, name: str, what: str) -> None:
    """The mutation check: raise :class:`CaseFailed` unless the answer left its input as given.

    ``before`` is the input as the case built it, ``after`` the (deep) copy the answer was given, read
    after the call; ``name`` is the parameter's name and ``what`` the function's, for the message.
    """
    if after != before:
        raise CaseFailed(
            f"{what} changed `{name}`: it had {len(before)} entries, now {len(after)}"
            if len(after) != len(before)
            else f"{what} changed the entries of `{name}`",
            hint=f"Read `{name}` without modifying it (no pop, sort or remove): the caller still "
            "needs it, e.g. to retry or to match results to inputs.",
        )


def case_now() -> float:
    """The case's clock: the running loop's time in seconds (virtual in an async case, see :func:`private_loop`).

    Call it inside an ``async`` case; differences of two readings are the virtual seconds that passed.
    """
    return asyncio.get_running_loop().time()


def call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call the student's function, running it to completion if it is ``async``.

    Cases run in a worker thread with no event loop, so awaiting here on a fresh private loop never
    touches the notebook kernel's loop.
    """
    result = fn(*args, **kwargs)
    if inspect.isawaitable(result):
        return run_awaitable(result)
    return result


def run_awaitable(awaitable: Any) -> Any:
    """Run ``awaitable`` on a :func:`private_loop` in the current (worker) thread, then close the loop."""
    with private_loop() as loop:
        return loop.run_until_complete(_as_coroutine(awaitable))


VIRTUAL_LIMIT = 3600.0
"""Virtual seconds an async case may run; past them every waiting task gets ``TimeoutError``."""

_loops: dict[int, asyncio.AbstractEventLoop] = {}
_loops_lock = threading.Lock()


@contextmanager
def private_loop() -> Iterator[asyncio.AbstractEventLoop]:
    """A fresh virtual-time event loop for the current thread, closed (tasks cancelled) afterwards.

    While it is open, :func:`loop_of_thread` finds it, so the runner's time limit, which fires in
    another thread, can cancel the case's tasks.
    """
    loop = virtual_loop(limit=VIRTUAL_LIMIT)
    ident = threading.get_ident()
    with _loops_lock:
        outer = _loops.get(ident)
        _loops[ident] = loop
    asyncio.set_event_loop(loop)
    try:
        yield loop
    finally:
        asyncio.set_event_loop(None)
        with _loops_lock:
            if outer is None:
                _loops.pop(ident, None)
            else:
                _loops[ident] = outer
        shutdown_loop(loop)


def loop_of_thread(ident: int | None) -> asyncio.AbstractEventLoop | None:
    """The :func:`private_loop` thread ``ident`` is running now, or None."""
    with _loops_lock:
        return _loops.get(ident) if ident is not None else None


async def _as_coroutine(awaitable: Any) -> Any:
    return await awaitable


def track_tasks() -> list:
    """From now on, keep every task the running loop creates; return the list they are appended to.

    For cases that grade "no task left running": ``asyncio.all_tasks()`` holds tasks only weakly, and a
    task abandoned on a queue nothing else references is a garbage cycle, so whether it is still listed
    depends on when the collector last ran. Holding each task here gives the same verdict on every run.
    Call it inside the case's own loop (each case runs on a private one, so the factory dies with it).
    """
    loop = asyncio.get_running_loop()
    created: list = []

    def factory(loop: Any, coro: Any, **kwargs: Any) -> Any:
        task = asyncio.Task(coro, loop=loop, **kwargs)
        created.append(task)
        return task

    loop.set_task_factory(factory)
    return created


def describe(value: Any, limit: int = 300) -> str:
    """Short printable form of an expected/got value for the verdict (``repr``, truncated)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 20] + f"... ({len(text)} chars)"
