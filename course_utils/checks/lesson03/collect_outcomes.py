"""Checks for exercise 3.2 ``collect_outcomes(fn, items, timeout)``: every value and every error in input
order, API errors kept with their item and nothing sent twice (ledger), a slow item timing out alone,
an empty input, and seeded random failures and timeouts."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from ...content import text_of
from ...concurrency.workload import classify_body
from ..framework import CaseFailed, Exercise, case_now, expect, expect_equal, expect_unchanged
from ..sim import probe
from .common import await_answer, on_empty, sample_tickets


# ---------------------------------------------------------------------------------------------
# 3.2 collect_outcomes(fn, items, timeout) -> list[tuple[value, error]]
# ---------------------------------------------------------------------------------------------
outcomes = Exercise(
    "3.2",
    "Error isolation: every result and every error",
    points=3,
    signature="await collect_outcomes(fn, items, timeout) -> list[(value, error)]",
    hints=[
        "Run the items concurrently, but catch each item's exception inside its own task, so one "
        "failure cannot throw away the others' results. Give each call its own timeout.",
        "async def one(x): try: return (await asyncio.wait_for(fn(x), timeout), None) except Exception as "
        "exc: return (None, exc); then return await asyncio.gather(*(one(x) for x in items)).",
    ],
)


def _pairs(got: Any, n: int) -> list[tuple[Any, Any]]:
    if not isinstance(got, list) or len(got) != n:
        count = len(got) if isinstance(got, list) else type(got).__name__
        raise CaseFailed(
            f"expected a list of {n} (value, error) pairs",
            expected=n,
            got=count,
            hint="Return one pair per item, failed items included: dropping a failure hides it.",
        )
    for pair in got:
        if not (isinstance(pair, tuple) and len(pair) == 2):
            raise CaseFailed(
                "each entry must be a (value, error) tuple",
                got=pair,
                hint="Use (value, None) for a success and (None, exception) for a failure.",
            )
    return got


async def _answer_or_failure(fn: Any, *args: Any, limit: float) -> Any:
    try:
        return await await_answer(fn, *args, limit=limit, what="collect_outcomes")
    except (CaseFailed, NotImplementedError):
        raise
    except Exception as exc:  # noqa: BLE001 - the classic mistake, named
        raise CaseFailed(
            f"collect_outcomes raised {type(exc).__name__}: {exc}",
            expected="a (value, error) pair for every item",
            got=f"{type(exc).__name__} raised",
            hint="Plain gather raises the first error and the finished results are lost; catch "
            "each item's exception inside its own task (or gather(..., return_exceptions=True)).",
        )


@outcomes.case("keeps every value and every error, in input order")
async def _values_and_errors(fn) -> None:
    async def work(x: int) -> int:
        await asyncio.sleep(0.01 * (x % 3))
        if x % 4 == 1:
            raise ValueError(f"bad item {x}")
        return x + 100

    items = list(range(10))
    given = list(items)
    got = _pairs(await _answer_or_failure(fn, work, given, 5.0, limit=10), len(items))
    expect_unchanged(items, given, "items", "collect_outcomes")
    for x, (value, error) in zip(items, got):
        if x % 4 == 1:
            expect(
                isinstance(error, ValueError),
                f"item {x} failed but its error is {error!r}",
                expected="ValueError('bad item ...')",
                got=(value, error),
                hint="Don't swallow errors: return the exception object as the pair's second element.",
            )
            expect(value is None, f"item {x} failed, so its value should be None", got=(value, error))
        else:
            expect_equal(value, x + 100, f"item {x}: wrong value", hint="Successful items keep their value, in order.")
            expect(error is None, f"item {x} succeeded but has an error", got=(value, error))


@outcomes.case("API errors stay with their item; nothing is sent twice (ledger)")
async def _api_errors(fn) -> None:
    import anthropic

    p = probe(tier="unlimited")
    client = p.async_client()
    tickets = sample_tickets(8)
    failing = {2, 5}

    async def classify(i: int) -> str:
        headers = {"x-mock-fault": "api_error"} if i in failing else None
        message = await client.messages.create(**classify_body(tickets[i]), extra_headers=headers)
        return text_of(message)

    async with p:
        got = _pairs(await _answer_or_failure(fn, classify, list(range(8)), 5.0, limit=15), 8)
    for i, (value, error) in enumerate(got):
        if i in failing:
            expect(
                isinstance(error, anthropic.APIStatusError),
                f"item {i} got a 500 but its error is {error!r}",
                expected="anthropic.InternalServerError",
                got=(value, error),
                hint="Keep the exception the call raised: callers decide from its type whether to retry.",
            )
        else:
            expect(
                isinstance(value, str) and error is None,
                f"item {i} succeeded but its result is missing",
                expected="(label, None)",
                got=(value, error),
                hint="A failure elsewhere must not cost the successful items their results.",
            )
    sent = len(p.requests())
    expect(
        sent == 8,
        f"the ledger shows {sent} requests for 8 items",
        expected=8,
        got=sent,
        hint="Call fn once per item: a result already paid for should not be requested again.",
    )


@outcomes.case("a slow item times out without holding up the rest; items run concurrently")
async def _timeout(fn) -> None:
    running = peak = 0

    async def work(x: int) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        try:
            await asyncio.sleep(3.0 if x == 3 else 0.05)
            return x
        finally:
            running -= 1

    started = case_now()
    got = _pairs(await _answer_or_failure(fn, work, list(range(6)), 0.3, limit=10), 6)
    elapsed = case_now() - started
    value, error = got[3]
    expect(
        isinstance(error, (TimeoutError, asyncio.TimeoutError)),
        "the slow item did not time out",
        expected="(None, TimeoutError())",
        got=(value, error),
        hint="Wrap each call in asyncio.wait_for(fn(x), timeout) (or `async with asyncio.timeout(...)`).",
    )
    expect(
        elapsed < 2.0,
        f"collect_outcomes took {elapsed:.1f} s with timeout=0.3",
        expected="< 2 s",
        got=f"{elapsed:.1f} s",
        hint="Run the items concurrently and give each one its own timeout.",
    )
    expect([v for v, _ in got[:3]] == [0, 1, 2], "the fast items lost their values", got=got)
    # Counted, not timed: a loop that awaits one wait_for after another also beats a loose time limit.
    expect(
        peak >= 2,
        "the items ran one at a time (never more than 1 running)",
        expected="several at once",
        got=peak,
        hint="Awaiting each item in a loop is sequential: a slow item then delays all the items "
        "after it. Start every item as its own task (gather / TaskGroup).",
    )


@outcomes.case("an empty list gives []; random failures and timeouts stay with their items")
async def _empty_and_random_outcomes(fn) -> None:
    async def unused(x: Any) -> Any:
        raise AssertionError("not called")

    got = await on_empty(fn, unused, [], 1.0, what="collect_outcomes")
    expect(
        got == [] and isinstance(got, list),
        "collect_outcomes of an empty list should be []",
        expected=[],
        got=got,
        hint="With no items, return an empty list (asyncio.wait on an empty set raises ValueError).",
    )
    rng = random.Random(32)
    for trial in range(5):
        n = rng.randint(1, 10)
        kinds = [rng.choice(["ok", "ok", "error", "slow"]) for _ in range(n)]

        async def work(i: int) -> int:
            await asyncio.sleep(0.5 if kinds[i] == "slow" else rng.choice([0.0, 0.01, 0.02]))
            if kinds[i] == "error":
                raise KeyError(i)
            return i * 7

        got = _pairs(await _answer_or_failure(fn, work, list(range(n)), 0.2, limit=10), n)
        for i, (value, error) in enumerate(got):
            if kinds[i] == "ok":
                expect(
                    value == i * 7 and error is None,
                    f"item {i} of {n} succeeded, but its pair is wrong",
                    expected=(i * 7, None),
                    got=(value, error),
                    hint="Pairs go in input order: (value, None) for a success.",
                )
            else:
                kind = KeyError if kinds[i] == "error" else (TimeoutError, asyncio.TimeoutError)
                expect(
                    value is None and isinstance(error, kind),
                    f"item {i} of {n} "
                    f"{'raised KeyError' if kinds[i] == 'error' else 'timed out'}, but its pair is wrong",
                    expected=f"(None, {'KeyError' if kinds[i] == 'error' else 'TimeoutError'}(...))",
                    got=(value, error),
                    hint="(None, exception) for a failure, in the failed item's position.",
                )
