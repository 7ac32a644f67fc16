"""The simulator's time-dependent behaviour, through the SDK, on virtual time.

Rate-limit refill, ``retry-after``, outage windows, client timeouts, stream cut-offs and batch
processing run against an in-process simulator on a virtual-time loop (``run_virtual``): every
duration is exact, nothing sleeps, and no assertion depends on how busy the machine is.
"""

from __future__ import annotations

import asyncio

import anthropic
import httpx2
import pytest

from course_utils.clock import SYSTEM_CLOCK, run_virtual
from course_utils.mock_provider.inprocess import InProcessServer
from course_utils.mock_provider.ratelimit import RateLimits

HAIKU = "claude-haiku-5-5"
ASK = [{"role": "user", "content": "Say something short."}]


def _now() -> float:
    return asyncio.get_running_loop().time()


async def _status(client, **kw) -> int:
    try:
        await client.messages.create(model=HAIKU, max_tokens=5, messages=ASK, **kw)
        return 200
    except anthropic.APIStatusError as e:
        return e.status_code


def test_429_retry_after_is_right_and_the_sdk_honours_it(make_server):
    # 120 RPM refills one request every 0.5 s, so retry-after is 1 s (whole seconds, rounded up).
    srv = make_server(seed=0, time_scale=0)
    srv.set_rate_limits("quick", RateLimits(120, 1_000_000, 1_000_000, burst_s=60.0))

    async def go() -> None:
        c = srv.async_client(api_key="quick", max_retries=0)
        with pytest.raises(anthropic.RateLimitError) as err:
            for _ in range(121):
                await c.messages.create(model=HAIKU, max_tokens=20, messages=ASK)
        assert err.value.body["error"]["type"] == "rate_limit_error"
        wait = int(err.value.response.headers["retry-after"])
        assert wait == 1
        # The SDK's own retry sleeps (at least) retry-after and then succeeds; on virtual time, exactly.
        retrying = srv.async_client(api_key="quick", max_retries=2)
        t0 = _now()
        assert (await retrying.messages.create(model=HAIKU, max_tokens=20, messages=ASK)).content
        assert _now() - t0 >= wait
        assert list(srv.ledger()["status"])[-2:] == [429, 200]

    run_virtual(go())


def test_refill_is_continuous_and_exact(make_server):
    # 60 RPM: the bucket holds 60 and refills one request per second, to the microsecond.
    srv = make_server(seed=0, time_scale=0)
    srv.set_rate_limits("k", RateLimits(60, 10**9, 10**9, burst_s=60.0))

    async def go() -> list[int]:
        c = srv.async_client(api_key="k", max_retries=0)
        burst = [await _status(c) for _ in range(61)]
        assert burst.count(200) == 60 and burst[-1] == 429
        await asyncio.sleep(0.999)
        assert await _status(c) == 429  # not yet a whole token
        await asyncio.sleep(0.002)
        return [await _status(c), await _status(c)]

    assert run_virtual(go()) == [200, 429]


def test_outage_window_opens_then_recovers(make_server):
    # The outage preset fails every request from 2 s to 12 s of simulated time.
    srv = make_server(seed=0, time_scale=1.0, scenario="outage", rate_limit_tier="unlimited")

    async def go() -> list[tuple[float, int]]:
        c = srv.async_client(max_retries=0)
        t0, seen = _now(), []
        while _now() - t0 < 16:
            seen.append((_now() - t0, await _status(c)))
            await asyncio.sleep(0.5)
        return seen

    seen = run_virtual(go())
    failing = [t for t, s in seen if s == 529]
    assert seen[0][1] == 200 and seen[-1][1] == 200
    assert failing and 1.5 <= failing[0] <= 3.0 and 11.0 <= failing[-1] <= 13.0
    first, last = seen.index((failing[0], 529)), seen.index((failing[-1], 529))
    assert all(s == 529 for _, s in seen[first : last + 1]), seen


def test_timeout_fault_trips_the_client_timeout(make_server):
    srv = make_server(seed=0, time_scale=1.0)

    async def go() -> float:
        c = srv.async_client(max_retries=0, timeout=0.5)
        t0 = _now()
        with pytest.raises(anthropic.APITimeoutError):
            await c.messages.create(model=HAIKU, max_tokens=20, messages=ASK, extra_headers={"x-mock-fault": "timeout"})
        return _now() - t0

    waited = run_virtual(go())
    assert 0.5 <= waited < 0.5 + 0.5  # the client's timeout, plus connection set-up and transit


def test_disconnect_mid_stream_is_a_connection_error(make_server):
    srv = make_server(seed=0, time_scale=1.0)

    async def go() -> list[str]:
        c = srv.async_client(max_retries=0)
        got: list[str] = []
        with pytest.raises((anthropic.APIConnectionError, httpx2.RemoteProtocolError)):
            async with c.messages.stream(
                model=HAIKU,
                max_tokens=300,
                extra_headers={"x-mock-fault": "disconnect"},
                messages=[{"role": "user", "content": "Write a long essay about queues."}],
            ) as s:
                async for text in s.text_stream:
                    got.append(text)
        return got

    assert run_virtual(go())
    assert bool(srv.ledger().iloc[-1]["disconnected"])


