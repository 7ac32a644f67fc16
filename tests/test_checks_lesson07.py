"""Lesson 07 checks: solutions and correct alternatives pass, the issue's wrong answers are rejected."""

from __future__ import annotations

import asyncio
import collections
import hashlib
import itertools
import json
import math
import uuid
from decimal import ROUND_HALF_UP, Decimal

import anthropic
import pytest

from _checks import assert_not_attempted, assert_rejected, passes
from course_utils.clock import VirtualClock
from course_utils.concurrency import Demand
from course_utils.pricing import cost
from course_utils.tenancy import FairQueue, MemoryLimiter, Plan, cache_key


# ----- 7.1 a per-tenant limiter ---------------------------------------------------------------
class TenantRateLimiter:
    def __init__(self, rpm, clock):
        self.rpm, self.clock = rpm, clock
        self.buckets = {}

    def acquire(self, tenant_id):
        now = self.clock.monotonic()
        level, last = self.buckets.get(tenant_id, (self.rpm, now))
        level = min(self.rpm, level + (now - last) * self.rpm / 60)
        if level >= 1:
            self.buckets[tenant_id] = (level - 1, now)
            return 0.0
        self.buckets[tenant_id] = (level, now)
        return (1 - level) / (self.rpm / 60)


class LimiterOnTheReference:
    """Written differently: the course's MemoryLimiter, one plan per rpm."""

    def __init__(self, rpm, clock):
        self.plan = Plan("x", rpm, 10**9, 10**9, Decimal(1), frozenset({"m"}))
        self.limiter = MemoryLimiter(clock=clock)

    def acquire(self, tenant_id):
        d = self.limiter.try_acquire(tenant_id, self.plan, Demand(1, 0, 0))
        return 0.0 if d.allowed else d.retry_after_s


class OneGlobalBucket(TenantRateLimiter):
    def acquire(self, tenant_id):
        return super().acquire("everyone")


class NeverRefills:
    def __init__(self, rpm, clock):
        self.left = collections.defaultdict(lambda: rpm)
        self.rpm = rpm

    def acquire(self, tenant_id):
        if self.left[tenant_id] >= 1:
            self.left[tenant_id] -= 1
            return 0.0
        return 60 / self.rpm


class UncappedRefill(TenantRateLimiter):
    def acquire(self, tenant_id):
        now = self.clock.monotonic()
        level, last = self.buckets.get(tenant_id, (self.rpm, now))
        level = level + (now - last) * self.rpm / 60  # no cap: an idle tenant banks a burst
        if level >= 1:
            self.buckets[tenant_id] = (level - 1, now)
            return 0.0
        self.buckets[tenant_id] = (level, now)
        return (1 - level) / (self.rpm / 60)


class RefusalTakesAToken(TenantRateLimiter):
    def acquire(self, tenant_id):
        wait = super().acquire(tenant_id)
        if wait:
            level, last = self.buckets[tenant_id]
            self.buckets[tenant_id] = (level - 1, last)
        return wait


class BucketObjectsLimiter:
    """Written differently: one small bucket object per tenant, refilled lazily by elapsed time, using
    fractions of a token per second rather than the level/last tuple."""

    class _Bucket:
        def __init__(self, capacity, now):
            self.tokens, self.stamp, self.capacity = float(capacity), now, capacity

    def __init__(self, rpm, clock):
        self.per_second, self.capacity, self.clock = rpm / 60.0, rpm, clock
        self.by_tenant = {}

    def acquire(self, tenant_id):
        now = self.clock.monotonic()
        bucket = self.by_tenant.setdefault(tenant_id, self._Bucket(self.capacity, now))
        bucket.tokens = min(bucket.capacity, bucket.tokens + (now - bucket.stamp) * self.per_second)
        bucket.stamp = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self.per_second


