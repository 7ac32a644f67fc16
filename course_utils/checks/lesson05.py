"""Checks for lesson 05 (Idempotency and retries).

5.1 ``is_retryable``, 5.2 ``call_with_retries``, 5.3 ``CircuitBreaker``, 5.4 ``idempotent_call``,
5.5 ``resilient_handler`` (the chaos exercise). Every case that involves time runs on virtual time
against an in-process simulator; the retry and idempotency cases grade through its ledger (attempt
times, requests per logical operation), so the verdict is the same on any machine.
"""

from __future__ import annotations

import asyncio
import inspect
import random
from typing import Any

import anthropic

from .. import resilience
from ..clock import SYSTEM_CLOCK, VirtualClock
from ..mock_provider.faults import Scenario
from ..resilience.fakes import connection_error, spend_limit_error, status_error, timeout_error
from .framework import CaseFailed, Exercise, case_now, expect, expect_equal
from .sim import Probe, probe

MODEL = "claude-haiku-5-5"


def report_body(n: int, words: int = 12) -> dict[str, Any]:
    """The Messages body of "generate report ``n``" (short, so cases stay light)."""
    return {
        "model": MODEL,
        "max_tokens": 40,
        "messages": [{"role": "user", "content": f"Write a {words}-word status summary for account #{n}."}],
    }


async def _await(value: Any, what: str) -> Any:
    if not inspect.isawaitable(value):
        raise CaseFailed(
            f"{what} returned {type(value).__name__}, not a coroutine",
            hint="Define it with `async def` and await the calls inside.",
        )
    return await value


def _gaps(times: list[float]) -> list[float]:
    return [b - a for a, b in zip(times, times[1:])]


# =============================================================================================
# 5.1 is_retryable(exc) -> bool
# =============================================================================================
retryable = Exercise(
    "5.1",
    "Which failures are worth another attempt",
    points=2,
    signature="is_retryable(exc) -> bool",
    reference={"resilience.is_retryable": resilience.is_retryable},
    task="classify failures",
    hints=[
        "Retry what can succeed next time: 429 (but not the spend limit), 529, 500, 504, connection errors and "
        "timeouts. Never 400, 401, 403, 404, 413: the same request fails the same way. Honour x-should-retry.",
        "if isinstance(exc, anthropic.APIStatusError): if exc.error_code == 'enforced_spend_limit_reached': "
        "return False; h = exc.response.headers.get('x-should-retry'); if h in ('true', 'false'): return h == 'true'; "
        "return exc.status_code in (408, 429) or exc.status_code >= 500. Then return isinstance(exc, "
        "(anthropic.APIConnectionError, TimeoutError)).",
    ],
)


def _verdict(fn: Any, exc: BaseException, label: str) -> bool:
    try:
        got = fn(exc)
    except (CaseFailed, NotImplementedError):
        raise
    except Exception as err:  # noqa: BLE001 - named for the student
        raise CaseFailed(
            f"is_retryable raised {type(err).__name__} for {label}: {err}",
            hint="Classify every exception, API or not, without raising: read status_code only "
            "from anthropic.APIStatusError.",
        ) from None
    if not isinstance(got, bool):
        raise CaseFailed(
            f"is_retryable returned {got!r} for {label}",
            expected="True or False",
            got=got,
            hint="Return a bool: True or False, not None or a truthy value.",
        )
    return got


def _spend_limit_saying_retry() -> BaseException:
    """The spend-limit 429 with ``x-should-retry: true``: the statement says the spend limit wins."""
    return status_error(
        429,
        {"x-should-retry": "true"},
        message="You have reached your API usage limits.",
        details={"error_code": "enforced_spend_limit_reached"},
    )


@retryable.case("transient failures are retried: 408, 429, 529, 500, 502, 503, 504, connection errors, timeouts")
def _transient(fn) -> None:
    for label, exc in [
        ("429 rate_limit_error", status_error(429, {"retry-after": "2"})),
        ("529 overloaded_error", status_error(529)),
        ("500 api_error", status_error(500)),
        ("502 api_error", status_error(502)),
        ("503 api_error", status_error(503)),
        ("504 timeout_error", status_error(504)),
        ("408 request timeout", status_error(408)),
        ("APIConnectionError", connection_error()),
        ("APITimeoutError", timeout_error()),
        ("TimeoutError (asyncio.wait_for's)", TimeoutError()),
    ]:
        expect(
            _verdict(fn, exc, label) is True,
            f"{label} was not retried",
            expected=True,
            got=False,
            hint="Overloads, server errors, timeouts and dropped connections pass; another attempt can succeed.",
        )


@retryable.case("the request's own faults are never retried: 400, 401, 403, 404, 413")
def _permanent(fn) -> None:
    for status in (400, 401, 403, 404, 413):
        exc = status_error(status)
        expect(
            _verdict(fn, exc, f"{status} {type(exc).__name__}") is False,
            f"{status} ({type(exc).__name__}) was retried",
            expected=False,
            got=True,
            hint="A 4xx other than 429 says the request itself is wrong (or too large, or not allowed): the "
            "same request fails the same way, every time. Retry only 408, 429 and 5xx.",
        )


