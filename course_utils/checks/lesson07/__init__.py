"""Checks for lesson 07 (Multi-tenant AI systems).

7.1 ``TenantRateLimiter`` (per-tenant token buckets), 7.2 ``DRRQueue`` (deficit round robin),
7.3 ``tenant_cache_key`` (isolation), 7.4 ``TenantBudget`` (reserve and settle under
concurrency), 7.5 ``tenant_charges`` (reconciliation with the provider's ledger). Time is always
virtual: limiter cases drive a :class:`~course_utils.clock.VirtualClock`, async cases run on the
checks' virtual-time loop against an in-process simulator, whose ledger grades 7.4 and 7.5.
"""

from __future__ import annotations

from .drr_queue import drr
from .tenant_budget import budget
from .tenant_cache_key import isolation
from .tenant_charges import reconciliation
from .tenant_rate_limiter import limiter

__all__ = ["EXERCISES"]

EXERCISES = [limiter, drr, isolation, budget, reconciliation]
