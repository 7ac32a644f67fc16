"""Backpressure policies under a slow client: queue depth, queue bytes and tracemalloc peak.

    .venv/bin/python benchmarks/lesson02_backpressure.py [--deltas 2000] [--streams 200]

A synthetic upstream (no simulator, so tracemalloc sees only the relay) yields ``--deltas`` text
deltas as fast as it can to ``--streams`` concurrent slow clients (each write takes 1 ms), through
``course_utils.streaming.backpressure.relay_deltas`` with each policy.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import tracemalloc

from course_utils.streaming.backpressure import POLICIES, relay_deltas


async def one_policy(policy: str, deltas: int, streams: int, maxsize: int) -> dict:
    async def upstream(n: int):
        for i in range(n):
            yield f" token{i % 97}"
            if i % 8 == 0:
                await asyncio.sleep(0)  # a fast upstream still yields to the loop now and then

    async def slow_client(_text: str) -> None:
        await asyncio.sleep(0.001)

    tracemalloc.start()
    started = time.perf_counter()
    stats = await asyncio.gather(
        *(relay_deltas(upstream(deltas), slow_client, maxsize=maxsize, policy=policy) for _ in range(streams))
    )
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {
        "policy": policy,
        "seconds": elapsed,
        "max_depth": max(s.max_depth for s in stats),
        "queue_kib_per_stream": max(s.max_buffered_bytes for s in stats) / 1024,
        "tracemalloc_peak_mib": peak / 2**20,
        "writes_per_stream": stats[0].gets,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deltas", type=int, default=2000)
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--maxsize", type=int, default=16)
    args = parser.parse_args()
    print(f"{args.streams} streams x {args.deltas} deltas, slow client 1 ms/write, maxsize {args.maxsize}")
    print(
        f"{'policy':>10} {'seconds':>8} {'max depth':>10} {'queue KiB/stream':>17} {'tracemalloc peak MiB':>21} {'writes':>7}"
    )
    for policy in POLICIES:
        r = asyncio.run(one_policy(policy, args.deltas, args.streams, args.maxsize))
        print(
            f"{r['policy']:>10} {r['seconds']:8.2f} {r['max_depth']:10d} {r['queue_kib_per_stream']:17.1f} "
            f"{r['tracemalloc_peak_mib']:21.1f} {r['writes_per_stream']:7d}"
        )


if __name__ == "__main__":
    main()
