"""Settings of one simulator instance."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["SimulatorConfig", "MAX_REQUEST_BYTES"]

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
