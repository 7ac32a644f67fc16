"""Budgets: reserve and settle, soft alert once, hard stop, safe under concurrency, both stores (real Redis)."""

from __future__ import annotations

import asyncio
import multiprocessing
from decimal import Decimal

import pytest

from course_utils.clock import VirtualClock, run_virtual
from course_utils.redis_server import connect
from course_utils.tenancy import (
    TenantBudgetExceeded,
    BudgetGuard,
    MemoryBudgetStore,
    Plan,
    RedisBudgetStore,
    TenantRegistry,
)
from course_utils.tenancy.budget import from_nano, to_nano

PLAN = Plan("small", 60, 10_000, 2_000, Decimal("1.00"), frozenset({"claude-haiku-5-5"}))
NOV = 1_795_000_000.0  # 2026-11-18 (UTC)


@pytest.fixture()
def registry() -> TenantRegistry:
    reg = TenantRegistry()
    reg.register("acme", PLAN)
    reg.register("globex", PLAN)
    return reg


@pytest.fixture(params=["memory", "redis"])
def store(request):
    if request.param == "memory":
        return MemoryBudgetStore()
    return RedisBudgetStore(request.getfixturevalue("redis_client"))


def test_nano_dollars_are_exact_and_round_reservations_up():
    assert to_nano(Decimal("0.000000015")) == 15
    assert to_nano(Decimal("1e-10")) == 1
    assert from_nano(15) == Decimal("0.000000015")
    with pytest.raises(ValueError):
        to_nano(Decimal("-1"))
    with pytest.raises(ValueError):
        to_nano(0.5)  # type: ignore[arg-type]


def test_reserve_settle_and_status(store, registry):
    guard = BudgetGuard(store, clock=VirtualClock(start=NOV))
    acme = registry.context("acme")
    r = guard.reserve(acme, Decimal("0.30"))
    s = guard.status(acme)
    assert (s.period, s.spent, s.reserved, s.remaining) == ("2026-11", 0, Decimal("0.30"), Decimal("0.70"))
    guard.settle(acme, r, Decimal("0.12"))
    guard.settle(acme, r, Decimal("0.12"))  # twice: no effect
    s = guard.status(acme)
    assert (s.spent, s.reserved) == (Decimal("0.12"), 0)
    assert guard.status(registry.context("globex")).spent == 0


def test_hard_stop_refuses_and_holds_nothing(store, registry):
    guard = BudgetGuard(store, clock=VirtualClock(start=NOV))
    acme = registry.context("acme")
    guard.settle(acme, guard.reserve(acme, Decimal("0.95")), Decimal("0.95"))
    with pytest.raises(TenantBudgetExceeded, match=r"\$0.95.* spent.*\$0.10") as info:
        guard.reserve(acme, Decimal("0.10"))
    assert info.value.tenant_id == "acme" and info.value.limit == Decimal("1.00")
    assert guard.status(acme).reserved == 0
    guard.reserve(acme, Decimal("0.05"))  # exactly to the limit is allowed


def test_soft_alert_fires_once_at_80_percent(store, registry):
    seen = []
    guard = BudgetGuard(store, clock=VirtualClock(start=NOV), on_alert=seen.append)
    acme = registry.context("acme")
    for _ in range(7):
        guard.settle(acme, guard.reserve(acme, Decimal("0.10")), Decimal("0.10"))
    assert seen == []
    guard.settle(acme, guard.reserve(acme, Decimal("0.10")), Decimal("0.10"))
    guard.settle(acme, guard.reserve(acme, Decimal("0.10")), Decimal("0.10"))
    assert [(a.tenant_id, a.spent) for a in seen] == [("acme", Decimal("0.80"))]
    assert guard.alerts == seen


def test_a_new_month_starts_a_new_budget(store, registry):
    clock = VirtualClock(start=NOV)
    guard = BudgetGuard(store, clock=clock)
    acme = registry.context("acme")
    guard.settle(acme, guard.reserve(acme, Decimal("1.00")), Decimal("1.00"))
    with pytest.raises(TenantBudgetExceeded):
        guard.reserve(acme, Decimal("0.01"))
    clock.advance_sync(20 * 86400)
    assert guard.period() == "2026-12"
    guard.reserve(acme, Decimal("0.50"))


