"""Per-minute limits (:class:`RateLimits`), the usage tiers, and the default burst capacity."""

from __future__ import annotations

from dataclasses import dataclass, replace

__all__ = ["DEFAULT_BURST_S", "RateLimits", "TIERS", "TIERS_SOURCE", "get_tier", "check_burst"]

TIERS_SOURCE = "https://platform.claude.com/docs/en/api/rate-limits"

DEFAULT_BURST_S = 1.0
"""Burst capacity, in seconds' worth of each per-minute limit, for limits that do not set their own.

60.0 = a whole minute's quota may be spent at once (lenient); 1.0 = short-interval enforcement, as
the rate-limits page describes ("60 RPM might be enforced as 1 request per second").
"""


@dataclass(frozen=True)
class RateLimits:
    """Per-minute limits for one model, as the API's tier tables list them.

    ``burst_s``: the burst capacity in seconds' worth of each limit (1.0 = short-interval
    enforcement, 60 = a minute's quota at once); ``None`` = the limiter's default
    (:data:`DEFAULT_BURST_S` unless :meth:`RateLimiter.set_default_burst` changed it).
    """

    requests_per_minute: int
    input_tokens_per_minute: int
    output_tokens_per_minute: int
    burst_s: float | None = None
    count_tokens_rpm: int | None = None
    """Requests per minute to ``POST /v1/messages/count_tokens`` (None: not limited)."""
    batch_rpm: int | None = None
    """HTTP requests per minute to the Message Batches API (create, retrieve, list, results, ...)."""
    batch_queue: int | None = None
    """Batch requests that may wait in the processing queue at once (a create that would pass it gets 429)."""

    def __post_init__(self) -> None:
        for name in ("requests_per_minute", "input_tokens_per_minute", "output_tokens_per_minute"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.burst_s is not None:
            check_burst(self.burst_s)
        for name in ("count_tokens_rpm", "batch_rpm", "batch_queue"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
                raise ValueError(f"{name} must be a positive integer or None")

    def with_burst(self, burst_s: float | None) -> "RateLimits":
        """The same limits with another burst capacity, e.g. ``TIERS["tier-1"].with_burst(1.0)``."""
        return replace(self, burst_s=burst_s)


def check_burst(burst_s: float) -> float:
    if isinstance(burst_s, bool) or not isinstance(burst_s, (int, float)) or not 0 < burst_s <= 60:
        raise ValueError(f"burst_s must be a number of seconds in (0, 60], not {burst_s!r}")
    return float(burst_s)


_UNLIMITED = 10**12

TIERS: dict[str, RateLimits] = {
    # Low on purpose: a notebook fanning out 50-100 short requests runs into it, which is the lesson.
    "default": RateLimits(50, 20_000, 8_000),
    # The former usage tiers 1-4 (the page's tables before the 2026 Start/Build/Scale tiers), for
    # Claude Opus 4.x / Sonnet 4.x (see TIERS_SOURCE). Haiku 4.5 is listed
    # higher at tiers 1, 3 and 4 (50K/10K, 1M/200K, 4M/800K ITPM/OTPM); give an organisation those limits if needed.
    # Token counting RPM and Message Batches RPM / queue per tier: the rate-limits page's tables
    # (Batches tier 1: 50 RPM, 100,000 requests in the processing queue; see docs/api-notes.md §1).
    "tier-1": RateLimits(50, 30_000, 8_000, count_tokens_rpm=100, batch_rpm=50, batch_queue=100_000),
    "tier-2": RateLimits(1_000, 450_000, 90_000, count_tokens_rpm=2_000, batch_rpm=1_000, batch_queue=200_000),
    "tier-3": RateLimits(2_000, 800_000, 160_000, count_tokens_rpm=4_000, batch_rpm=2_000, batch_queue=300_000),
    "tier-4": RateLimits(4_000, 2_000_000, 400_000, count_tokens_rpm=8_000, batch_rpm=4_000, batch_queue=500_000),
    # The current tiers (rate-limits page, 2026): Start, Build, Scale. Messages limits of the Opus 4.x,
    # Sonnet 4.x, Sonnet 5 and Haiku 4.5 rows (Fable 5 is lower); Message Batches RPM and processing
    # queue per tier. The token-counting RPM of these tiers was not found: not limited here.
    "start": RateLimits(1_000, 2_000_000, 400_000, batch_rpm=1_000, batch_queue=200_000),
    "build": RateLimits(5_000, 5_000_000, 1_000_000, batch_rpm=2_000, batch_queue=300_000),
    "scale": RateLimits(10_000, 10_000_000, 2_000_000, batch_rpm=4_000, batch_queue=500_000),
    "unlimited": RateLimits(_UNLIMITED, _UNLIMITED, _UNLIMITED),
}


def get_tier(tier: str | RateLimits) -> RateLimits:
    """Resolve a tier name (a key of :data:`TIERS`) or pass a :class:`RateLimits` through."""
    if isinstance(tier, RateLimits):
        return tier
    try:
        return TIERS[tier]
    except KeyError:
        raise ValueError(f"Unknown rate-limit tier {tier!r}; known tiers: {', '.join(TIERS)}") from None
