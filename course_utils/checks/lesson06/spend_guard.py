"""Checks for exercise 6.5 ``SpendGuard``: reserve the worst case, settle to the actual; 50 concurrent
requests on virtual time, refusals, error responses and lost answers, graded through the ledger."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

from ... import pricing
from ...cost import spend_guard
from ..framework import CaseFailed, Exercise, expect
from ..sim import probe

from .common import CHEAP, awaited


# =============================================================================================
# 6.5 SpendGuard(budget) with await guard.call(client, body)
# =============================================================================================
guard_ex = Exercise(
    "6.5",
    "A spend guard: reserve the worst case, settle to the actual",
    points=5,
    signature="SpendGuard(budget); await guard.call(client, body) -> Message",
    time_limit=90,
    reference={"cost.SpendGuard": spend_guard.SpendGuard},
    task="guard spend",
    hints=[
        "In call(): worst = worst_case_cost(body); check `spent + reserved + worst <= budget` and add worst to "
        "reserved in the same step, before any await; then await the request; then reserved -= worst and "
        "spent += pricing.cost(message.usage, body['model']).",
        "Refuse (raise) before sending when the worst case does not fit. On an error response "
        "(anthropic.APIStatusError) give the reservation back; on a lost answer (any other exception: a timeout, a "
        "dropped connection) keep the worst case as spent, since the provider may have billed it.",
    ],
)


def _long_body(n: int) -> dict:
    """A request whose answer runs to max_tokens: actual cost == worst case."""
    return {
        "model": CHEAP,
        "max_tokens": 120,
        "messages": [{"role": "user", "content": f"Write a 500-word essay on topic {n}."}],
    }


def _short_body(n: int) -> dict:
    """A request whose answer is far below max_tokens: actual cost << worst case."""
    return {
        "model": CHEAP,
        "max_tokens": 800,
        "messages": [{"role": "user", "content": f"Reply with one word: ok {n}"}],
    }


def _guard(fn: Any, budget: Decimal) -> Any:
    guard = fn(budget)
    if not callable(getattr(guard, "call", None)):
        raise CaseFailed(
            "SpendGuard has no call method",
            expected="await guard.call(client, body)",
            got=type(guard).__name__,
            hint="Define `async def call(self, client, body)` on the class.",
        )
    return guard


async def _calls(guard: Any, client: Any, bodies: list[dict]) -> list[Any]:
    async def one(body: dict) -> Any:
        try:
            return await awaited(guard.call(client, body), "guard.call")
        except (CaseFailed, NotImplementedError):
            raise
        except Exception as exc:  # noqa: BLE001 - a refusal is any exception the guard raises
            return exc

    # The exercise's ``reference`` guard (forbid) runs around every case: the library's SpendGuard, a
    # subclass or a wrapper calling into it scores nothing.
    return await asyncio.gather(*(one(b) for b in bodies))


def _long_input_body(n: int) -> dict:
    """A request whose input is most of its worst case: a guard that reserves only the output overspends."""
    background = " ".join(f"Clause {i}: the warranty covers part {i} for {i % 5 + 1} years." for i in range(150))
    return {**_long_body(n), "system": f"Background for the essay. {background}"}


@guard_ex.case("50 concurrent requests never spend more than the budget (ledger)")
async def _concurrent(fn) -> None:
    for make in (_long_body, _long_input_body):
        await _concurrent_round(fn, make)


async def _concurrent_round(fn: Any, make: Any) -> None:
    worst = spend_guard.worst_case_cost(make(0))
    budget = worst * 10
    p = probe(tier="unlimited", tag="check06-guard")
    async with p:
        client = p.async_client()
        await _calls(_guard(fn, budget), client, [make(n) for n in range(50)])
    rows = p.requests()
    spent = p.cost()
    expect(
        spent <= budget,
        f"{len(rows)} requests were sent and cost {pricing.format_usd(spent, 6)}, over the "
        f"{pricing.format_usd(budget, 6)} budget",
        expected=f"<= {pricing.format_usd(budget, 6)}",
        got=pricing.format_usd(spent, 6),
        hint="Checking the budget and adding the cost after the reply races: all 50 requests pass the check "
        "before the first reply is charged. Reserve the worst case (input + max_tokens of output: "
        "worst_case_cost(body)) in the same step as the check, before the await.",
    )
    expect(
        len(rows) >= 10,
        f"only {len(rows)} of the 10 requests whose worst case fits the budget were sent",
        expected=">= 10 requests",
        got=f"{len(rows)} requests",
        hint="Reserve exactly the worst case (input + max_tokens of output at the model's prices), not more.",
    )


@guard_ex.case("settling frees the unused reservation: the budget is not locked up")
async def _settles(fn) -> None:
    worst = spend_guard.worst_case_cost(_short_body(0))
    budget = worst * 3
    p = probe(tier="unlimited", tag="check06-settle")
    client = p.async_client()
    guard = _guard(fn, budget)
    answered = 0
    async with p:
        for n in range(12):
            result = (await _calls(guard, client, [_short_body(n)]))[0]
            answered += not isinstance(result, Exception)
    spent = p.cost()
    expect(
        spent <= budget,
        f"12 one-at-a-time requests cost {pricing.format_usd(spent, 6)}, over the {pricing.format_usd(budget, 6)} "
        "budget",
        expected=f"<= {pricing.format_usd(budget, 6)}",
        got=pricing.format_usd(spent, 6),
        hint="Refuse a request whose worst case does not fit in budget - spent - reserved.",
    )
    expect(
        answered == 12,
        f"the guard answered {answered} of 12 one-at-a-time requests that together cost "
        f"{pricing.format_usd(spent, 6)} of a {pricing.format_usd(budget, 6)} budget",
        expected="12 answered",
        got=f"{answered} answered",
        hint="After the reply, replace the reservation by the actual cost from message.usage (settle); a "
        "reservation never released keeps the worst case locked up and the budget runs out early.",
    )


@guard_ex.case(
    "a refused request is not sent, one that fits exactly is, and an error response gives its reservation back"
)
async def _refusal(fn) -> None:
    p = probe(tier="unlimited", tag="check06-refuse")
    client = p.async_client()
    guard = _guard(fn, spend_guard.worst_case_cost(_short_body(0)) - Decimal("0.000000001"))
    async with p:
        refused = (await _calls(guard, client, [_short_body(0)]))[0]
        expect(
            isinstance(refused, Exception),
            "a request whose worst case exceeds the budget was answered",
            expected="an exception",
            got=type(refused).__name__,
            hint="Before sending, raise when spent + reserved + worst_case_cost(body) > budget.",
        )
        expect(
            len(p.requests()) == 0,
            "a refused request still reached the API",
            expected="0 requests",
            got=f"{len(p.requests())} requests",
            hint="Refuse before the await: a request that does not fit must never be sent.",
        )
        exact = _guard(fn, spend_guard.worst_case_cost(_short_body(3)))
        fits = (await _calls(exact, client, [_short_body(3)]))[0]
        expect(
            not isinstance(fits, Exception),
            f"a request whose worst case equals the whole budget was refused ({type(fits).__name__}: {fits})",
            expected="answered: it fits exactly",
            got="refused",
            hint="Refuse only when spent + reserved + worst would be *greater* than the budget; a worst case that "
            "fits exactly is allowed.",
        )
        roomy = _guard(fn, spend_guard.worst_case_cost(_short_body(0)) * Decimal("1.5"))
        bad = {**_short_body(1), "messages": []}  # the API answers 400
        failed = (await _calls(roomy, client, [bad]))[0]
        expect(
            isinstance(failed, Exception),
            "an invalid request did not raise",
            expected="the API's 400",
            got=failed,
            hint="Re-raise the API's error after giving the reservation back.",
        )
        after = (await _calls(roomy, client, [_short_body(2)]))[0]
    expect(
        not isinstance(after, Exception),
        f"after a 400 the guard refused a request that fits the budget ({type(after).__name__}: {after})",
        expected="answered",
        got="refused",
        hint="An error response carries no usage: release its reservation in an except branch, or it holds the "
        "budget forever.",
    )


@guard_ex.case("a lost answer (dropped connection after billing) keeps its worst case; the call raises")
async def _lost(fn) -> None:
    p = probe(tier="unlimited", tag="check06-lost")
    lossy = p.async_client(default_headers={"x-mock-fault": "lost_response"})
    client = p.async_client()
    worst = spend_guard.worst_case_cost(_short_body(0))
    guard = _guard(fn, worst * Decimal("1.5"))
    async with p:
        lost = (await _calls(guard, lossy, [_short_body(0)]))[0]
        expect(
            isinstance(lost, Exception),
            "a call whose connection dropped returned instead of raising",
            expected="the SDK's APIConnectionError, re-raised",
            got=type(lost).__name__,
            hint="Re-raise what the client raised: the caller must know the answer was lost.",
        )
        after = (await _calls(guard, client, [_short_body(1)]))[0]
    billed = p.cost()
    expect(
        isinstance(after, Exception),
        f"after an answer was lost (the provider billed {pricing.format_usd(billed, 6)} for it) the guard sent "
        "another request its worst case no longer covers",
        expected="refused: the lost call's worst case stays spent",
        got="answered",
        hint="A lost answer (APIConnectionError, a timeout, a cancelled call) may already be billed: keep its "
        "worst case as spent. Only an error response (anthropic.APIStatusError) gives the reservation back.",
    )