class GcraLimiter:
    """Written differently: GCRA (the generic cell rate algorithm), one theoretical arrival time per tenant."""

    def __init__(self, rpm, clock):
        self.interval = 60 / rpm
        self.tolerance = (rpm - 1) * self.interval
        self.clock = clock
        self.tat = {}

    def acquire(self, tenant_id):
        now = self.clock.monotonic()
        tat = max(self.tat.get(tenant_id, now), now)
        if tat - now <= self.tolerance + 1e-9:
            self.tat[tenant_id] = tat + self.interval
            return 0.0
        return tat - self.tolerance - now


class WholeSecondRetryAfter(TenantRateLimiter):
    """Whole seconds, rounded up (as an HTTP header carries it): the statement asks for the exact wait."""

    def acquire(self, tenant_id):
        wait = super().acquire(tenant_id)
        return float(math.ceil(wait - 1e-9)) if wait else 0.0


class WaitsAFullPeriod(TenantRateLimiter):
    def acquire(self, tenant_id):
        wait = super().acquire(tenant_id)
        return 60 / self.rpm if wait else 0.0


class RefusalResetsTheClock(TenantRateLimiter):
    """Refills only on success: a refused call moves `last` without adding what dripped in."""

    def acquire(self, tenant_id):
        now = self.clock.monotonic()
        level, last = self.buckets.get(tenant_id, (self.rpm, now))
        refilled = min(self.rpm, level + (now - last) * self.rpm / 60)
        if refilled >= 1:
            self.buckets[tenant_id] = (refilled - 1, now)
            return 0.0
        self.buckets[tenant_id] = (level, now)
        return (1 - refilled) / (self.rpm / 60)


class RoundsTheWaitDown(TenantRateLimiter):
    def acquire(self, tenant_id):
        return float(int(super().acquire(tenant_id)))


class ClassLevelBuckets(TenantRateLimiter):
    """Keeps the buckets in a class attribute: every limiter (and every rpm) shares them."""

    shared = {}

    def __init__(self, rpm, clock):
        self.rpm, self.clock = rpm, clock
        self.buckets = ClassLevelBuckets.shared


class SubclassesTheLibrary(MemoryLimiter):
    def __init__(self, rpm, clock):
        super().__init__(clock=clock)
        self.plan = Plan("x", rpm, 10**9, 10**9, Decimal(1), frozenset({"m"}))

    def acquire(self, tenant_id):
        d = self.try_acquire(tenant_id, self.plan, Demand(1, 0, 0))
        return 0.0 if d.allowed else d.retry_after_s


class StubLimiter:
    def __init__(self, rpm, clock):
        pass

    def acquire(self, tenant_id):
        raise NotImplementedError("Exercise 7.1")


@pytest.mark.parametrize("answer", [TenantRateLimiter, GcraLimiter, BucketObjectsLimiter])
def test_7_1_solutions_pass(answer):
    passes("7.1", answer)


@pytest.mark.parametrize(
    "answer, phrase",
    [
        (OneGlobalBucket, "tenant globex, which had sent nothing, was told to wait"),
        (NeverRefills, "was still refused"),
        (UncappedRefill, "after an idle hour"),
        (RefusalTakesAToken, "after 20 refused requests"),
        (WaitsAFullPeriod, "with half a token in the bucket"),
        (ClassLevelBuckets, "acme"),
        (RefusalResetsTheClock, "the refused call threw away the refill"),
        (RoundsTheWaitDown, "with half a token in the bucket"),
        (LimiterOnTheReference, "your function called tenancy.MemoryLimiter"),
        (SubclassesTheLibrary, "your answer subclasses tenancy.MemoryLimiter"),
        (WholeSecondRetryAfter, "with half a token in the bucket"),
    ],
)
def test_7_1_wrong_answers_are_rejected(answer, phrase):
    assert_rejected("7.1", answer, phrase)


def test_7_1_stub_is_not_attempted():
    assert_not_attempted("7.1", StubLimiter)