@retryable.case("the spend-limit 429 and x-should-retry: false are not retried")
def _spend_limit(fn) -> None:
    expect(
        _verdict(fn, spend_limit_error(), "the spend-limit 429") is False,
        "the spend-limit 429 (error_code enforced_spend_limit_reached) was retried",
        expected=False,
        got=True,
        hint="It is a RateLimitError like any 429, but it lasts until the month turns and carries no "
        "retry-after: check exc.error_code == 'enforced_spend_limit_reached' (or the x-should-retry: false "
        "header it carries) before treating a 429 as retryable.",
    )
    expect(
        _verdict(fn, status_error(529, {"x-should-retry": "false"}), "529 with x-should-retry: false") is False,
        "a 529 whose response says x-should-retry: false was retried",
        expected=False,
        got=True,
        hint="The x-should-retry header overrides the status code (the official SDKs obey it).",
    )
    expect(
        _verdict(fn, _spend_limit_saying_retry(), "the spend-limit 429 with x-should-retry: true") is False,
        "the spend-limit 429 was retried because its x-should-retry said true",
        expected=False,
        got=True,
        hint="The statement: the spend-limit 429 is never retried, whatever its x-should-retry says. Test "
        "exc.error_code == 'enforced_spend_limit_reached' before reading the header.",
    )


@retryable.case("x-should-retry: true makes any status retryable (the header overrides in both directions)")
def _header_true(fn) -> None:
    for status in (400, 404, 413):
        exc = status_error(status, {"x-should-retry": "true"})
        expect(
            _verdict(fn, exc, f"{status} with x-should-retry: true") is True,
            f"a {status} whose response says x-should-retry: true was not retried",
            expected=True,
            got=False,
            hint="The header overrides the status in both directions: read exc.response.headers.get('x-should-retry') "
            "before falling back to the status code.",
        )


_NAMED_STATUSES = (400, 401, 403, 404, 408, 413, 429, 500, 501, 502, 503, 504, 520, 529, 599)
"""Statuses the statement classifies (other 4xx, 409 or 422 say, it leaves open, so none is drawn)."""


@retryable.case("300 seeded random failures (status, x-should-retry, spend limit) classified as the statement says")
def _random_failures(fn) -> None:
    rng = random.Random(51)
    for _ in range(300):
        status = rng.choice(_NAMED_STATUSES)
        header = rng.choice([None, None, "true", "false"])
        spend = status == 429 and rng.random() < 0.3
        headers = {"x-should-retry": header} if header else {}
        if status == 429 and not spend and rng.random() < 0.5:
            headers["retry-after"] = str(rng.randint(1, 30))
        details = {"error_code": "enforced_spend_limit_reached"} if spend else None
        exc = status_error(status, headers, details=details)
        label = (
            f"{status}" + (" (spend limit)" if spend else "") + (f" with x-should-retry: {header}" if header else "")
        )
        want = False if spend else (header == "true") if header else (status in (408, 429) or status >= 500)
        got = _verdict(fn, exc, label)
        expect(
            got is want,
            f"{label} was {'retried' if got else 'not retried'}",
            expected=want,
            got=got,
            hint="In order: the spend limit is never retried; then x-should-retry decides when present; then the "
            "status: 408, 429 and every 5xx are retried, 400, 401, 403, 404 and 413 are not.",
        )


@retryable.case("other exceptions (bugs in our code) are not retried")
def _bugs(fn) -> None:
    for exc in (
        ValueError("bad prompt template"),
        KeyError("text"),
        TypeError("unsupported operand"),
        RuntimeError("event loop is closed"),
        ZeroDivisionError("division by zero"),
    ):
        expect(
            _verdict(fn, exc, type(exc).__name__) is False,
            f"{type(exc).__name__} was retried",
            expected=False,
            got=True,
            hint="Retrying every exception retries our own bugs too, and hides them behind a slower failure.",
        )


# =============================================================================================
# 5.2 call_with_retries(make_request, *, max_attempts, base_s, cap_s, deadline_s)
# =============================================================================================
retries = Exercise(
    "5.2",
    "Retries with retry-after plus full jitter, and a deadline",
    points=4,
    signature="await call_with_retries(make_request, *, max_attempts, base_s, cap_s, deadline_s)",
    time_limit=60,
    reference={
        "resilience.RetryPolicy": resilience.RetryPolicy,
        "resilience.backoff_delay": resilience.backoff_delay,
        "resilience.retry_delay": resilience.retry_delay,
    },
    task="retry with retry-after plus full jitter, and a deadline",
    hints=[
        "Loop: try `await make_request()`; on a retryable error compute the wait = retry_after (0 without the "
        "header) + random.uniform(0, min(cap_s, base_s * 2 ** (attempt - 1))); stop (re-raise) when attempts are "
        "used up or when now + wait would pass the deadline.",
        "With tenacity: AsyncRetrying(retry=retry_if_exception(is_retryable), stop=stop_after_attempt(n), "
        "wait=a function of retry_state returning retry_after + jitter, reraise=True); stop_before_delay(deadline_s) "
        "stops before a wait that would end past the deadline. (RetryPolicy is the reference: write your own.)",
    ],
)


def _retry_probe(retry_after: int) -> Probe:
    p = probe(tier="unlimited", tag="check05")
    p.server.set_scenario(Scenario(name="check-5.2", retry_after_s=retry_after))
    return p


class _Faulty:
    """``make_request`` that raises the scripted errors in order, then returns ``"ok"``; records attempt times."""

    def __init__(self, *errors: BaseException, forever: BaseException | None = None) -> None:
        self.errors = list(errors)
        self.forever = forever
        self.times: list[float] = []

    async def __call__(self) -> str:
        self.times.append(case_now())
        await asyncio.sleep(0.01)
        if self.errors:
            raise self.errors.pop(0)
        if self.forever is not None:
            raise self.forever
        return "ok"


async def _retries(fn: Any, make_request: Any, *, limit: float = 600, **kw: Any) -> Any:
    settings = dict(max_attempts=5, base_s=0.5, cap_s=8.0, deadline_s=60.0)
    settings.update(kw)
    try:
        return await asyncio.wait_for(_await(fn(make_request, **settings), "call_with_retries"), limit)
    except asyncio.TimeoutError:
        raise CaseFailed(f"call_with_retries did not return within {limit:g} s", hint=None) from None


