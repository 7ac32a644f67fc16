"""Lesson 07's figures for the README: the noisy neighbour per gateway (virtual time), the cost of a
limiter decision (in-memory vs a real Redis, one Lua round trip), and N processes against one limit.

    .venv/bin/python benchmarks/lesson07_tenancy.py

Decision costs are wall-clock measurements of this machine (they vary); the other figures are
counts on virtual time or from the simulator's ledger, the same on every machine.
"""

from __future__ import annotations

import time
from decimal import Decimal

from course_utils import mock_server
from course_utils.concurrency import Cost
from course_utils.redis_server import RedisServer, connect, redis_url
from course_utils.tenancy import GATEWAYS, MemoryLimiter, Plan, RedisLimiter, noisy_neighbour, run_processes

PLAN = Plan("bench", 10**6, 10**9, 10**9, Decimal(1), frozenset({"claude-haiku-5-5"}))


def decisions_per_second(limiter, n: int = 20_000) -> float:
    started = time.perf_counter()
    for i in range(n):
        limiter.try_acquire(f"t{i % 40}", PLAN, Cost(1, 500, 100))
    return n / (time.perf_counter() - started)


def main() -> None:
    nn = noisy_neighbour()
    s = nn.summary()
    print("noisy neighbour (60 bulk + 9 x 5 small requests, 60 RPM key, virtual time):")
    for gateway in GATEWAYS:
        g = s[s.gateway == gateway]
        small, bulk = g[g.tenant != "bulk"], g[g.tenant == "bulk"]
        print(
            f"  {gateway:18s} small tenants: p95 wait <= {small.p95_wait_s.max():6.2f} s, 429s {small.share_429.mean():5.1%};"
            f" bulk p95 {bulk.p95_wait_s.max():6.1f} s"
        )
    server = None if redis_url() else RedisServer().start()
    url = redis_url() or server.url
    try:
        print(
            f"limiter decisions per second: memory {decisions_per_second(MemoryLimiter()):,.0f}, "
            f"redis {decisions_per_second(RedisLimiter(connect(url), prefix='bench'), 5_000):,.0f} (one Lua call each)"
        )
        plan = Plan("pro-20", 20, 100_000, 20_000, Decimal(200), frozenset({"claude-haiku-5-5"}))
        body = {"model": "claude-haiku-5-5", "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]}
        with mock_server(seed=0, time_scale=0.0, rate_limit_tier="unlimited") as sim:
            for backend in ("memory", "redis"):
                tenant = sim.tenant(f"bench-{backend}", "unlimited")
                run_processes(
                    backend, base_url=sim.base_url, api_key=tenant.api_key, plan=plan, body=body, redis_url=url
                )
                print(f"4 processes, limit 20/min, {backend}: the ledger shows {len(tenant.ledger())} requests")
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
