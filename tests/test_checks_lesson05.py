"""Lesson 05 checks: the solutions and correct alternatives pass, plausible wrong answers are rejected."""

from __future__ import annotations

import asyncio
import collections
import functools
import hashlib
import json
import random

import anthropic
import pytest
import tenacity

import course_utils.checks as checks
from _checks import assert_not_attempted, assert_rejected, passes
from course_utils.clock import SYSTEM_CLOCK
from course_utils.resilience import CircuitBreaker as ReferenceBreaker
from course_utils.resilience import RetryPolicy
from course_utils.resilience import is_retryable as reference_is_retryable


# ----- 5.1 ------------------------------------------------------------------------------------
def is_retryable(exc):
    if isinstance(exc, anthropic.APIStatusError):
        if exc.error_code == "enforced_spend_limit_reached":
            return False
        header = exc.response.headers.get("x-should-retry")
        if header in ("true", "false"):
            return header == "true"
        return exc.status_code in (408, 429) or exc.status_code >= 500
    return isinstance(exc, (anthropic.APIConnectionError, TimeoutError))


def is_retryable_by_type(exc):
    """Written differently: the SDK's exception classes, a table of statuses, the header as a lookup."""
    if isinstance(exc, (anthropic.APIConnectionError, TimeoutError)):  # APITimeoutError is a connection error
        return True
    if not isinstance(exc, anthropic.APIStatusError):
        return False
    if getattr(exc, "error_code", None) == "enforced_spend_limit_reached":
        return False
    override = {"true": True, "false": False}.get(exc.response.headers.get("x-should-retry", ""))
    if override is not None:
        return override
    return isinstance(exc, (anthropic.RateLimitError, anthropic.InternalServerError)) or exc.status_code in (408,)


def is_retryable_with_match(exc):
    """Written differently: structural pattern matching on (type, status, header)."""
    match exc:
        case anthropic.APIStatusError(status_code=status, response=response):
            if exc.error_code == "enforced_spend_limit_reached":
                return False
            match response.headers.get("x-should-retry"):
                case "true":
                    return True
                case "false":
                    return False
            return status == 408 or status == 429 or 500 <= status <= 599
        case anthropic.APIConnectionError() | TimeoutError():
            return True
    return False


def header_before_spend_limit(exc):
    """Reads x-should-retry first: a spend-limit 429 that says "true" is retried."""
    if isinstance(exc, anthropic.APIStatusError):
        header = exc.response.headers.get("x-should-retry")
        if header in ("true", "false"):
            return header == "true"
        if exc.error_code == "enforced_spend_limit_reached":
            return False
        return exc.status_code in (408, 429) or exc.status_code >= 500
    return isinstance(exc, (anthropic.APIConnectionError, TimeoutError))


def header_only_says_no(exc):
    """Obeys x-should-retry: false but ignores true."""
    if isinstance(exc, anthropic.APIStatusError):
        if exc.error_code == "enforced_spend_limit_reached" or exc.response.headers.get("x-should-retry") == "false":
            return False
        return exc.status_code in (408, 429) or exc.status_code >= 500
    return isinstance(exc, (anthropic.APIConnectionError, TimeoutError))


def listed_5xx_only(exc):
    """Only the 5xx codes the lesson names (500, 504, 529), not "other 5xx"; forgets 408."""
    if isinstance(exc, anthropic.APIStatusError):
        if exc.error_code == "enforced_spend_limit_reached":
            return False
        header = exc.response.headers.get("x-should-retry")
        if header in ("true", "false"):
            return header == "true"
        return exc.status_code in (429, 500, 504, 529)
    return isinstance(exc, (anthropic.APIConnectionError, TimeoutError))


def sdk_timeouts_only(exc):
    """Retries the SDK's APITimeoutError but not a plain TimeoutError (asyncio.wait_for's)."""
    if isinstance(exc, anthropic.APIStatusError):
        return is_retryable(exc)
    return isinstance(exc, anthropic.APIConnectionError)


def returns_truthy_values(exc):
    """Returns the status class (a truthy int) or None instead of a bool."""
    if isinstance(exc, anthropic.APIStatusError):
        return None if exc.error_code == "enforced_spend_limit_reached" else (exc.status_code >= 500 or None)
    return 1 if isinstance(exc, (anthropic.APIConnectionError, TimeoutError)) else 0


def alias_of_the_library(exc):
    return reference_is_retryable(exc)


@functools.wraps(reference_is_retryable)
def wraps_the_library(exc):
    return bool(reference_is_retryable(exc))


def retry_everything(exc):
    return True


def retry_every_api_error(exc):
    return isinstance(exc, (anthropic.APIStatusError, anthropic.APIConnectionError))