# ----- 7.2 deficit round robin ----------------------------------------------------------------
class DRRQueue:
    def __init__(self, weights, quantum):
        self.weights, self.quantum = weights, quantum
        self.queues = collections.defaultdict(collections.deque)
        self.active = collections.deque()
        self.deficit = collections.defaultdict(float)
        self.credited = False

    def push(self, tenant, item, size):
        if not self.queues[tenant]:
            self.active.append(tenant)
        self.queues[tenant].append((item, size))

    def pop(self):
        while True:
            tenant = self.active[0]
            if not self.credited:
                self.deficit[tenant] += self.quantum * self.weights.get(tenant, 1)
                self.credited = True
            item, size = self.queues[tenant][0]
            if size <= self.deficit[tenant]:
                self.deficit[tenant] -= size
                self.queues[tenant].popleft()
                if not self.queues[tenant]:
                    self.deficit[tenant] = 0
                    self.active.popleft()
                    self.credited = False
                return tenant, item
            self.active.rotate(-1)
            self.credited = False


class DRRFromTheReference:
    """Written differently: the course's FairQueue."""

    def __init__(self, weights, quantum):
        self.q = FairQueue(weights, quantum=quantum)

    def push(self, tenant, item, size):
        self.q.push(tenant, item, size)

    def pop(self):
        e = self.q.pop()
        return e.tenant_id, e.item


class Fifo:
    def __init__(self, weights, quantum):
        self.q = collections.deque()

    def push(self, tenant, item, size):
        self.q.append((tenant, item))

    def pop(self):
        return self.q.popleft()


class StrictPriority(Fifo):
    """Always the heaviest tenant with work first: the light tenant starves."""

    def __init__(self, weights, quantum):
        self.weights = weights
        self.queues = collections.defaultdict(collections.deque)

    def push(self, tenant, item, size):
        self.queues[tenant].append(item)

    def pop(self):
        tenant = max((t for t, q in self.queues.items() if q), key=lambda t: self.weights.get(t, 1))
        return tenant, self.queues[tenant].popleft()


class RoundRobinByCount(Fifo):
    """Counts requests, not tokens, and ignores weights."""

    def __init__(self, weights, quantum):
        self.queues = collections.OrderedDict()
        self.turn = itertools.count()

    def push(self, tenant, item, size):
        self.queues.setdefault(tenant, collections.deque()).append(item)

    def pop(self):
        tenants = [t for t, q in self.queues.items() if q]
        tenant = tenants[next(self.turn) % len(tenants)]
        return tenant, self.queues[tenant].popleft()


class KeepsCredit(DRRQueue):
    """Forgets to reset an idle tenant's deficit: it saves up a burst."""

    def pop(self):
        while True:
            tenant = self.active[0]
            if not self.credited:
                self.deficit[tenant] += self.quantum * self.weights.get(tenant, 1)
                self.credited = True
            item, size = self.queues[tenant][0]
            if size <= self.deficit[tenant]:
                self.deficit[tenant] -= size
                self.queues[tenant].popleft()
                if not self.queues[tenant]:
                    self.active.popleft()
                    self.credited = False
                return tenant, item
            self.active.rotate(-1)
            self.credited = False


class DRRWithRotation:
    """Written differently: an OrderedDict of active tenants rotated with move_to_end, credit per visit."""

    def __init__(self, weights, quantum):
        self.weights, self.quantum = weights, quantum
        self.queues = {}
        self.ring = collections.OrderedDict()
        self.credit = {}
        self.fresh_visit = True

    def push(self, tenant, item, size):
        self.queues.setdefault(tenant, collections.deque()).append((item, size))
        if tenant not in self.ring:
            self.ring[tenant] = None
            self.credit[tenant] = 0

    def pop(self):
        while True:
            tenant = next(iter(self.ring))
            if self.fresh_visit:
                self.credit[tenant] += self.quantum * self.weights.get(tenant, 1)
                self.fresh_visit = False
            item, size = self.queues[tenant][0]
            if size > self.credit[tenant]:
                self.ring.move_to_end(tenant)
                self.fresh_visit = True
                continue
            self.credit[tenant] -= size
            self.queues[tenant].popleft()
            if not self.queues[tenant]:
                del self.ring[tenant]
                self.credit[tenant] = 0
                self.fresh_visit = True
            return tenant, item


class IgnoresWeights(DRRQueue):
    def pop(self):
        weights, self.weights = self.weights, {}
        try:
            return super().pop()
        finally:
            self.weights = weights


