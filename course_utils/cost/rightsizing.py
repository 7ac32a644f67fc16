"""Right-sizing: ``max_tokens`` from observed output lengths, and which work can wait for a batch.

``max_tokens`` does not change what a complete answer costs (output is billed as generated), but
it bounds the worst case a spend guard must reserve and stops a runaway answer. Set it from the
observed distribution: a high percentile times a margin, so almost no real answer is cut
(``stop_reason == "max_tokens"``) while the reserve shrinks.

Batch eligibility: the Message Batches API halves every token price but answers within 24 hours
(most batches much sooner), so it suits work no user is waiting for.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Iterable

import numpy as np
import pandas as pd

__all__ = ["suggest_max_tokens", "truncation_rate", "batch_savings"]


def suggest_max_tokens(
    output_lengths: Iterable[int], *, quantile: float = 0.99, margin: float = 1.2, floor: int = 16
) -> int:
    """``max(floor, ceil(percentile(lengths, quantile) * margin))``: room for almost every observed answer."""
    lengths = np.asarray(list(output_lengths), dtype=float)
    if lengths.size == 0:
        raise ValueError("suggest_max_tokens needs at least one observed output length")
    if not 0 < quantile <= 1 or margin < 1:
        raise ValueError("quantile must be in (0, 1] and margin >= 1")
    return max(floor, math.ceil(float(np.quantile(lengths, quantile, method="inverted_cdf")) * margin))


def truncation_rate(output_lengths: Iterable[int], max_tokens: int) -> float:
    """Share of the observed answers that ``max_tokens`` would have cut short."""
    lengths = np.asarray(list(output_lengths))
    if lengths.size == 0:
        return 0.0
    return float((lengths > max_tokens).mean())


def batch_savings(frame: pd.DataFrame, features: Iterable[str]) -> Decimal:
    """Dollars saved by sending ``features``' non-batch requests through Message Batches (half price).

    ``frame`` is :func:`course_utils.cost.cost_frame` output; the batch discount is the model's
    ``batch_discount`` from the price table, applied by recomputing each row with ``batch=True``.
    """
    from .attribution import row_cost

    chosen = frame[frame["feature"].isin(list(features)) & ~frame["batch"].astype(bool)]
    return sum(
        (r["cost"] - row_cost({**r, "batch": True}) for r in chosen.to_dict("records")),
        Decimal(0),
    )
