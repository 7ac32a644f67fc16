"""Monthly budgets per tenant: a soft alert at 80 %, a hard stop at 100 %, reserve then settle.

A check-then-act guard ("is there budget left? then send") lets 50 concurrent requests all see
the same remaining dollars and all go: the budget is overshot by everything in flight. Here a
request first **reserves** its worst case (``course_utils.cost.worst_case_cost``: input counted
offline plus ``max_tokens`` of output, at the model's price) in one atomic step that refuses when ``spent + reserved + amount``
would pass the budget; when the reply arrives it **settles**: the reservation is released and the
actual cost (from ``usage``) is spent. A failed request settles at zero. So the total committed
can never pass the budget, however many requests run at once, in however many processes (with
:class:`~.redis_backend.RedisBudgetStore`). A hold expires after ``hold_ttl_s`` (15 minutes by
default, far longer than any request): a process that reserved and crashed cannot keep a tenant's
money held for the rest of the month. (Settling an expired hold still spends the actual cost.)

The soft threshold (``soft_ratio``, 80 %) raises one :class:`BudgetAlert` per tenant and month,
exactly once even across processes (the store decides who crossed it).

How this differs from lesson 06's ``course_utils.cost.SpendGuard`` (the same reserve/settle
protocol, for one budget in one process): this guard keeps a budget per tenant and calendar month,
with a soft and a hard threshold, in a store every process of the service shares (Redis), so the
amounts are integer nano-dollars that Redis can add exactly.
"""

from __future__ import annotations

import math
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import ROUND_CEILING, Decimal
from typing import Any, Callable, Protocol

from ..clock import SYSTEM_CLOCK, Clock
from ..cost.spend_guard import BudgetExceeded
from .errors import TenancyError
from .memory import MemoryBudgetStore
from .registry import TenantContext

__all__ = [
    "BudgetGuard",
    "BudgetStore",
    "TenantBudgetExceeded",
    "BudgetAlert",
    "BudgetStatus",
    "TenantReservation",
    "to_nano",
    "from_nano",
]

NANO = Decimal("1e-9")


def to_nano(amount: Decimal) -> int:
    """Dollars as whole nano-dollars, rounded up (a reservation never under-counts)."""
    if not isinstance(amount, Decimal) or not amount.is_finite() or amount < 0:
        raise ValueError(f"an amount of dollars is a finite Decimal >= 0, not {amount!r}")
    return int((amount / NANO).to_integral_value(rounding=ROUND_CEILING))


def from_nano(amount: int) -> Decimal:
    """Whole nano-dollars as dollars."""
    return Decimal(amount) * NANO


class BudgetStore(Protocol):
    """Where budgets are kept: integer nano-dollars per (tenant, period); each call atomic."""

    def reserve(
        self, tenant_id: str, period: str, amount: int, limit: int, hold_id: str, hold_ttl_s: float
    ) -> tuple[bool, int, int]:
        """Hold ``amount`` under ``hold_id`` for ``hold_ttl_s`` unless spent + held + amount > limit
        (expired holds released first); (ok, spent, reserved)."""
        ...

    def settle(self, tenant_id: str, period: str, hold_id: str, actual: int, soft: int) -> tuple[int, bool]:
        """Release hold ``hold_id`` (if it has not expired), spend ``actual``; (spent, True if this
        call first reached ``soft``)."""
        ...

    def usage(self, tenant_id: str, period: str) -> tuple[int, int]:
        """(spent, reserved) now."""
        ...


class TenantBudgetExceeded(TenancyError, BudgetExceeded):
    """A reservation would pass the tenant's monthly budget (answer 402/429; nothing was charged).

    A lesson 06 :class:`~course_utils.cost.BudgetExceeded` (``needed`` is ``requested``, ``available``
    is ``limit - spent - reserved``), so ``except BudgetExceeded`` catches both guards' refusals.
    """

    def __init__(
        self, tenant_id: str, period: str, requested: Decimal, spent: Decimal, reserved: Decimal, limit: Decimal
    ):
        self.tenant_id, self.period, self.requested = tenant_id, period, requested
        self.spent, self.reserved, self.limit = spent, reserved, limit
        super().__init__(
            requested,
            limit - spent - reserved,
            f"tenant {tenant_id!r} has a budget of ${limit} for {period}: ${spent} spent and ${reserved} reserved "
            f"by requests in flight, so this request's worst case of ${requested} does not fit",
        )


@dataclass(frozen=True)
class BudgetAlert:
    """The soft threshold was reached: ``spent`` of ``limit`` dollars in ``period``."""

    tenant_id: str
    period: str
    spent: Decimal
    limit: Decimal


@dataclass(frozen=True)
class BudgetStatus:
    """A tenant's budget this period, in dollars."""

    tenant_id: str
    period: str
    limit: Decimal
    spent: Decimal
    reserved: Decimal

    @property
    def remaining(self) -> Decimal:
        return self.limit - self.spent - self.reserved