class ForgetsCreditBetweenTurns(DRRQueue):
    """Resets the deficit at every visit: a request larger than one quantum * weight never goes."""

    def pop(self):
        for _ in range(10_000):
            tenant = self.active[0]
            if not self.credited:
                self.deficit[tenant] = self.quantum * self.weights.get(tenant, 1)
                self.credited = True
            item, size = self.queues[tenant][0]
            if size <= self.deficit[tenant]:
                self.deficit[tenant] -= size
                self.queues[tenant].popleft()
                if not self.queues[tenant]:
                    self.active.popleft()
                    self.credited = False
                return tenant, item
            self.active.rotate(-1)
            self.credited = False
        raise RuntimeError("no request fits a single quantum")


class DRRWithIndexPointer:
    """Written differently: a plain list of active tenants and an index that walks it."""

    def __init__(self, weights, quantum):
        self.weights, self.quantum = weights, quantum
        self.fifo, self.credit, self.active, self.at, self.topped_up = {}, {}, [], 0, False

    def push(self, tenant, item, cost):
        queue = self.fifo.setdefault(tenant, collections.deque())
        if not queue:
            self.active.append(tenant)
            self.credit[tenant] = 0
        queue.append((cost, item))

    def pop(self):
        while True:
            self.at %= len(self.active)
            tenant = self.active[self.at]
            if not self.topped_up:
                self.credit[tenant] += self.quantum * self.weights.get(tenant, 1)
                self.topped_up = True
            cost, item = self.fifo[tenant][0]
            if cost <= self.credit[tenant]:
                self.fifo[tenant].popleft()
                self.credit[tenant] -= cost
                if not self.fifo[tenant]:
                    self.credit[tenant] = 0
                    del self.active[self.at]
                    self.topped_up = False
                return tenant, item
            self.at += 1
            self.topped_up = False


class SkipsToAFittingItem(DRRQueue):
    """When the head does not fit the credit, sends a cheaper request from further back."""

    def pop(self):
        while True:
            tenant = self.active[0]
            if not self.credited:
                self.deficit[tenant] += self.quantum * self.weights.get(tenant, 1)
                self.credited = True
            queue = self.queues[tenant]
            fits = next((i for i, (_, cost) in enumerate(queue) if cost <= self.deficit[tenant]), None)
            if fits is not None:
                item, cost = queue[fits]
                del queue[fits]
                self.deficit[tenant] -= cost
                if not queue:
                    self.deficit[tenant] = 0
                    self.active.popleft()
                    self.credited = False
                return tenant, item
            self.active.rotate(-1)
            self.credited = False


class StackPerTenant(DRRQueue):
    """Pops the newest request of a tenant (a list used as a stack)."""

    def pop(self):
        tenant, item = super().pop()
        return tenant, item

    def push(self, tenant, item, cost):
        if not self.queues[tenant]:
            self.active.append(tenant)
        self.queues[tenant].appendleft((item, cost))


class SubclassedFairQueue(FairQueue):
    def __init__(self, weights, quantum):
        super().__init__(weights, quantum=quantum)

    def pop(self):
        e = super().pop()
        return e.tenant_id, e.item


class StubDRR:
    def __init__(self, weights, quantum):
        pass

    def push(self, tenant, item, cost):
        raise NotImplementedError("Exercise 7.2")

    def pop(self):
        raise NotImplementedError("Exercise 7.2")


@pytest.mark.parametrize("answer", [DRRQueue, DRRWithRotation, DRRWithIndexPointer])
def test_7_2_solutions_pass(answer):
    passes("7.2", answer)