def test_budgets_need_an_authenticated_tenant(store):
    guard = BudgetGuard(store)
    with pytest.raises(TypeError, match="TenantContext"):
        guard.reserve("acme", Decimal("0.1"))  # type: ignore[arg-type]


def test_fifty_concurrent_requests_never_overshoot(store, registry):
    """The lesson's demo: 50 requests at once against a nearly spent budget."""
    guard = BudgetGuard(store, clock=VirtualClock(start=NOV))
    acme = registry.context("acme")
    guard.settle(acme, guard.reserve(acme, Decimal("0.90")), Decimal("0.90"))
    refused = 0

    async def request() -> None:
        nonlocal refused
        try:
            r = guard.reserve(acme, Decimal("0.02"))
        except TenantBudgetExceeded:
            refused += 1
            return
        await asyncio.sleep(0.5)  # the provider call
        guard.settle(acme, r, Decimal("0.015"))

    async def main() -> None:
        await asyncio.gather(*(request() for _ in range(50)))

    run_virtual(main())
    spent = guard.status(acme).spent
    assert spent <= Decimal("1.00") and refused == 45
    assert spent == Decimal("0.90") + 5 * Decimal("0.015")


def _spend(url: str, out) -> None:
    reg = TenantRegistry()
    reg.register("acme", PLAN)
    guard = BudgetGuard(RedisBudgetStore(connect(url)), clock=VirtualClock(start=NOV))
    acme = reg.context("acme")
    ok = 0
    for _ in range(40):
        try:
            r = guard.reserve(acme, Decimal("0.01"))
        except TenantBudgetExceeded:
            continue
        guard.settle(acme, r, Decimal("0.01"))
        ok += 1
    out.put((ok, len(guard.alerts)))


def test_four_processes_share_one_budget_and_one_alert(redis_client, redis_url):
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    ctx = multiprocessing.get_context(method)
    out = ctx.Queue()
    procs = [ctx.Process(target=_spend, args=(redis_url, out)) for _ in range(4)]
    for p in procs:
        p.start()
    results = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    assert sum(ok for ok, _ in results) == 100  # $1.00 in cents, not 4 x 40
    assert sum(alerts for _, alerts in results) == 1


@pytest.mark.parametrize("backend", ["memory", "redis"])
def test_a_hold_that_is_never_settled_expires(backend, registry, request):
    """A process reserved and crashed: after hold_ttl_s its money is free again; a late settle still spends."""
    clock = VirtualClock(start=NOV)
    if backend == "memory":
        store = MemoryBudgetStore(clock=clock)
    else:
        store = RedisBudgetStore(request.getfixturevalue("redis_client"), now=clock.time)
    guard = BudgetGuard(store, clock=clock, hold_ttl_s=600)
    acme = registry.context("acme")
    orphan = guard.reserve(acme, Decimal("0.90"))
    with pytest.raises(TenantBudgetExceeded):
        guard.reserve(acme, Decimal("0.20"))
    clock.advance_sync(599)
    assert guard.status(acme).reserved == Decimal("0.90")
    clock.advance_sync(2)
    assert guard.status(acme).reserved == 0
    fresh = guard.reserve(acme, Decimal("0.20"))
    guard.settle(acme, orphan, Decimal("0.30"))  # the crashed request's reply was billed after all
    s = guard.status(acme)
    assert (s.spent, s.reserved) == (Decimal("0.30"), Decimal("0.20"))  # the late settle released nothing else
    guard.settle(acme, fresh, Decimal("0.10"))
    assert guard.status(acme).reserved == 0


def test_hold_ttl_must_be_positive():
    with pytest.raises(ValueError, match="hold_ttl_s"):
        BudgetGuard(hold_ttl_s=0)
