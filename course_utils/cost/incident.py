"""The incident's last day re-priced with every technique, from the lesson's measurements.

One list of steps for the notebook and the benchmark (``benchmarks/lesson06_costs.py``), so the
README quotes the figure the notebook prints. Each step re-prices the ledger (:mod:`.whatif`) with a
factor measured on the simulator: the chat's cache shares and tokens per turn (:mod:`.chat_history`),
the exact cache replayed on the FAQ's request hashes, the triage's output at effort ``low``
(:mod:`.effort`) and the batch discount.
"""

from __future__ import annotations

import pandas as pd

from .chat_history import CHAT_POLICIES
from .whatif import Step, with_batch, with_exact_cache, with_output_tokens, with_prompt_caching

__all__ = ["incident_steps"]


def incident_steps(chat: pd.DataFrame, effort_runs: pd.DataFrame, *, triage_model: str) -> list[Step]:
    """The steps, in order, with the quality each keeps (from ``chat`` of :func:`.chat_policies` and
    ``effort_runs`` of :func:`.effort_table`, whose rows include ``triage_model`` at its default and ``@low``)."""
    naive, cached, _, notes = (chat.loc[p.name] for p in CHAT_POLICIES)
    default, low = effort_runs.loc[triage_model], effort_runs.loc[f"{triage_model} @low"]
    scale = float(notes["input_per_turn"] / naive["input_per_turn"])
    return [
        (
            "chat: automatic caching",
            lambda f: with_prompt_caching(
                f, "chat", read_share=cached["read_share"], write_share=cached["write_share"]
            ),
            f"same answer on {cached['same_answer']:.0%} of turns (section 2)",
        ),
        (
            "chat: caching + compressed notes",
            lambda f: with_prompt_caching(
                f, "chat", read_share=notes["read_share"], write_share=notes["write_share"], scale=scale
            ),
            f"answered {notes['answered']:.0%} of turns, resending {naive['answered']:.0%} (section 2)",
        ),
        ("FAQ: exact cache (1 h)", lambda f: with_exact_cache(f, "faq", ttl_s=3600), "identical answers (section 4)"),
        (
            "triage: effort low",
            lambda f: with_output_tokens(f, "triage", round(low["output_per_item"])),
            f"accuracy {low['accuracy']:.1%} vs {default['accuracy']:.1%} (section 6)",
        ),
        ("summaries: Message Batches", lambda f: with_batch(f, ["summaries"]), "same answers, within 24 h"),
    ]