def test_a_client_that_leaves_stops_the_stream_and_the_meter(make_server):
    srv = make_server(seed=0, time_scale=1.0)

    async def go() -> None:
        c = srv.async_client(max_retries=0)
        async with c.messages.stream(
            model=HAIKU, max_tokens=500, messages=[{"role": "user", "content": "Write a long essay about rivers."}]
        ) as s:
            n = 0
            async for _ in s.text_stream:
                n += 1
                if n == 5:
                    break

    run_virtual(go())
    row = srv.ledger().iloc[-1]
    assert bool(row["disconnected"]) and 5 <= int(row["output_tokens"]) < 50


def test_concurrency_is_real(make_server):
    # 100 concurrent requests of ~0.3 s each take about as long as the slowest one, not 100 times one.
    srv = make_server(seed=0, time_scale=1.0, rate_limit_tier="unlimited")

    async def go() -> float:
        c = srv.async_client(max_retries=0)
        t0 = _now()
        await asyncio.gather(
            *(
                c.messages.create(model=HAIKU, max_tokens=10, messages=[{"role": "user", "content": f"Hi {i}"}])
                for i in range(100)
            )
        )
        return _now() - t0

    virtual_s = run_virtual(go())  # the virtual loop's clock: the same on any machine
    one = srv.ledger()["latency_s"].max()
    assert one > 0.2
    assert virtual_s < one + 0.5, f"100 concurrent requests took {virtual_s:.2f} s; one takes up to {one:.2f} s"


# --------------------------------------------------------------------------------------- batches
def _batch(n: int, prefix: str = "r") -> list[dict]:
    return [
        {
            "custom_id": f"{prefix}{i}",
            "params": {
                "model": HAIKU,
                "max_tokens": 30,
                "messages": [{"role": "user", "content": f"Summarize item {i}."}],
            },
        }
        for i in range(n)
    ]


async def _until_ended(c, batch_id: str, *, every: float = 10.0, limit: float = 36 * 3600):
    t0 = _now()
    while (batch := await c.messages.batches.retrieve(batch_id)).processing_status != "ended":
        assert _now() - t0 < limit
        await asyncio.sleep(every)
    return batch


def test_batch_lifecycle_and_results(make_server):
    srv = make_server(seed=0, time_scale=1.0, rate_limit_tier="unlimited")

    async def go() -> None:
        c = srv.async_client(max_retries=0, _strict_response_validation=True)
        reqs = _batch(5) + [{"custom_id": "bad", "params": {"model": HAIKU, "messages": []}}]
        batch = await c.messages.batches.create(requests=reqs)
        assert batch.id.startswith("msgbatch_") and batch.processing_status == "in_progress"
        assert batch.request_counts.processing == 6 and batch.results_url is None
        batch = await _until_ended(c, batch.id)
        counts = batch.request_counts
        assert (counts.succeeded, counts.errored, counts.processing) == (5, 1, 0)
        results = {r.custom_id: r.result async for r in await c.messages.batches.results(batch.id)}
        assert set(results) == {f"r{i}" for i in range(5)} | {"bad"}
        assert results["bad"].type == "errored"
        assert results["r0"].type == "succeeded" and results["r0"].message.content
        assert [b.id async for b in c.messages.batches.list()][0] == batch.id
        assert (await c.messages.batches.delete(batch.id)).type == "message_batch_deleted"

    run_virtual(go())
    rows = srv.ledger()[srv.ledger()["batch"]]
    assert len(rows) == 6 and rows[rows["custom_id"] == "bad"]["cost_usd"].iloc[0] == 0
    assert rows[rows["status"] == 200].iloc[0]["cost_usd"] > 0


def test_batch_cancel_stops_unprocessed_requests(make_server):
    srv = make_server(seed=0, time_scale=1.0, rate_limit_tier="unlimited")

    async def go():
        c = srv.async_client(max_retries=0)
        batch = await c.messages.batches.create(requests=_batch(20, "c"))
        await asyncio.sleep(6)  # a few requests processed, most not
        assert (await c.messages.batches.cancel(batch.id)).processing_status in ("canceling", "ended")
        return await _until_ended(c, batch.id)

    batch = run_virtual(go())
    counts = batch.request_counts
    assert counts.canceled > 0 and counts.succeeded + counts.canceled + counts.errored + counts.expired == 20
    assert batch.cancel_initiated_at is not None


