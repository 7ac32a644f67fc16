"""One source of truth per setting: change each at run time and watch every component follow it.

The simulator keeps its settings in one ``SimulatorConfig`` that every component reads; nothing
keeps a copy, and ``configure`` is the one way to change them (issue 12's confirmed bug: after
``course_utils.configure(seed=5)`` the batch store still drew with seed 0).
"""

from __future__ import annotations

import asyncio

import anthropic
import pytest

from course_utils.clock import run_virtual
from course_utils.mock_provider.config import FORCE_TIME_SCALE_ENV
from course_utils.mock_provider.inprocess import InProcessServer
from course_utils.mock_provider.server import MockServer

HAIKU = "claude-haiku-5-5"


def _fault_timeline(srv: InProcessServer) -> list[int]:
    c = srv.client(max_retries=0)
    out = []
    for i in range(40):
        try:
            c.messages.create(model=HAIKU, max_tokens=5, messages=[{"role": "user", "content": f"item {i}"}])
            out.append(200)
        except anthropic.APIStatusError as e:
            out.append(e.status_code)
    return out


def _expiry_pattern(srv: InProcessServer) -> list[str]:
    c = srv.client(max_retries=0)
    reqs = [
        {
            "custom_id": f"e{i}",
            "params": {"model": HAIKU, "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]},
        }
        for i in range(30)
    ]
    batch = c.messages.batches.create(requests=reqs)
    while c.messages.batches.retrieve(batch.id).processing_status != "ended":
        srv.advance(60)
    return sorted(r.custom_id for r in c.messages.batches.results(batch.id) if r.result.type == "expired")


def test_changing_the_seed_reaches_faults_generation_and_batches(make_server):
    srv = make_server(seed=0, time_scale=0, rate_limit_tier="unlimited")
    srv.set_scenario("flaky")
    before = _fault_timeline(srv)
    text0 = srv.client().messages.create(
        model=HAIKU, max_tokens=60, messages=[{"role": "user", "content": "Tell me about tea."}]
    )
    srv.set_scenario({"name": "expiring", "batch_expire_fraction": 0.5})
    expired0 = _expiry_pattern(srv)

    srv.configure(seed=5)
    assert srv.simulator.config.seed == 5
    srv.set_scenario("flaky")
    srv.reset()
    srv.set_scenario("flaky")
    assert _fault_timeline(srv) != before, "faults follow the new seed"
    text5 = srv.client().messages.create(
        model=HAIKU, max_tokens=60, messages=[{"role": "user", "content": "Tell me about tea."}]
    )
    assert text5.content != text0.content, "generation follows the new seed"
    srv.set_scenario({"name": "expiring", "batch_expire_fraction": 0.5})
    assert _expiry_pattern(srv) != expired0, "the batch store follows the new seed (the confirmed bug)"


def test_the_same_seed_set_at_run_time_reproduces_a_server_started_with_it(make_server):
    started = make_server(seed=5, time_scale=0, rate_limit_tier="unlimited")
    started.set_scenario({"name": "expiring", "batch_expire_fraction": 0.5})
    changed = make_server(seed=0, time_scale=0, rate_limit_tier="unlimited")
    changed.configure(seed=5)
    changed.set_scenario({"name": "expiring", "batch_expire_fraction": 0.5})
    assert _expiry_pattern(started) == _expiry_pattern(changed)


def test_changing_the_time_scale_reaches_latency_batches_and_outages(make_server):
    srv = make_server(seed=0, time_scale=1.0, rate_limit_tier="unlimited")

    async def latency() -> float:
        c = srv.async_client(max_retries=0)
        loop = asyncio.get_running_loop()
        await c.messages.create(
            model=HAIKU, max_tokens=50, messages=[{"role": "user", "content": "warm the connection"}]
        )
        t0 = loop.time()
        await c.messages.create(model=HAIKU, max_tokens=50, messages=[{"role": "user", "content": "Describe a river."}])
        return loop.time() - t0

    slow = run_virtual(latency())
    srv.configure(time_scale=0.1)
    fast = run_virtual(latency())
    assert fast == pytest.approx(slow / 10, rel=0.3), (slow, fast)

    def batch_window() -> float:
        c = srv.client(max_retries=0)
        batch = c.messages.batches.create(
            requests=[
                {
                    "custom_id": "a",
                    "params": {"model": HAIKU, "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]},
                }
            ]
        )
        waited = 0.0
        while c.messages.batches.retrieve(batch.id).processing_status != "ended":
            srv.advance(1)
            waited += 1
        return waited

    short = batch_window()
    srv.configure(time_scale=1.0)
    assert batch_window() > 5 * short, "the batch store follows the new time scale"

    srv.configure(time_scale=1.0)
    srv.set_scenario("outage")  # fails from 2 s to 12 s of simulated time
    srv.configure(time_scale=0.5)  # simulated time now runs twice as fast: the window is 1-6 s away

    async def outage_edges() -> list[float]:
        c = srv.async_client(max_retries=0)
        loop = asyncio.get_running_loop()
        t0, failing = loop.time(), []
        while loop.time() - t0 < 10:
            try:
                await c.messages.create(model=HAIKU, max_tokens=5, messages=[{"role": "user", "content": "x"}])
            except anthropic.APIStatusError:
                failing.append(loop.time() - t0)
            await asyncio.sleep(0.25)
        return failing

    failing = run_virtual(outage_edges())
    assert failing and failing[-1] < 7.0, "the fault injector follows the new time scale"


def test_the_ci_cap_applies_unless_told_not_to(monkeypatch):
    monkeypatch.setenv(FORCE_TIME_SCALE_ENV, "0.02")
    server = MockServer(time_scale=1.0)
    assert server.config.time_scale == 0.02
    server.configure(time_scale=0.5)
    assert server.config.time_scale == 0.02, "capped"
    server.configure(time_scale=0.5, cap=False)
    assert server.config.time_scale == 0.5, "explicit override"


def test_configure_rejects_bad_values(make_server):
    srv = make_server()
    with pytest.raises(ValueError):
        srv.configure(time_scale=-1)
    with pytest.raises(ValueError):
        srv.configure(seed="five")  # type: ignore[arg-type]
