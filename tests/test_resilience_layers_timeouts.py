"""Lesson 05's retry-at-one-layer and response-start-timeout measurements: what the notebook quotes."""

from __future__ import annotations

import asyncio

import pytest

from course_utils.lab import on_virtual_time, sim
from course_utils.mock_provider.faults import Scenario
from course_utils.resilience import TIMEOUT_MODES, stacked_run, stream_with_start_timeout, timeout_run


def test_stacked_retry_layers_multiply_the_attempts_at_the_provider():
    def attempts(**kw):
        return on_virtual_time(lambda: stacked_run(**kw))["attempts at the provider"]

    assert attempts(sdk_max_retries=2) == 3
    assert attempts(sdk_max_retries=2, policy_attempts=4) == 12
    assert attempts(sdk_max_retries=2, policy_attempts=4, links=2) == 24
    assert attempts(sdk_max_retries=2, policy_attempts=4, links=2, app_attempts=4) == 96
    one_layer = on_virtual_time(lambda: stacked_run(policy_attempts=4, links=2))
    assert one_layer["attempts at the provider"] == 8
    stacked = on_virtual_time(lambda: stacked_run(sdk_max_retries=2, policy_attempts=4, links=2, app_attempts=4))
    assert stacked["seconds until the user hears"] > 5 * one_layer["seconds until the user hears"]


def _long(n: int = 800) -> dict:
    return {
        "model": "claude-sonnet-5-5",
        "max_tokens": n,
        "messages": [{"role": "user", "content": f"Write a {n // 2}-word report, in detail."}],
    }


def test_a_start_timeout_lets_a_long_answer_finish_that_a_total_timeout_cuts():
    async def run():
        server = sim(seed=0)
        client = server.async_client(max_retries=0)
        try:
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(client.messages.create(**_long()), 3.0)
            started = asyncio.get_running_loop().time()
            message = await stream_with_start_timeout(client, start_timeout_s=3.0, **_long())
            return message, asyncio.get_running_loop().time() - started
        finally:
            await client.close()

    message, took = on_virtual_time(run)
    assert message.usage.output_tokens > 300 and took > 3.0  # longer than the timeout, and not cut


def test_a_start_timeout_gives_up_on_a_response_that_never_starts():
    async def run():
        server = sim(Scenario(name="hang", p_timeout=1.0), seed=0)
        client = server.async_client(max_retries=0)
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            with pytest.raises(TimeoutError):
                await stream_with_start_timeout(client, start_timeout_s=2.0, **_long(50))
            return loop.time() - started
        finally:
            await client.close()

    assert on_virtual_time(run) == pytest.approx(2.0, abs=0.05)


def test_the_timeout_comparison_shows_what_the_notebook_says():
    short, long_, start = (on_virtual_time(lambda m=m: timeout_run(m, n=24)) for m in TIMEOUT_MODES)
    answered = {r["timeout"]: int(r["answered"].split("/")[0]) for r in (short, long_, start)}
    assert answered[TIMEOUT_MODES[2]] == 24 and answered[TIMEOUT_MODES[0]] < 24  # long answers cut
    assert short["attempts"] > start["attempts"] and short["cost_usd"] > start["cost_usd"]
    assert long_["worst_latency_s"] > 2 * start["worst_latency_s"]  # hung calls held for the long timeout
    with pytest.raises(ValueError):
        on_virtual_time(lambda: timeout_run("no timeout"))
