"""Per-tenant limiters: one suite, run against the in-memory backend and a REAL Redis server.

Time is virtual: the memory backend reads a VirtualClock, the Redis backend is handed the same
clock's time instead of the server's TIME. Nothing here sleeps or measures wall time.
"""

from __future__ import annotations

import math
import multiprocessing
import threading

import pytest

from course_utils.clock import VirtualClock
from course_utils.concurrency import Demand
from course_utils.redis_server import connect
from course_utils.tenancy import (
    Decision,
    MemoryLimiter,
    Plan,
    RedisLimiter,
    TenantLimiter,
    retry_after_header,
)
from decimal import Decimal

PLAN = Plan("test", 60, 6_000, 1_200, Decimal("10"), frozenset({"claude-haiku-5-5"}))


@pytest.fixture(params=["memory", "redis"])
def backend(request):
    """(limiter factory, clock): ``make(burst_s=...)`` builds a limiter of the parametrized backend."""
    clock = VirtualClock()
    if request.param == "memory":
        yield (lambda **kw: MemoryLimiter(clock=clock, **kw)), clock
        return
    client = request.getfixturevalue("redis_client")
    yield (lambda **kw: RedisLimiter(client, now=clock.time, **kw)), clock


def test_both_backends_implement_the_interface(backend):
    make, _ = backend
    assert isinstance(make(), TenantLimiter)


def test_admits_a_bucket_full_then_refuses_with_the_exact_wait(backend):
    make, clock = backend
    limiter = make(burst_s=60)
    admitted = [limiter.try_acquire("a", PLAN, Demand(1, 10, 0)).allowed for _ in range(61)]
    assert admitted == [True] * 60 + [False]
    refused = limiter.try_acquire("a", PLAN, Demand(1, 10, 0))
    assert refused.limit == "requests"
    assert refused.retry_after_s == pytest.approx(1.0)  # 60 RPM refills one request a second
    assert refused.headers() == {"retry-after": "1"}
    clock.advance_sync(0.5)
    assert not limiter.try_acquire("a", PLAN, Demand(1, 10, 0)).allowed
    clock.advance_sync(0.5)
    assert limiter.try_acquire("a", PLAN, Demand(1, 10, 0)).allowed


def test_a_refusal_charges_nothing(backend):
    make, _ = backend
    limiter = make()
    before = limiter.remaining("a", PLAN)
    decision = limiter.try_acquire("a", PLAN, Demand(1, 7_000, 0))  # more input than the bucket holds
    assert not decision.allowed and decision.limit == "input_tokens" and math.isinf(decision.retry_after_s)
    assert decision.headers() == {}  # retrying can never help: no retry-after
    assert limiter.remaining("a", PLAN) == pytest.approx(before)


def test_the_binding_limit_and_its_wait_are_named(backend):
    make, _ = backend
    limiter = make()
    assert limiter.try_acquire("a", PLAN, Demand(1, 5_000, 0)).allowed
    d = limiter.try_acquire("a", PLAN, Demand(1, 3_000, 0))
    # 1,000 left, 3,000 needed, 100 tokens/s: 20 s; requests are plentiful.
    assert (d.allowed, d.limit) == (False, "input_tokens")
    assert d.retry_after_s == pytest.approx(20.0)
    assert d.remaining["input_tokens"] == pytest.approx(1_000)
    assert d.remaining["requests"] == pytest.approx(59)


def test_tenants_do_not_share_buckets(backend):
    make, _ = backend
    limiter = make()
    while limiter.try_acquire("flood", PLAN, Demand(1, 50, 0)).allowed:
        pass
    assert limiter.try_acquire("quiet", PLAN, Demand(1, 50, 0)).allowed
    assert limiter.remaining("quiet", PLAN)["requests"] == pytest.approx(59)


def test_output_is_estimated_then_settled(backend):
    make, _ = backend
    limiter = make()
    assert limiter.try_acquire("a", PLAN, Demand(1, 0, 1_000)).allowed
    assert limiter.remaining("a", PLAN)["output_tokens"] == pytest.approx(200)
    limiter.settle_output("a", PLAN, expected=1_000, actual=100)  # produced less: refund 900
    assert limiter.remaining("a", PLAN)["output_tokens"] == pytest.approx(1_100)
    limiter.settle_output("a", PLAN, expected=0, actual=1_500)  # more than expected: overdraw
    assert limiter.remaining("a", PLAN)["output_tokens"] == pytest.approx(-400)
    d = limiter.try_acquire("a", PLAN, Demand(1, 0, 1))
    assert not d.allowed and d.limit == "output_tokens" and d.retry_after_s == pytest.approx(401 / 20)


