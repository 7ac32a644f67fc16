"""The lesson's workload: classify support tickets into one of four labels (``data/lesson03_tickets.csv``)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from ..models import DATA_DIR

from ..content import text_of

__all__ = ["LABELS", "TICKETS_CSV", "load_tickets", "classify_body", "label_of"]

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


def classify_body(ticket: str, *, model: str = "claude-haiku-5-5", max_tokens: int = 5) -> dict[str, Any]:
    """The Messages request body that asks for exactly one label for ``ticket``."""
    prompt = (
        f"Classify this support ticket as one of: {', '.join(LABELS)}. Answer with the label only.\nTicket: {ticket}"
    )
    return {"model": model, "max_tokens": max_tokens, "messages": [{"role": "user", "content": prompt}]}


def label_of(message: Any) -> str:
    """The label a reply gave (its first text block, stripped and lower-cased)."""
    return text_of(message).strip().lower()