@pytest.mark.parametrize(
    "answer, phrase",
    [
        (Fifo, "of the tokens served while every tenant had work"),
        (StrictPriority, "tenant small was not served in 400 pops"),
        (RoundRobinByCount, "its weight entitles it to"),
        (KeepsCredit, "after tenant a went idle with 900 of unused credit"),
        (SkipsToAFittingItem, "a cheaper request overtook the head"),
        (IgnoresWeights, "its weight entitles it to"),
        (ForgetsCreditBetweenTurns, "unused credit carries over"),
        (StackPerTenant, "a tenant's requests were reordered"),
        (DRRFromTheReference, "your function called tenancy.FairQueue"),
        (SubclassedFairQueue, "your answer subclasses tenancy.FairQueue"),
    ],
)
def test_7_2_wrong_answers_are_rejected(answer, phrase):
    assert_rejected("7.2", answer, phrase)


def test_7_2_stub_is_not_attempted():
    assert_not_attempted("7.2", StubDRR)


# ----- 7.3 tenant-scoped cache keys -------------------------------------------------------------
def tenant_cache_key(tenant, body):
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(f"{tenant.tenant_id}\n{canonical}".encode()).hexdigest()


def tenant_cache_key_tuple(tenant, body):
    """Written differently: a readable composite key."""
    return f"{tenant.tenant_id}|{json.dumps(body, sort_keys=True)}"


def key_without_tenant(tenant, body):
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def tenant_from_body(tenant, body):
    owner = (body.get("metadata") or {}).get("user_id", "anonymous")
    return f"{owner}|{json.dumps(body['messages'], sort_keys=True)}"


def random_key(tenant, body):
    return f"{tenant.tenant_id}:{uuid.uuid4()}"


def tenant_only(tenant, body):
    return tenant.tenant_id


def tenant_cache_key_pydantic(tenant, body):
    """Written differently, with a well-known library: pydantic's JSON of a model, sorted by a canonical dump."""
    from pydantic import BaseModel

    class Keyed(BaseModel):
        tenant_id: str
        request: str

    canonical = json.dumps(body, sort_keys=True, ensure_ascii=False)
    return hashlib.blake2b(Keyed(tenant_id=tenant.tenant_id, request=canonical).model_dump_json().encode()).hexdigest()


def key_from_python_hash(tenant, body):
    return f"{tenant.tenant_id}:{hash(json.dumps(body, sort_keys=True))}"


def key_sorting_the_top_level_only(tenant, body):
    return hashlib.sha256(f"{tenant.tenant_id}{sorted(body.items())!r}".encode()).hexdigest()


def writes_the_tenant_into_the_body(tenant, body):
    body["metadata"] = {**body.get("metadata", {}), "tenant": tenant.tenant_id}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def key_through_the_library(tenant, body):
    return cache_key(tenant, body)


def stub_7_3(tenant, body):
    raise NotImplementedError("Exercise 7.3")


@pytest.mark.parametrize("answer", [tenant_cache_key, tenant_cache_key_tuple, tenant_cache_key_pydantic])
def test_7_3_solutions_pass(answer):
    passes("7.3", answer)


@pytest.mark.parametrize(
    "answer, phrase",
    [
        (key_without_tenant, "was served the answer cached for tenant"),
        (tenant_from_body, "got t00's cache key"),
        (random_key, "got a different key"),
        (tenant_only, "was served the answer to"),
        (key_from_python_hash, "the key changes from one process to the next"),
        (key_sorting_the_top_level_only, "keys of its nested dicts (tools, metadata) in another order"),
        (key_through_the_library, "your function called tenancy.cache_key"),
        (writes_the_tenant_into_the_body, "tenant_cache_key changed the request body it was given"),
        (cache_key, "your answer is tenancy.cache_key"),
    ],
)
def test_7_3_wrong_answers_are_rejected(answer, phrase):
    assert_rejected("7.3", answer, phrase)


def test_7_3_stub_is_not_attempted():
    assert_not_attempted("7.3", stub_7_3)


# ----- 7.4 a budget guard under concurrency ---------------------------------------------------
class TenantBudget:
    def __init__(self, limit):
        self.limit, self.spent, self.reserved = limit, Decimal(0), Decimal(0)

    async def spend(self, estimate, send):
        if self.spent + self.reserved + estimate > self.limit:
            return None
        self.reserved += estimate
        try:
            result, actual = await send()
        except anthropic.APIStatusError:  # refused: nothing billed
            self.reserved -= estimate
            raise
        except BaseException:  # lost: it may have been billed
            self.reserved -= estimate
            self.spent += estimate
            raise
        self.reserved -= estimate
        self.spent += actual
        return result


