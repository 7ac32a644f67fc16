"""Per-tenant controls around the model call, composed from lessons 06 and 07 (imported, never copied).

:class:`TenantControls` is what the model and metering workers ask, per message:

1. **which models** the tenant's plan allows (lesson 07's :class:`~course_utils.tenancy.Plan`):
   the fallback chain is cut to those;
2. **admission**: the tenant's own rate limits (lesson 07's :class:`~course_utils.tenancy.TenantLimiter`,
   in memory or on Redis) and monthly budget (lesson 07's :class:`~course_utils.tenancy.BudgetGuard`,
   reserving lesson 06's :func:`~course_utils.cost.worst_case_cost` of the request). A tenant over
   its rate waits for its ``retry-after`` on the injected clock (its own messages queue, nobody
   else's: the bus keeps them), up to ``max_wait_s``; a tenant over its budget is refused;
3. **settling**: the reservation becomes the actual cost of the answer (or is released when the
   call failed), and the output-token bucket is corrected to the real output;
4. **metering**: lesson 07's :class:`~course_utils.tenancy.Meter` records the answer once, keyed by the
   request-id of the call that answered, so a redelivered ``answer.streamed`` cannot bill twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Mapping, Sequence

from ..clock import SYSTEM_CLOCK, Clock
from ..concurrency import Demand
from ..cost import worst_case_cost
from ..tenancy import BudgetGuard, Meter, TenantLimiter, TenantRegistry, estimated_tokens
from .errors import ArchitectureError

__all__ = ["TenantControls", "Ticket", "TenantRateLimited"]


class TenantRateLimited(ArchitectureError):
    """The tenant stayed over its own rate limit for longer than the controls wait."""

    def __init__(self, tenant: str, retry_after_s: float) -> None:
        super().__init__(f"tenant {tenant!r} is over its rate limit; retry in {retry_after_s:.1f} s")
        self.tenant, self.retry_after_s = tenant, retry_after_s


@dataclass
class Ticket:
    """What admission handed out for one request, to settle afterwards."""

    tenant: str
    reservation: Any
    expected_output: int
    waited_s: float


class TenantControls:
    """Lesson 07's tenant limits, budgets and metering (and lesson 06's worst-case cost) for the pipeline."""

    def __init__(
        self,
        registry: TenantRegistry,
        limiter: TenantLimiter,
        budgets: BudgetGuard,
        *,
        meter: Meter | None = None,
        max_wait_s: float = 120.0,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.registry = registry
        self.limiter = limiter
        self.budgets = budgets
        self.meter = meter if meter is not None else Meter()
        self.max_wait_s = max_wait_s
        self.clock = clock
        self.waits: dict[str, float] = {}
        """Seconds each tenant's requests waited for its own rate limit (the fairness table's input)."""

    def models(self, tenant: str, chain: Sequence[str]) -> list[str]:
        """The models of ``chain`` the tenant's plan allows, in order."""
        plan = self.registry.context(tenant).plan
        return [m for m in chain if plan.allows(m)]

    async def admit(self, tenant: str, body: Mapping[str, Any]) -> Ticket:
        """Wait for the tenant's rate limit (up to ``max_wait_s``), then reserve the worst-case cost.

        Raises :class:`TenantRateLimited` or lesson 07's ``TenantBudgetExceeded`` (nothing held).
        """
        ctx = self.registry.context(tenant)  # the tenant id came from our own store, not a request
        expected_output = int(body.get("max_tokens", 0))
        demand = Demand(1, estimated_tokens(body) - expected_output, expected_output)
        waited = 0.0
        while True:
            decision = self.limiter.try_acquire(tenant, ctx.plan, demand)
            if decision.allowed:
                break
            retry = decision.retry_after_s
            if retry is None or retry == float("inf") or waited + retry > self.max_wait_s:
                raise TenantRateLimited(tenant, retry if retry is not None else float("inf"))
            await self.clock.sleep(retry)
            waited += retry
        self.waits[tenant] = self.waits.get(tenant, 0.0) + waited
        reservation = self.budgets.reserve(ctx, worst_case_cost(body))
        return Ticket(tenant, reservation, expected_output, waited)

    def settle(self, ticket: Ticket, result: Mapping[str, Any] | None) -> None:
        """Spend the answer's actual cost (``result["cost_usd"]``), or release the hold (``None``: it failed)."""
        ctx = self.registry.context(ticket.tenant)
        if result is None:
            self.budgets.release(ctx, ticket.reservation)
            self.limiter.settle_output(ticket.tenant, ctx.plan, ticket.expected_output, 0)
            return
        self.budgets.settle(ctx, ticket.reservation, Decimal(str(result["cost_usd"])))
        self.limiter.settle_output(ticket.tenant, ctx.plan, ticket.expected_output, int(result["output_tokens"]))

    async def record(self, tenant: str, message_id: str, usage: Mapping[str, Any]) -> None:
        """Meter one answered message, once: keyed by the provider's request-id of the call that answered
        (what the provider's ledger is reconciled by), or by ``message_id`` for a cached answer."""
        ctx = self.registry.context(tenant)
        key = usage.get("request_id") or f"msg_{message_id}"
        self.meter.record(ctx, {"model": usage["model"], "usage": dict(usage)}, request_id=key)