def test_batches_survive_a_restart(make_server, tmp_path):
    first = make_server(seed=0, time_scale=1.0, state_dir=tmp_path, rate_limit_tier="unlimited")

    async def submit() -> str:
        batch = await first.async_client().messages.batches.create(requests=_batch(3, "k"))
        await asyncio.sleep(1)  # the server goes down long before the batch ends
        assert (await first.async_client().messages.batches.retrieve(batch.id)).processing_status == "in_progress"
        return batch.id

    batch_id = run_virtual(submit())
    first.close()
    again = make_server(seed=0, time_scale=1.0, state_dir=tmp_path, rate_limit_tier="unlimited")

    async def resume() -> set[str]:
        c = again.async_client()
        await _until_ended(c, batch_id)
        return {r.custom_id async for r in await c.messages.batches.results(batch_id)}

    assert run_virtual(resume()) == {"k0", "k1", "k2"}


def test_sync_clients_let_time_pass_with_advance(make_server):
    srv = make_server(seed=0, time_scale=1.0, rate_limit_tier="unlimited")
    c = srv.client(max_retries=0)
    batch = c.messages.batches.create(requests=_batch(4))
    waited = 0
    while c.messages.batches.retrieve(batch.id).processing_status != "ended":
        srv.advance(30)
        waited += 30
        assert waited < 36 * 3600
    assert waited > 0 and c.messages.batches.retrieve(batch.id).request_counts.succeeded == 4
    srv.close()


def test_the_default_clock_follows_the_running_loop():
    async def go() -> tuple[float, float]:
        t0, m0 = SYSTEM_CLOCK.time(), SYSTEM_CLOCK.monotonic()
        await asyncio.sleep(3600)
        return SYSTEM_CLOCK.time() - t0, SYSTEM_CLOCK.monotonic() - m0

    assert run_virtual(go()) == (3600.0, 3600.0)


def _ended(srv: InProcessServer, c, batch_id: str):
    while (batch := c.messages.batches.retrieve(batch_id)).processing_status != "ended":
        srv.advance(60)
    return batch


def test_a_scenario_can_make_batch_requests_expire(make_server):
    srv = make_server(seed=0, time_scale=1.0, rate_limit_tier="unlimited")
    srv.set_scenario({"name": "expiring", "batch_expire_fraction": 0.5})
    c = srv.client(max_retries=0)
    counts = _ended(srv, c, c.messages.batches.create(requests=_batch(20, "e")).id).request_counts
    assert 3 <= counts.expired <= 17 and counts.succeeded + counts.expired == 20
    expired = srv.ledger()[srv.ledger()["error_type"] == "expired"]
    assert len(expired) == counts.expired and expired["cost_usd"].sum() == 0


def test_a_scenario_can_make_batch_requests_fail_transiently(make_server):
    srv = make_server(seed=0, time_scale=1.0, rate_limit_tier="unlimited")
    srv.set_scenario({"name": "erroring", "batch_error_fraction": 0.5})
    c = srv.client(max_retries=0)
    reqs = _batch(20, "t") + [{"custom_id": "invalid", "params": {"model": HAIKU, "max_tokens": 10, "messages": []}}]
    batch = _ended(srv, c, c.messages.batches.create(requests=reqs).id)
    results = {r.custom_id: r.result for r in c.messages.batches.results(batch.id)}
    transient = [k for k, r in results.items() if r.type == "errored" and r.error.error.type == "overloaded_error"]
    assert 3 <= len(transient) <= 17
    assert results["invalid"].error.error.type == "invalid_request_error"  # validation comes first


def test_mid_stream_error_is_recorded_with_its_type(make_server):
    srv = make_server(seed=0, time_scale=1.0)

    async def go() -> None:
        c = srv.async_client(max_retries=0)
        with pytest.raises(anthropic.APIStatusError):
            async with c.messages.stream(
                model=HAIKU,
                max_tokens=100,
                extra_headers={"x-mock-fault": "stream_error"},
                messages=[{"role": "user", "content": "Write a long essay about queues."}],
            ) as s:
                async for _ in s.text_stream:
                    pass

    run_virtual(go())
    row = srv.ledger().iloc[-1]
    assert row["status"] == 529 and row["error_type"] == "overloaded_error" and row["fault"] == "stream_error"


def test_cache_reads_shorten_time_to_first_token(make_server):
    policy = " ".join(
        f"Policy clause {i}: refunds within 30 days need a receipt and the original packaging." for i in range(300)
    )
    srv = make_server(seed=0, time_scale=1.0, rate_limit_tier="unlimited")

    async def ttft(c, question: str) -> float:
        t0 = _now()
        async with c.messages.stream(
            model="claude-sonnet-5-5",
            max_tokens=1,
            system=[{"type": "text", "text": policy, "cache_control": {"type": "ephemeral"}}],
            messages=[{"role": "user", "content": question}],
        ) as s:
            async for _ in s.text_stream:
                break
        return _now() - t0

    async def go() -> tuple[float, float]:
        c = srv.async_client(max_retries=0)
        return await ttft(c, "How long is the refund window?"), await ttft(c, "Do I need a receipt?")

    cold, warm = run_virtual(go())
    assert srv.ledger()["cache_read_input_tokens"].iloc[-1] > 2048
    assert warm < cold
