"""Read an organisation's rate limits from the Rate Limits API instead of hard-coding them.

The Rate Limits API (https://platform.claude.com/docs/en/manage-claude/rate-limits-api) lists "the
rate limits configured for your organization and its workspaces": one entry per rate-limit group
("either a model family or an API-surface category such as the Message Batches API"), each with its
limiter values and, for a model group, the models that share it. The SDK reads it with
``client.organization.rate_limits.list(model=...)``; on the real API the client needs an Admin API
key. Every key and workspace of the organisation draws on these limits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["ModelLimits", "read_rate_limits", "aread_rate_limits"]

# The organisation's input limit on current models is cache-aware ("on current models the
# organization's input-token limit usually has this type"); older entries may list the plain one.
_INPUT_TYPES = ("input_tokens_per_minute_cache_aware", "input_tokens_per_minute")


@dataclass(frozen=True)
class ModelLimits:
    """The per-minute limits of one model group (usable wherever ``RateBudget.from_limits`` is)."""

    group: str
    models: tuple[str, ...]
    requests_per_minute: int
    input_tokens_per_minute: int
    output_tokens_per_minute: int


def _from_entry(entry: Any, model: str) -> ModelLimits:
    values = {v.type: int(v.value) for v in entry.limits}
    missing = [t for t in ("requests_per_minute", "output_tokens_per_minute") if t not in values]
    itpm = next((values[t] for t in _INPUT_TYPES if t in values), None)
    if missing or itpm is None:
        raise ValueError(f"the rate limits listed for {model!r} have no {missing or 'input-token'} limit: {values}")
    return ModelLimits(
        group=getattr(entry.group, "display_name", None) or entry.group.type,
        models=tuple(entry.models or ()),
        requests_per_minute=values["requests_per_minute"],
        input_tokens_per_minute=itpm,
        output_tokens_per_minute=values["output_tokens_per_minute"],
    )


def read_rate_limits(client: Any, model: str) -> ModelLimits:
    """The organisation's limits for ``model``'s group (an ``anthropic.Anthropic`` client)."""
    page = client.organization.rate_limits.list(model=model)
    if not page.data:
        raise ValueError(f"no rate limits listed for {model!r}")
    return _from_entry(page.data[0], model)


async def aread_rate_limits(client: Any, model: str) -> ModelLimits:
    """The same with an ``anthropic.AsyncAnthropic`` client."""
    page = await client.organization.rate_limits.list(model=model)
    if not page.data:
        raise ValueError(f"no rate limits listed for {model!r}")
    return _from_entry(page.data[0], model)
