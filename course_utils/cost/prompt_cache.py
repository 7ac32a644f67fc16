"""The economics of prompt caching: when a cache write pays for itself, and a layout that lets it.

Writing a prefix to the cache costs more than sending it (1.25x the input rate for a 5-minute
entry, 2x for a 1-hour one); each later read costs a fraction (0.1x on most models, read from
``data/pricing.csv`` because it differs per model). Sending a prefix ``1 + n`` times costs

* without caching: ``(1 + n) * input``
* with caching:    ``write + n * read``

so caching wins as soon as ``n > (write - input) / (input - read)`` reads follow the write:
:func:`break_even_reads`. Reads also refresh the entry's lifetime at no cost, so the reuses only
need to arrive within the TTL of each other.

The prompt cache matches a *prefix* (tools, then system, then messages, up to the block marked
with ``cache_control``): whatever changes between requests must come after everything that does
not. :func:`cached_layout` builds that layout.
"""

from __future__ import annotations

import math
from decimal import Decimal
from fractions import Fraction
from typing import Any, Sequence

from ..pricing import price

__all__ = ["break_even_reads", "break_even_from_multipliers", "cached_layout", "caching_cost"]


def break_even_from_multipliers(write: Fraction | Decimal | float, read: Fraction | Decimal | float) -> int:
    """Smallest number of reads after one write for which caching is strictly cheaper (multipliers of input)."""
    w, r = Fraction(str(write)), Fraction(str(read))
    if not 0 <= r < 1:
        raise ValueError(f"a cache read must cost less than an input token to ever pay off, got {read}x")
    if w <= 1:
        return 1 if w == 1 else 0
    # Caching is cheaper when w + n*r < 1 + n, i.e. n > (w - 1) / (1 - r).
    threshold = (w - 1) / (1 - r)
    return math.floor(threshold) + 1


def break_even_reads(model: str, ttl: str = "5m") -> int:
    """Reads after one write at which caching a prefix on ``model`` starts to save money (``ttl`` 5m or 1h)."""
    p = price(model)
    if ttl not in ("5m", "1h"):
        raise ValueError(f"ttl must be '5m' or '1h', got {ttl!r}")
    write = p.cache_write_5m_per_mtok if ttl == "5m" else p.cache_write_1h_per_mtok
    return break_even_from_multipliers(write / p.input_per_mtok, p.cache_read_per_mtok / p.input_per_mtok)


def caching_cost(model: str, prefix_tokens: int, sends: int, ttl: str | None = "5m") -> Decimal:
    """Dollars for the prefix alone over ``sends`` requests in one TTL: one write then reads, or ``ttl=None`` uncached."""
    if sends < 0 or prefix_tokens < 0:
        raise ValueError("sends and prefix_tokens must be >= 0")
    p = price(model)
    mtok = Decimal(1_000_000)
    if ttl is None or sends == 0:
        return p.input_per_mtok * prefix_tokens * sends / mtok
    write = p.cache_write_5m_per_mtok if ttl == "5m" else p.cache_write_1h_per_mtok
    return (write + p.cache_read_per_mtok * (sends - 1)) * prefix_tokens / mtok


def cached_layout(
    *,
    model: str,
    instructions: str,
    documents: Sequence[str],
    history: Sequence[dict[str, Any]],
    question: str,
    max_tokens: int,
    ttl: str = "5m",
) -> dict[str, Any]:
    """A Messages body with the stable parts first and one cache breakpoint after them.

    Order: ``instructions`` and ``documents`` in ``system`` (the same for every request; the
    breakpoint goes on the last document), then the conversation ``history``, then the new
    ``question``: the only parts that change come last, so each request reuses the cached prefix.
    """
    marker: dict[str, Any] = {"type": "ephemeral"} if ttl == "5m" else {"type": "ephemeral", "ttl": ttl}
    system: list[dict[str, Any]] = [{"type": "text", "text": instructions}]
    system += [{"type": "text", "text": doc} for doc in documents]
    system[-1] = {**system[-1], "cache_control": marker}
    return {
        "model": model,
        "max_tokens": max_tokens,
        "system": system,
        "messages": [*history, {"role": "user", "content": question}],
    }
