"""The wording of the limiter's 429s, as the API words them (message texts only, no logic)."""

from __future__ import annotations

import hashlib
import uuid

__all__ = [
    "org_id",
    "prompt_too_large",
    "limit_exceeded",
    "endpoint_exceeded",
    "queue_exceeded",
    "acceleration_exceeded",
]

DOCS = "https://docs.claude.com/en/api/rate-limits"
SALES = "https://claude.com/contact-sales"
UNITS = {"requests": "requests", "input": "input tokens", "output": "output tokens"}


def org_id(api_key: str) -> str:
    """A stable stand-in for the organization id the API names; never echo the key itself."""
    return str(uuid.UUID(bytes=hashlib.sha256(api_key.encode()).digest()[:16], version=4))


def prompt_too_large(whose: str, scope: str, itpm: int, model: str, uncached: int) -> str:
    return (
        f"This request would exceed your {whose} rate limit of {itpm:,} input tokens per minute ({scope}, "
        f"model: {model}): its {uncached:,} uncached input tokens are more than the limit allows "
        f"in a minute, so retrying cannot succeed. Shorten the prompt, cache its stable prefix "
        f"(cache reads do not count towards this limit), or use a higher rate-limit tier. "
        f"For details, refer to: {DOCS}."
    )


def limit_exceeded(whose: str, scope: str, per_minute: float, binding: str, model: str) -> str:
    return (
        f"This request would exceed your {whose} rate limit of {int(per_minute):,} {UNITS[binding]} "
        f"per minute ({scope}, model: {model}). For details, refer to: {DOCS}. "
        f"You can see the response headers for current usage. Please reduce the prompt length or "
        f"the maximum tokens requested, or try again later. You may also contact sales at {SALES} "
        f"to discuss your options for a rate limit increase."
    )


def endpoint_exceeded(rpm: int, label: str, api_key: str) -> str:
    return (
        f"This request would exceed your organization's rate limit of {rpm:,} requests per minute "
        f"for the {label} (org: {org_id(api_key)}). For details, refer to: {DOCS}."
    )


def queue_exceeded(limit: int, api_key: str, queued: int, adding: int, retryable: bool) -> str:
    advice = (
        "Wait for batches to finish, or send fewer requests per batch. "
        if retryable
        else "This batch alone is larger than the limit; split it. "
    )
    return (
        f"This request would exceed your organization's limit of {limit:,} batch requests in the processing "
        f"queue (org: {org_id(api_key)}): {queued:,} are waiting and this batch adds {adding:,}. "
        + advice
        + f"For details, refer to: {DOCS}."
    )


def acceleration_exceeded(recent: int, allowed: int, window_s: float) -> str:
    # The page documents acceleration limits but not their wording; this says what happened.
    return (
        f"Your organization's usage increased too sharply: {recent:,} requests in the last {window_s:g} seconds, "
        f"where its recent traffic allows {allowed:,} (acceleration limits). Ramp up your traffic gradually "
        f"and maintain consistent usage patterns. For details, refer to: {DOCS}."
    )