def test_short_burst_holds_seconds_of_the_rate(backend):
    make, clock = backend
    limiter = make(burst_s=1)
    assert [limiter.try_acquire("a", PLAN, Demand(1, 0, 0)).allowed for _ in range(2)] == [True, False]
    clock.advance_sync(1.0)
    assert limiter.try_acquire("a", PLAN, Demand(1, 0, 0)).allowed


def test_refill_never_exceeds_capacity(backend):
    make, clock = backend
    limiter = make()
    limiter.try_acquire("a", PLAN, Demand(1, 100, 0))
    clock.advance_sync(3600)
    assert limiter.remaining("a", PLAN) == pytest.approx(
        {"requests": 60, "input_tokens": 6_000, "output_tokens": 1_200}
    )


def test_reset_forgets_usage(backend):
    make, _ = backend
    limiter = make()
    limiter.try_acquire("a", PLAN, Demand(1, 6_000, 0))
    limiter.reset()
    assert limiter.remaining("a", PLAN)["input_tokens"] == pytest.approx(6_000)


def test_bad_costs_and_bursts_are_refused(backend):
    make, _ = backend
    with pytest.raises(ValueError, match="burst_s"):
        make(burst_s=0)
    with pytest.raises(ValueError, match="negative"):
        make().try_acquire("a", PLAN, Demand(1, -5, 0))


def test_concurrent_threads_take_exactly_the_capacity(backend):
    make, _ = backend
    limiter = make()
    admitted: list[int] = []

    def worker() -> None:
        admitted.append(sum(limiter.try_acquire("a", PLAN, Demand(1, 0, 0)).allowed for _ in range(40)))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(admitted) == 60  # 160 attempts, frozen time: exactly one bucket's worth


def test_retry_after_header_rounds_up_and_is_never_zero():
    assert retry_after_header(0.01) == {"retry-after": "1"}
    assert retry_after_header(1.0) == {"retry-after": "1"}
    assert retry_after_header(1.2) == {"retry-after": "2"}
    assert retry_after_header(math.inf) == {}
    assert Decision(True).headers() == {}


def test_redis_backend_reads_the_servers_clock_by_default(redis_client):
    slow = Plan("slow", 1, 6_000, 1_200, Decimal("10"), frozenset({"claude-haiku-5-5"}))  # 1 request a minute
    limiter = RedisLimiter(redis_client)
    assert limiter.try_acquire("a", slow, Demand(1, 0, 0)).allowed
    d = limiter.try_acquire("a", slow, Demand(1, 0, 0))
    # Real time passes between the calls (the server's clock), so the wait is just under a minute.
    assert not d.allowed and 0 < d.retry_after_s <= 60.0
    assert redis_client.pttl("tenancy:rl:a") > 0  # idle buckets expire once full again


# ----- processes -------------------------------------------------------------------------------


def _worker(backend: str, url: str, attempts: int, frozen_now: float, out: "multiprocessing.Queue[int]") -> None:
    """One service process: its own limiter (memory) or a client of the shared one (Redis)."""
    if backend == "memory":
        clock = VirtualClock(start=frozen_now)
        limiter = MemoryLimiter(clock=clock)
    else:
        limiter = RedisLimiter(connect(url), now=lambda: frozen_now)
    out.put(sum(limiter.try_acquire("acme", PLAN, Demand(1, 0, 0)).allowed for _ in range(attempts)))


@pytest.mark.parametrize("backend_name, expected", [("memory", 4 * 60), ("redis", 60)])
def test_four_processes_share_one_limit_only_through_redis(backend_name, expected, redis_client, redis_url):
    """4 processes, 100 attempts each, time frozen: per-process memory limiters admit 4 x 60;
    the Redis limiter admits the tenant's 60 in total."""
    # fork: the children start with the modules already imported (spawn re-imports for seconds each).
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    ctx = multiprocessing.get_context(method)
    out = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(backend_name, redis_url, 100, 1_800_000_000.0, out)) for _ in range(4)]
    for p in procs:
        p.start()
    counts = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    assert all(p.exitcode == 0 for p in procs)
    assert sum(counts) == expected