class ReleasesALostAnswer(TenantBudget):
    """The old rule: every exception gives the reservation back, though a lost answer may have been billed."""

    async def spend(self, estimate, send):
        if self.spent + self.reserved + estimate > self.limit:
            return None
        self.reserved += estimate
        try:
            result, actual = await send()
        except BaseException:
            self.reserved -= estimate
            raise
        self.reserved -= estimate
        self.spent += actual
        return result


class BudgetWithALock:
    """Written differently: an asyncio.Lock around the reservation, a ledger of holds."""

    def __init__(self, limit):
        self.limit = limit
        self.spent = Decimal(0)
        self.holds = {}
        self.lock = asyncio.Lock()
        self.ids = itertools.count()

    async def spend(self, estimate, send):
        async with self.lock:
            if self.spent + sum(self.holds.values(), Decimal(0)) + estimate > self.limit:
                return None
            hold = next(self.ids)
            self.holds[hold] = estimate
        try:
            result, actual = await send()
            self.spent += actual
            return result
        except anthropic.APIStatusError:
            raise
        except BaseException:
            self.spent += estimate  # a lost answer counts at its worst case
            raise
        finally:
            del self.holds[hold]


class CheckThenAct:
    def __init__(self, limit):
        self.limit, self.spent = limit, Decimal(0)

    async def spend(self, estimate, send):
        if self.spent + estimate > self.limit:
            return None
        result, actual = await send()
        self.spent += actual
        return result


class NeverSettles(TenantBudget):
    async def spend(self, estimate, send):
        if self.spent + self.reserved + estimate > self.limit:
            return None
        self.reserved += estimate
        result, actual = await send()
        self.spent += actual  # the reservation is never released
        return result


class SpendsTheEstimate(TenantBudget):
    async def spend(self, estimate, send):
        if self.spent + estimate > self.limit:
            return None
        self.spent += estimate  # reserve and never settle to the actual cost
        result, _ = await send()
        return result


class LeaksOnFailure(TenantBudget):
    async def spend(self, estimate, send):
        if self.spent + self.reserved + estimate > self.limit:
            return None
        self.reserved += estimate
        result, actual = await send()
        self.reserved -= estimate
        self.spent += actual
        return result


class SwallowsTheError(TenantBudget):
    async def spend(self, estimate, send):
        try:
            return await super().spend(estimate, send)
        except Exception:
            return None


class ReturnsThePair(TenantBudget):
    async def spend(self, estimate, send):
        if self.spent + self.reserved + estimate > self.limit:
            return None
        self.reserved += estimate
        try:
            result, actual = await send()
        except BaseException:
            self.reserved -= estimate
            raise
        self.reserved -= estimate
        self.spent += actual
        return result, actual


class RefusesAtTheLimit(TenantBudget):
    async def spend(self, estimate, send):
        if self.spent + self.reserved + estimate >= self.limit:
            return None
        return await super().spend(estimate, send)


class SpentRoundedToCents(TenantBudget):
    async def spend(self, estimate, send):
        result = await super().spend(estimate, send)
        self.spent = self.spent.quantize(Decimal("0.01"))
        return result


class BudgetWithAContextManager:
    """Written differently: an async context manager holds the reservation; one total of open holds."""

    def __init__(self, limit):
        self.limit, self.spent, self.held = limit, Decimal(0), Decimal(0)

    def _hold(self, estimate):
        import contextlib

        budget = self

        @contextlib.asynccontextmanager
        async def hold():
            budget.held += estimate
            try:
                yield
            finally:
                budget.held -= estimate

        return hold()

    async def spend(self, estimate, send):
        if self.spent + self.held + estimate > self.limit:
            return None
        try:
            async with self._hold(estimate):
                result, actual = await send()
        except anthropic.APIStatusError:
            raise
        except BaseException:
            self.spent += estimate  # lost, not refused: it may have been billed
            raise
        self.spent += actual
        return result


