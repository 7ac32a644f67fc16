"""A tenant's budget under concurrency, measured: check-then-act against reserve-and-settle.

:func:`budget_race` sends one tenant's requests to an in-process simulator on virtual time, through
two guards in turn, starting from the same spend:

* ``check, await, then add``: is ``spent + worst case <= budget``? then send, and add the real
  cost when the answer arrives. Every request in flight passed the check against the same
  ``spent``, so the budget is overshot by what was in flight when it ran out (the race).
* ``BudgetGuard (reserve, settle)``: :class:`~.budget.BudgetGuard` holds the worst case in the same
  step as the check and settles to the real cost: what is committed never passes the budget. The
  price is over-reservation: a request is refused while the holds of those in flight, each the
  worst case (``max_tokens`` of output), fill the budget although their real cost would not.

Both guards raise the 80 % alert the same way (the first settle that takes ``spent`` to 80 %), and
each run records a timeline of ``spent`` and ``committed`` (spent plus worst cases in flight), the
requests in flight when the alert fired, and every refusal. Arrivals are spread evenly over
``spread_s`` virtual seconds (``0``: all at once, a burst). The ledger says what was really billed.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import anthropic

from ..cost import worst_case_cost
from .. import pricing
from ..concurrency import run_each, simulator_session
from ..lab import NOOP_CYCLES
from .budget import BudgetGuard, TenantBudgetExceeded
from .memory import MemoryBudgetStore
from .metering import tenant_tag
from .plans import Plan
from .registry import TenantRegistry

__all__ = ["GUARDS", "BudgetRun", "BudgetRace", "budget_race"]

GUARDS = ("check, await, then add", "BudgetGuard (reserve, settle)")
MODEL = "claude-haiku-5-5"


@dataclass
class BudgetRun:
    """One guard's run: counts, the ledger's spend and its timeline (``t_s``, ``spent``, ``committed``)."""

    guard: str
    budget: Decimal
    sent: int = 0
    refused: int = 0
    spent_usd: Decimal = Decimal(0)
    """Start plus what the simulator's ledger billed (the truth, whatever the guard believed)."""
    alert_t_s: float | None = None
    alert_spent_usd: Decimal | None = None
    in_flight_at_alert: int | None = None
    timeline: list[dict[str, Any]] = field(default_factory=list)

    @property
    def share(self) -> Decimal:
        return self.spent_usd / self.budget

    def row(self) -> dict[str, Any]:
        alert = "never" if self.alert_spent_usd is None else f"{self.alert_spent_usd / self.budget:.1%}"
        return {
            "guard": self.guard,
            "sent": self.sent,
            "refused": self.refused,
            "spent_usd": self.spent_usd,
            "of_budget": f"{self.share:.1%}",
            "over_budget_usd": max(Decimal(0), self.spent_usd - self.budget),
            "alert_at": alert,
            "in_flight_at_alert": "" if self.in_flight_at_alert is None else str(self.in_flight_at_alert),
        }


