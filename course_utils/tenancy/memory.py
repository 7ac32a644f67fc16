"""In-memory backends (one process): the per-tenant limiter and the budget ledger.

The default for the notebook and for a single-process service. Every operation holds one lock
for a few dictionary updates, so it is atomic for threads and asyncio tasks alike. It is *not*
shared: N processes each enforce the full limit, N times over. Use the Redis backends for that.
"""

from __future__ import annotations

import threading

from ..clock import SYSTEM_CLOCK, Clock
from ..concurrency import Demand
from ..token_bucket import LEVEL_SLACK, refilled, seconds_until
from .limiter import DIMENSIONS, Decision, bucket_shape, check_burst, demands
from .plans import Plan

__all__ = ["MemoryLimiter", "MemoryBudgetStore"]


class MemoryLimiter:
    """:class:`~.limiter.TenantLimiter` in this process's memory, on an injectable clock.

    Three levels per tenant and one time of last refill, refilled and compared with the course's
    token-bucket arithmetic (:func:`course_utils.token_bucket.refilled`, :func:`~course_utils.token_bucket.seconds_until`
    with the tenant limiters' slack), exactly as the Redis backend's Lua script does.

    ``burst_s``: seconds of each per-minute rate a bucket holds (60 = a minute's quota at once).
    """

    def __init__(self, *, burst_s: float = 60.0, clock: Clock = SYSTEM_CLOCK) -> None:
        self.burst_s = check_burst(burst_s)
        self._clock = clock
        self._state: dict[str, tuple[list[float], float]] = {}  # tenant -> (levels, last refill)
        self._lock = threading.Lock()

    def _levels(self, tenant_id: str, shape: list[tuple[float, float]]) -> list[float]:
        now = self._clock.monotonic()
        levels, last = self._state.get(tenant_id, ([cap for cap, _ in shape], now))
        levels = [refilled(level, cap, rate, now - last) for level, (cap, rate) in zip(levels, shape)]
        self._state[tenant_id] = (levels, max(now, last))
        return levels

    def try_acquire(self, tenant_id: str, plan: Plan, demand: Demand) -> Decision:
        need = demands(demand)
        shape = bucket_shape(plan, self.burst_s)
        with self._lock:
            levels = self._levels(tenant_id, shape)
            wait, binding = 0.0, None
            for name, n, level, (cap, rate) in zip(DIMENSIONS, need, levels, shape):
                if n > cap + LEVEL_SLACK:
                    wait, binding = float("inf"), name
                    break
                w = seconds_until(n, level, rate, LEVEL_SLACK)
                if w > wait:
                    wait, binding = w, name
            if binding is None:
                for i, n in enumerate(need):
                    levels[i] -= n
            remaining = dict(zip(DIMENSIONS, levels))
        if binding is None:
            return Decision(True, remaining=remaining)
        return Decision(False, retry_after_s=wait, limit=binding, remaining=remaining)

    def settle_output(self, tenant_id: str, plan: Plan, expected: int, actual: int) -> None:
        shape = bucket_shape(plan, self.burst_s)
        with self._lock:
            levels = self._levels(tenant_id, shape)
            levels[2] = min(shape[2][0], levels[2] + float(expected) - float(actual))

    def remaining(self, tenant_id: str, plan: Plan) -> dict[str, float]:
        with self._lock:
            return dict(zip(DIMENSIONS, self._levels(tenant_id, bucket_shape(plan, self.burst_s))))

    def reset(self) -> None:
        with self._lock:
            self._state.clear()


class MemoryBudgetStore:
    """:class:`~.budget.BudgetStore` in memory: spent and held amounts (integer nano-dollars) per
    (tenant, period), each operation atomic under one lock. Holds expire ``hold_ttl_s`` after they
    were made (clock seconds), so a request that never settles cannot hold its money for ever."""

    def __init__(self, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self._clock = clock
        self._spent: dict[tuple[str, str], int] = {}
        self._holds: dict[tuple[str, str], dict[str, tuple[int, float]]] = {}  # hold id -> (amount, expires)
        self._alerted: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def _live_holds(self, key: tuple[str, str]) -> dict[str, tuple[int, float]]:
        now = self._clock.time()
        holds = self._holds.setdefault(key, {})
        for hold_id in [h for h, (_, expires) in holds.items() if expires <= now]:
            del holds[hold_id]
        return holds

    def reserve(
        self, tenant_id: str, period: str, amount: int, limit: int, hold_id: str, hold_ttl_s: float
    ) -> tuple[bool, int, int]:
        key = (tenant_id, period)
        with self._lock:
            holds = self._live_holds(key)
            spent, reserved = self._spent.get(key, 0), sum(a for a, _ in holds.values())
            if spent + reserved + amount > limit:
                return False, spent, reserved
            holds[hold_id] = (amount, self._clock.time() + hold_ttl_s)
            return True, spent, reserved + amount

    def settle(self, tenant_id: str, period: str, hold_id: str, actual: int, soft: int) -> tuple[int, bool]:
        key = (tenant_id, period)
        with self._lock:
            self._live_holds(key).pop(hold_id, None)
            spent = self._spent.get(key, 0) + actual
            self._spent[key] = spent
            first_alert = spent >= soft and key not in self._alerted
            if first_alert:
                self._alerted.add(key)
            return spent, first_alert

    def usage(self, tenant_id: str, period: str) -> tuple[int, int]:
        key = (tenant_id, period)
        with self._lock:
            return self._spent.get(key, 0), sum(a for a, _ in self._live_holds(key).values())

    def clear(self) -> None:
        with self._lock:
            self._spent.clear()
            self._holds.clear()
            self._alerted.clear()
