"""Lesson 03: is the worker pool slower than ``bounded_gather``, or is the cell's real-time figure noise?

Run: ``.venv/bin/python benchmarks/lesson03_pool_vs_gather.py --time-scale 0.02`` (the CI scale) and
``--time-scale 0.2``. Real time, on purpose: the notebook's section 2 runs in real time, and the question
is what its figures mean. Each round sends ``--tickets`` classifications sequentially, then through
``bounded_gather`` and ``run_pool`` (same concurrency), alternating which of the two goes first, and
prints every round's speed-up over the mean sequential time, with the time scale beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import course_utils
from course_utils.concurrency import bounded_gather, classify_body, label_of, load_tickets, run_pool
from course_utils.mock_provider import effective_time_scale


async def rounds(n: int, concurrency: int, repeats: int) -> dict[str, list[float]]:
    client = course_utils.async_client("simulator", max_retries=0)
    work = list(load_tickets()["text"].head(n))

    async def classify(text: str) -> str:
        return label_of(await client.messages.create(**classify_body(text)))

    seconds: dict[str, list[float]] = {"sequential": [], "bounded_gather": [], "run_pool": []}
    try:
        for r in range(repeats):
            started = time.perf_counter()
            for text in work:
                await classify(text)
            seconds["sequential"].append(time.perf_counter() - started)
            for name in ("bounded_gather", "run_pool") if r % 2 == 0 else ("run_pool", "bounded_gather"):
                started = time.perf_counter()
                if name == "bounded_gather":
                    await bounded_gather(classify, work, limit=concurrency)
                else:
                    await run_pool(classify, work, workers=concurrency)
                seconds[name].append(time.perf_counter() - started)
    finally:
        await client.close()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--time-scale", type=float, default=0.02)
    parser.add_argument("--tickets", type=int, default=40)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    course_utils.configure(provider="simulator", seed=0, time_scale=args.time_scale)
    course_utils.shared_server().set_rate_limits("sim-key-student", "unlimited")
    seconds = asyncio.run(rounds(args.tickets, args.concurrency, args.repeats))
    sequential = sum(seconds["sequential"]) / len(seconds["sequential"])
    print(
        f"time_scale={effective_time_scale(args.time_scale):g}, {args.tickets} tickets, concurrency {args.concurrency}, "
        f"mean sequential {sequential:.2f} s (real time)"
    )
    for name in ("bounded_gather", "run_pool"):
        ups = [sequential / s for s in seconds[name]]
        print(f"  {name:<15} speed-ups {' '.join(f'{u:.1f}x' for u in ups)} (min {min(ups):.1f}x, max {max(ups):.1f}x)")


if __name__ == "__main__":
    main()