class OnTheLibraryGuard:
    def __init__(self, limit):
        from course_utils.tenancy import BudgetGuard, MemoryBudgetStore

        self.guard = BudgetGuard(MemoryBudgetStore())
        self.limit, self.spent = limit, Decimal(0)

    async def spend(self, estimate, send):
        return await self.guard.spend(estimate, send)


class StubBudget:
    def __init__(self, limit):
        pass

    async def spend(self, estimate, send):
        raise NotImplementedError("Exercise 7.4")


@pytest.mark.parametrize("answer", [TenantBudget, BudgetWithALock, BudgetWithAContextManager])
def test_7_4_solutions_pass(answer):
    passes("7.4", answer)


@pytest.mark.parametrize(
    "answer, phrase",
    [
        (CheckThenAct, "50 concurrent requests made 50 provider calls"),
        (NeverSettles, "of 30 sequential requests were refused"),
        (SpendsTheEstimate, "budget.spent does not equal what was really spent"),
        (LeaksOnFailure, "after 1 failed call(s) that spent nothing"),
        (SwallowsTheError, "the error was swallowed"),
        (RefusesAtTheLimit, "requests were let through and"),
        (SpentRoundedToCents, "never rounded"),
        (ReturnsThePair, "spend returned send()'s (result, actual) pair instead of the result"),
        (OnTheLibraryGuard, "your function called tenancy"),
        (ReleasesALostAnswer, "the provider may have billed it"),
    ],
)
def test_7_4_wrong_answers_are_rejected(answer, phrase):
    assert_rejected("7.4", answer, phrase)


def test_7_4_stub_is_not_attempted():
    assert_not_attempted("7.4", StubBudget)


# ----- 7.5 reconciliation ---------------------------------------------------------------------
def tenant_charges(rows):
    out = {}
    for row in rows:
        out[row["tenant"]] = out.get(row["tenant"], Decimal(0)) + cost(row, row["model"], batch=row["batch"])
    return out


def tenant_charges_by_hand(rows):
    """Written differently: the rates by hand from the price table."""
    from course_utils.pricing import price

    out = collections.defaultdict(Decimal)
    for r in rows:
        p = price(r["model"])
        amount = (
            r["input_tokens"] * p.input_per_mtok
            + r["cache_creation_input_tokens"] * p.cache_write_5m_per_mtok
            + r["cache_read_input_tokens"] * p.cache_read_per_mtok
            + r["output_tokens"] * p.output_per_mtok
        ) / Decimal(1_000_000)
        prompt = r["input_tokens"] + r["cache_creation_input_tokens"] + r["cache_read_input_tokens"]
        if p.long_prompt_threshold is not None and prompt > p.long_prompt_threshold:
            amount *= p.long_prompt_multiplier  # the statement's long-prompt tier, on every class
        out[r["tenant"]] += amount * (p.batch_discount if r["batch"] else 1)
    return dict(out)


def without_the_long_prompt_tier(rows):
    """Every class at its own rate and the batch discount, but no long-prompt tier (the statement names it)."""
    from course_utils.pricing import price

    out = collections.defaultdict(Decimal)
    for r in rows:
        p = price(r["model"])
        amount = (
            r["input_tokens"] * p.input_per_mtok
            + r["cache_creation_input_tokens"] * p.cache_write_5m_per_mtok
            + r["cache_read_input_tokens"] * p.cache_read_per_mtok
            + r["output_tokens"] * p.output_per_mtok
        ) / Decimal(1_000_000)
        out[r["tenant"]] += amount * (p.batch_discount if r["batch"] else 1)
    return dict(out)


def ignores_cache_pricing(rows):
    out = {}
    for r in rows:
        usage = {
            "input_tokens": r["input_tokens"] + r["cache_creation_input_tokens"] + r["cache_read_input_tokens"],
            "output_tokens": r["output_tokens"],
        }
        out[r["tenant"]] = out.get(r["tenant"], Decimal(0)) + cost(usage, r["model"], batch=r["batch"])
    return out


