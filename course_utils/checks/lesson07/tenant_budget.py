"""Checks for exercise 7.4 ``TenantBudget``: reserve before the await, settle after, graded on the ledger."""

from __future__ import annotations

import asyncio
import inspect
from decimal import Decimal
from typing import Any

import anthropic

from ... import tenancy
from ...cost import worst_case_cost
from ... import pricing
from ...resilience.fakes import status_error
from ..framework import CaseFailed, Exercise, expect
from ..sim import probe
from .common import MODEL, money


# =============================================================================================
# 7.4 TenantBudget(limit).spend(estimate, send)
# =============================================================================================
budget = Exercise(
    "7.4",
    "A budget guard under concurrency",
    points=4,
    signature="TenantBudget(limit); await budget.spend(estimate, send) -> result or None; budget.spent",
    reference={"tenancy.BudgetGuard": tenancy.BudgetGuard, "tenancy.MemoryBudgetStore": tenancy.MemoryBudgetStore},
    task="guard a tenant's budget",
    hints=[
        "Reserve before the first await: if spent + reserved + estimate > limit return None; else reserved += "
        "estimate, and only then await send(). Checking and adding in two steps around the await lets 50 "
        "concurrent requests all pass the check.",
        "try: result, actual = await send(); except anthropic.APIStatusError: reserved -= estimate; raise; "
        "except BaseException: reserved -= estimate; spent += estimate; raise. Then reserved -= estimate; "
        "spent += actual; return result.",
    ],
)

_BODY = {"model": MODEL, "max_tokens": 300, "messages": [{"role": "user", "content": "Write one line on fairness."}]}


async def _spend(b: Any, estimate: Decimal, send: Any) -> Any:
    result = b.spend(estimate, send)
    if not inspect.isawaitable(result):
        raise CaseFailed(
            f"spend returned {type(result).__name__}, not a coroutine",
            hint="Define it with `async def spend(self, estimate, send)` and await send() inside.",
        )
    got = await result
    if isinstance(got, tuple) and len(got) == 2 and isinstance(got[1], Decimal):
        raise CaseFailed(
            "spend returned send()'s (result, actual) pair instead of the result",
            expected="result",
            got=f"({type(got[0]).__name__}, Decimal('{got[1]}'))",
            hint="Unpack it: result, actual = await send(); add actual to spent and return result alone.",
        )
    return got


@budget.case("50 concurrent requests against a nearly spent budget never overshoot it (ledger)")
async def _concurrent_budget(cls) -> None:
    p = probe(tier="unlimited", tag="check07")
    client = p.async_client()
    estimate = worst_case_cost(_BODY)
    b = cls(Decimal("1.00"))
    sent = 0

    async def already_spent() -> tuple[None, Decimal]:
        return None, Decimal("1.00") - 5 * estimate

    async def send() -> tuple[Any, Decimal]:
        nonlocal sent
        sent += 1
        message = await client.messages.create(**_BODY)
        return message, pricing.cost(message.usage, MODEL)

    async with p:
        await _spend(b, Decimal("1.00") - 5 * estimate, already_spent)
        results = await asyncio.gather(*(_spend(b, estimate, send) for _ in range(50)))
    provider = p.cost()
    total = Decimal("1.00") - 5 * estimate + provider
    expect(
        total <= Decimal("1.00"),
        f"50 concurrent requests made {sent} provider calls: spent plus the ledger's {money(provider)} comes to "
        f"{money(total)} of a $1.00 budget",
        expected="at most $1.00 (5 requests' worst case fit)",
        got=money(total),
        hint="Check-then-act race: every request checks the budget before any has recorded its cost (the "
        "await is in between). Reserve the estimate in the same step as the check, before awaiting send().",
    )
    admitted = sum(r is not None for r in results)
    expect(
        admitted == 5 == sent,
        f"{admitted} requests were let through and {sent} sent, with room for 5 worst cases",
        expected=5,
        got=sent,
        hint="Admit while spent + reserved + estimate <= limit; refuse the rest without calling send().",
    )
    expect(
        isinstance(b.spent, Decimal) and b.spent == Decimal("1.00") - 5 * estimate + provider,
        "budget.spent does not equal what was really spent (the pre-spent amount plus the ledger's cost)",
        expected=Decimal("1.00") - 5 * estimate + provider,
        got=getattr(b, "spent", None),
        hint="After send() returns, add its actual cost (not the estimate) to spent, as a Decimal.",
    )


