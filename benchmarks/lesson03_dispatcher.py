"""Lesson 03: the reference dispatcher against the simulator's rate limits (the README's figures).

Run: ``.venv/bin/python benchmarks/lesson03_dispatcher.py`` (seconds: everything runs on virtual
time with realistic latency, through :func:`course_utils.concurrency.simulate_runs`, so the figures
are the same on any machine).

The key's limit is enforced over about a second (``burst_s=1``), as the API may enforce it.

1. **Headline**: ``--requests`` classification requests on a key limited to ``--rpm`` requests per
   minute (token limits out of the way). Figures, from the simulator's ledger:
   * *limit used*: admitted requests / what the limit allows between the first and the last
     admitted arrival (``burst + rpm / 60 * span``); at most 100 % by construction;
   * *pacing efficiency*: ``(n - 1) / (rpm / 60)`` (pacing at exactly the limit) over the measured span;
   * the 429 count; and the same dispatcher betting on a minute's burst (``burst_s=60``), for contrast.
2. **Shared key**: another process sends at ``--other-share`` of the limit on the same key during the
   run. The reference dispatcher (header sync, retry-after) vs a client-side limiter without header
   sync that pauses a fixed 15 s after any 429 (the OpenAI cookbook's parallel processor's policy).
"""

from __future__ import annotations

import argparse
import asyncio

import anthropic

from course_utils.concurrency import (
    RateBudget,
    RateLimitedDispatcher,
    classify_body,
    estimate_demand,
    load_tickets,
    run_all,
    simulate_runs,
)

NO_LIMIT = 10**9


def _bodies(n: int) -> list[dict]:
    texts = list(load_tickets()["text"])
    return [classify_body(texts[i % len(texts)]) for i in range(n)]


def headline(n: int, rpm: int) -> dict[str, dict[str, float]]:
    bodies = _bodies(n)

    def dispatcher(burst_s: float):
        async def run(client):
            d = RateLimitedDispatcher(client, limits=None, max_concurrency=64, burst_s=burst_s)
            return [o.value if o.ok else o.error for o in await d.run(bodies)]

        return run

    runs = simulate_runs({"reference dispatcher": dispatcher(1.0), "dispatcher, burst_s=60": dispatcher(60.0)}, rpm=rpm)
    out = {}
    for run in runs:
        out[run.approach] = {
            "succeeded": run.succeeded,
            "failed": run.failed,
            "429s": run.rate_limited,
            "span_s": run.span_s,
            "limit_used": run.limit_used,
            "pacing_efficiency": (run.succeeded - 1) / (rpm / 60) / run.span_s,
        }
    return out


def shared_key(n: int, rpm: int, other_share: float) -> dict[str, dict[str, float]]:
    bodies = _bodies(n)

    async def with_other(client, work):
        """Run ``work`` while another process sends at ``other_share`` of the limit on the same key."""

        async def other():
            body = classify_body("another process")
            while True:
                await asyncio.sleep(60 / (rpm * other_share))
                try:
                    await client.messages.create(**body, metadata={"user_id": "other-process"})
                except anthropic.RateLimitError:
                    pass

        task = asyncio.create_task(other())
        try:
            return await work()
        finally:
            task.cancel()

    async def reference(client):
        async def work():
            d = RateLimitedDispatcher(client, limits=None, max_concurrency=64, max_attempts=100)
            return [o.value if o.ok else o.error for o in await d.run(bodies)]

        return await with_other(client, work)

    async def fixed_pause(client):
        """Client-side limiter at the full limit, no header sync; after any 429 everyone waits 15 s."""
        budget = RateBudget(rpm, NO_LIMIT, NO_LIMIT)
        loop = asyncio.get_running_loop()

        async def send(body):
            while True:
                await budget.acquire(estimate_demand(body))
                try:
                    return await client.messages.create(**body)
                except anthropic.RateLimitError:
                    budget.pause_until(loop.time() + 15.0)

        async def work():
            return [o.value if o.ok else o.error for o in await run_all(send, bodies, concurrency=64)]

        return await with_other(client, work)

    runs = simulate_runs({"reference dispatcher": reference, "fixed 15 s pause": fixed_pause}, rpm=rpm)
    return {
        run.approach: {
            "virtual_s": run.virtual_s,
            "succeeded": run.succeeded,
            "429s": int((run.ledger["status"] == 429).sum()),
        }
        for run in runs
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--rpm", type=int, default=600)
    parser.add_argument("--shared-requests", type=int, default=400)
    parser.add_argument("--other-share", type=float, default=0.3)
    args = parser.parse_args()
    figures = headline(args.requests, args.rpm)
    print(f"Headline: {args.requests:,} requests at {args.rpm} RPM enforced over about a second (virtual time)")
    for name, row in figures.items():
        print(
            f"  {name:<24} {row['succeeded']:,} done, {row['failed']} failed, {row['429s']} x 429; "
            f"limit used {row['limit_used']:.1%}, pacing efficiency {row['pacing_efficiency']:.1%} "
            f"({row['span_s']:.1f} s)"
        )
    shared = shared_key(args.shared_requests, args.rpm, args.other_share)
    print(f"Shared key (another process at {args.other_share:.0%} of the limit), {args.shared_requests} requests:")
    for name, row in shared.items():
        print(f"  {name:<22} {row['virtual_s']:6.1f} s, {row['succeeded']} done, {row['429s']} x 429 (both processes)")


if __name__ == "__main__":
    main()
