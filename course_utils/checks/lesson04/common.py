"""What every lesson 04 check shares: the model, the id column, the enrichment prompt, sample reviews."""

from __future__ import annotations

from typing import Any

import pandas as pd

from ..framework import expect
from ...concurrency.workload import LABEL_MAX_TOKENS

MODEL = "claude-haiku-5-5"
ID_COLUMN = "review_id"


def make_params(row: Any) -> dict[str, Any]:
    """The Messages body for one review (the notebook's enrichment prompt, short)."""
    return {
        "model": MODEL,
        "max_tokens": LABEL_MAX_TOKENS,  # room for thinking: it counts toward max_tokens
        "system": "Classify the sentiment of the product review as one of: positive, negative, neutral. "
        "Answer with the label only.",
        "messages": [{"role": "user", "content": str(row["text"]).strip()}],
    }


def sample_reviews(n: int, *, empty: tuple[int, ...] = ()) -> pd.DataFrame:
    return pd.DataFrame(
        {
            ID_COLUMN: [f"B0C{i % 7}K{i:03d}/R{i:05d}" for i in range(n)],
            "text": [
                "" if i in empty else f"Review {i}: the kettle {'works' if i % 2 else 'leaks'}." for i in range(n)
            ],
        }
    )


def frame_change(df: pd.DataFrame, before: pd.DataFrame) -> str | None:
    """What changed in ``df`` since ``before`` (a copy), or None."""
    if list(df.columns) != list(before.columns):
        added = [c for c in df.columns if c not in before.columns]
        gone = [c for c in before.columns if c not in df.columns]
        return f"columns added {added}, removed {gone}" if added or gone else f"columns reordered: {list(df.columns)}"
    if len(df) != len(before) or not df.index.equals(before.index):
        return f"rows changed: {len(before)} before, {len(df)} after"
    for col in df.columns:
        if not df[col].equals(before[col]):
            return f"column {col!r} changed"
    return None


def expect_frame_unchanged(df: pd.DataFrame, before: pd.DataFrame, what: str = "build_batches") -> None:
    change = frame_change(df, before)
    expect(
        change is None,
        f"{what} changed the caller's DataFrame ({change})",
        hint="Work on the rows you read (df.to_dict('records')) or on a copy (df.assign(...), df.copy()): the "
        "caller's frame is theirs.",
    )


ABSENT = object()


def wait_until_ended(p: Any, client: Any, batch_ids: list[str]) -> None:
    """Let the probe's (virtual) time pass until every batch has ended."""
    for _ in range(1000):
        if all(client.messages.batches.retrieve(b).processing_status == "ended" for b in batch_ids):
            return
        p.server.advance(1.0)
    raise RuntimeError("check: a batch did not end")
