"""Lesson 07's figures for the README: the noisy neighbour per gateway (time to an answer, retries
included; virtual time), concurrency caps with long answers, the budget race (burst and steady), the
cost of a limiter decision (in-memory vs a real Redis, one Lua round trip), and N processes against one limit.

    .venv/bin/python benchmarks/lesson07_tenancy.py

Decision costs are wall-clock measurements of this machine (they vary); the other figures are
counts on virtual time or from the simulator's ledger, the same on every machine.
"""

from __future__ import annotations

import time
from decimal import Decimal

from course_utils import mock_server
from course_utils.concurrency import Demand
from course_utils.redis_server import RedisServer, connect, redis_url
from course_utils.tenancy import (
    GATEWAYS,
    GUARDS,
    MemoryLimiter,
    Plan,
    RedisLimiter,
    budget_race,
    noisy_neighbour,
    run_processes,
    stream_caps,
)

PLAN = Plan("bench", 10**6, 10**9, 10**9, Decimal(1), frozenset({"claude-haiku-5-5"}))


def decisions_per_second(limiter, n: int = 20_000) -> float:
    started = time.perf_counter()
    for i in range(n):
        limiter.try_acquire(f"t{i % 40}", PLAN, Demand(1, 500, 100))
    return n / (time.perf_counter() - started)


def main() -> None:
    nn = noisy_neighbour()
    s = nn.summary()
    print(
        "noisy neighbour (60 bulk + 9 x 5 small requests, 60 RPM org limit, virtual time; every client retries 429s):"
    )
    for gateway in GATEWAYS:
        g = s[s.gateway == gateway]
        small, bulk = g[g.tenant != "bulk"], g[g.tenant == "bulk"]
        print(
            f"  {gateway:18s} small tenants: p95 time to an answer <= {small.p95_answer_s.max():6.2f} s,"
            f" {small.refusals_per_request.mean():5.2f} 429s per request; bulk p95 {bulk.p95_answer_s.max():6.1f} s"
        )
    for run in stream_caps():
        print(
            f"  {run.streams:5s} answers, {run.limiter:22s}: admitted {run.admitted}, refused by cap"
            f" {run.refused_by_cap}, peak in flight {run.peak_in_flight}, mean {run.mean_stream_s} s"
        )
    for name, spread in (("burst", 0.0), ("steady 30 s", 30.0)):
        race = budget_race(budget=Decimal("0.01"), start_share=Decimal("0.5"), requests=200, spread_s=spread)
        for guard in GUARDS:
            row = race.runs[guard].row()
            print(
                f"  budget from 50%, {name:11s} {guard:30s}: sent {row['sent']}, refused {row['refused']},"
                f" billed {row['of_budget']}, alert at {row['alert_at']} ({row['in_flight_at_alert'] or '-'} in flight)"
            )
        print(f"    hold {race.over_reservation:.2f}x the mean real cost; unspent pays for {race.unspent_fits()} more")
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
