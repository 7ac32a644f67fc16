"""What-if on a ledger: the same requests, re-priced as if one technique had been in place.

Each function takes :func:`course_utils.cost.cost_frame` output and returns a copy with the
changed rows re-priced (``cost`` recomputed with :func:`row_cost`), so savings come from the same
price table as the bill. What each technique does to *quality* is measured elsewhere (on the
simulator) and reported next to these dollars.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Iterable

import pandas as pd

from .attribution import row_cost

__all__ = ["with_exact_cache", "with_prompt_budget", "with_batch", "with_cost_factor", "total"]


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
