"""Lesson 03: the reference dispatcher against the simulator's rate limits (the README's figures).

Run: ``.venv/bin/python benchmarks/lesson03_dispatcher.py`` (about 1.5 minutes; real time, because
rate-limit windows are real time even when latency is scaled down).

1. **Headline**: 1,000 classification requests on a key limited to ``--rpm`` requests per minute
   (token limits out of the way). The provider's bucket starts full, so it admits a burst of
   ``rpm`` requests and then ``rpm / 60`` per second. Figures, all from the simulator's ledger:
   * *fraction of the limit*: requests admitted / what the limit allows between the first and
     the last arrival (``rpm + rpm / 60 * span``);
   * *efficiency vs ideal*: the least time the limit needs for the work, ``(N - rpm) / (rpm / 60)``,
     divided by the measured span;
   * the 429 count.
2. **Shared key**: another process has already spent half of the key's burst. The reference
   dispatcher (header sync, retry-after) vs the same client-side limiter without header sync that
   pauses a fixed 15 s after any 429 (the OpenAI cookbook's parallel processor's policy).
"""

from __future__ import annotations

import argparse
import asyncio
import time

import anthropic

from course_utils.concurrency import RateBudget, RateLimitedDispatcher, run_all
from course_utils.concurrency.dispatcher import estimate_cost
from course_utils.concurrency.workload import classify_body, load_tickets
from course_utils.mock_provider.ratelimit import RateLimits
from course_utils.mock_provider.server import mock_server

BIG = 10**9


def limit_figures(ledger, key: str, rpm: int) -> dict[str, float]:
    rows = ledger[(ledger["api_key"] == key) & (ledger["endpoint"] == "/v1/messages")]
    ok = rows[rows["status"] == 200]
    span = float(ok["arrival"].max() - ok["arrival"].min())
    allowed = rpm + rpm / 60.0 * span
    ideal = max(0.0, (len(ok) - rpm) / (rpm / 60.0))
    return {
        "requests": len(ok),
        "429s": int((rows["status"] == 429).sum()),
        "span_s": span,
        "fraction_of_limit": len(ok) / allowed,
        "efficiency_vs_ideal": ideal / span if span > 0 else 1.0,
    }


async def headline(server, n: int, rpm: int) -> dict[str, float]:
    key = "bench-l03-headline"
    server.set_rate_limits(key, RateLimits(rpm, BIG, BIG))
    client = server.async_client(api_key=key, max_retries=0)
    bodies = [classify_body(t) for t in load_tickets(n)["text"]]
    dispatcher = RateLimitedDispatcher(client, limits=RateLimits(rpm, BIG, BIG), max_concurrency=64)
    outcomes = await dispatcher.run(bodies)
    assert all(o.ok for o in outcomes), [o.error for o in outcomes if not o.ok][:3]
    return limit_figures(server.ledger(), key, rpm)


async def spend(client, count: int) -> None:
    body = classify_body("warm-up")
    await asyncio.gather(*[client.messages.create(**body) for _ in range(count)])


async def fixed_pause(client, bodies, rpm: int, pause_s: float) -> dict[str, float]:
    """Client-side limiter, no header sync; after any 429 everyone waits ``pause_s`` (cookbook policy)."""
    budget = RateBudget(rpm, BIG, BIG)
    slots = asyncio.Semaphore(64)
    stats = {"429s": 0}

    async def send(body):
        async with slots:
            while True:
                await budget.acquire(estimate_cost(body))
                try:
                    return await client.messages.create(**body)
                except anthropic.RateLimitError:
                    stats["429s"] += 1
                    budget.pause_until(time.monotonic() + pause_s)

    started = time.perf_counter()
    outcomes = await run_all(send, bodies)
    assert all(o.ok for o in outcomes)
    return {"seconds": time.perf_counter() - started, "429s": stats["429s"]}


async def shared_key(server, n: int, rpm: int) -> dict[str, dict[str, float]]:
    bodies = [classify_body(t) for t in load_tickets(n)["text"]]
    out = {}
    for name in ("reference dispatcher", "fixed 15 s pause"):
        key = f"bench-l03-shared-{name.split()[0]}"
        server.set_rate_limits(key, RateLimits(rpm, BIG, BIG))
        client = server.async_client(api_key=key, max_retries=0)
        await spend(client, rpm // 2)  # another process on the same key
        if name == "reference dispatcher":
            dispatcher = RateLimitedDispatcher(client, limits=RateLimits(rpm, BIG, BIG), max_concurrency=64)
            started = time.perf_counter()
            outcomes = await dispatcher.run(bodies)
            assert all(o.ok for o in outcomes)
            out[name] = {"seconds": time.perf_counter() - started, "429s": dispatcher.stats.rate_limited}
        else:
            out[name] = await fixed_pause(client, bodies, rpm, 15.0)
    return out


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--rpm", type=int, default=600)
    parser.add_argument("--shared-requests", type=int, default=400)
    parser.add_argument("--time-scale", type=float, default=0.02)
    args = parser.parse_args()
    with mock_server(seed=0, time_scale=args.time_scale) as server:
        figures = await headline(server, args.requests, args.rpm)
        print(f"Headline: {figures['requests']:,} requests at {args.rpm} RPM (time_scale={args.time_scale})")
        print(f"  fraction of the limit achieved: {figures['fraction_of_limit']:.1%}")
        print(f"  efficiency vs ideal:            {figures['efficiency_vs_ideal']:.1%} "
              f"({figures['span_s']:.1f} s; ideal {(figures['requests'] - args.rpm) / (args.rpm / 60):.1f} s)")
        print(f"  429 responses:                  {figures['429s']}")
        shared = await shared_key(server, args.shared_requests, args.rpm)
        print(f"Shared key (half the burst already spent), {args.shared_requests} requests:")
        for name, row in shared.items():
            print(f"  {name:<22} {row['seconds']:6.1f} s, {row['429s']} x 429")


if __name__ == "__main__":
    asyncio.run(main())