@retries.case("waits at least retry-after between attempts (ledger)")
async def _honours_retry_after(fn) -> None:
    p = _retry_probe(retry_after=3)
    client = p.async_client()
    forced = iter(["rate_limit", "rate_limit"])

    async def make_request():
        fault = next(forced, None)
        return await client.messages.create(**report_body(1), extra_headers={"x-mock-fault": fault} if fault else None)

    async with p:
        try:
            message = await _retries(fn, make_request)
        except anthropic.RateLimitError:
            raise CaseFailed(
                "call_with_retries gave up after a 429 that carried retry-after: 3",
                hint="A 429 with retry-after is retryable: wait that long, then try again.",
            ) from None
    rows = p.requests()
    expect_equal(
        list(rows["status"]),
        [429, 429, 200],
        "the ledger's attempts",
        hint="Retry the 429s until the request succeeds, once per attempt.",
    )
    waits = _gaps(list(rows["arrival"]))
    expect(
        min(waits) >= 3.0,
        f"retried {min(waits):.2f} s after a 429 that said retry-after: 3",
        expected="at least 3 s between attempts",
        got=[round(w, 2) for w in waits],
        hint="Read exc.response.headers['retry-after'] (seconds) and wait at least that long: a retry "
        "before then is refused again and wastes an attempt.",
    )
    expect(
        getattr(message, "id", None) is not None,
        "the successful Message was not returned",
        got=message,
        hint="Return what make_request() returned on the attempt that succeeded.",
    )


@retries.case("retry-after plus jitter: 40 clients given the same retry-after never come back early, nor together")
async def _retry_after_plus_jitter(fn) -> None:
    # Every client of a 429 reads the same retry-after. With base_s=0.5 the backoff ceilings (0.5, 1 s) are
    # below retry-after: 3, so max(retry-after, backoff), or waiting exactly retry-after, brings all 40 back
    # at the same instant; retry-after *plus* the jitter keeps every wait >= 3 s and spreads them.
    random.seed(7)
    calls = [_Faulty(*[status_error(429, {"retry-after": "3"}) for _ in range(2)]) for _ in range(40)]
    await asyncio.gather(*(_retries(fn, c, base_s=0.5, cap_s=8.0) for c in calls))
    expect(
        all(len(c.times) == 3 for c in calls),
        "a caller that got two 429s should make 3 attempts",
        expected=3,
        got=sorted({len(c.times) for c in calls}),
        hint="A 429 (not the spend limit) is retryable: retry it until an attempt succeeds.",
    )
    waits = [[g - 0.01 for g in _gaps(c.times)] for c in calls]  # minus the attempt's own 10 ms
    shortest = min(min(w) for w in waits)
    expect(
        shortest >= 3.0 - 1e-6,
        f"a client retried {shortest:.2f} s after a 429 that said retry-after: 3",
        expected="every wait >= 3 s (retry-after is a floor)",
        got=f"{shortest:.2f} s",
        hint="The jitter goes on top of retry-after: wait = retry_after + random.uniform(0, ceiling). A draw "
        "below retry-after is refused again by the server.",
    )
    firsts = [w[0] for w in waits]
    moments = len({round(c.times[1], 4) for c in calls})
    expect(
        moments >= 30 and max(firsts) - min(firsts) >= 0.1,
        f"40 clients given retry-after: 3 came back at {moments} distinct moments, "
        f"{max(firsts) - min(firsts):.2f} s apart at most",
        expected="retries spread after the 3 s (jitter on top of retry-after)",
        got=sorted({round(f, 3) for f in firsts})[:5],
        hint="Every client of a 429 reads the same retry-after, so max(retry_after, backoff), or waiting exactly "
        "retry_after, brings them all back together whenever the backoff draw is shorter (a retry storm). "
        "Add the jitter to retry_after instead: retry_after + random.uniform(0, ceiling).",
    )
    longest = max(max(w) for w in waits)
    expect(
        longest <= 3.0 + 8.0 + 1e-6,
        f"a client waited {longest:.2f} s after a 429 with retry-after: 3 (cap_s=8)",
        expected="at most retry-after + cap_s = 11 s",
        got=f"{longest:.2f} s",
        hint="cap_s caps the backoff you add to retry-after: min(cap_s, base_s * 2 ** (attempt - 1)).",
    )


