"""What-if on a ledger: the same requests, re-priced as if one technique had been in place.

Each function takes :func:`course_utils.cost.cost_frame` output and returns a copy with the
changed rows re-priced (``cost`` recomputed with :func:`row_cost`), so savings come from the same
price table as the bill. What each technique does to *quality* is measured elsewhere (on the
simulator) and reported next to these dollars.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Callable, Iterable, Sequence

import pandas as pd

from .attribution import row_cost

__all__ = [
    "with_exact_cache",
    "with_prompt_budget",
    "with_prompt_caching",
    "with_output_tokens",
    "with_batch",
    "with_cost_factor",
    "total",
    "apply_steps",
]


def total(frame: pd.DataFrame) -> Decimal:
    """Exact sum of the ``cost`` column."""
    return sum(frame["cost"], Decimal(0))


def _reprice(frame: pd.DataFrame, mask: pd.Series) -> pd.DataFrame:
    out = frame.copy()
    out.loc[mask, "cost"] = [row_cost(r) for r in out.loc[mask].to_dict("records")]
    return out


def with_exact_cache(frame: pd.DataFrame, feature: str, ttl_s: float) -> pd.DataFrame:
    """Requests of ``feature`` whose ``request_hash`` was answered less than ``ttl_s`` before cost nothing.

    A hit does not refresh the entry: a stored answer expires ``ttl_s`` after the request that
    stored it, as :class:`ExactCache` does. Adds a boolean ``cache_hit`` column.
    """
    out = frame.copy()
    out["cache_hit"] = False
    rows = out[out["feature"] == feature].sort_values("ts")
    stored_at: dict[str, float] = {}
    hits = []
    for index, ts, digest in zip(rows.index, pd.to_datetime(rows["ts"]), rows["request_hash"]):
        now = ts.timestamp()
        if digest in stored_at and now - stored_at[digest] < ttl_s:
            hits.append(index)
        else:
            stored_at[digest] = now
    out.loc[hits, "cache_hit"] = True
    out.loc[hits, "cost"] = [Decimal(0)] * len(hits)
    return out


def with_prompt_budget(frame: pd.DataFrame, feature: str, budget: int) -> pd.DataFrame:
    """``feature``'s uncached input capped at ``budget`` tokens (compression), re-priced."""
    out = frame.copy()
    mask = (out["feature"] == feature) & (out["input_tokens"] > budget)
    out.loc[mask, "input_tokens"] = budget
    out.loc[mask, "prompt_tokens"] = out.loc[
        mask, ["input_tokens", "cache_read_input_tokens", "cache_creation_5m", "cache_creation_1h"]
    ].sum(axis=1)
    return _reprice(out, mask)


def with_prompt_caching(
    frame: pd.DataFrame, feature: str, *, read_share: float, write_share: float, scale: float = 1.0
) -> pd.DataFrame:
    """``feature``'s prompts re-split as a measured conversation split its own, and re-priced.

    Each row's prompt (uncached input + cache reads + cache writes) is scaled by ``scale`` (e.g. the
    measured tokens per turn after compressing retrieved notes, relative to resending them), then
    ``read_share`` of it is billed as cache reads, ``write_share`` as 5-minute cache writes and the
    rest as uncached input. The shares come from a simulated conversation (:mod:`.chat_history`):
    an estimate that depends on how long conversations are and how close together their turns come.
    Depends only on each row's prompt, so applying it again (another policy) replaces the split.
    """
    if not (0 <= read_share and 0 <= write_share and read_share + write_share <= 1):
        raise ValueError(f"shares must be >= 0 and sum to <= 1, got {read_share} and {write_share}")
    if scale < 0:
        raise ValueError(f"scale must be >= 0, got {scale}")
    out = frame.copy()
    mask = out["feature"] == feature
    classes = ["input_tokens", "cache_read_input_tokens", "cache_creation_5m", "cache_creation_1h"]
    prompt = (out.loc[mask, classes].sum(axis=1) * scale).round().astype(int)
    reads = (prompt * read_share).round().astype(int)
    writes = (prompt * write_share).round().astype(int)
    out.loc[mask, "cache_read_input_tokens"] = reads
    out.loc[mask, "cache_creation_5m"] = writes
    out.loc[mask, "cache_creation_1h"] = 0
    out.loc[mask, "input_tokens"] = prompt - reads - writes
    out.loc[mask, "prompt_tokens"] = prompt
    return _reprice(out, mask)


def with_output_tokens(frame: pd.DataFrame, feature: str, tokens: int) -> pd.DataFrame:
    """``feature``'s output capped at ``tokens`` per request (e.g. what a label bills once it no longer thinks)."""
    if tokens < 0:
        raise ValueError(f"tokens must be >= 0, got {tokens}")
    out = frame.copy()
    mask = (out["feature"] == feature) & (out["output_tokens"] > tokens)
    out.loc[mask, "output_tokens"] = tokens
    return _reprice(out, mask)


def with_batch(frame: pd.DataFrame, features: Iterable[str]) -> pd.DataFrame:
    """``features`` sent through Message Batches (every token class at the batch discount)."""
    out = frame.copy()
    mask = out["feature"].isin(list(features)) & ~out["batch"].astype(bool)
    out.loc[mask, "batch"] = True
    return _reprice(out, mask)


def with_cost_factor(frame: pd.DataFrame, feature: str, factor: Decimal) -> pd.DataFrame:
    """``feature``'s cost times ``factor`` (e.g. a router's measured cost relative to the model it replaces)."""
    if factor < 0:
        raise ValueError(f"factor must be >= 0, got {factor}")
    out = frame.copy()
    mask = out["feature"] == feature
    out.loc[mask, "cost"] = [c * factor for c in out.loc[mask, "cost"]]
    return out


Step = tuple[str, Callable[[pd.DataFrame], pd.DataFrame], str]


def apply_steps(frame: pd.DataFrame, steps: Sequence[Step]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each ``(name, apply, quality)`` step alone and cumulatively: (a table per step, the final frame).

    The table: dollars the step saves on ``frame`` alone, the total after it and every step before
    it, and the ``quality`` note measured elsewhere.
    """
    rows, cumulative = [], frame
    for name, apply, quality in steps:
        cumulative = apply(cumulative)
        rows.append(
            {
                "technique": name,
                "saved_alone_usd": float(total(frame) - total(apply(frame))),
                "total_after_usd": float(total(cumulative)),
                "quality": quality,
            }
        )
    return pd.DataFrame(rows).set_index("technique"), cumulative