def ignores_batch_discount(rows):
    out = {}
    for r in rows:
        out[r["tenant"]] = out.get(r["tenant"], Decimal(0)) + cost(r, r["model"])
    return out


def float_sums(rows):
    out = collections.defaultdict(float)
    for r in rows:
        out[r["tenant"]] += float(cost(r, r["model"], batch=r["batch"]))
    return {t: Decimal(v) for t, v in out.items()}


def rounds_each_row_to_cents(rows):
    out = collections.defaultdict(Decimal)
    for r in rows:
        out[r["tenant"]] += cost(r, r["model"], batch=r["batch"]).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    return dict(out)


def float_values(rows):
    return {t: float(v) for t, v in tenant_charges(rows).items()}


def tenant_charges_with_pandas(rows):
    """Written differently, with a well-known library: a DataFrame of Decimal costs, grouped by tenant."""
    import pandas as pd

    frame = pd.DataFrame(rows, columns=["tenant", "model", "batch", *_TOKENS])
    if frame.empty:
        return {}
    frame["cost"] = [cost(dict(zip(_TOKENS, r[3:])), r[1], batch=bool(r[2])) for r in frame.itertuples(index=False)]
    return {tenant: sum(costs, Decimal(0)) for tenant, costs in frame.groupby("tenant")["cost"]}


_TOKENS = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens", "output_tokens")


def tier_from_the_threshold_on(rows):
    """Applies Haiku 5.5's long-prompt tier at the threshold itself (>=): neither the price nor the statement."""
    from course_utils.pricing import price

    out = collections.defaultdict(Decimal)
    for r in rows:
        p = price(r["model"])
        amount = cost(r, r["model"], batch=r["batch"])
        prompt = r["input_tokens"] + r["cache_creation_input_tokens"] + r["cache_read_input_tokens"]
        if p.long_prompt_threshold is not None and prompt == p.long_prompt_threshold:
            amount *= p.long_prompt_multiplier
        out[r["tenant"]] += amount
    return dict(out)


def charges_through_the_library(rows):
    from course_utils.tenancy import invoice_lines

    return {line.tenant_id: line.cost for line in invoice_lines(rows)}


def per_model_not_per_tenant(rows):
    out = collections.defaultdict(Decimal)
    for r in rows:
        out[r["model"]] += cost(r, r["model"], batch=r["batch"])
    return dict(out)


def changes_the_rows(rows):
    for r in rows:
        r["cost"] = cost(r, r["model"], batch=r["batch"])
    out = collections.defaultdict(Decimal)
    for r in rows:
        out[r["tenant"]] += r["cost"]
    return dict(out)


def stub_7_5(rows):
    raise NotImplementedError("Exercise 7.5")


@pytest.mark.parametrize("answer", [tenant_charges, tenant_charges_by_hand, tenant_charges_with_pandas])
def test_7_5_solutions_pass(answer):
    passes("7.5", answer)


@pytest.mark.parametrize(
    "answer, phrase",
    [
        (ignores_cache_pricing, "this month has cache reads/writes"),
        (ignores_batch_discount, "but the provider billed"),
        (float_sums, "off by"),
        (rounds_each_row_to_cents, "off by"),
        (float_values, "not a Decimal"),
        (tier_from_the_threshold_on, "for long prompts; the provider bills"),
        (without_the_long_prompt_tier, "for long prompts; the provider bills"),
        (charges_through_the_library, "your function called tenancy.invoice_lines"),
        (changes_the_rows, "tenant_charges modified its input rows"),
        (per_model_not_per_tenant, "was charged"),
    ],
)
def test_7_5_wrong_answers_are_rejected(answer, phrase):
    assert_rejected("7.5", answer, phrase)


def test_7_5_stub_is_not_attempted():
    assert_not_attempted("7.5", stub_7_5)


def test_checks_use_virtual_time_only():
    # The limiter cases drive a VirtualClock; nothing in them can depend on the machine's speed.
    clock = VirtualClock()
    lim = TenantRateLimiter(60, clock)
    assert [lim.acquire("a") == 0 for _ in range(61)] == [True] * 60 + [False]