@retries.case("jitter: clients that failed together retry apart, the waits growing and capped")
async def _jitter(fn) -> None:
    random.seed(5)
    calls = [_Faulty(*[status_error(529) for _ in range(3)]) for _ in range(40)]
    await asyncio.gather(*(_retries(fn, c, max_attempts=5, base_s=1.0, cap_s=8.0) for c in calls))
    expect(
        all(len(c.times) == 4 for c in calls),
        "a caller that failed 3 times with 529 should make 4 attempts",
        expected=4,
        got=sorted({len(c.times) for c in calls}),
        hint="A 529 is retryable: retry it until an attempt succeeds (4 attempts here, within max_attempts=5); "
        "fewer means the loop stopped early, more that it retried after the success.",
    )
    firsts = [round(c.times[1], 4) for c in calls]
    expect(
        len(set(firsts)) >= 30,
        f"40 clients that failed at the same moment retried at only {len(set(firsts))} distinct moments",
        expected="retries spread over time (jitter)",
        got=sorted(set(firsts))[:5],
        hint="Without jitter every client waits the same time and they all come back together (a retry storm). "
        "Draw the wait at random: random.uniform(0, min(cap_s, base_s * 2 ** (attempt - 1))).",
    )
    waits = [[g - 0.01 for g in _gaps(c.times)] for c in calls]  # minus the attempt's own 10 ms
    # Full jitter draws below the ceilings 1, 2, 4 s; equal and decorrelated jitter (AWS) are correct too, so
    # the bound graded is cap_s, and the growth is graded on the averages below.
    worst = max(max(w) for w in waits)
    expect(
        worst <= 8.0 + 1e-6,
        f"a retry waited {worst:.2f} s with cap_s=8 (and no retry-after)",
        expected="<= 8 s (cap_s)",
        got=f"{worst:.2f} s",
        hint="The backoff is capped: random.uniform(0, min(cap_s, base_s * 2 ** (attempt - 1))).",
    )
    means = [sum(w[n] for w in waits) / len(waits) for n in range(3)]
    expect(
        means[2] > 1.5 * means[0],
        f"the average wait did not grow with the attempts: {[round(m, 2) for m in means]} s",
        expected="about 0.5, 1, 2 s (exponential)",
        got=[round(m, 2) for m in means],
        hint="The ceiling doubles with each attempt: base_s * 2 ** (attempt - 1), capped at cap_s.",
    )
    capped = [_Faulty(*[status_error(529) for _ in range(4)]) for _ in range(30)]
    await asyncio.gather(*(_retries(fn, c, max_attempts=5, base_s=1.0, cap_s=1.5) for c in capped))
    late = [g - 0.01 for c in capped for g in _gaps(c.times)[2:]]  # retries 3 and 4: ceilings 4 and 8, capped
    expect(
        max(late) <= 1.5 + 1e-6,
        f"with base_s=1 and cap_s=1.5, a third or fourth retry waited {max(late):.2f} s",
        expected="<= 1.5 s (cap_s)",
        got=f"{max(late):.2f} s",
        hint="cap_s caps the ceiling of the draw: random.uniform(0, min(cap_s, base_s * 2 ** (attempt - 1))).",
    )


@retries.case("never retries a 400 or the spend limit; re-raises the SDK's own exception")
async def _no_retry(fn) -> None:
    for error, kind in (
        (status_error(400), anthropic.BadRequestError),
        (spend_limit_error(), anthropic.RateLimitError),
    ):
        call = _Faulty(forever=error)
        try:
            await _retries(fn, call)
        except kind:
            pass
        except (CaseFailed, NotImplementedError):
            raise
        except Exception as exc:  # noqa: BLE001 - whatever the answer raises is reported as a failed case
            raise CaseFailed(
                f"raised {type(exc).__name__} instead of the {type(error).__name__} itself",
                hint="Re-raise the last error as it is (tenacity: reraise=True), so callers can read "
                "its type and status.",
            ) from None
        else:
            raise CaseFailed(f"call_with_retries returned after a {type(error).__name__}", hint="Re-raise it.")
        expect(
            len(call.times) == 1,
            f"a {type(error).__name__} was attempted {len(call.times)} times",
            expected=1,
            got=len(call.times),
            hint="Only retryable failures get another attempt (exercise 5.1).",
        )


@retries.case("stops after max_attempts, and before a wait that would pass the deadline")
async def _limits(fn) -> None:
    call = _Faulty(forever=status_error(529))
    try:
        await _retries(fn, call, max_attempts=3, base_s=0.1)
    except anthropic.InternalServerError:
        pass
    except (CaseFailed, NotImplementedError):
        raise
    except Exception as exc:  # noqa: BLE001 - whatever the answer raises is reported as a failed case
        raise CaseFailed(
            f"raised {type(exc).__name__} instead of the last OverloadedError",
            hint="Re-raise the last error itself (tenacity wraps it in RetryError unless reraise=True).",
        ) from None
    else:
        raise CaseFailed("returned although every attempt failed", hint="Re-raise the last error.")
    expect(
        len(call.times) == 3,
        f"{len(call.times)} attempts with max_attempts=3",
        expected=3,
        got=len(call.times),
        hint="max_attempts counts every attempt, the first included.",
    )

    call = _Faulty(forever=status_error(429, {"retry-after": "4"}))
    started = case_now()
    try:
        await _retries(fn, call, max_attempts=100, deadline_s=16.0, limit=3600)
    except anthropic.RateLimitError:
        pass
    except (CaseFailed, NotImplementedError):
        raise
    except Exception as exc:  # noqa: BLE001 - whatever the answer raises is reported as a failed case
        raise CaseFailed(
            f"raised {type(exc).__name__} instead of the last RateLimitError", hint="Re-raise the last error itself."
        ) from None
    elapsed = case_now() - started
    expect(
        elapsed <= 16.0,
        f"with deadline_s=16 and retry-after: 4 it gave up after {elapsed:.1f} s ({len(call.times)} attempts)",
        expected="at most 16 s",
        got=f"{elapsed:.1f} s",
        hint="Before sleeping, check that now + wait stays within the deadline; if not, re-raise now: a retry "
        "that cannot finish in time only adds load and latency.",
    )
    expect(
        len(call.times) >= 3,
        f"gave up after {len(call.times)} attempt(s) with time left before the deadline",
        expected="at least 3 attempts (waits of 4 s plus the backoff fit twice in 16 s)",
        got=len(call.times),
        hint="Stop only when the next wait would end past the deadline.",
    )


