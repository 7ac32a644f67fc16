"""The model catalog (``data/models.csv``): context windows, output limits, latency and quality.

Shared by the simulator (latency, context checks, classification accuracy) and by lesson code
(routing, budgets), so there is one table to edit.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

__all__ = ["ModelSpec", "DATA_DIR", "catalog", "get_model", "UnknownModelError", "DEFAULT_MODEL"]

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
DEFAULT_MODEL = "claude-haiku-5-5"


class UnknownModelError(KeyError):
    """Raised for a model id the catalog does not list."""


@dataclass(frozen=True)
class ModelSpec:
    """One row of the model catalog."""

    id: str
    display_name: str
    created_at: str
    context_window: int
    max_output: int
    ttft_s: float
    """Median time to first token at ``time_scale=1``, in seconds."""
    output_tps: float
    """Median output rate at ``time_scale=1``, tokens per second."""
    quality: float
    """Probability (0..1) of labelling an item of average difficulty correctly."""
    verbosity: float
    """Relative length of free-form answers (1.0 = balanced)."""
    min_cache_tokens: int
    """Shortest prefix that prompt caching will cache for this model."""
    tier: str
    forced_tool_use: bool = True
    """Whether ``tool_choice`` of type ``any``/``tool`` is accepted (Sonnet 5.5 refuses it)."""


@lru_cache(maxsize=1)
def catalog() -> dict[str, ModelSpec]:
    """All models, keyed by id, in catalog order."""
    rows: dict[str, ModelSpec] = {}
    with open(DATA_DIR / "models.csv", newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            rows[row["id"]] = ModelSpec(
                id=row["id"],
                display_name=row["display_name"],
                created_at=row["created_at"],
                context_window=int(row["context_window"]),
                max_output=int(row["max_output"]),
                ttft_s=float(row["ttft_s"]),
                output_tps=float(row["output_tps"]),
                quality=float(row["quality"]),
                verbosity=float(row["verbosity"]),
                min_cache_tokens=int(row["min_cache_tokens"]),
                tier=row["tier"],
                forced_tool_use=row.get("forced_tool_use", "true").strip().lower() == "true",
            )
    return rows


def get_model(model_id: str) -> ModelSpec:
    """Look up a model by id; raises :class:`UnknownModelError` if it is not in the catalog."""
    try:
        return catalog()[model_id]
    except KeyError:
        raise UnknownModelError(model_id) from None