@dataclass
class TenantReservation:
    """Money held for one request; settle it exactly once (settling again does nothing)."""

    tenant_id: str
    period: str
    amount: Decimal
    nano: int
    hold_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    settled: bool = field(default=False)


class BudgetGuard:
    """Per-tenant monthly budgets (see the module docstring).

    ``store``: :class:`~.memory.MemoryBudgetStore` (default, one process) or
    :class:`~.redis_backend.RedisBudgetStore` (shared). ``on_alert`` is called with a
    :class:`BudgetAlert` when a tenant's spend first reaches ``soft_ratio`` of its budget; alerts
    are also kept in :attr:`alerts`. The period is the calendar month (UTC) of ``clock.time()``.
    """

    def __init__(
        self,
        store: BudgetStore | None = None,
        *,
        soft_ratio: Decimal = Decimal("0.8"),
        clock: Clock = SYSTEM_CLOCK,
        on_alert: Callable[[BudgetAlert], Any] | None = None,
        hold_ttl_s: float = 900.0,
    ) -> None:
        if not isinstance(soft_ratio, Decimal) or not 0 < soft_ratio <= 1:
            raise ValueError(f"soft_ratio must be a Decimal in (0, 1], not {soft_ratio!r}")
        if not hold_ttl_s > 0:
            raise ValueError(f"hold_ttl_s must be positive, not {hold_ttl_s!r}")
        self.store: BudgetStore = store if store is not None else MemoryBudgetStore(clock=clock)
        self.hold_ttl_s = float(hold_ttl_s)
        self.soft_ratio = soft_ratio
        self._clock = clock
        self._on_alert = on_alert
        self.alerts: list[BudgetAlert] = []
        self._lock = threading.Lock()

    def period(self) -> str:
        """The current budget period, ``YYYY-MM`` (UTC)."""
        return datetime.fromtimestamp(self._clock.time(), tz=timezone.utc).strftime("%Y-%m")

    def reserve(self, tenant: TenantContext, amount: Decimal) -> TenantReservation:
        """Hold ``amount`` dollars of the tenant's budget, or raise :class:`TenantBudgetExceeded` (nothing held)."""
        _require_context(tenant)
        nano = to_nano(amount)
        period = self.period()
        limit = tenant.plan.monthly_budget_usd
        held = TenantReservation(tenant.tenant_id, period, amount, nano)
        ok, spent, reserved = self.store.reserve(
            tenant.tenant_id, period, nano, to_nano(limit), held.hold_id, self.hold_ttl_s
        )
        if not ok:
            raise TenantBudgetExceeded(tenant.tenant_id, period, amount, from_nano(spent), from_nano(reserved), limit)
        return held

    def settle(self, tenant: TenantContext, reservation: TenantReservation, actual: Decimal) -> None:
        """Release the reservation and spend ``actual`` dollars (0 for a request that failed).

        ``actual`` may exceed the reservation (an estimate that was low); it is spent anyway,
        because the provider charged it. Settling a reservation twice does nothing.
        """
        _require_context(tenant)
        if reservation.tenant_id != tenant.tenant_id:
            raise ValueError(f"reservation of tenant {reservation.tenant_id!r} settled as {tenant.tenant_id!r}")
        actual_nano = to_nano(actual)
        with self._lock:
            if reservation.settled:
                return
            reservation.settled = True
        limit = tenant.plan.monthly_budget_usd
        soft = math.ceil(to_nano(limit) * self.soft_ratio)
        spent, first_alert = self.store.settle(
            tenant.tenant_id, reservation.period, reservation.hold_id, actual_nano, soft
        )
        if first_alert:
            alert = BudgetAlert(tenant.tenant_id, reservation.period, from_nano(spent), limit)
            self.alerts.append(alert)
            if self._on_alert is not None:
                self._on_alert(alert)

    def release(self, tenant: TenantContext, reservation: TenantReservation) -> None:
        """Give a reservation back unspent (the request was never sent)."""
        self.settle(tenant, reservation, Decimal(0))

    def status(self, tenant: TenantContext) -> BudgetStatus:
        """Spent and reserved dollars this period."""
        _require_context(tenant)
        period = self.period()
        spent, reserved = self.store.usage(tenant.tenant_id, period)
        return BudgetStatus(
            tenant.tenant_id, period, tenant.plan.monthly_budget_usd, from_nano(spent), from_nano(reserved)
        )


def _require_context(tenant: Any) -> None:
    if not isinstance(tenant, TenantContext):
        raise TypeError(
            f"budgets are per authenticated tenant: pass the TenantContext from TenantRegistry.authenticate(), "
            f"not {type(tenant).__name__}"
        )