# =============================================================================================
# 5.3 CircuitBreaker
# =============================================================================================
breaker = Exercise(
    "5.3",
    "A circuit breaker with a half-open state",
    points=4,
    signature="CircuitBreaker(*, failure_rate, min_calls, window_s, cooldown_s, half_open_calls, clock)",
    reference={
        "resilience.CircuitBreaker": resilience.CircuitBreaker,
        "resilience.BreakerBoard": resilience.BreakerBoard,
    },
    task="write a circuit breaker",
    hints=[
        "Keep (time, failed) pairs of the last window_s seconds. Open when there are >= min_calls and the failed "
        "share >= failure_rate. Open refuses until cooldown_s has passed; then half-open admits half_open_calls "
        "probes: all succeed -> closed, one fails -> open again. A 429 is not a failure.",
        "state is computed on read: if open and clock.monotonic() >= opened_at + cooldown_s, switch to half_open "
        "with a probe counter of 0. allow(): closed -> True; half_open -> True while probes < half_open_calls "
        "(count it); else False. record_failure(exc): if exc is a RateLimitError (429), ignore it.",
    ],
)

_SETTINGS = dict(failure_rate=0.5, min_calls=4, window_s=10.0, cooldown_s=5.0, half_open_calls=2)


def _make_breaker(cls: Any, clock: Any, **kw: Any) -> Any:
    settings = {**_SETTINGS, **kw, "clock": clock}
    try:
        return cls(**settings)
    except NotImplementedError:
        raise
    except TypeError as exc:
        raise CaseFailed(
            f"CircuitBreaker({', '.join(f'{k}=...' for k in settings)}) failed: {exc}",
            hint="Take the keyword arguments of the contract: failure_rate, min_calls, window_s, "
            "cooldown_s, half_open_calls, clock.",
        ) from None


def _state(b: Any) -> str:
    state = b.state
    return state() if callable(state) else state


def _trip(b: Any, n: int = 4) -> None:
    for _ in range(n):
        b.allow()
        b.record_failure(status_error(529))


@breaker.case("opens on the failure rate once min_calls calls are in the window, then refuses")
def _opens(cls) -> None:
    clock = VirtualClock()
    b = _make_breaker(cls, clock)
    for _ in range(3):
        b.record_failure(status_error(529))
    expect(
        _state(b) == "closed",
        f"opened after 3 failures with min_calls=4 (state {_state(b)!r})",
        expected="closed",
        got=_state(b),
        hint="Don't judge a failure rate on fewer than min_calls calls.",
    )
    b.record_success()
    expect(
        _state(b) == "open",
        f"3 of 4 calls failed (75% >= 50%) but the state is {_state(b)!r}",
        expected="open",
        got=_state(b),
        hint="After each outcome, compute failures / calls over the window.",
    )
    expect(
        b.allow() is False,
        "an open breaker let a call through",
        expected=False,
        got=True,
        hint="While open, allow() must return False: no request to a provider that is down.",
    )
    at_rate = _make_breaker(cls, VirtualClock())
    for _ in range(2):
        at_rate.record_success()
        at_rate.record_failure(status_error(529))
    expect(
        _state(at_rate) == "open",
        f"2 of 4 calls failed (50%, exactly failure_rate=0.5) but the state is {_state(at_rate)!r}",
        expected="open",
        got=_state(at_rate),
        hint="Open at the failure rate, not only above it: failures / calls >= failure_rate.",
    )
    for label, make in (("timeouts", timeout_error), ("connection errors", connection_error)):
        fresh = _make_breaker(cls, VirtualClock())
        fresh.record_success()
        for _ in range(3):
            fresh.record_failure(make())
        expect(
            _state(fresh) == "open",
            f"3 {label} of 4 calls (75% >= 50%) did not open the breaker: {label} did not count as failures",
            expected="open",
            got=_state(fresh),
            hint="Timeouts and connection errors say the provider is unhealthy: they count like a 529.",
        )


@breaker.case("only outcomes of the last window_s seconds count")
def _window(cls) -> None:
    clock = VirtualClock()
    b = _make_breaker(cls, clock)
    for _ in range(3):
        b.record_failure(status_error(529))
    clock.advance_sync(11.0)  # those three are now older than window_s = 10 s
    b.record_failure(status_error(529))
    for _ in range(3):
        b.record_success()
    expect(
        _state(b) == "closed",
        f"1 failure in the last 10 s (1 of 4 calls, 25%) opened the breaker (state {_state(b)!r}): failures "
        "older than window_s were still counted",
        expected="closed",
        got=_state(b),
        hint="Keep (time, failed) pairs and drop those older than clock.monotonic() - window_s before computing "
        "the failure rate.",
    )


@breaker.case("a 429 does not open the breaker")
def _not_on_429(cls) -> None:
    b = _make_breaker(cls, VirtualClock())
    for _ in range(20):
        assert b.allow() in (True, False)
        b.record_failure(status_error(429, {"retry-after": "1"}))
    expect(
        _state(b) == "closed",
        f"20 rate-limit 429s opened the breaker (state {_state(b)!r})",
        expected="closed",
        got=_state(b),
        hint="A 429 means 'you are sending too fast', not 'the provider is down': the cure is to slow down "
        "(retry-after), and opening would stop all traffic to a healthy provider. Ignore 429s.",
    )
    expect(
        b.allow() is True,
        "a closed breaker refused a call",
        expected=True,
        got=False,
        hint="Closed means healthy: allow() returns True for every call.",
    )


