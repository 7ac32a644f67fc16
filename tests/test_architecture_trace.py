"""Traces: spans on the injected clock, carried in events, summed into the dashboard's figures."""

from __future__ import annotations

import asyncio
import math

import pytest

from course_utils.architecture.trace import Trace, TraceLog, span
from course_utils.lab import percentile
from course_utils.clock import SYSTEM_CLOCK, run_virtual


def _request(message_id: str, *, model_s: float, ttft_s: float, cost: float, cache: bool, fail: bool = False) -> dict:
    async def go() -> dict:
        spans: list[dict] = []
        data = {"message_id": message_id, "tenant": "acme", "conversation_id": "c1", "trace": spans}
        with span(spans, "api"):
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.5)  # queued on the bus
        with span(spans, "retrieval", hits=3):
            await asyncio.sleep(0.02)
        try:
            with span(spans, "model", model="m") as attrs:
                await asyncio.sleep(ttft_s)
                attrs["first_token_at"] = SYSTEM_CLOCK.time()
                await asyncio.sleep(model_s - ttft_s)
                if fail:
                    raise TimeoutError("upstream")
                attrs.update(input_tokens=100, output_tokens=20, cost_usd=cost, cache_hit=cache)
        except TimeoutError:
            pass
        return data

    return run_virtual(go())


def test_a_trace_times_each_stage_on_the_injected_clock_and_sees_the_queue():
    trace = Trace.from_event(_request("m1", model_s=2.0, ttft_s=0.4, cost=0.01, cache=True))
    assert [s.stage for s in trace.spans] == ["api", "retrieval", "model"]
    assert trace.stage_s == pytest.approx({"api": 0.01, "retrieval": 0.02, "model": 2.0}, abs=1e-6)
    assert trace.ttft_s == pytest.approx(0.01 + 0.5 + 0.02 + 0.4, abs=1e-6)
    assert trace.total_s == pytest.approx(2.53, abs=1e-6)
    assert trace.queued_s == pytest.approx(0.5, abs=1e-6)
    row = trace.summary()
    assert (row["input_tokens"], row["output_tokens"], row["cost_usd"], row["cache_hit"], row["error"]) == (
        100, 20, 0.01, True, None,
    )  # fmt: skip
    waterfall = trace.frame()
    assert list(waterfall["stage"]) == ["api", "retrieval", "model"]
    assert waterfall["offset_ms"].tolist() == pytest.approx([0, 510, 530], abs=1e-3)


def test_an_error_is_recorded_on_its_span():
    trace = Trace.from_event(_request("m2", model_s=1.0, ttft_s=0.2, cost=0.0, cache=False, fail=True))
    assert trace.error == "TimeoutError"
    assert trace.spans[-1].attrs["error"] == "TimeoutError"


def test_the_log_computes_the_dashboard_figures():
    log = TraceLog()
    for i in range(10):
        log.add(Trace.from_event(_request(f"m{i}", model_s=1.0, ttft_s=0.1 * (i + 1), cost=0.02, cache=i < 3)))
    log.add(Trace.from_event(_request("bad", model_s=1.0, ttft_s=0.1, cost=0.0, cache=False, fail=True)))
    slo = log.slo()
    assert slo["requests"] == 11
    assert slo["p50_ttft_s"] == pytest.approx(0.53 + 0.5, abs=1e-6)  # 6th of 11 sorted TTFTs
    assert slo["p95_ttft_s"] == pytest.approx(0.53 + 1.0, abs=1e-6)
    assert slo["error_rate"] == pytest.approx(1 / 11)
    assert slo["cost_per_conversation_usd"] == pytest.approx(0.2)  # one conversation
    assert slo["cache_hit_rate"] == pytest.approx(3 / 11)
    assert len(log.frame()) == 11


def test_percentile_is_nearest_rank_and_ignores_nan():
    assert percentile([5, 1, 3, math.nan, 2, 4], 0.5) == 3
    assert percentile([1, 2, 3, 4], 0.95) == 4
    assert math.isnan(percentile([], 0.5))