def spend_limit_as_rate_limit(exc):
    if isinstance(exc, anthropic.APIStatusError):
        return isinstance(exc, anthropic.RateLimitError) or exc.status_code >= 500
    return isinstance(exc, anthropic.APIConnectionError)


def reads_status_of_anything(exc):
    return getattr(exc, "status_code") in (429, 500, 529)


def stub_5_1(exc):
    raise NotImplementedError("Exercise 5.1")


@pytest.mark.parametrize("answer", [is_retryable, is_retryable_by_type, is_retryable_with_match])
def test_5_1_solutions_pass(answer):
    passes("5.1", answer)


@pytest.mark.parametrize(
    "answer, phrase",
    [
        (retry_everything, "was retried"),
        (retry_every_api_error, "400 (BadRequestError) was retried"),
        (spend_limit_as_rate_limit, "the spend-limit 429"),
        (reads_status_of_anything, "is_retryable raised AttributeError"),
        (header_before_spend_limit, "the spend-limit 429 was retried because its x-should-retry said true"),
        (header_only_says_no, "a 400 whose response says x-should-retry: true was not retried"),
        (listed_5xx_only, "502 api_error was not retried"),
        (sdk_timeouts_only, "TimeoutError (asyncio.wait_for's) was not retried"),
        (returns_truthy_values, "is_retryable returned None for 429 rate_limit_error"),
        (reference_is_retryable, "your answer is resilience.is_retryable"),
        (alias_of_the_library, "your function called resilience.is_retryable"),
        (wraps_the_library, "your answer is resilience.is_retryable"),
    ],
)
def test_5_1_wrong_answers_are_rejected(answer, phrase):
    assert_rejected("5.1", answer, phrase)


def test_5_1_stub_is_not_attempted():
    assert_not_attempted("5.1", stub_5_1)


# ----- 5.2 ------------------------------------------------------------------------------------
def _retry_after(exc):
    response = getattr(exc, "response", None)
    try:
        return float(response.headers["retry-after"])
    except (AttributeError, KeyError, TypeError, ValueError):
        return 0.0


async def call_with_retries(make_request, *, max_attempts, base_s, cap_s, deadline_s):
    loop = asyncio.get_running_loop()
    started = loop.time()
    for attempt in range(1, max_attempts + 1):
        try:
            return await make_request()
        except Exception as exc:
            if attempt == max_attempts or not is_retryable(exc):
                raise
            wait = _retry_after(exc) + random.uniform(0, min(cap_s, base_s * 2 ** (attempt - 1)))
            if loop.time() - started + wait > deadline_s:
                raise
            await asyncio.sleep(wait)