@dataclass
class BudgetRace:
    """Both guards on the same workload; ``estimate``: the worst case each request reserves."""

    budget: Decimal
    start_usd: Decimal
    estimate: Decimal
    runs: dict[str, BudgetRun]
    actual_costs: list[Decimal]
    """The real cost of every request the reserving guard sent (from ``usage``)."""

    @property
    def mean_actual(self) -> Decimal:
        return sum(self.actual_costs, Decimal(0)) / len(self.actual_costs) if self.actual_costs else Decimal(0)

    @property
    def over_reservation(self) -> float:
        """Worst case reserved / mean real cost (how many times too much each hold was)."""
        return float(self.estimate / self.mean_actual) if self.actual_costs else float("nan")

    def unspent_fits(self) -> int:
        """How many more requests, at their mean real cost, the reserving guard's unspent budget would have paid for."""
        guarded = self.runs[GUARDS[1]]
        left = self.budget - guarded.spent_usd
        return int(left // self.mean_actual) if self.actual_costs and left > 0 else 0

    def table(self) -> Any:
        import pandas as pd

        return pd.DataFrame([run.row() for run in self.runs.values()]).set_index("guard")

    def timeline(self) -> Any:
        import pandas as pd

        return pd.DataFrame([{"guard": r.guard, **p} for r in self.runs.values() for p in r.timeline])


def _ask(max_tokens: int) -> dict[str, Any]:
    return {
        "model": MODEL,
        "max_tokens": max_tokens,
        "metadata": {"user_id": tenant_tag("acme")},
        "messages": [{"role": "user", "content": "Draft a two-line reply to a late-delivery complaint."}],
    }


async def _run(
    guard_name: str,
    *,
    budget_plan: Plan,
    start: Decimal,
    requests: int,
    spread_s: float,
    seed: int,
    max_tokens: int,
    actual_costs: list[Decimal],
) -> BudgetRun:
    registry = TenantRegistry()
    registry.register("acme", budget_plan)
    acme = registry.context("acme")
    ask = _ask(max_tokens)
    estimate = worst_case_cost(ask)
    limit = budget_plan.monthly_budget_usd
    soft = limit * Decimal("0.8")
    run = BudgetRun(guard_name, limit)
    async with simulator_session(seed=seed, rate_limit_tier="unlimited") as session:
        state = {"spent": start, "in_flight": 0}
        guard = BudgetGuard(MemoryBudgetStore())
        guard.settle(acme, guard.reserve(acme, start), start)

        def committed() -> Decimal:
            if guard_name == GUARDS[0]:
                return state["spent"] + state["in_flight"] * estimate
            status = guard.status(acme)
            return status.spent + status.reserved

        def note() -> None:
            spent = state["spent"] if guard_name == GUARDS[0] else guard.status(acme).spent
            run.timeline.append({"t_s": round(session.elapsed_s(), 3), "spent": spent, "committed": committed()})

        def alert_if_crossed(before: Decimal, after: Decimal) -> None:
            if run.alert_spent_usd is None and before < soft <= after:
                run.alert_t_s, run.alert_spent_usd = round(session.elapsed_s(), 3), after
                run.in_flight_at_alert = state["in_flight"]

        async def naive() -> bool:
            if state["spent"] + estimate > limit:  # check ...
                return False
            state["in_flight"] += 1
            note()
            try:
                # ... (everyone in flight passed the same check) ...
                message = await session.client.messages.create(**ask)
            finally:
                state["in_flight"] -= 1
            before = state["spent"]
            state["spent"] += pricing.cost(message.usage, MODEL)  # ... then act
            alert_if_crossed(before, state["spent"])
            return True

        async def reserving() -> bool:
            try:
                held = guard.reserve(acme, estimate)  # check and hold in one step, before any await
            except TenantBudgetExceeded:
                return False
            state["in_flight"] += 1
            note()
            try:
                message = await session.client.messages.create(**ask)
            except anthropic.APIStatusError:  # an error response: nothing was billed
                state["in_flight"] -= 1
                guard.release(acme, held)
                raise
            except BaseException:  # a lost answer: it may have been billed, so the worst case counts
                state["in_flight"] -= 1
                guard.settle(acme, held, estimate)
                raise
            state["in_flight"] -= 1
            actual = pricing.cost(message.usage, MODEL)
            actual_costs.append(actual)
            before = guard.status(acme).spent
            guard.settle(acme, held, actual)
            alert_if_crossed(before, guard.status(acme).spent)
            return True

        async def one(i: int) -> None:
            await asyncio.sleep(spread_s * i / max(1, requests))
            sent = await (naive() if guard_name == GUARDS[0] else reserving())
            if sent:
                run.sent += 1
            else:
                run.refused += 1
            note()

        note()
        await asyncio.gather(*(one(i) for i in range(requests)))
    run.spent_usd = start + session.billed_usd()
    return run


def budget_race(
    *,
    budget: Decimal = Decimal("0.10"),
    start_share: Decimal = Decimal("0.5"),
    requests: int = 150,
    spread_s: float = 60.0,
    max_tokens: int = 300,
    seed: int = 0,
) -> BudgetRace:
    """Run both guards (:data:`GUARDS`) on ``requests`` requests of one tenant whose month starts at
    ``start_share`` of ``budget``, arriving evenly over ``spread_s`` virtual seconds (0: at once).
    Each request asks Haiku 5.5 for at most ``max_tokens`` tokens; a refused request is not retried."""
    if not (isinstance(budget, Decimal) and budget > 0 and isinstance(start_share, Decimal) and 0 <= start_share < 1):
        raise ValueError("budget is a Decimal > 0 and start_share a Decimal in [0, 1)")
    if requests < 1 or spread_s < 0 or max_tokens < 1:
        raise ValueError("requests >= 1, spread_s >= 0 and max_tokens >= 1")
    plan = Plan("budget", 10**6, 10**9, 10**9, budget, frozenset({MODEL}))
    start = budget * start_share
    actual: list[Decimal] = []
    variants = {
        name: (
            lambda name=name: _run(
                name,
                budget_plan=plan,
                start=start,
                requests=requests,
                spread_s=spread_s,
                seed=seed,
                max_tokens=max_tokens,
                actual_costs=actual if name == GUARDS[1] else [],
            )
        )
        for name in GUARDS
    }
    runs = dict(zip(GUARDS, run_each(variants, seed=seed, noop_cycles=NOOP_CYCLES)))
    return BudgetRace(budget, start, worst_case_cost(_ask(max_tokens)), runs, actual)
