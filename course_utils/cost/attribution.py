"""Cost attribution: usage rows (a ledger, or SDK responses) turned into dollars per feature, model and day.

A *usage row* is a mapping with the Messages API's usage field names plus where it came from::

    {"ts": "2027-01-11T09:30:00Z", "feature": "chat", "model": "claude-sonnet-5-5", "batch": False,
     "input_tokens": 1200, "cache_creation_5m": 0, "cache_creation_1h": 0,
     "cache_read_input_tokens": 0, "output_tokens": 250}

Prices come from :func:`course_utils.pricing.cost`: uncached input at the base rate, cache reads at
0.1x, 5-minute writes at 1.25x, 1-hour writes at 2x, output at the output rate, and the batch
discount on every line of a batch request. Money stays :class:`decimal.Decimal` until display.
"""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Iterable, Mapping, Sequence

import pandas as pd

from ..pricing import cost

__all__ = ["usage_of", "row_cost", "response_row", "cost_frame", "cost_report", "LEDGER_COLUMNS"]

LEDGER_COLUMNS: tuple[str, ...] = (
    "ts",
    "feature",
    "model",
    "batch",
    "input_tokens",
    "cache_creation_5m",
    "cache_creation_1h",
    "cache_read_input_tokens",
    "output_tokens",
)
"""The columns a usage row needs (``request_hash`` and others are kept but not required)."""


def _get(row: Any, name: str, default: Any = None) -> Any:
    if isinstance(row, Mapping):
        return row.get(name, default)
    return getattr(row, name, default)


def _int(row: Any, name: str) -> int:
    value = _get(row, name, 0)
    if value is None or (isinstance(value, float) and value != value):  # NaN from a sparse frame
        return 0
    if isinstance(value, bool) or int(value) != value or value < 0:
        raise ValueError(f"usage field {name!r} must be a non-negative whole token count, got {value!r}")
    return int(value)


def usage_of(row: Any) -> dict[str, Any]:
    """The usage dict :func:`course_utils.pricing.cost` reads, from a ledger row (5m/1h write columns)."""
    write_5m, write_1h = _int(row, "cache_creation_5m"), _int(row, "cache_creation_1h")
    return {
        "input_tokens": _int(row, "input_tokens"),
        "output_tokens": _int(row, "output_tokens"),
        "cache_read_input_tokens": _int(row, "cache_read_input_tokens"),
        "cache_creation_input_tokens": write_5m + write_1h,
        "cache_creation": {"ephemeral_5m_input_tokens": write_5m, "ephemeral_1h_input_tokens": write_1h},
    }


def _batch(value: Any) -> bool:
    if isinstance(value, str):
        if value.strip().lower() not in ("true", "false", "1", "0", ""):
            raise ValueError(f"batch must be true or false, got {value!r}")
        return value.strip().lower() in ("true", "1")
    return bool(value)


def row_cost(row: Any) -> Decimal:
    """Exact USD cost of one usage row (its ``model``, its token classes, its ``batch`` flag)."""
    model = _get(row, "model")
    if not model:
        raise ValueError(f"usage row has no model: {row!r}")
    return cost(usage_of(row), str(model), batch=_batch(_get(row, "batch", False)))


def response_row(message: Any, *, feature: str, ts: Any, batch: bool = False) -> dict[str, Any]:
    """A ledger row from an SDK ``Message`` (or its JSON): its model and usage, with the 5m/1h write split.

    Cache writes without a TTL breakdown count as 5-minute writes (the API's default TTL).
    """
    usage = _get(message, "usage")
    if usage is None:
        raise ValueError("the message has no usage to attribute")
    created = int(_get(usage, "cache_creation_input_tokens", 0) or 0)
    split = _get(usage, "cache_creation")
    write_1h = int(_get(split, "ephemeral_1h_input_tokens", 0) or 0) if split is not None else 0
    return {
        "ts": ts,
        "feature": feature,
        "model": _get(message, "model"),
        "batch": batch,
        "input_tokens": int(_get(usage, "input_tokens", 0) or 0),
        "cache_creation_5m": created - write_1h,
        "cache_creation_1h": write_1h,
        "cache_read_input_tokens": int(_get(usage, "cache_read_input_tokens", 0) or 0),
        "output_tokens": int(_get(usage, "output_tokens", 0) or 0),
    }


def _day(ts: Any) -> str:
    if isinstance(ts, (int, float)):
        return datetime.fromtimestamp(ts, tz=timezone.utc).date().isoformat()
    if isinstance(ts, datetime):
        return ts.astimezone(timezone.utc).date().isoformat()
    return datetime.fromisoformat(str(ts).replace("Z", "+00:00")).astimezone(timezone.utc).date().isoformat()


def cost_frame(rows: Iterable[Any] | pd.DataFrame) -> pd.DataFrame:
    """One row per request with ``day``, ``prompt_tokens`` (input + cache reads + writes) and ``cost`` (Decimal)."""
    records = rows.to_dict("records") if isinstance(rows, pd.DataFrame) else [dict(r) for r in rows]
    out = []
    for r in records:
        usage = usage_of(r)
        out.append(
            {
                **r,
                "day": _day(r["ts"]) if "ts" in r else None,
                "batch": _batch(r.get("batch", False)),
                "prompt_tokens": usage["input_tokens"]
                + usage["cache_read_input_tokens"]
                + usage["cache_creation_input_tokens"],
                "cost": row_cost(r),
            }
        )
    return pd.DataFrame(out)


def cost_report(rows: Iterable[Any] | pd.DataFrame, by: Sequence[str] = ("day", "feature")) -> pd.DataFrame:
    """Requests, tokens and exact cost (Decimal ``cost``; float ``cost_usd`` for plots) grouped ``by``."""
    frame = rows if isinstance(rows, pd.DataFrame) and "cost" in rows else cost_frame(rows)
    if len(frame) == 0:
        return pd.DataFrame(columns=[*by, "requests", "prompt_tokens", "output_tokens", "cost", "cost_usd"])
    grouped = frame.groupby(list(by), sort=True)
    report = grouped.agg(
        requests=("cost", "size"),
        prompt_tokens=("prompt_tokens", "sum"),
        output_tokens=("output_tokens", "sum"),
    )
    # Sum Decimals with Python's sum: pandas would turn them into floats.
    report["cost"] = grouped["cost"].apply(lambda s: sum(s, Decimal(0)))
    report["cost_usd"] = report["cost"].astype(float)
    return report.reset_index()
