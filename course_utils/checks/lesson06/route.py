"""Checks for exercise 6.4 ``route``: cheap first, escalate; graded on a hidden labelled set against
Sonnet 5.5 alone, accuracy and cost through the simulator's ledger."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from functools import lru_cache
from typing import Any

import pandas as pd

from ... import pricing
from ...cost import routing
from ...models import DATA_DIR
from ..forbid import forbid
from ..framework import Exercise, expect
from ..sim import probe

from .common import MID, awaited


# =============================================================================================
# 6.4 route(client, text, labels) -> str
# =============================================================================================
router = Exercise(
    "6.4",
    "A router that meets the target at the lowest cost",
    points=5,
    signature="await route(client, text, labels) -> str",
    time_limit=180,
    hints=[
        "Ask claude-haiku-5-5 twice, with label_request(text, labels, model=..., phrasing=0) and phrasing=1 "
        "(concurrently, asyncio.gather); if both replies are the same valid label, return it; otherwise ask "
        "claude-sonnet-5-5 once.",
        "Validate with parse_label(message, labels): None (not one of the labels) must escalate too.",
    ],
)

N_ROUTED = 200


@lru_cache(maxsize=1)
def _hidden_items() -> pd.DataFrame:
    df = pd.read_csv(DATA_DIR / "lesson06_labelled.csv")
    return df[df["split"] == "hidden"].head(N_ROUTED).reset_index(drop=True)


_BASELINES: dict[tuple[str, ...], tuple[float, Decimal]] = {}


async def _baseline(labels: tuple[str, ...]) -> tuple[float, Decimal]:
    """Sonnet 5.5 alone on the hidden set: its accuracy and cost (a probe of its own).

    A function of the fixed items and the probe's seed only, so it is measured once per process.
    """
    if labels in _BASELINES:
        return _BASELINES[labels]
    p = probe(tier="unlimited", tag="check06-mid")
    async with p:
        client = p.async_client()
        result = await routing.evaluate(routing.SingleModel(MID, labels), client, _hidden_items())
    _BASELINES[labels] = (result["accuracy"], p.cost())
    return _BASELINES[labels]


@router.case("accuracy within 1 point of Sonnet 5.5 at <= 40% of its cost, on a hidden labelled set (ledger)")
async def _route(fn) -> None:
    items = _hidden_items()
    labels = ("billing", "bug", "account", "shipping")
    mid_accuracy, mid_cost = await _baseline(labels)
    p = probe(tier="unlimited", tag="check06-route")
    client = p.async_client()
    gate = asyncio.Semaphore(32)

    async def one(text: str) -> Any:
        async with gate:
            return await awaited(fn(client, text, list(labels)), "route")

    async with p:
        with forbid(
            fn,
            {"cost.CascadeRouter.classify": routing.CascadeRouter.classify, "cost.evaluate": routing.evaluate},
            task="route",
            hint="Write the routing yourself (label_request and parse_label are fine); {name} is the reference.",
        ):
            answers = await asyncio.gather(*(one(t) for t in items["text"]))
    accuracy = sum(str(a).strip().lower() == t for a, t in zip(answers, items["label"])) / len(items)
    spent = p.cost()
    expect(
        accuracy >= mid_accuracy - 0.01,
        f"accuracy {accuracy:.1%} is below the target {mid_accuracy - 0.01:.1%} (Sonnet 5.5's {mid_accuracy:.1%} "
        "minus 1 point)",
        expected=f">= {mid_accuracy - 0.01:.1%}",
        got=f"{accuracy:.1%}",
        hint="The cheap model alone is wrong on the hard items: detect them (two phrasings that disagree, or an "
        "invalid label) and send only those to the stronger model.",
    )
    share = spent / mid_cost
    expect(
        share <= Decimal("0.40"),
        f"the router cost {pricing.format_usd(spent)}, {share:.0%} of Sonnet 5.5's {pricing.format_usd(mid_cost)} "
        "on the same items (ledger); the target is at most 40%",
        expected="<= 40%",
        got=f"{share:.0%}",
        hint="Answer most items with the cheap model (Haiku 5.5 costs 1/20 of Sonnet 5.5) and escalate only when "
        "it is unsure; escalating to Opus, or asking Sonnet every time, costs more than the target allows.",
    )
