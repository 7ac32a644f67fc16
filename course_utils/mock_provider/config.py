"""Settings of one simulator instance."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SimulatorConfig", "MAX_REQUEST_BYTES", "FORCE_TIME_SCALE_ENV", "effective_time_scale", "CI_TIME_SCALE"]

FORCE_TIME_SCALE_ENV = "COURSE_FORCE_TIME_SCALE"
"""When set, every simulator in the process uses this time scale, whatever a notebook asks for.

Authoring (``python -m course_utils.authoring execute``) and nbval set it, so a solution notebook
whose parameters cell says ``time_scale = 1.0`` for students still runs in seconds in CI.
"""
CI_TIME_SCALE = 0.02


def effective_time_scale(requested: float) -> float:
    """``requested``, capped by ``COURSE_FORCE_TIME_SCALE`` when that is set.

    A cap, not a replacement: a server that asks for less latency (a check server at 0) keeps it.
    """
    forced = os.environ.get(FORCE_TIME_SCALE_ENV, "").strip()
    return min(float(forced), float(requested)) if forced else float(requested)


MAX_REQUEST_BYTES = 32 * 1024 * 1024
"""The Messages API's request size limit (larger bodies get 413 request_too_large)."""


@dataclass
class SimulatorConfig:
    """How a simulator behaves.

    ``time_scale`` shrinks simulated latency and batch processing time only (1.0 = realistic,
    0 = instant). Everything a client acts on (retry-after, rate-limit windows, cache TTLs) stays
    in real time, so a client that sleeps what the simulator advises then succeeds.
    """

    seed: int = 0
    time_scale: float = 1.0
    scenario: str = "calm"
    state_dir: Path | None = None
    rate_limit_tier: str = "default"
    require_version_header: bool = True
    exact_ratelimit_remaining: bool = False
    """``*-tokens-remaining`` headers exact instead of "rounded to the nearest thousand" as the API
    sends them (a teaching option for a demo that watches a bucket drain token by token)."""
