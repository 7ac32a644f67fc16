"""Thinking as a cost: what a one-word label bills when the model thinks first, and what ``effort`` saves.

"The tokens Claude spends reasoning are billed as output tokens, even when the thinking text isn't
returned to you" (https://platform.claude.com/docs/build-with-claude/thinking). The 5.x models think
by default, as their effort level decides; ``output_config.effort`` is the documented control ("At lower
effort levels, Claude may skip thinking for simpler problems"). A triage label is one output token, so
on a thinking model almost everything it bills is thinking.

How long a real model thinks is not public. The simulator's default stand-in is 8 tokens per hidden
thinking block; :func:`hidden_thinking_from` takes the length from what a ledger actually billed, and
:func:`effort_table` measures the policies with the simulator billing that length
(:func:`course_utils.mock_provider.skills.thinking.use_hidden_thinking`).
"""

from __future__ import annotations

from typing import Any, Sequence

import pandas as pd

from ..mock_provider.skills.thinking import use_hidden_thinking
from ..resilience import on_virtual_time, sim
from .measure import policy_table
from .routing import CascadeRouter, Classifier, SingleModel

__all__ = ["THINKING_EFFORTS", "hidden_thinking_from", "effort_policies", "effort_table"]

THINKING_EFFORTS: tuple[str, ...] = ("medium", "high", "xhigh", "max")
"""Effort levels at which the simulator's adaptive thinking may run (``low`` skips it)."""


def hidden_thinking_from(ledger: pd.DataFrame, feature: str, *, answer_tokens: int = 1) -> dict[str, int]:
    """Thinking tokens per call of ``feature`` in ``ledger``: its median output minus the answer's tokens.

    One length for every effort level that thinks: the ledger says how much a call billed, not how the
    effort level would have changed it, so the simulator's effort decides only *whether* it thinks.
    """
    rows = ledger[ledger["feature"] == feature]
    if rows.empty:
        raise ValueError(f"no {feature!r} rows in the ledger")
    tokens = max(1, int(rows["output_tokens"].median()) - answer_tokens)
    return {effort: tokens for effort in THINKING_EFFORTS}


def effort_policies(labels: Sequence[str], *, cheap: str, mid: str, top: str) -> list[Classifier]:
    """The triage on ``top`` at its default effort, ``high`` and ``low``; ``mid`` at its default and ``low``;
    and the cascade ``cheap`` x2 -> ``mid``."""
    return [
        SingleModel(top, labels),
        SingleModel(top, labels, effort="high"),
        SingleModel(top, labels, effort="low"),
        SingleModel(mid, labels),
        SingleModel(mid, labels, effort="low"),
        CascadeRouter(cheap, mid, labels),
    ]


def effort_table(
    tickets: pd.DataFrame,
    policies: Sequence[Classifier],
    *,
    hidden: dict[str, int],
    seed: int = 0,
    on_progress: Any = None,
) -> pd.DataFrame:
    """:func:`policy_table` of ``policies`` on ``tickets``, on virtual time, with hidden thinking billed ``hidden``."""

    async def run() -> pd.DataFrame:
        with sim(seed=seed) as server:
            return await policy_table(server.async_client(max_retries=0), tickets, policies, on_progress=on_progress)

    with use_hidden_thinking(hidden):
        return on_virtual_time(run, seed=seed)