@breaker.case("half-open: after the cooldown, only half_open_calls probes; success closes, failure reopens")
def _half_open(cls) -> None:
    clock = VirtualClock()
    b = _make_breaker(cls, clock)
    _trip(b)
    expect(
        _state(b) == "open",
        "did not open after 4 failures of 4",
        expected="open",
        got=_state(b),
        hint="4 of 4 calls failed, at least min_calls=4 with 100% >= failure_rate: open.",
    )
    clock.advance_sync(4.0)
    expect(
        b.allow() is False,
        "let a call through before the cooldown ended",
        expected=False,
        got=True,
        hint="Refuse everything for cooldown_s seconds after opening.",
    )
    clock.advance_sync(1.5)
    expect(
        _state(b) == "half_open",
        f"after the cooldown the state is {_state(b)!r}",
        expected="half_open",
        got=_state(b),
        hint="After cooldown_s the breaker neither trusts nor refuses the provider: it is "
        "'half_open' and lets a few probe calls test it. Going straight to 'closed' sends the "
        "full load to a provider that may still be down.",
    )
    admitted = [b.allow() for _ in range(5)]
    expect(
        admitted == [True, True, False, False, False],
        f"in half-open, allow() gave {admitted}",
        expected=[True, True, False, False, False],
        got=admitted,
        hint="Admit exactly half_open_calls probes; refuse the others until the probes have answered.",
    )
    b.record_success()
    expect(
        _state(b) == "half_open",
        f"after 1 of the 2 probes succeeded the state is {_state(b)!r}",
        expected="half_open",
        got=_state(b),
        hint="Close only when all half_open_calls probes have succeeded; one success of two proves little.",
    )
    b.record_success()
    expect(
        _state(b) == "closed",
        "both probes succeeded but the breaker did not close",
        expected="closed",
        got=_state(b),
        hint="When half_open_calls probes have succeeded, close (and clear the window).",
    )
    expect(
        b.allow() is True,
        "closed again but refused a call",
        expected=True,
        got=False,
        hint="After closing, forget the probes and the old window: a closed breaker admits everything.",
    )
    _trip(b)
    clock.advance_sync(5.5)
    expect(
        b.allow() is True,
        "no probe admitted after the second cooldown",
        expected=True,
        got=False,
        hint="Each time the breaker opens, its next cooldown ends in half-open with a fresh probe count.",
    )
    b.record_failure(status_error(529))
    expect(
        _state(b) == "open",
        "a failed probe did not reopen the breaker",
        expected="open",
        got=_state(b),
        hint="One failed probe is enough: the provider is still down. Open again for a full cooldown.",
    )
    clock.advance_sync(4.0)
    expect(
        b.allow() is False,
        "the cooldown did not restart when a probe failed",
        expected=False,
        got=True,
        hint="Reopening restarts the cooldown from the moment the probe failed.",
    )


@breaker.case("through a simulated outage: only probes reach the dead provider, and it recovers (ledger)")
async def _outage(cls) -> None:
    p = probe(tier="unlimited", tag="check05")
    p.server.set_scenario(Scenario(name="check-5.3", outages=((5.0, 20.0),)))
    client = p.async_client()
    b = _make_breaker(
        cls, SYSTEM_CLOCK, failure_rate=0.5, min_calls=5, window_s=10.0, cooldown_s=4.0, half_open_calls=1
    )
    started = case_now()
    served = refused = 0
    async with p:
        while case_now() - started < 40:
            if b.allow():
                try:
                    await client.messages.create(**report_body(3))
                    b.record_success()
                    served += 1
                except anthropic.APIStatusError as exc:
                    b.record_failure(exc)
            else:
                refused += 1
            await asyncio.sleep(0.25)
    rows = p.requests()
    t = rows["arrival"] - rows["arrival"].min()
    dead = rows[(t > 8) & (t < 25)]
    expect(
        len(dead) <= 8,
        f"{len(dead)} requests reached the provider between 8 s and 25 s of a 20 s outage",
        expected="only the probes (about one per cooldown)",
        got=len(dead),
        hint="Once open, refuse calls (allow() False) until the cooldown ends, then admit only the probes.",
    )
    after = rows[t > 30]
    expect(
        len(after) > 10 and bool((after["status"] == 200).all()),
        f"after the outage ended the breaker let {len(after)} requests through",
        expected="the full load again, all succeeding",
        got=f"{len(after)} requests",
        hint="A successful probe in half-open must close the breaker, or traffic never comes back.",
    )
    expect(
        _state(b) == "closed",
        f"the breaker ended {_state(b)!r} after the outage",
        expected="closed",
        got=_state(b),
        hint="Once the provider answers again, a successful probe in half-open closes the breaker.",
    )


# =============================================================================================
# 5.4 idempotent_call(cache, key, body, generate)
# =============================================================================================
idempotent = Exercise(
    "5.4",
    "One Idempotency-Key, one model call",
    points=4,
    signature="await idempotent_call(cache, key, body, generate)",
    reference={
        "resilience.Idempotent": resilience.Idempotent,
        "resilience.IdempotencyStore": resilience.IdempotencyStore,
    },
    task="make a call idempotent",
    hints=[
        "Claim the key *before* the first await: store an asyncio.Task (or Future) for it in cache at once, so a "
        "duplicate that arrives while the model is working awaits the same task instead of calling again.",
        "entry = cache.get(key); if entry: check the body's fingerprint (else raise ValueError) and return await "
        "asyncio.shield(entry[1]). Else task = asyncio.ensure_future(generate(body)); cache[key] = (fp, task); "
        "try: return await asyncio.shield(task) except Exception: cache.pop(key, None); raise.",
    ],
)


async def _idem(fn: Any, cache: dict, key: str, body: dict, generate: Any) -> Any:
    return await _await(fn(cache, key, body, generate), "idempotent_call")


def _generator(p: Probe) -> tuple[Any, Any]:
    client = p.async_client()

    async def generate(body: dict) -> Any:
        return await client.messages.create(**body)

    return client, generate


