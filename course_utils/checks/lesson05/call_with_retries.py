"""Checks for exercise 5.2 ``call_with_retries``: retry-after plus full jitter, a cap, max_attempts and a
deadline, graded on virtual time through the attempt times (the ledger's, or a scripted ``make_request``'s)."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import anthropic

from ... import resilience
from ...mock_provider.faults import Scenario
from ...resilience.fakes import spend_limit_error, status_error
from ..framework import CaseFailed, Exercise, case_now, expect, expect_equal
from ..sim import Probe, probe

from .common import awaited, report_body


def _gaps(times: list[float]) -> list[float]:
    return [b - a for a, b in zip(times, times[1:])]


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
        return await asyncio.wait_for(awaited(fn(make_request, **settings), "call_with_retries"), limit)
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