@budget.case("reservations are settled back: unused estimate is free again after each reply")
async def _settles(cls) -> None:
    b = cls(Decimal("0.10"))

    async def send() -> tuple[str, Decimal]:
        await asyncio.sleep(0.2)
        return "ok", Decimal("0.002")

    results = [await _spend(b, Decimal("0.01"), send) for _ in range(30)]
    refused = sum(r is None for r in results)
    expect(
        refused == 0,
        f"{refused} of 30 sequential requests were refused: each reserved $0.01 but cost $0.002, so $0.06 "
        f"was spent of $0.10",
        expected="0 refused",
        got=f"{refused} refused",
        hint="Release the reservation when the reply arrives (reserved -= estimate) and add the actual cost: a "
        "reservation never settled holds its money forever.",
    )
    expect(
        b.spent == Decimal("0.060"),
        "budget.spent after 30 replies of $0.002 each is not $0.06",
        expected=Decimal("0.060"),
        got=b.spent,
        hint="spent is the sum of the actual costs send() reported, exact: not the estimates, and never rounded "
        "(a Decimal rounded to cents after each reply loses the small charges).",
    )


@budget.case("a failed call gives its reservation back and raises; a refusal never calls send")
async def _failure(cls) -> None:
    b = cls(Decimal("0.05"))
    calls = 0

    async def boom() -> tuple[str, Decimal]:
        # An error *response* (the API refused the request: nothing was billed): the reservation goes back.
        nonlocal calls
        calls += 1
        raise status_error(529)

    for n in range(3):
        before = calls
        try:
            result = await _spend(b, Decimal("0.04"), boom)
        except anthropic.APIStatusError:
            continue
        if calls == before:
            raise CaseFailed(
                f"after {n} failed call(s) that spent nothing, a $0.04 request was refused by a $0.05 budget",
                expected="send() called (and its error raised)",
                got=f"{result!r} without calling send()",
                hint="A failed call must release its reservation: try/except around await send(), "
                "reserved -= estimate, then raise.",
            )
        raise CaseFailed(
            f"send() raised OverloadedError but spend returned {result!r}: the error was swallowed",
            expected="the OverloadedError re-raised",
            got=repr(result),
            hint="Release the reservation in an except branch, then re-raise (a bare `raise`): the caller must "
            "know the request failed.",
        )

    async def fine() -> tuple[str, Decimal]:
        nonlocal calls
        calls += 1
        return "ok", Decimal("0.04")

    got = await _spend(b, Decimal("0.04"), fine)
    expect(
        got == "ok",
        "after 3 failed calls that spent nothing, a $0.04 request was refused by a $0.05 budget",
        expected="ok",
        got=got,
        hint="A failed call must release its reservation (try/except around await send()).",
    )
    before = calls
    refused = await _spend(b, Decimal("0.04"), fine)
    expect(
        refused is None and calls == before,
        "a request that does not fit was not refused without calling send()",
        expected="None, send not called",
        got=f"{refused!r}, send called {calls - before} time(s)",
        hint="Return None before calling send when spent + reserved + estimate > limit.",
    )


@budget.case("a lost answer (timeout, cancellation) keeps its estimate as spent and raises")
async def _lost_answer(cls) -> None:
    for how in ("timed out", "cancelled"):
        b = cls(Decimal("0.05"))
        calls = 0

        async def lost() -> tuple[str, Decimal]:
            nonlocal calls
            calls += 1
            if how == "timed out":
                raise anthropic.APITimeoutError(request=status_error(529).request)
            await asyncio.sleep(3600)  # the caller gives up first
            return "late", Decimal("0.01")

        task = asyncio.ensure_future(_spend(b, Decimal("0.04"), lost))
        if how == "cancelled":
            await asyncio.sleep(1)
            task.cancel()
        try:
            got = await task
        except (anthropic.APITimeoutError, asyncio.CancelledError):
            got = "raised"
        expect(
            got == "raised",
            f"send() {how}, but spend returned {got!r}",
            expected="the exception re-raised",
            got=repr(got),
            hint="Keep the worst case, then re-raise with a bare `raise`: the caller must know the answer was lost.",
        )
        before = calls

        async def fine() -> tuple[str, Decimal]:
            nonlocal calls
            calls += 1
            return "ok", Decimal("0.04")

        again = await _spend(b, Decimal("0.04"), fine)
        expect(
            again is None and calls == before,
            f"after an answer that {how} (the provider may have billed it), a second $0.04 request was let through "
            "a $0.05 budget",
            expected="None: the lost answer's $0.04 counts as spent",
            got=f"{again!r}, send called {calls - before} time(s)",
            hint="Only an error response (anthropic.APIStatusError) proves nothing was billed. Any other exception "
            "or a cancellation means the answer was lost, not refused: add the estimate to spent, then re-raise.",
        )
