"""Multi-tenant AI systems (lesson 07): plans, per-tenant limits, fair scheduling, budgets,
context isolation, metering and billing.

=====================  ==========================================================================
module                 what
=====================  ==========================================================================
``plans``              :class:`Plan` and :data:`PLANS` (free, pro, enterprise)
``registry``           :class:`TenantRegistry`: tenants, API keys, ``authenticate`` ->
                       :class:`TenantContext` (the only source of a request's tenant)
``limiter``            :class:`TenantLimiter` (the interface) and its :class:`Decision`
``memory``             :class:`MemoryLimiter`, :class:`MemoryBudgetStore` (one process)
``redis_backend``      :class:`RedisLimiter`, :class:`RedisBudgetStore` (every process; atomic Lua)
``fair``               :class:`FairQueue` (deficit round robin), :class:`FairScheduler` (feeds a
                       dispatcher)
``budget``             :class:`BudgetGuard`: reserve / settle, 80 % alert, 100 % stop
``isolation``          :func:`cache_key`, :class:`TenantCache`, :class:`ConversationStore`
``metering``           :class:`Meter` (pending rows at reservation), invoice lines and CSV,
                       :func:`reconcile_report` with the provider's totals per key and model
``streams``            :class:`ConcurrencyCap` (requests in flight per tenant), :func:`stream_caps`
``race``               :func:`budget_race`: check-then-act vs reserve-and-settle, measured
``simulate``           :func:`noisy_neighbour`: FIFO, per-tenant limits and fair queueing measured
``processes``          :func:`run_processes`: N processes, per-process vs shared (Redis) limits
``roster``             :func:`load_tenants`: the lesson's 40 tenants
=====================  ==========================================================================
"""

from __future__ import annotations

from .budget import (
    BudgetAlert,
    TenantBudgetExceeded,
    BudgetGuard,
    BudgetStatus,
    BudgetStore,
    TenantReservation,
)
from .errors import TenancyError
from .fair import FairQueue, FairScheduler, Queued, estimated_tokens
from .isolation import ConversationNotFound, ConversationStore, TenantCache, cache_key
from .limiter import DIMENSIONS, Decision, TenantLimiter, retry_after_header
from .memory import MemoryBudgetStore, MemoryLimiter
from .metering import (
    InvoiceLine,
    GroupCheck,
    Meter,
    PendingRow,
    Reconciliation,
    ReportReconciliation,
    UsageRecord,
    invoice_csv,
    invoice_lines,
    reconcile,
    reconcile_report,
    tenant_tag,
    usage_key,
)
from .plans import PLANS, Plan, get_plan
from .processes import ProcessRun, run_processes
from .race import GUARDS, BudgetRace, BudgetRun, budget_race
from .streams import LIMITERS, ConcurrencyCap, StreamCapRun, TenantBusy, stream_caps
from .simulate import GATEWAYS, NoisyNeighbour, noisy_neighbour, tenant_mix
from .redis_backend import RedisBudgetStore, RedisLimiter
from .roster import TENANTS_CSV, load_tenants
from .registry import ModelNotAllowed, TenantContext, TenantRegistry, Unauthenticated, check_tenant_id

__all__ = [
    "Plan",
    "PLANS",
    "get_plan",
    "TenantRegistry",
    "TenantContext",
    "TenancyError",
    "Unauthenticated",
    "ModelNotAllowed",
    "check_tenant_id",
    "TenantLimiter",
    "Decision",
    "DIMENSIONS",
    "retry_after_header",
    "MemoryLimiter",
    "MemoryBudgetStore",
    "RedisLimiter",
    "RedisBudgetStore",
    "FairQueue",
    "FairScheduler",
    "Queued",
    "estimated_tokens",
    "BudgetGuard",
    "BudgetStore",
    "TenantBudgetExceeded",
    "BudgetAlert",
    "BudgetStatus",
    "TenantReservation",
    "cache_key",
    "TenantCache",
    "ConversationStore",
    "ConversationNotFound",
    "Meter",
    "UsageRecord",
    "InvoiceLine",
    "Reconciliation",
    "reconcile",
    "reconcile_report",
    "ReportReconciliation",
    "GroupCheck",
    "PendingRow",
    "invoice_lines",
    "invoice_csv",
    "tenant_tag",
    "usage_key",
    "budget_race",
    "BudgetRace",
    "BudgetRun",
    "GUARDS",
    "ConcurrencyCap",
    "TenantBusy",
    "StreamCapRun",
    "stream_caps",
    "LIMITERS",
    "noisy_neighbour",
    "NoisyNeighbour",
    "tenant_mix",
    "GATEWAYS",
    "run_processes",
    "ProcessRun",
    "load_tenants",
    "TENANTS_CSV",
]
