"""Per-tenant rate limits: the interface both backends implement, and their shared arithmetic.

Each tenant has three continuously refilling token buckets, sized from its :class:`~.plans.Plan`:
requests, input tokens and output tokens per minute. A bucket holds ``burst_s`` seconds of its
rate (60: a minute's quota may be spent at once) and refills at ``limit / 60`` per second.

:meth:`TenantLimiter.try_acquire` is one atomic step: all three buckets admit the request's
estimated :class:`~course_utils.concurrency.Demand` and are charged, or none is and the
:class:`Decision` says exactly how long to wait (``retry_after_s``: the longest refill any bucket
needs) and which limit bound. That is the cheap-yes, exact-no contract: one dictionary update or
one Redis round trip either way, and a refusal the gateway can return to the tenant as a 429
with ``retry-after``. Output tokens are estimated before the reply and corrected afterwards with
:meth:`TenantLimiter.settle_output`, as the provider charges the output actually generated.

Backends: :class:`~.memory.MemoryLimiter` (one process; the notebook's default) and
:class:`~.redis_backend.RedisLimiter` (shared by every process, an atomic Lua script on the
server's clock). ``tests/test_tenancy_limiter.py`` runs one suite against both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from ..concurrency import Demand
from .plans import Plan

__all__ = ["Decision", "TenantLimiter", "DIMENSIONS", "bucket_shape", "retry_after_header"]

DIMENSIONS = ("requests", "input_tokens", "output_tokens")
"""The three limits, in the order backends store them."""


@dataclass(frozen=True)
class Decision:
    """The answer to one admission.

    ``allowed``: the request was admitted and charged. Otherwise nothing was charged,
    ``retry_after_s`` is when the same request would be admitted if nobody else spent the
    tenant's capacity (``math.inf`` when it never can: it is bigger than a bucket), and ``limit``
    names the binding limit (one of :data:`DIMENSIONS`). ``remaining`` is each bucket's level
    after the decision.
    """

    allowed: bool
    retry_after_s: float = 0.0
    limit: str | None = None
    remaining: dict[str, float] = field(default_factory=dict)

    def headers(self) -> dict[str, str]:
        """Headers for the tenant's 429: ``retry-after`` in whole seconds, rounded up (never 0)."""
        return retry_after_header(self.retry_after_s) if not self.allowed else {}


def retry_after_header(seconds: float) -> dict[str, str]:
    """``{"retry-after": "<whole seconds, rounded up, at least 1>"}``, or ``{}`` when it can never succeed."""
    if math.isinf(seconds):
        return {}
    return {"retry-after": str(max(1, math.ceil(seconds - 1e-6)))}


def bucket_shape(plan: Plan, burst_s: float) -> list[tuple[float, float]]:
    """``(capacity, refill per second)`` of each of :data:`DIMENSIONS` for ``plan``.

    A bucket holds at least one request (a plan of 10 RPM with ``burst_s=1`` still admits one).
    """
    out = []
    for name in DIMENSIONS:
        limit = float(plan.limits[name])
        capacity = limit * burst_s / 60.0
        out.append((max(capacity, 1.0) if name == "requests" else capacity, limit / 60.0))
    return out


def demands(demand: Demand) -> list[float]:
    """A demand as one number per dimension of :data:`DIMENSIONS`."""
    values = [float(demand.requests), float(demand.input_tokens), float(demand.output_tokens)]
    if any(v < 0 or math.isnan(v) for v in values):
        raise ValueError(f"a demand cannot be negative: {demand!r}")
    return values


def check_burst(burst_s: float) -> float:
    if isinstance(burst_s, bool) or not isinstance(burst_s, (int, float)) or not 0 < burst_s <= 3600:
        raise ValueError(f"burst_s must be a number of seconds in (0, 3600], not {burst_s!r}")
    return float(burst_s)


@runtime_checkable
class TenantLimiter(Protocol):
    """Per-tenant rate limits (see the module docstring). Implementations are safe to call from
    many threads and asyncio tasks; :class:`~.redis_backend.RedisLimiter` also across processes."""

    def try_acquire(self, tenant_id: str, plan: Plan, demand: Demand) -> Decision:
        """Admit and charge ``demand`` against the tenant's buckets, or refuse and charge nothing."""
        ...

    def settle_output(self, tenant_id: str, plan: Plan, expected: int, actual: int) -> None:
        """Correct the output bucket once the reply's real output is known (``actual - expected``)."""
        ...

    def remaining(self, tenant_id: str, plan: Plan) -> dict[str, float]:
        """Each bucket's level now (a full bucket for a tenant never seen)."""
        ...

    def reset(self) -> None:
        """Forget every tenant's usage (all buckets full again)."""
        ...
