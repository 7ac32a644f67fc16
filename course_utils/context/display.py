"""Lesson 01's Explore: what the window and the hybrid strategy would send under a token budget.

:func:`budget_plan` answers "at the last turn of this history, with ``budget`` tokens, how many
turns does each strategy keep, and what does the request cost?"; :func:`format_budget_plan` draws
it as two text strips (``K`` kept turns, ``.`` dropped, ``S`` summarised), the same text the
widget shows and the plain-text fallback prints.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from .. import pricing, tokens
from .strategies import sliding_window
from .turns import group_turns

__all__ = ["budget_plan", "budget_strip", "format_budget_plan"]


def budget_plan(
    history: list[dict], budget: int, *, system: Any, summary_system: Any, model: str
) -> dict[str, dict[str, Any]]:
    """Per strategy (``window``, ``hybrid``): turns kept, request tokens and input cost at ``budget``.

    The window keeps the newest whole turns that fit with the plain system prompt; the hybrid keeps
    the newest turns that fit next to a system prompt carrying the running summary. A budget too
    small for even one turn keeps none.
    """
    turns = group_turns(history)
    out: dict[str, dict[str, Any]] = {}
    for name, sys_prompt in (("window", system), ("hybrid", summary_system)):
        try:
            kept = len(group_turns(sliding_window(history, budget, system=sys_prompt)))
        except ValueError:  # not even the newest turn fits
            kept = 0
        messages = [m for turn in turns[len(turns) - kept :] for m in turn] if kept else []
        used = tokens.count_request({"system": sys_prompt, "messages": messages})
        out[name] = {"kept": kept, "tokens": used, "cost": pricing.cost({"input_tokens": used}, model)}
    return out


def budget_strip(kept: int, total: int, older: str, width: int = 40) -> str:
    """``width`` characters for ``total`` turns: ``K`` for the newest ``kept``, ``older`` for the rest."""
    per = total / width
    return "".join("K" if (i + 1) * per > total - kept else older for i in range(width))


def format_budget_plan(budget: int, plan: dict[str, dict[str, Any]], n_turns: int) -> str:
    """Three lines: the budget, then each strategy's strip, turns kept and input cost per request."""
    w, h = plan["window"], plan["hybrid"]

    def usd(value: Decimal) -> str:
        return pricing.format_usd(value, places=6)

    return "\n".join(
        [
            f"budget {budget:,} tokens, {n_turns} turns in the history",
            f"  window  [{budget_strip(w['kept'], n_turns, '.')}] keeps {w['kept']:>3} turns, drops "
            f"{n_turns - w['kept']:>3}: {w['tokens']:,} tokens, {usd(w['cost'])} input per request",
            f"  hybrid  [{budget_strip(h['kept'], n_turns, 'S')}] keeps {h['kept']:>3} turns, summarizes "
            f"{n_turns - h['kept']:>3}: {h['tokens']:,} tokens, {usd(h['cost'])} input per request",
        ]
    )
