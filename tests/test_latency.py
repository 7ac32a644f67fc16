"""The latency model: cached prefixes shorten time to first token; time_scale shrinks everything."""

from __future__ import annotations

import random

from course_utils.mock_provider.latency import plan_latency
from course_utils.models import get_model


def _plan(uncached: int, cached: int, scale: float = 1.0):
    return plan_latency(
        get_model("claude-sonnet-5-5"),
        random.Random(1),
        uncached_input_tokens=uncached,
        cached_input_tokens=cached,
        time_scale=scale,
    )


def test_cache_reads_shorten_ttft():
    cold, warm = _plan(50_000, 0), _plan(500, 49_500)
    assert warm.ttft < cold.ttft * 0.5
    assert warm.per_token == cold.per_token  # caching speeds prefill, not decoding


def test_time_scale_shrinks_latency_and_zero_disables_it():
    full, small = _plan(1000, 0, 1.0), _plan(1000, 0, 0.01)
    assert small.ttft == full.ttft * 0.01
    assert _plan(1000, 0, 0).total(500) == 0


def test_realistic_scale_matches_the_catalog_profile():
    model = get_model("claude-haiku-5-5")
    plans = [plan_latency(model, random.Random(i), uncached_input_tokens=100) for i in range(400)]
    median_ttft = sorted(p.ttft for p in plans)[200]
    median_tps = sorted(1 / p.per_token for p in plans)[200]
    assert abs(median_ttft - model.ttft_s) < 0.1 * model.ttft_s
    assert abs(median_tps - model.output_tps) < 0.1 * model.output_tps