@idempotent.case("a replay returns the stored answer without calling the model (ledger)")
async def _replay(fn) -> None:
    p = probe(tier="unlimited", tag="check05")
    client, generate = _generator(p)
    cache: dict = {}
    body = report_body(1)
    reordered = dict(reversed(list(report_body(1).items())))  # the same body, as another client serialises it
    async with p:
        try:
            first = await _idem(fn, cache, "report-1", body, generate)
            again = [await _idem(fn, cache, "report-1", b, generate) for b in (report_body(1), reordered, body)]
            other = await _idem(fn, cache, "report-2", report_body(1), generate)
        except ValueError as exc:
            raise CaseFailed(
                f"a replay of the same body with its keys in another order was refused ({exc})",
                expected="the stored answer",
                got="ValueError",
                hint="Fingerprint the body canonically (json.dumps(body, sort_keys=True)): equal bodies must match "
                "whatever the order of their keys.",
            ) from None
    expect(
        body == report_body(1),
        "idempotent_call changed the body it was given",
        expected=report_body(1),
        got=body,
        hint="Fingerprint a serialisation of the body; never add to, pop from or normalise the caller's dict.",
    )
    n = len(p.requests())
    expect(
        n == 2,
        f"the ledger shows {n} model calls for two keys (one called 4 times)",
        expected=2,
        got=n,
        hint="Key the stored answer by the Idempotency-Key: a replay is free; a different key is a new operation, "
        "even with the same body.",
    )
    expect(
        all(getattr(m, "id", None) == first.id for m in again),
        "a replay returned a different answer",
        expected=first.id,
        got=[getattr(m, "id", m) for m in again],
        hint="Return exactly what the first call returned.",
    )
    expect(
        getattr(other, "id", None) != first.id,
        "a different key got the first key's answer",
        hint="Two keys are two operations: don't deduplicate by body.",
    )


@idempotent.case("concurrent duplicates make one model call and all get its answer (ledger)")
async def _concurrent(fn) -> None:
    p = probe(tier="unlimited", tag="check05")
    client, generate = _generator(p)
    cache: dict = {}
    async with p:
        got = await asyncio.gather(*(_idem(fn, cache, "report-7", report_body(7), generate) for _ in range(8)))
    n = len(p.requests())
    expect(
        n == 1,
        f"8 concurrent requests with the same key made {n} model calls",
        expected=1,
        got=n,
        hint="Check-then-act race: every duplicate checks the cache before the first call has stored anything "
        "(the await in between lets them all in). Claim the key synchronously before awaiting: store a "
        "task for it, and make duplicates await that task.",
    )
    ids = {getattr(m, "id", None) for m in got}
    expect(
        len(ids) == 1 and None not in ids,
        "the duplicates did not all get the same answer",
        got=ids,
        hint="Every caller of the key returns the one call's answer.",
    )


@idempotent.case("the same key with a different body is an error, and the model is not called")
async def _reused(fn) -> None:
    p = probe(tier="unlimited", tag="check05")
    client, generate = _generator(p)
    cache: dict = {}
    async with p:
        await _idem(fn, cache, "report-3", report_body(3), generate)
        try:
            await _idem(fn, cache, "report-3", report_body(4), generate)
        except (CaseFailed, NotImplementedError):
            raise
        except Exception:  # noqa: BLE001 - any clear error is right (the IETF draft answers 422)
            pass
        else:
            raise CaseFailed(
                "reusing a key with a different body returned an answer",
                expected="an exception (the draft's 422)",
                got="an answer",
                hint="Store a fingerprint of the body with the key (e.g. a hash of json.dumps(body, "
                "sort_keys=True)) and raise ValueError when a key comes back with another body: "
                "replaying report 3's answer for report 4 is wrong, and so is silently running it.",
            )
    n = len(p.requests())
    expect(
        n == 1,
        f"the ledger shows {n} model calls",
        expected=1,
        got=n,
        hint="Refuse the reused key before calling the model.",
    )


@idempotent.case("a failed attempt is not stored as the final answer (ledger)")
async def _failure(fn) -> None:
    p = probe(tier="unlimited", tag="check05")
    client = p.async_client()
    faults = iter(["overloaded"])

    async def generate(body: dict) -> Any:
        fault = next(faults, None)
        return await client.messages.create(**body, extra_headers={"x-mock-fault": fault} if fault else None)

    cache: dict = {}
    async with p:
        try:
            await _idem(fn, cache, "report-9", report_body(9), generate)
        except anthropic.InternalServerError:
            pass
        except (CaseFailed, NotImplementedError):
            raise
        else:
            raise CaseFailed(
                "the model call failed with 529 but idempotent_call returned normally",
                hint="Let the failure propagate to the caller (who may retry).",
            )
        try:
            second = await _idem(fn, cache, "report-9", report_body(9), generate)
        except anthropic.APIStatusError:
            raise CaseFailed(
                "a retry with the same key got the stored 529 again instead of a new attempt",
                expected="a new model call that succeeds",
                got="the first attempt's error",
                hint="Never keep a failure as the key's final answer: remove the key's entry when the "
                "call fails, so the client's retry does the work.",
            ) from None
    rows = p.requests()
    expect_equal(
        list(rows["status"]),
        [529, 200],
        "the ledger's model calls for the key",
        hint="One failed call, then one successful call on the retry.",
    )
    expect(
        getattr(second, "id", None) is not None,
        "the retry did not return the Message",
        got=second,
        hint="Return what generate(body) returned.",
    )


