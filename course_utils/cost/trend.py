"""Prompt-length trend and the alert that would have caught the incident: p95 grew X% in a day."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Sequence

import numpy as np
import pandas as pd

__all__ = ["daily_trend", "PromptGrowthAlert", "prompt_growth_alerts"]


def daily_trend(frame: pd.DataFrame, by: Sequence[str] = ()) -> pd.DataFrame:
    """Per day (and ``by`` columns): requests, p50/p95 prompt tokens, mean cost per request (Decimal).

    ``frame`` is :func:`course_utils.cost.cost_frame` output (``day``, ``prompt_tokens``, ``cost``).
    Percentiles use the nearest-rank rule (``method="inverted_cdf"``): a reported p95 is a prompt
    length some request really had.
    """
    keys = ["day", *by]
    rows = []
    for key, group in frame.groupby(keys, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        lengths = group["prompt_tokens"].to_numpy()
        total = sum(group["cost"], Decimal(0))
        rows.append(
            {
                **dict(zip(keys, key)),
                "requests": len(group),
                "p50_prompt_tokens": int(np.percentile(lengths, 50, method="inverted_cdf")),
                "p95_prompt_tokens": int(np.percentile(lengths, 95, method="inverted_cdf")),
                "cost": total,
                "cost_per_request": total / len(group),
            }
        )
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class PromptGrowthAlert:
    """p95 prompt length of ``scope`` rose from ``before`` to ``after`` tokens on ``day``."""

    day: str
    scope: str
    before: int
    after: int

    @property
    def growth(self) -> float:
        """Relative growth (0.5 = +50%)."""
        return self.after / self.before - 1 if self.before else float("inf")

    def __str__(self) -> str:
        return f"{self.day} {self.scope}: p95 prompt {self.before:,} -> {self.after:,} tokens (+{self.growth:.0%})"


def prompt_growth_alerts(
    trend: pd.DataFrame, max_growth: float = 0.5, scope: str | None = None
) -> list[PromptGrowthAlert]:
    """Alerts for each day whose p95 prompt length exceeds the previous day's by more than ``max_growth``.

    ``trend`` is :func:`daily_trend` output; with a ``scope`` column name (e.g. ``"feature"``) each
    value is watched on its own, so one feature's growth is not diluted by the others' volume.
    """
    if max_growth < 0:
        raise ValueError(f"max_growth must be >= 0, got {max_growth}")
    alerts: list[PromptGrowthAlert] = []
    groups = trend.groupby(scope, sort=True) if scope else [("all", trend)]
    for name, group in groups:
        ordered = group.sort_values("day")
        days, p95 = ordered["day"].tolist(), ordered["p95_prompt_tokens"].tolist()
        for i in range(1, len(days)):
            if p95[i] > p95[i - 1] * (1 + max_growth):
                alerts.append(PromptGrowthAlert(days[i], str(name), int(p95[i - 1]), int(p95[i])))
    return sorted(alerts, key=lambda a: (a.day, a.scope))
