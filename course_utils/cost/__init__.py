"""Lesson 06: where token money goes and how to spend less of it without losing quality.

One job per module:

- :mod:`.attribution`: usage rows to exact dollars per feature, model and day (:func:`cost_report`);
- :mod:`.trend`: p50/p95 prompt length per day and the day-over-day growth alert;
- :mod:`.chat_history`: a growing chat, resent, prompt-cached, or compressed (and what each costs and answers);
- :mod:`.compression`: fit retrieved context into a token budget (dedupe, BM25 ranking, extractive selection);
- :mod:`.exact_cache`: :class:`ExactCache` on SQLite, keyed by :func:`cache_key` (never the API key);
- :mod:`.semantic_cache`: :class:`SemanticCache` on offline embeddings, with an identifier guard;
- :mod:`.prompt_cache`: break-even reads for 5-minute and 1-hour writes; a cache-friendly layout;
- :mod:`.effort`: thinking billed as output, and what ``output_config.effort`` saves on a triage;
- :mod:`.routing`: :class:`CascadeRouter` (cheap model, escalate on disagreement or invalid label);
- :mod:`.rightsizing`: ``max_tokens`` from observed lengths; batch savings;
- :mod:`.measure`: the lesson's data sets and measurements on the simulator;
- :mod:`.whatif`: the ledger re-priced as if a technique had been in place;
- :mod:`.incident`: the last day's steps, one list for the notebook and the benchmark;
- :mod:`.spend_guard`: :class:`SpendGuard`, reserve the worst case before a request, settle after.
"""

from .attribution import LEDGER_COLUMNS, cost_frame, cost_report, response_row, row_cost, usage_of
from .chat_history import (
    CHAT_POLICIES,
    CHAT_SYSTEM,
    ChatPolicy,
    chat_policies,
    chat_turn_body,
    conversations,
    run_chat,
)
from .effort import THINKING_EFFORTS, effort_policies, effort_table, hidden_thinking_from
from .compression import BOILERPLATE, Compression, compress, compress_report, dedupe, rank_sentences, split_sentences
from .errors import CostError
from .exact_cache import NON_SEMANTIC_FIELDS, CacheStats, ExactCache, cache_key
from .incident import incident_steps
from .measure import (
    RECALL_SYSTEM,
    keep_head,
    keep_tail,
    load_cache_pairs,
    load_labelled,
    load_ledger,
    load_recall,
    policy_table,
    recall_eval,
)
from .prompt_cache import break_even_from_multipliers, break_even_reads, cached_layout, caching_cost
from .rightsizing import batch_savings, suggest_max_tokens, truncation_rate
from .routing import (
    PHRASINGS,
    CascadeRouter,
    Classifier,
    Routed,
    SingleModel,
    evaluate,
    label_request,
    pareto_front,
    parse_label,
)
from .semantic_cache import SemanticCache, SemanticHit, cache_scope, identifiers, same_identifiers, threshold_curve
from .spend_guard import BudgetExceeded, Reservation, SpendGuard, worst_case_cost
from .trend import PromptGrowthAlert, daily_trend, prompt_growth_alerts
from .whatif import (
    apply_steps,
    total,
    with_batch,
    with_cost_factor,
    with_exact_cache,
    with_output_tokens,
    with_prompt_budget,
    with_prompt_caching,
)

__all__ = [
    "LEDGER_COLUMNS",
    "usage_of",
    "row_cost",
    "response_row",
    "cost_frame",
    "cost_report",
    "daily_trend",
    "PromptGrowthAlert",
    "prompt_growth_alerts",
    "CHAT_SYSTEM",
    "conversations",
    "THINKING_EFFORTS",
    "hidden_thinking_from",
    "effort_policies",
    "effort_table",
    "apply_steps",
    "incident_steps",
    "ChatPolicy",
    "CHAT_POLICIES",
    "chat_turn_body",
    "run_chat",
    "chat_policies",
    "BOILERPLATE",
    "split_sentences",
    "dedupe",
    "rank_sentences",
    "compress",
    "compress_report",
    "Compression",
    "NON_SEMANTIC_FIELDS",
    "cache_key",
    "ExactCache",
    "CacheStats",
    "identifiers",
    "same_identifiers",
    "SemanticCache",
    "SemanticHit",
    "cache_scope",
    "threshold_curve",
    "break_even_reads",
    "break_even_from_multipliers",
    "caching_cost",
    "cached_layout",
    "PHRASINGS",
    "label_request",
    "parse_label",
    "Routed",
    "Classifier",
    "SingleModel",
    "CascadeRouter",
    "evaluate",
    "pareto_front",
    "suggest_max_tokens",
    "truncation_rate",
    "batch_savings",
    "CostError",
    "BudgetExceeded",
    "Reservation",
    "SpendGuard",
    "worst_case_cost",
    "total",
    "RECALL_SYSTEM",
    "load_ledger",
    "load_recall",
    "load_cache_pairs",
    "load_labelled",
    "keep_head",
    "keep_tail",
    "recall_eval",
    "policy_table",
    "with_exact_cache",
    "with_prompt_budget",
    "with_prompt_caching",
    "with_output_tokens",
    "with_batch",
    "with_cost_factor",
]