# =============================================================================================
# 5.5 make_handler(client) -> async handle(key, body)   (the chaos exercise)
# =============================================================================================
chaos = Exercise(
    "5.5",
    "Chaos: survive the replayed incident",
    points=5,
    signature="make_handler(client) -> async handle(key, body) -> Message",
    time_limit=240,
    hints=[
        "Compose the lesson: an idempotent boundary (5.4) so the app's retries join the work in flight; retries "
        "at one layer, with jitter (5.2) and a response-start timeout shorter than the app's 6 s; a breaker per model (5.3) so the "
        "dead primary only gets probes; and a fallback to claude-haiku-5-5 while it is down.",
        "With the library: policy = RetryPolicy(max_attempts=4, base_s=0.25, cap_s=2, deadline_s=20, "
        "budget=RetryBudget(0.2)); board = BreakerBoard(min_calls=5, cooldown_s=5, half_open_calls=1); each Link "
        "calls policy.acall(lambda: board[model].acall(lambda: stream_with_start_timeout(client, start_timeout_s=5, "
        "**{**body, 'model': model}))); FallbackChain([primary, fallback]); handle = Idempotent(IdempotencyStore()).acall(key, body, generate).",
    ],
)

CHAOS_MIN_SUCCESS = 0.95
CHAOS_P99_S = 15.0
CHAOS_MAX_LOAD = 1.3
_chaos_runs: dict[Any, Any] = {}
_chaos_lock = __import__("threading").Lock()


async def _incident(fn: Any) -> Any:
    """The incident replayed against the answer once; the four cases read the same run."""
    from ..resilience.chaos import run_incident

    with _chaos_lock:
        if fn in _chaos_runs:
            return _chaos_runs[fn]
    random.seed(11)
    p = probe(tier="unlimited", tag="check05-chaos")
    async with p:
        client = p.async_client()
        handle = fn(client)
        if inspect.isawaitable(handle):
            handle = await handle
        if not callable(handle):
            raise CaseFailed(
                f"make_handler returned {type(handle).__name__}, not a function",
                hint="Return the `async def handle(key, body)` you defined inside make_handler.",
            )
        report = await run_incident(p.server, handle, api_key=p.api_key)
    summary = report.summary()
    with _chaos_lock:
        if len(_chaos_runs) > 4:
            _chaos_runs.clear()
        _chaos_runs[fn] = summary
    return summary


def _judgeable(s: dict, what: str) -> None:
    """Duplicates and load mean little when almost nothing was answered (a handler that fails at once sends
    nothing and charges nobody): those cases need at least half the reports answered."""
    expect(
        s["success_ratio"] >= 0.5,
        f"only {s['success_ratio']:.0%} of the reports were answered: too few to judge {what} ({_figures(s)})",
        expected="at least 50% answered",
        got=f"{s['success_ratio']:.0%}",
        hint="Make the handler answer first (the success case's hint).",
    )


def _figures(s: dict) -> str:
    return (
        f"success {s['success_ratio']:.0%}, duplicate charges {s['duplicate_charges']}, p99 {s['p99_latency_s']:.1f} s, "
        f"load {s['load_amplification']:.2f}x ({s['provider_requests']} requests for {s['reports']} reports)"
    )


@chaos.case(f"success ratio at least {CHAOS_MIN_SUCCESS:.0%} through flaky, outage and slow phases")
async def _chaos_success(fn) -> None:
    s = await _incident(fn)
    expect(
        s["success_ratio"] >= CHAOS_MIN_SUCCESS,
        f"{s['success_ratio']:.0%} of the reports were answered ({_figures(s)})",
        expected=f">= {CHAOS_MIN_SUCCESS:.0%}",
        got=f"{s['success_ratio']:.0%}",
        hint="Retry transient failures with backoff, and fall back to another model while the primary is down "
        "(the app gives up after 4 attempts of 6 s).",
    )


@chaos.case("no customer is charged twice for one report")
async def _chaos_duplicates(fn) -> None:
    s = await _incident(fn)
    _judgeable(s, "duplicate charges")
    expect(
        s["duplicate_charges"] == 0,
        f"{s['duplicate_charges']} report(s) were produced more than once for the same Idempotency-Key ({_figures(s)})",
        expected=0,
        got=s["duplicate_charges"],
        hint="The app retries with the same key while your first handler run is still working: make handle "
        "idempotent per key, so the retry waits for (or replays) the first run instead of generating again.",
    )


@chaos.case(f"p99 latency the app sees within {CHAOS_P99_S:g} s")
async def _chaos_latency(fn) -> None:
    s = await _incident(fn)
    expect(
        s["p99_latency_s"] <= CHAOS_P99_S,
        f"p99 latency {s['p99_latency_s']:.1f} s ({_figures(s)})",
        expected=f"<= {CHAOS_P99_S:g} s",
        got=f"{s['p99_latency_s']:.1f} s",
        hint="Some answers are held 30 s by the slow provider: time out when a response has not started within a "
        "few seconds (stream_with_start_timeout, or asyncio.wait_for around a short call) and retry, instead of "
        "waiting for an answer that comes too late.",
    )


@chaos.case(f"load amplification at the provider at most {CHAOS_MAX_LOAD:g}x (ledger)")
async def _chaos_load(fn) -> None:
    s = await _incident(fn)
    _judgeable(s, "the load")
    expect(
        s["load_amplification"] <= CHAOS_MAX_LOAD,
        f"the provider received {s['load_amplification']:.2f} requests per report ({_figures(s)})",
        expected=f"<= {CHAOS_MAX_LOAD:g}x",
        got=f"{s['load_amplification']:.2f}x",
        hint="During the outage every retry to the dead primary is load it cannot serve: a breaker per model "
        "sends only probes there, and a retry budget caps retries at a fraction of requests.",
    )


EXERCISES = [retryable, retries, breaker, idempotent, chaos]
