"""The lesson's workload: classify support tickets into one of four labels (``data/lesson03_tickets.csv``)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from ..models import DATA_DIR

from ..content import text_of

__all__ = ["LABELS", "LABEL_MAX_TOKENS", "TICKETS_CSV", "load_tickets", "classify_body", "label_of"]

LABELS = ("billing", "bug", "account", "shipping")
TICKETS_CSV = DATA_DIR / "lesson03_tickets.csv"


@lru_cache(maxsize=1)
def _tickets() -> Any:
    import pandas as pd

    return pd.read_csv(TICKETS_CSV)


def load_tickets(n: int | None = None) -> Any:
    """The first ``n`` tickets (all 2,000 by default) as a DataFrame: ticket_id, text, label, difficulty."""
    df = _tickets()
    return (df if n is None else df.head(n)).copy()


LABEL_MAX_TOKENS = 1024
"""``max_tokens`` of a label request. The label itself is a few tokens, but the 5.x models think by
default and "max_tokens still caps thinking plus text" (Opus 5 migration guide): a cap of a few
tokens returns a reply that is all ``thinking`` and no label whenever the model thinks. Output is
billed as generated and OTPM counts only generated tokens, so the room costs nothing."""


def classify_body(
    ticket: str, *, model: str = "claude-haiku-5-5", max_tokens: int = LABEL_MAX_TOKENS
) -> dict[str, Any]:
    """The Messages request body that asks for exactly one label for ``ticket`` (``max_tokens`` leaves
    room for thinking: :data:`LABEL_MAX_TOKENS`)."""
    prompt = (
        f"Classify this support ticket as one of: {', '.join(LABELS)}. Answer with the label only.\nTicket: {ticket}"
    )
    return {"model": model, "max_tokens": max_tokens, "messages": [{"role": "user", "content": prompt}]}


def label_of(message: Any) -> str:
    """The label a reply gave (its first text block, stripped and lower-cased)."""
    return text_of(message).strip().lower()
