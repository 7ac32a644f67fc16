"""Lesson 06's workloads: the shipped data sets, and measurements on the simulator (via usage).

Every figure comes from what ran: answers are read by content-block type, dollars from each
response's ``usage`` through :func:`course_utils.pricing.cost`.
"""

from __future__ import annotations

import asyncio
import json
import time
from decimal import Decimal
from functools import lru_cache
from typing import Any, Callable, Sequence

import pandas as pd

from ..content import text_of
from ..models import DATA_DIR
from ..pricing import cost
from ..progress import ProgressCallback, ProgressEvent
from ..tokens import encoding
from .attribution import cost_frame
from .routing import Classifier, evaluate

__all__ = [
    "load_ledger",
    "load_recall",
    "load_cache_pairs",
    "load_labelled",
    "keep_head",
    "keep_tail",
    "recall_eval",
    "policy_table",
    "RECALL_SYSTEM",
]

RECALL_SYSTEM = "Answer the user's question from these notes.\n"


@lru_cache(maxsize=1)
def _ledger() -> pd.DataFrame:
    return cost_frame(pd.read_csv(DATA_DIR / "lesson06_ledger.csv.gz"))


def load_ledger() -> pd.DataFrame:
    """The incident week (``data/lesson06_ledger.csv.gz``) priced per request (:func:`cost_frame`)."""
    return _ledger().copy()


def load_recall(n: int | None = None) -> list[dict[str, Any]]:
    """The first ``n`` fact-recall items (context, question, answer, position)."""
    with open(DATA_DIR / "lesson06_recall.jsonl", encoding="utf-8") as fh:
        items = [json.loads(line) for line in fh]
    return items if n is None else items[:n]


def load_cache_pairs() -> pd.DataFrame:
    """Paraphrase and near-miss question pairs (stored, asked, kind)."""
    return pd.read_csv(DATA_DIR / "lesson06_cache_pairs.csv")


def load_labelled(n: int | None = None, split: str = "dev") -> pd.DataFrame:
    """Labelled tickets of ``split`` (``dev``; ``hidden`` is check 6.4's)."""
    df = pd.read_csv(DATA_DIR / "lesson06_labelled.csv")
    df = df[df["split"] == split].reset_index(drop=True)
    return df if n is None else df.head(n)


def keep_head(context: str, question: str, budget: int) -> str:
    """The naive cut: the first ``budget`` tokens."""
    return encoding().decode(encoding().encode(context)[:budget])


def keep_tail(context: str, question: str, budget: int) -> str:
    """The other naive cut: the last ``budget`` tokens."""
    return encoding().decode(encoding().encode(context)[-budget:]) if budget > 0 else ""


async def recall_eval(
    client: Any,
    items: Sequence[dict[str, Any]],
    *,
    method: str,
    shrink: Callable[[str, str, int], str] | None,
    budget: int,
    model: str = "claude-haiku-5-5",
) -> dict[str, Any]:
    """Ask each item's question with its context (shrunk to ``budget`` unless ``shrink`` is None).

    Returns the share of answers containing the fact, mean input and output tokens and total cost
    (Decimal), all from the replies and their usage.
    """

    async def one(item: dict[str, Any]) -> tuple[bool, int, Decimal, int]:
        context = item["context"] if shrink is None else shrink(item["context"], item["question"], budget)
        reply = await client.messages.create(
            model=model,
            max_tokens=100,
            system=RECALL_SYSTEM + context,
            messages=[{"role": "user", "content": item["question"]}],
        )
        usage = reply.usage
        return item["answer"] in text_of(reply), usage.input_tokens, cost(usage, model), usage.output_tokens

    results = await asyncio.gather(*(one(item) for item in items))
    return {
        "method": method,
        "budget": budget if shrink is not None else None,
        "recall": sum(r[0] for r in results) / len(results),
        "input_tokens": sum(r[1] for r in results) / len(results),
        "output_tokens": sum(r[3] for r in results) / len(results),
        "cost": sum((r[2] for r in results), Decimal(0)),
    }


async def policy_table(
    client: Any, items: pd.DataFrame, policies: Sequence[Classifier], *, on_progress: ProgressCallback | None = None
) -> pd.DataFrame:
    """:func:`evaluate` for each policy on ``items``, one row each; ``on_progress`` after each policy."""
    rows = []
    started = time.perf_counter()
    for done, policy in enumerate(policies, 1):
        rows.append(await evaluate(policy, client, items))
        if on_progress is not None:
            on_progress(ProgressEvent(done, len(policies), time.perf_counter() - started, policy.name))
    return pd.DataFrame(rows).set_index("policy")
