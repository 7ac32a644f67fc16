"""The model stage paces below the key's limits with lesson 03's RateBudget (virtual time, in-process simulator)."""

from __future__ import annotations

import asyncio

from course_utils.architecture import DeskStore, InMemoryBus, Pipeline, PipelineConfig, VectorIndex, load_help_centre
from course_utils.clock import run_virtual
from course_utils.mock_provider import TIERS, InProcessServer


def _burst(config: PipelineConfig, messages: int = 30) -> tuple[int, int, int]:
    """``messages`` at once from one tenant whose key has tier 1's limits (50 RPM, enforced over about
    a second); returns (answered, 429s in the ledger, model calls)."""
    index = VectorIndex()
    load_help_centre(index, ["acme"])

    async def run() -> tuple[int, int, int]:
        with InProcessServer(seed=0, time_scale=1.0) as server:
            acme = server.tenant("acme", "tier-1")
            pipeline = Pipeline(InMemoryBus(), DeskStore(), index, lambda t: acme.async_client(), config=config)
            stop = asyncio.Event()
            runner = asyncio.create_task(pipeline.run(stop, consumers={"model": 16}))
            for i in range(messages):
                await pipeline.submit("acme", f"c{i}", "How do I reset my password?", message_id=f"m{i}")
            while not all(pipeline.finished(f"m{i}") for i in range(messages)):
                await asyncio.sleep(0.5)
            stop.set()
            await runner
            await pipeline.aclose()
            ledger = acme.ledger()
            answered = sum(1 for i in range(messages) if pipeline.store.answer_for("acme", f"m{i}") is not None)
            return answered, int((ledger["status"] == 429).sum()), pipeline.model_calls

    return run_virtual(run(), limit=3600)


def test_without_pacing_a_burst_collects_429s():
    answered, refused, _ = _burst(PipelineConfig(fallback_model=None, max_attempts=8))
    assert refused > 0
    assert answered == 30  # the retries get there, at the cost of the 429s


def test_paced_below_the_keys_limits_no_request_is_refused():
    answered, refused, calls = _burst(
        PipelineConfig(fallback_model=None, max_attempts=8, key_limits=TIERS["tier-1"], key_headroom=0.05)
    )
    assert (answered, refused) == (30, 0)
    assert calls == 30  # one call per message: nothing was sent only to be refused
