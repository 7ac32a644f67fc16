"""Issue 13 items 9 and 11: prompt caching inside Message Batches (billed with both discounts), and
the separate limits of token counting and of the Message Batches API, on virtual time."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import anthropic
import pytest

from course_utils.clock import run_virtual
from course_utils.mock_provider.ratelimit import TIERS, RateLimits
from course_utils.pricing import cost

HAIKU = "claude-haiku-5-5"
BIG = 10**9
# A shared context long enough to cache on Haiku 5.5 (4,096 tokens minimum), with the 1-hour TTL
# the batch guide recommends for context shared across a batch.
CONTEXT = " ".join(f"Clause {i}: the supplier delivers part {i} within {i % 9 + 1} days." for i in range(500))
SYSTEM = [{"type": "text", "text": CONTEXT, "cache_control": {"type": "ephemeral", "ttl": "1h"}}]


def _item(i: int) -> dict:
    return {
        "custom_id": f"q{i}",
        "params": {
            "model": HAIKU,
            "max_tokens": 50,
            "system": SYSTEM,
            "messages": [{"role": "user", "content": f"What does clause {i} say?"}],
        },
    }


async def _until_ended(c, batch_id: str):
    while True:
        batch = await c.messages.batches.retrieve(batch_id)
        if batch.processing_status == "ended":
            return batch
        await asyncio.sleep(5)


def test_prompt_caching_applies_inside_a_batch_and_is_billed_with_both_discounts(make_server):
    srv = make_server(seed=0, time_scale=1.0, rate_limit_tier="unlimited")

    async def go():
        c = srv.async_client(api_key="batcher", max_retries=0)
        batch = await c.messages.batches.create(requests=[_item(i) for i in range(4)])
        await _until_ended(c, batch.id)
        results = {r.custom_id: r.result.message.usage async for r in await c.messages.batches.results(batch.id)}
        # The same key's Messages call afterwards reads what the batch wrote (one cache per workspace).
        after = await c.messages.create(
            model=HAIKU, max_tokens=50, system=SYSTEM, messages=[{"role": "user", "content": "And clause 7?"}]
        )
        return results, after.usage

    results, after = run_virtual(go())
    writes = [u for u in results.values() if u.cache_creation_input_tokens]
    reads = [u for u in results.values() if u.cache_read_input_tokens]
    assert len(writes) == 1 and len(reads) == 3  # the first request processed writes, the others read
    assert writes[0].cache_creation.ephemeral_1h_input_tokens == writes[0].cache_creation_input_tokens > 4096
    assert all(u.service_tier == "batch" for u in results.values())
    assert after.cache_read_input_tokens == writes[0].cache_creation_input_tokens
    rows = srv.ledger()
    rows = rows[rows["batch"]]
    for _, row in rows.iterrows():
        usage = {
            "input_tokens": row["input_tokens"],
            "output_tokens": row["output_tokens"],
            "cache_creation_input_tokens": row["cache_creation_input_tokens"],
            "cache_read_input_tokens": row["cache_read_input_tokens"],
            "cache_creation": {
                "ephemeral_5m_input_tokens": 0,
                "ephemeral_1h_input_tokens": row["cache_creation_input_tokens"],
            },
        }
        # Both discounts: the cache price (2x write for 1h, 0.1x read) and then the batch's 50%.
        assert Decimal(str(row["cost_usd"])) == cost(usage, HAIKU, batch=True) == cost(usage, HAIKU) / 2
    write_row = rows[rows["cache_creation_input_tokens"] > 0].iloc[0]
    read_row = rows[rows["cache_read_input_tokens"] > 0].iloc[0]
    assert write_row["cost_usd"] > 10 * read_row["cost_usd"]


def test_count_tokens_has_its_own_requests_per_minute_limit(make_server):
    srv = make_server(seed=0, time_scale=0)
    srv.set_rate_limits("k", RateLimits(BIG, BIG, BIG, burst_s=60, count_tokens_rpm=3))

    async def go() -> None:
        c = srv.async_client(api_key="k", max_retries=0)
        msgs = [{"role": "user", "content": "hi"}]
        for _ in range(3):
            await c.messages.count_tokens(model=HAIKU, messages=msgs)
        with pytest.raises(anthropic.RateLimitError) as err:
            await c.messages.count_tokens(model=HAIKU, messages=msgs)
        assert "3 requests per minute for the token counting" in err.value.message
        assert err.value.response.headers["retry-after"] == "20"
        # The Messages API's own limits are untouched by token counting, and vice versa.
        assert (await c.messages.create(model=HAIKU, max_tokens=5, messages=msgs)).content
        await asyncio.sleep(20)
        assert (await c.messages.count_tokens(model=HAIKU, messages=msgs)).input_tokens > 0

    run_virtual(go())


def test_message_batches_have_their_own_requests_per_minute_limit(make_server):
    srv = make_server(seed=0, time_scale=1.0)
    srv.set_rate_limits("k", RateLimits(BIG, BIG, BIG, burst_s=60, batch_rpm=2))

    async def go() -> None:
        c = srv.async_client(api_key="k", max_retries=0)
        batch = await c.messages.batches.create(requests=[_item(0)])
        await c.messages.batches.retrieve(batch.id)
        with pytest.raises(anthropic.RateLimitError) as err:
            await c.messages.batches.retrieve(batch.id)
        assert "Message Batches API" in err.value.message and err.value.response.headers["retry-after"] == "30"
        assert await c.messages.create(model=HAIKU, max_tokens=5, messages=[{"role": "user", "content": "hi"}])

    run_virtual(go())


def test_the_processing_queue_limit_is_the_organisations_across_its_keys(make_server):
    # Rate-limits page: the Message Batches limits are the organization's, like every limit.
    srv = make_server(seed=0, time_scale=1.0)
    srv.set_org_limits(RateLimits(BIG, BIG, BIG, batch_queue=5))

    async def go() -> None:
        one = srv.tenant("one").async_client(max_retries=0)
        two = srv.tenant("two").async_client(max_retries=0)
        await one.messages.batches.create(requests=[_item(i) for i in range(4)])
        with pytest.raises(anthropic.RateLimitError) as err:
            await two.messages.batches.create(requests=[_item(i) for i in range(10, 12)])  # 4 + 2 > 5
        assert "4 are waiting" in err.value.message

    run_virtual(go())


def test_message_batches_limit_the_requests_in_the_processing_queue(make_server):
    srv = make_server(seed=0, time_scale=1.0)
    srv.set_rate_limits("k", RateLimits(BIG, BIG, BIG, batch_queue=5))

    async def go() -> None:
        c = srv.async_client(api_key="k", max_retries=0)
        first = await c.messages.batches.create(requests=[_item(i) for i in range(4)])
        with pytest.raises(anthropic.RateLimitError) as err:
            await c.messages.batches.create(requests=[_item(i) for i in range(10, 12)])
        assert "5 batch requests in the processing queue" in err.value.message
        assert err.value.response.headers["retry-after"] == "60"
        with pytest.raises(anthropic.RateLimitError) as err:
            await c.messages.batches.create(requests=[_item(i) for i in range(20, 26)])
        assert err.value.response.headers["x-should-retry"] == "false"  # bigger than the queue: split it
        await _until_ended(c, first.id)
        await c.messages.batches.create(requests=[_item(i) for i in range(10, 12)])  # the queue drained

    run_virtual(go())


def test_tiers_carry_the_documented_separate_limits():
    assert TIERS["tier-1"].count_tokens_rpm == 100 and TIERS["tier-1"].batch_rpm == 50
    assert TIERS["tier-1"].batch_queue == 100_000
    # The token-counting page's table (docs/api-notes.md section 8, row 11): 100 / 2,000 / 4,000 / 8,000 RPM.
    assert [TIERS[f"tier-{n}"].count_tokens_rpm for n in (1, 2, 3, 4)] == [100, 2_000, 4_000, 8_000]
    assert TIERS["default"].batch_queue is None and TIERS["unlimited"].count_tokens_rpm is None
    with pytest.raises(ValueError, match="batch_rpm"):
        RateLimits(1, 1, 1, batch_rpm=0)