async def call_with_tenacity(make_request, *, max_attempts, base_s, cap_s, deadline_s):
    """Written differently: tenacity with a custom wait and a deadline stop."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    jitter = tenacity.wait_random_exponential(multiplier=base_s, max=cap_s)

    def wait(state):
        return _retry_after(state.outcome.exception()) + jitter(state)

    def stop(state):
        return state.attempt_number >= max_attempts or loop.time() - started + state.upcoming_sleep > deadline_s

    retrying = tenacity.AsyncRetrying(
        retry=tenacity.retry_if_exception(reference_is_retryable), wait=wait, stop=stop, reraise=True
    )
    return await retrying(make_request)


async def call_with_idiomatic_tenacity(make_request, *, max_attempts, base_s, cap_s, deadline_s):
    """The notebook's invitation taken literally: tenacity's own stops and wait_random_exponential (issue 27:
    its stop_before_delay reads time.monotonic(), which the check's virtual time now covers)."""
    jitter = tenacity.wait_random_exponential(multiplier=base_s, max=cap_s)
    async for attempt in tenacity.AsyncRetrying(
        retry=tenacity.retry_if_exception(is_retryable),
        stop=tenacity.stop_after_attempt(max_attempts) | tenacity.stop_before_delay(deadline_s),
        wait=lambda state: _retry_after(state.outcome.exception()) + jitter(state),
        reraise=True,
    ):
        with attempt:
            return await make_request()


async def uncapped(make_request, *, max_attempts, base_s, cap_s, deadline_s):
    loop = asyncio.get_running_loop()
    started = loop.time()
    for attempt in range(1, max_attempts + 1):
        try:
            return await make_request()
        except Exception as exc:
            if attempt == max_attempts or not is_retryable(exc):
                raise
            wait = _retry_after(exc) + random.uniform(0, base_s * 2 ** (attempt - 1))
            if loop.time() - started + wait > deadline_s:
                raise
            await asyncio.sleep(wait)


def _with_wait(wait_for):
    """A retry loop whose wait after attempt ``n`` is ``wait_for(retry_after, ceiling, state)``."""

    async def answer(make_request, *, max_attempts, base_s, cap_s, deadline_s):
        loop = asyncio.get_running_loop()
        started = loop.time()
        state = {"prev": base_s, "base": base_s, "cap": cap_s}
        for attempt in range(1, max_attempts + 1):
            try:
                return await make_request()
            except Exception as exc:
                if attempt == max_attempts or not is_retryable(exc):
                    raise
                wait = wait_for(_retry_after(exc), min(cap_s, base_s * 2 ** (attempt - 1)), state)
                if loop.time() - started + wait > deadline_s:
                    raise
                await asyncio.sleep(wait)

    return answer


def _decorrelated(retry_after, ceiling, state):
    """AWS's decorrelated jitter, min(cap, uniform(base, previous * 3)), on top of retry-after."""
    state["prev"] = min(state["cap"], random.uniform(state["base"], state["prev"] * 3))
    return retry_after + state["prev"]


# Correct alternatives: the jitter on top of retry-after (full, equal or decorrelated jitter).
equal_jitter_on_retry_after = _with_wait(lambda ra, c, _: ra + c / 2 + random.uniform(0, c / 2))
decorrelated_jitter_on_retry_after = _with_wait(_decorrelated)
# Wrong: the crowd given one retry-after comes back together, or too early.
max_of_retry_after_and_backoff = _with_wait(lambda ra, c, _: max(ra, random.uniform(0, c)))
exactly_retry_after = _with_wait(lambda ra, c, _: ra if ra else random.uniform(0, c))
ignores_retry_after = _with_wait(lambda ra, c, _: random.uniform(0, c))
jitter_below_retry_after = _with_wait(lambda ra, c, _: random.uniform(0.5 * ra, ra) if ra else random.uniform(0, c))


async def call_with_policy(make_request, *, max_attempts, base_s, cap_s, deadline_s):
    policy = RetryPolicy(max_attempts=max_attempts, base_s=base_s, cap_s=cap_s, deadline_s=deadline_s, seed=None)
    return await policy.acall(make_request)


def _variant(*, retry_after=True, jitter=True, deadline=True, reraise=True, retry_if=is_retryable):
    async def answer(make_request, *, max_attempts, base_s, cap_s, deadline_s):
        loop = asyncio.get_running_loop()
        started = loop.time()
        for attempt in range(1, max_attempts + 1):
            try:
                return await make_request()
            except Exception as exc:
                if attempt == max_attempts or not retry_if(exc):
                    if reraise:
                        raise
                    raise RuntimeError("gave up") from exc
                ceiling = min(cap_s, base_s * 2 ** (attempt - 1))
                backoff = random.uniform(0, ceiling) if jitter else ceiling
                wait = _retry_after(exc) + backoff if retry_after else backoff
                if deadline and loop.time() - started + wait > deadline_s:
                    raise
                await asyncio.sleep(wait)

    return answer


async def deadline_checked_after_sleep(make_request, *, max_attempts, base_s, cap_s, deadline_s):
    """Checks the deadline before each attempt, not before the wait: the last wait overshoots it."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    for attempt in range(1, max_attempts + 1):
        try:
            return await make_request()
        except Exception as exc:
            if attempt == max_attempts or not is_retryable(exc) or loop.time() - started > deadline_s:
                raise
            await asyncio.sleep(_retry_after(exc) + random.uniform(0, min(cap_s, base_s * 2 ** (attempt - 1))))


async def jitter_without_growth(make_request, *, max_attempts, base_s, cap_s, deadline_s):
    loop = asyncio.get_running_loop()
    started = loop.time()
    for attempt in range(1, max_attempts + 1):
        try:
            return await make_request()
        except Exception as exc:
            if attempt == max_attempts or not is_retryable(exc):
                raise
            wait = _retry_after(exc) + random.uniform(0, base_s)
            if loop.time() - started + wait > deadline_s:
                raise
            await asyncio.sleep(wait)


async def stub_5_2(make_request, *, max_attempts, base_s, cap_s, deadline_s):
    raise NotImplementedError("Exercise 5.2")


class PolicyOfMine(RetryPolicy):
    pass


async def call_with_a_subclassed_policy(make_request, *, max_attempts, base_s, cap_s, deadline_s):
    return await PolicyOfMine(max_attempts=max_attempts, base_s=base_s, cap_s=cap_s, deadline_s=deadline_s).acall(
        make_request
    )


@pytest.mark.parametrize(
    "answer",
    [
        call_with_retries,
        call_with_tenacity,
        call_with_idiomatic_tenacity,
        equal_jitter_on_retry_after,
        decorrelated_jitter_on_retry_after,
    ],
)
def test_5_2_solutions_pass(answer):
    passes("5.2", answer)


@pytest.mark.parametrize(
    "answer, phrase",
    [
        (_variant(retry_after=False), "retried 0."),
        (_variant(jitter=False), "distinct moments"),
        (_variant(deadline=False), "with deadline_s=16 and retry-after: 4 it gave up after"),
        (deadline_checked_after_sleep, "with deadline_s=16 and retry-after: 4 it gave up after"),
        (_variant(reraise=False), "raised RuntimeError instead of"),
        (_variant(retry_if=lambda exc: True), "BadRequestError was attempted 5 times"),
        (jitter_without_growth, "did not grow with the attempts"),
        (uncapped, "with base_s=1 and cap_s=1.5, a third or fourth retry waited"),
        (max_of_retry_after_and_backoff, "40 clients given retry-after: 3 came back at 1 distinct moments"),
        (exactly_retry_after, "40 clients given retry-after: 3 came back at 1 distinct moments"),
        (ignores_retry_after, "retried 0."),
        (jitter_below_retry_after, "after a 429 that said retry-after: 3"),
        (call_with_policy, "your function called resilience.RetryPolicy"),
        (call_with_a_subclassed_policy, "your function called resilience.RetryPolicy"),
    ],
)
def test_5_2_wrong_answers_are_rejected(answer, phrase):
    assert_rejected("5.2", answer, phrase)


def test_5_2_stub_is_not_attempted():
    assert_not_attempted("5.2", stub_5_2)


# ----- 5.3 ------------------------------------------------------------------------------------
class CircuitBreaker:
    def __init__(
        self, *, failure_rate=0.5, min_calls=5, window_s=10.0, cooldown_s=5.0, half_open_calls=1, clock=SYSTEM_CLOCK
    ):
        self.failure_rate, self.min_calls, self.window_s = failure_rate, min_calls, window_s
        self.cooldown_s, self.half_open_calls, self.clock = cooldown_s, half_open_calls, clock
        self._state = "closed"
        self.window = collections.deque()
        self.opened_at = 0.0
        self.probes = self.probe_successes = 0

    @property
    def state(self):
        if self._state == "open" and self.clock.monotonic() >= self.opened_at + self.cooldown_s:
            self._state, self.probes, self.probe_successes = "half_open", 0, 0
        return self._state

    def allow(self):
        state = self.state
        if state == "closed":
            return True
        if state == "half_open" and self.probes < self.half_open_calls:
            self.probes += 1
            return True
        return False

    def _open(self):
        self._state, self.opened_at = "open", self.clock.monotonic()

    def record_success(self):
        self._record(False)

    def record_failure(self, exc=None):
        if isinstance(exc, anthropic.RateLimitError):
            return
        self._record(True)

    def _record(self, failed):
        state = self.state
        if state == "half_open":
            if failed:
                self._open()
            else:
                self.probe_successes += 1
                if self.probe_successes >= self.half_open_calls:
                    self._state = "closed"
                    self.window.clear()
            return
        if state == "open":
            return
        now = self.clock.monotonic()
        self.window.append((now, failed))
        while self.window and self.window[0][0] < now - self.window_s:
            self.window.popleft()
        failures = sum(f for _, f in self.window)
        if len(self.window) >= self.min_calls and failures / len(self.window) >= self.failure_rate:
            self._open()


class NoHalfOpen(CircuitBreaker):
    @property
    def state(self):
        if self._state == "open" and self.clock.monotonic() >= self.opened_at + self.cooldown_s:
            self._state = "closed"
            self.window.clear()
        return self._state


class HalfOpenLetsEverythingThrough(CircuitBreaker):
    def allow(self):
        return self.state != "open"


class OpensOn429(CircuitBreaker):
    def record_failure(self, exc=None):
        self._record(True)


class OpensAboveTheRate(CircuitBreaker):
    def _record(self, failed):
        if self.state != "closed":
            return super()._record(failed)
        now = self.clock.monotonic()
        self.window.append((now, failed))
        while self.window and self.window[0][0] < now - self.window_s:
            self.window.popleft()
        failures = sum(f for _, f in self.window)
        if len(self.window) >= self.min_calls and failures / len(self.window) > self.failure_rate:
            self._open()


class NoTimeWindow(CircuitBreaker):
    def _record(self, failed):
        if self.state != "closed":
            return super()._record(failed)
        self.window.append((0.0, failed))
        failures = sum(f for _, f in self.window)
        if len(self.window) >= self.min_calls and failures / len(self.window) >= self.failure_rate:
            self._open()


class OnlyStatusErrorsCount(CircuitBreaker):
    def record_failure(self, exc=None):
        if isinstance(exc, anthropic.APIStatusError) and not isinstance(exc, anthropic.RateLimitError):
            self._record(True)


class CountsBreaker:
    """Written differently: counters in a list of timestamps per outcome, a string state machine."""

    def __init__(self, *, failure_rate, min_calls, window_s, cooldown_s, half_open_calls, clock):
        self.rate, self.min_calls, self.window_s = failure_rate, min_calls, window_s
        self.cooldown_s, self.half_open_calls, self.clock = cooldown_s, half_open_calls, clock
        self.failures, self.successes = [], []
        self.mode, self.until, self.admitted, self.passed = "closed", 0.0, 0, 0

    @property
    def state(self):
        if self.mode == "open" and self.clock.monotonic() >= self.until:
            self.mode, self.admitted, self.passed = "half_open", 0, 0
        return self.mode

    def allow(self):
        if self.state == "closed":
            return True
        if self.state == "half_open" and self.admitted < self.half_open_calls:
            self.admitted += 1
            return True
        return False

    def _trip(self):
        self.mode, self.until = "open", self.clock.monotonic() + self.cooldown_s
        self.failures, self.successes = [], []

    def record_success(self):
        if self.state == "half_open":
            self.passed += 1
            if self.passed >= self.half_open_calls:
                self.mode = "closed"
        elif self.state == "closed":
            self.successes.append(self.clock.monotonic())
            self._judge()

    def record_failure(self, exc=None):
        if isinstance(exc, anthropic.RateLimitError):
            return
        if self.state == "half_open":
            self._trip()
        elif self.state == "closed":
            self.failures.append(self.clock.monotonic())
            self._judge()

    def _judge(self):
        horizon = self.clock.monotonic() - self.window_s
        self.failures = [t for t in self.failures if t >= horizon]
        self.successes = [t for t in self.successes if t >= horizon]
        total = len(self.failures) + len(self.successes)
        if total >= self.min_calls and len(self.failures) >= self.rate * total:
            self._trip()


class ClosesOnTheFirstProbe(CircuitBreaker):
    def record_success(self):
        if self.state == "half_open":
            self._state = "closed"
            self.window.clear()
            return
        super().record_success()


class CountsFailuresNotCalls(CircuitBreaker):
    """Needs min_calls *failures* in the window, not min_calls calls."""

    def _record(self, failed):
        if self.state != "closed":
            return super()._record(failed)
        now = self.clock.monotonic()
        self.window.append((now, failed))
        while self.window and self.window[0][0] < now - self.window_s:
            self.window.popleft()
        failures = sum(f for _, f in self.window)
        if failures >= self.min_calls and failures / len(self.window) >= self.failure_rate:
            self._open()


class EnumStateBreaker:
    """Written differently: a str Enum for the state, bisect over a sorted list of (time, failed), a probe set."""

    def __init__(self, *, failure_rate, min_calls, window_s, cooldown_s, half_open_calls, clock):
        import enum

        class State(str, enum.Enum):
            CLOSED = "closed"
            OPEN = "open"
            HALF_OPEN = "half_open"

        self.State = State
        self.settings = (failure_rate, min_calls, window_s, cooldown_s, half_open_calls)
        self.clock = clock
        self.outcomes = []
        self._mode, self.since, self.probes, self.good = State.CLOSED, 0.0, 0, 0

    @property
    def state(self):
        cooldown = self.settings[3]
        if self._mode is self.State.OPEN and self.clock.monotonic() - self.since >= cooldown:
            self._mode, self.probes, self.good = self.State.HALF_OPEN, 0, 0
        return self._mode

    def allow(self):
        state = self.state
        if state is self.State.HALF_OPEN and self.probes < self.settings[4]:
            self.probes += 1
            return True
        return state is self.State.CLOSED

    def record_success(self):
        self._outcome(False)

    def record_failure(self, exc=None):
        if not isinstance(exc, anthropic.RateLimitError):
            self._outcome(True)

    def _outcome(self, failed):
        import bisect

        rate, min_calls, window_s, _, probes = self.settings
        now = self.clock.monotonic()
        if self.state is self.State.HALF_OPEN:
            if failed:
                self._mode, self.since = self.State.OPEN, now
            else:
                self.good += 1
                if self.good >= probes:
                    self._mode, self.outcomes = self.State.CLOSED, []
            return
        if self.state is self.State.OPEN:
            return
        self.outcomes.append((now, failed))
        self.outcomes = self.outcomes[bisect.bisect_left(self.outcomes, (now - window_s, False)) :]
        if len(self.outcomes) >= min_calls and sum(f for _, f in self.outcomes) >= rate * len(self.outcomes):
            self._mode, self.since = self.State.OPEN, now


class SubclassedLibraryBreaker(ReferenceBreaker):
    pass


class BoardBreaker:
    """A thin wrapper: the library's BreakerBoard hands out the library's breaker."""

    def __init__(self, **settings):
        from course_utils.resilience import BreakerBoard

        self.inner = BreakerBoard(**settings)["primary"]

    def allow(self):
        return self.inner.allow()

    def record_success(self):
        self.inner.record_success()

    def record_failure(self, exc=None):
        self.inner.record_failure(exc)

    @property
    def state(self):
        return self.inner.state


class StubBreaker:
    def __init__(self, **kwargs):
        raise NotImplementedError("Exercise 5.3")


@pytest.mark.parametrize("answer", [CircuitBreaker, CountsBreaker, EnumStateBreaker])
def test_5_3_solutions_pass(answer):
    passes("5.3", answer)


@pytest.mark.parametrize(
    "answer, phrase",
    [
        (NoHalfOpen, "after the cooldown the state is 'closed'"),
        (HalfOpenLetsEverythingThrough, "in half-open, allow() gave [True, True, True, True, True]"),
        (OpensOn429, "20 rate-limit 429s opened the breaker"),
        (OpensAboveTheRate, "2 of 4 calls failed (50%, exactly failure_rate=0.5)"),
        (NoTimeWindow, "failures older than window_s were still counted"),
        (OnlyStatusErrorsCount, "timeouts did not count as failures"),
        (ClosesOnTheFirstProbe, "after 1 of the 2 probes succeeded the state is 'closed'"),
        (CountsFailuresNotCalls, "3 of 4 calls failed (75% >= 50%) but the state is 'closed'"),
        (ReferenceBreaker, "your answer is resilience.CircuitBreaker"),
        (SubclassedLibraryBreaker, "your answer subclasses resilience.CircuitBreaker"),
        (BoardBreaker, "your function called resilience.BreakerBoard"),
    ],
)
def test_5_3_wrong_answers_are_rejected(answer, phrase):
    assert_rejected("5.3", answer, phrase)


def test_5_3_no_half_open_floods_the_dead_provider():
    result = checks.check("5.3", NoHalfOpen, quiet=True)
    outage = [c for c in result.cases if "outage" in c.name][0]
    assert not outage.passed and "requests reached the provider" in outage.message


def test_5_3_stub_is_not_attempted():
    assert_not_attempted("5.3", StubBreaker)


# ----- 5.4 ------------------------------------------------------------------------------------
def _fp(body):
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


async def idempotent_call(cache, key, body, generate):
    fp = _fp(body)
    entry = cache.get(key)
    if entry is not None:
        if entry[0] != fp:
            raise ValueError(f"Idempotency-Key {key!r} reused with a different body")
        return await asyncio.shield(entry[1])
    task = asyncio.ensure_future(generate(body))
    cache[key] = (fp, task)
    try:
        return await asyncio.shield(task)
    except Exception:
        cache.pop(key, None)
        raise


async def idempotent_with_locks(cache, key, body, generate):
    """Written differently: a lock per key; results and fingerprints in the cache dict."""
    locks = cache.setdefault("__locks__", {})
    lock = locks.setdefault(key, asyncio.Lock())
    async with lock:
        if key in cache:
            fp, value = cache[key]
            if fp != _fp(body):
                raise KeyError("key reused")
            return value
        value = await generate(body)
        cache[key] = (_fp(body), value)
        return value


async def check_then_act(cache, key, body, generate):
    if key in cache:
        return cache[key]
    value = await generate(body)
    cache[key] = value
    return value


async def stores_failures(cache, key, body, generate):
    entry = cache.get(key)
    if entry is None:
        entry = cache[key] = (_fp(body), asyncio.ensure_future(generate(body)))
    if entry[0] != _fp(body):
        raise ValueError("reused")
    return await asyncio.shield(entry[1])


async def keyed_by_body(cache, key, body, generate):
    return await idempotent_call(cache, _fp(body), body, generate)


async def ignores_the_body(cache, key, body, generate):
    if key not in cache:
        cache[key] = asyncio.ensure_future(generate(body))
    try:
        return await asyncio.shield(cache[key])
    except Exception:
        cache.pop(key, None)
        raise


async def idempotent_with_futures(cache, key, body, generate):
    """Written differently: a bare Future claimed first, filled by the first caller; canonical-JSON fingerprint."""
    fingerprint = json.dumps(body, sort_keys=True, separators=(",", ":"))
    if key in cache:
        stored, future = cache[key]
        if stored != fingerprint:
            raise ValueError("Idempotency-Key reused with another body")
        return await asyncio.shield(future)
    future = asyncio.get_running_loop().create_future()
    cache[key] = (fingerprint, future)
    try:
        result = await generate(body)
    except BaseException as exc:
        del cache[key]
        future.set_exception(exc)
        future.exception()  # retrieved: no "never retrieved" warning when nobody else waits
        raise
    future.set_result(result)
    return result


async def fingerprint_by_str(cache, key, body, generate):
    """Fingerprints str(body): the same body with its keys in another order counts as another body."""
    return await _idempotent_with(str, cache, key, body, generate)


async def normalises_the_body(cache, key, body, generate):
    """Tags the caller's dict with a metadata default before fingerprinting it."""
    body.setdefault("metadata", {"user_id": "report-service"})
    return await idempotent_call(cache, key, body, generate)


async def _idempotent_with(fingerprint, cache, key, body, generate):
    fp = fingerprint(body)
    entry = cache.get(key)
    if entry is not None:
        if entry[0] != fp:
            raise ValueError("reused")
        return await asyncio.shield(entry[1])
    task = asyncio.ensure_future(generate(body))
    cache[key] = (fp, task)
    try:
        return await asyncio.shield(task)
    except Exception:
        cache.pop(key, None)
        raise


async def library_idempotent(cache, key, body, generate):
    from course_utils.resilience import Idempotent, IdempotencyStore

    idem = cache.setdefault("idem", Idempotent(IdempotencyStore()))
    return await idem.acall(key, body, generate)


async def stub_5_4(cache, key, body, generate):
    raise NotImplementedError("Exercise 5.4")


@pytest.mark.parametrize("answer", [idempotent_call, idempotent_with_locks, idempotent_with_futures])
def test_5_4_solutions_pass(answer):
    passes("5.4", answer)


@pytest.mark.parametrize(
    "answer, phrase",
    [
        (check_then_act, "8 concurrent requests with the same key made 8 model calls"),
        (stores_failures, "got the stored 529 again"),
        (keyed_by_body, "the ledger shows 1 model calls for two keys"),
        (ignores_the_body, "reusing a key with a different body returned an answer"),
        (library_idempotent, "your function called resilience.IdempotencyStore"),
        (fingerprint_by_str, "a replay of the same body with its keys in another order was refused"),
        (normalises_the_body, "idempotent_call changed the body it was given"),
    ],
)
def test_5_4_wrong_answers_are_rejected(answer, phrase):
    assert_rejected("5.4", answer, phrase)


def test_5_4_stub_is_not_attempted():
    assert_not_attempted("5.4", stub_5_4)


# ----- 5.5 ------------------------------------------------------------------------------------
from course_utils.resilience import (
    BreakerBoard,
    FallbackChain,
    Idempotent,
    IdempotencyStore,
    Link,  # noqa: E402 - grouped with the 5.5 tests they serve
    RetryBudget,
)
from course_utils.resilience.chaos import FALLBACK, PRIMARY  # noqa: E402 - grouped with the 5.5 tests they serve


def make_handler(client):
    """The library composed: idempotent boundary, retries with a budget, a breaker per model, a fallback."""
    board = BreakerBoard(min_calls=5, failure_rate=0.5, window_s=10, cooldown_s=5, half_open_calls=1)
    policy = RetryPolicy(max_attempts=4, base_s=0.25, cap_s=2, deadline_s=20, budget=RetryBudget(0.2))
    idem = Idempotent(IdempotencyStore(), wait_s=60)

    def link(model):
        async def call(body):
            async def attempt():
                return await board[model].acall(
                    lambda: asyncio.wait_for(client.messages.create(**{**body, "model": model}), 5)
                )

            return await policy.acall(attempt)

        return Link(model, call)

    chain = FallbackChain([link(PRIMARY), link(FALLBACK)], deadline_s=25)

    async def generate(body):
        return (await chain.acall(body)).value

    async def handle(key, body):
        return await idem.acall(key, body, generate)

    return handle


def make_handler_by_hand(client):
    """Written differently: the student's own pieces (5.2 retries, 5.3 breaker, 5.4 idempotency), no library."""
    breakers = {m: CircuitBreaker(min_calls=5, cooldown_s=5.0, half_open_calls=1) for m in (PRIMARY, FALLBACK)}
    cache = {}

    async def one_model(body, model):
        b = breakers[model]

        async def attempt():
            if not b.allow():
                raise RuntimeError("circuit open")
            try:
                result = await asyncio.wait_for(client.messages.create(**{**body, "model": model}), 4)
            except Exception as exc:
                b.record_failure(exc)
                raise
            b.record_success()
            return result

        return await call_with_retries(attempt, max_attempts=3, base_s=0.3, cap_s=2.0, deadline_s=12.0)

    async def generate(body):
        try:
            return await one_model(body, PRIMARY)
        except Exception as exc:
            if not (is_retryable(exc) or "circuit open" in str(exc)):
                raise
            return await one_model(body, FALLBACK)

    async def handle(key, body):
        return await idempotent_call(cache, key, body, generate)

    return handle


def make_handler_with_tenacity(client):
    """Written differently, with a well-known library: the by-hand handler, its retries by tenacity's own stops
    and wait_random_exponential (on the check's virtual time, issue 27)."""
    breakers = {m: CountsBreaker(failure_rate=0.5, min_calls=5, window_s=10.0, cooldown_s=5.0, half_open_calls=1,
                                 clock=SYSTEM_CLOCK) for m in (PRIMARY, FALLBACK)}  # fmt: skip
    cache = {}

    async def one_model(body, model):
        b = breakers[model]

        async def attempt():
            if not b.allow():
                raise RuntimeError("circuit open")
            try:
                result = await asyncio.wait_for(client.messages.create(**{**body, "model": model}), 4)
            except Exception as exc:
                b.record_failure(exc)
                raise
            b.record_success()
            return result

        return await call_with_idiomatic_tenacity(attempt, max_attempts=3, base_s=0.3, cap_s=2.0, deadline_s=12.0)

    async def generate(body):
        try:
            return await one_model(body, PRIMARY)
        except Exception as exc:
            if not (is_retryable(exc) or "circuit open" in str(exc)):
                raise
            return await one_model(body, FALLBACK)

    async def handle(key, body):
        return await idempotent_with_futures(cache, key, body, generate)

    return handle


def naive_handler(client):
    async def handle(key, body):
        return await client.messages.create(**body)

    return handle


def retries_without_fallback(client):
    async def handle(key, body):
        return await call_with_retries(
            lambda: asyncio.wait_for(client.messages.create(**body), 5),
            max_attempts=4,
            base_s=0.25,
            cap_s=2.0,
            deadline_s=20.0,
        )

    return handle


def resilient_but_not_idempotent(client):
    handle = make_handler(client)
    counter = iter(range(10**6))

    async def fresh_key_every_time(key, body):
        return await handle(f"{key}-{next(counter)}", body)

    return fresh_key_every_time


def long_timeout(client):
    """Everything, but a per-attempt timeout of 25 s: the slow phase's held answers are waited for."""
    board = BreakerBoard(min_calls=5, cooldown_s=5, half_open_calls=1)
    policy = RetryPolicy(max_attempts=4, base_s=0.25, cap_s=2, deadline_s=60)
    idem = Idempotent(IdempotencyStore(), wait_s=120)

    def link(model):
        async def call(body):
            return await policy.acall(
                lambda: board[model].acall(
                    lambda: asyncio.wait_for(client.messages.create(**{**body, "model": model}), 25)
                )
            )

        return Link(model, call)

    chain = FallbackChain([link(PRIMARY), link(FALLBACK)], deadline_s=60)

    async def handle(key, body):
        return await idem.acall(key, body, lambda b: _value(chain.acall(b)))

    return handle


async def _value(awaitable):
    return (await awaitable).value


def no_breaker(client):
    """Retries then fallback, idempotent, but no breaker: every report knocks on the dead primary first."""
    policy = RetryPolicy(max_attempts=3, base_s=0.25, cap_s=2, deadline_s=20)
    idem = Idempotent(IdempotencyStore(), wait_s=60)

    def link(model):
        async def call(body):
            return await policy.acall(lambda: asyncio.wait_for(client.messages.create(**{**body, "model": model}), 5))

        return Link(model, call)

    chain = FallbackChain([link(PRIMARY), link(FALLBACK)], deadline_s=25)

    async def handle(key, body):
        return await idem.acall(key, body, lambda b: _value(chain.acall(b)))

    return handle


def stub_5_5(client):
    raise NotImplementedError("Exercise 5.5")


@pytest.mark.parametrize("answer", [make_handler, make_handler_by_hand, make_handler_with_tenacity])
def test_5_5_solutions_pass(answer):
    passes("5.5", answer)


@pytest.mark.parametrize(
    "answer, phrase",
    [
        (naive_handler, "of the reports were answered"),
        (retries_without_fallback, "of the reports were answered"),
        (resilient_but_not_idempotent, "were produced more than once for the same Idempotency-Key"),
        (long_timeout, "p99 latency"),
        (no_breaker, "requests per report"),
    ],
)
def test_5_5_wrong_answers_are_rejected(answer, phrase):
    assert_rejected("5.5", answer, phrase)


def test_5_5_stub_is_not_attempted():
    assert_not_attempted("5.5", stub_5_5)
