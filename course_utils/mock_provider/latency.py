"""The latency model: time to first token and output pacing, seeded and scaled.

At ``time_scale=1`` a model behaves like its catalog profile (e.g. Haiku: ~0.35 s to first
token, ~150 tokens/s). Prefill grows with the uncached input; tokens read from the prompt cache
are ~10x cheaper to prefill, which is why caching shortens time to first token. ``time_scale``
shrinks every delay (0 = no latency at all, for benchmarks).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from ..models import ModelSpec

__all__ = ["LatencyPlan", "plan_latency", "PREFILL_TOKENS_PER_S"]

PREFILL_TOKENS_PER_S = 20_000.0
"""Uncached input processed per second on top of the base TTFT (cached tokens: 10x faster)."""


@dataclass(frozen=True)
class LatencyPlan:
    """Seconds (already scaled) before the first token and between output tokens."""

    ttft: float
    per_token: float

    def total(self, output_tokens: int) -> float:
        return self.ttft + self.per_token * output_tokens


def plan_latency(
    model: ModelSpec,
    rng: random.Random,
    *,
    uncached_input_tokens: int,
    cached_input_tokens: int = 0,
    time_scale: float = 1.0,
) -> LatencyPlan:
    """Draw one request's latency: lognormal jitter around the model's medians."""
    if time_scale <= 0:
        return LatencyPlan(0.0, 0.0)
    jitter_ttft = rng.lognormvariate(0.0, 0.25)
    jitter_rate = rng.lognormvariate(0.0, 0.15)
    prefill = (uncached_input_tokens + cached_input_tokens / 10.0) / PREFILL_TOKENS_PER_S
    ttft = (model.ttft_s * jitter_ttft + prefill) * time_scale
    per_token = time_scale / (model.output_tps * jitter_rate)
    return LatencyPlan(ttft=ttft, per_token=per_token)
