"""What a workload cost, synchronously vs by batch, read from the simulator's ledger.

The ledger has one row per synchronous request (``endpoint == "/v1/messages"``) and one per
finished batch request (``batch == True``, billed at the 50% batch discount, succeeded only).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Iterable

import pandas as pd

__all__ = ["to_decimal", "CostComparison", "sync_vs_batch", "billed_twice"]


def to_decimal(values: Iterable[object]) -> Decimal:
    """Exact sum of a ledger's ``cost_usd`` column (stored as float for display; ``str`` recovers it)."""
    return sum((Decimal(str(v)) for v in values), Decimal(0))


def _sync_rows(ledger: pd.DataFrame) -> pd.DataFrame:
    return ledger[(ledger["endpoint"] == "/v1/messages") & (~ledger["batch"].astype(bool))]


def _batch_rows(ledger: pd.DataFrame) -> pd.DataFrame:
    return ledger[ledger["batch"].astype(bool)]


@dataclass(frozen=True)
class CostComparison:
    """The same workload run synchronously and by batch, from the ledger (see :func:`sync_vs_batch`)."""

    table: pd.DataFrame

    def frame(self) -> pd.DataFrame:
        """Rows ``sync`` and ``batch`` (index ``mode``): ``requests``, ``billed_requests``,
        ``input_tokens``, ``output_tokens``, ``cost_usd`` and ``cost_per_billed_usd`` (exact ``Decimal``)."""
        return self.table.copy()

    def summary(self) -> dict[str, float | int]:
        """``sync_cost_usd``, ``batch_cost_usd``, ``saving`` (the fraction of the sync cost the batch
        saved) and the billed requests of each mode."""
        sync, batch = self.table.loc["sync"], self.table.loc["batch"]
        saving = 1 - batch["cost_usd"] / sync["cost_usd"] if sync["cost_usd"] else Decimal(0)
        return {
            "sync_cost_usd": float(sync["cost_usd"]),
            "batch_cost_usd": float(batch["cost_usd"]),
            "saving": float(saving),
            "sync_billed_requests": int(sync["billed_requests"]),
            "batch_billed_requests": int(batch["billed_requests"]),
        }


def sync_vs_batch(sync_ledger: pd.DataFrame, batch_ledger: pd.DataFrame) -> CostComparison:
    """Requests, billed requests, tokens and exact cost of the synchronous rows of ``sync_ledger``
    and the batch rows of ``batch_ledger``."""
    out = []
    for mode, rows in (("sync", _sync_rows(sync_ledger)), ("batch", _batch_rows(batch_ledger))):
        billed = rows[rows["status"] == 200]
        cost = to_decimal(billed["cost_usd"])
        out.append(
            {
                "mode": mode,
                "requests": len(rows),
                "billed_requests": len(billed),
                "input_tokens": int(billed["input_tokens"].sum()),
                "output_tokens": int(billed["output_tokens"].sum()),
                "cost_usd": cost,
                "cost_per_billed_usd": cost / len(billed) if len(billed) else Decimal(0),
            }
        )
    return CostComparison(pd.DataFrame(out).set_index("mode"))


def billed_twice(ledger: pd.DataFrame) -> list[str]:
    """custom_ids with more than one billed (succeeded) batch row: paid for twice."""
    rows = _batch_rows(ledger)
    billed = rows[rows["status"] == 200]
    counts = billed["custom_id"].value_counts()
    return sorted(counts[counts > 1].index)
