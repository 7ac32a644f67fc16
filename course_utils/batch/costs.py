"""What a workload cost, synchronously vs by batch, read from the simulator's ledger.

The ledger has one row per synchronous request (``endpoint == "/v1/messages"``) and one per
finished batch request (``batch == True``, billed at the 50% batch discount, succeeded only).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Iterable

import pandas as pd

__all__ = ["to_decimal", "ledger_cost", "sync_vs_batch", "billed_twice"]


def to_decimal(values: Iterable[object]) -> Decimal:
    """Exact sum of a ledger's ``cost_usd`` column (stored as float for display; ``str`` recovers it)."""
    return sum((Decimal(str(v)) for v in values), Decimal(0))


def _sync_rows(ledger: pd.DataFrame) -> pd.DataFrame:
    return ledger[(ledger["endpoint"] == "/v1/messages") & (~ledger["batch"].astype(bool))]


def _batch_rows(ledger: pd.DataFrame) -> pd.DataFrame:
    return ledger[ledger["batch"].astype(bool)]


def ledger_cost(ledger: pd.DataFrame, *, batch: bool) -> Decimal:
    """Total billed dollars of the synchronous (``batch=False``) or batch requests in ``ledger``."""
    rows = _batch_rows(ledger) if batch else _sync_rows(ledger)
    return to_decimal(rows["cost_usd"])


def sync_vs_batch(sync_ledger: pd.DataFrame, batch_ledger: pd.DataFrame) -> pd.DataFrame:
    """A two-row table (``sync``, ``batch``): requests, billed requests, tokens and exact cost."""
    out = []
    for mode, rows in (("sync", _sync_rows(sync_ledger)), ("batch", _batch_rows(batch_ledger))):
        billed = rows[rows["status"] == 200]
        out.append({
            "mode": mode,
            "requests": len(rows),
            "billed": len(billed),
            "input_tokens": int(billed["input_tokens"].sum()),
            "output_tokens": int(billed["output_tokens"].sum()),
            "cost_usd": to_decimal(billed["cost_usd"]),
        })
    return pd.DataFrame(out).set_index("mode")


def billed_twice(ledger: pd.DataFrame) -> list[str]:
    """custom_ids with more than one billed (succeeded) batch row: paid for twice."""
    rows = _batch_rows(ledger)
    billed = rows[rows["status"] == 200]
    counts = billed["custom_id"].value_counts()
    return sorted(counts[counts > 1].index)
