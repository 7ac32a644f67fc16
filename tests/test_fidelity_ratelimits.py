"""Issue 13 items 1 and 2 through the SDK, on virtual time: OTPM counts the output produced, and
limits can be enforced over short intervals (a configurable burst capacity).

Rate-limits page (https://platform.claude.com/docs/en/api/rate-limits): "OTPM rate limits are
evaluated in real time as output tokens are produced, counting only the actual tokens generated.
The max_tokens parameter does not factor into OTPM rate limit calculations." and "a rate of 60
requests per minute (RPM) might be enforced as 1 request per second."
"""

from __future__ import annotations

import asyncio

import anthropic
import pytest

from course_utils.clock import run_virtual
from course_utils.mock_provider.ratelimit import DEFAULT_BURST_S, RateLimits

HAIKU = "claude-haiku-5-5"
ASK = [{"role": "user", "content": "Say something short."}]
BIG = 10**9


async def _call(client, **kw):
    try:
        raw = await client.messages.with_raw_response.create(model=HAIKU, messages=ASK, **kw)
        return 200, raw.headers, await raw.parse()
    except anthropic.APIStatusError as e:
        return e.status_code, e.response.headers, None


def test_a_huge_max_tokens_is_admitted_and_only_the_output_produced_is_charged(make_server):
    srv = make_server(seed=0, time_scale=0)
    srv.set_rate_limits("k", RateLimits(BIG, BIG, 500, burst_s=60))  # OTPM 500, far below max_tokens
    srv.simulator.limiter.exact_remaining = True  # exact *-remaining (the API rounds to the nearest thousand)

    async def go() -> None:
        c = srv.async_client(api_key="k", max_retries=0)
        spent = 0
        for _ in range(3):
            status, headers, msg = await _call(c, max_tokens=4_096)
            assert status == 200
            spent += msg.usage.output_tokens
        # The headers of the 3rd reply were computed before its own output: check the next request.
        status, headers, _ = await _call(c, max_tokens=4_096)
        assert status == 200
        assert int(headers["anthropic-ratelimit-output-tokens-remaining"]) == 500 - spent
        assert headers["anthropic-ratelimit-output-tokens-limit"] == "500"

    run_virtual(go())


def test_once_output_exhausts_otpm_requests_wait_for_it_to_refill(make_server):
    srv = make_server(seed=0, time_scale=0)
    srv.set_rate_limits("k", RateLimits(BIG, BIG, 60, burst_s=60))  # one output token a second

    async def go() -> None:
        c = srv.async_client(api_key="k", max_retries=0)
        produced = 0
        while produced <= 60:
            status, _, msg = await _call(c, max_tokens=1_000)
            assert status == 200
            produced += msg.usage.output_tokens
        status, headers, _ = await _call(c, max_tokens=1)
        assert status == 429
        # Overdrawn by produced - 60 tokens; one more must be available: that many seconds.
        assert int(headers["retry-after"]) == produced - 60 + 1
        await asyncio.sleep(produced - 60 + 1)
        assert (await _call(c, max_tokens=1))[0] == 200

    run_virtual(go())


def test_short_interval_enforcement_refuses_a_burst_the_minute_would_allow(make_server):
    srv = make_server(seed=0, time_scale=0)
    srv.set_rate_limits("strict", RateLimits(60, BIG, BIG, burst_s=1.0))
    srv.set_rate_limits("lenient", RateLimits(60, BIG, BIG, burst_s=60))

    async def burst(key: str) -> list[int]:
        c = srv.async_client(api_key=key, max_retries=0)
        return [r[0] for r in await asyncio.gather(*(_call(c, max_tokens=5) for _ in range(10)))]

    async def go() -> None:
        assert sorted(await burst("lenient")) == [200] * 10
        strict = await burst("strict")
        assert strict.count(200) == 1 and strict.count(429) == 9

    run_virtual(go())


def test_pacing_at_the_rate_is_never_refused_under_short_intervals(make_server):
    srv = make_server(seed=0, time_scale=0)
    srv.set_rate_limits("k", RateLimits(60, BIG, BIG, burst_s=1.0))

    async def go() -> None:
        c = srv.async_client(api_key="k", max_retries=0)
        statuses = []
        for _ in range(90):  # 1.5 minutes at 1 request per second
            statuses.append((await _call(c, max_tokens=5))[0])
            await asyncio.sleep(1.0)
        assert statuses == [200] * 90
        status, headers, _ = await _call(c, max_tokens=5)
        assert status == 200
        # The headers show the minute view, so a client can read its rate from them.
        assert headers["anthropic-ratelimit-requests-limit"] == "60"

    run_virtual(go())


def test_the_sdk_retry_honours_the_short_retry_after(make_server):
    srv = make_server(seed=0, time_scale=0)
    srv.simulator.limiter.set_default_burst(1.0)
    srv.set_rate_limits("k", RateLimits(60, BIG, BIG))  # no burst of its own: the server's 1 s

    async def go() -> None:
        c = srv.async_client(api_key="k", max_retries=3)
        results = await asyncio.gather(*(_call(c, max_tokens=5) for _ in range(3)))
        assert [r[0] for r in results] == [200, 200, 200]
        assert sorted(srv.ledger()["status"]).count(429) >= 2

    run_virtual(go())


def test_default_burst_constant_is_valid():
    assert 0 < DEFAULT_BURST_S <= 60
    with pytest.raises(ValueError, match="burst_s"):
        RateLimits(1, 1, 1, burst_s=0)
