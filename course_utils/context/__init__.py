"""Context management at scale (lesson 01): token accounting, context strategies and a runner.

* :mod:`.accounting` — a whole request's tokens, part by part, checked against ``count_tokens``.
* :mod:`.turns` — whole turns and the validity rules a trimmed history must keep.
* :mod:`.strategies` — :class:`FullHistory`, :class:`SlidingWindow`, :class:`Summarizing`,
  :class:`Hybrid` and :class:`CacheLayout`, all behind one ``build(system, history)`` interface.
* :mod:`.runner` — plays the scripted conversation through a strategy and records every turn.
"""

from .accounting import (
    ESTIMATE_MARGIN, AccountingCheck, RequestTokens, account, compare_with_api, message_tokens, request_tokens,
)
from .conversation import Conversation, ScriptedTurn, is_correct, load_conversation
from .runner import RunResult, TurnRecord, is_overflow, run_conversation
from .strategies import (
    SUMMARY_HEADER,
    CacheLayout,
    ContextBudgetExceeded,
    ContextStrategy,
    FullHistory,
    Hybrid,
    Prompt,
    SideCall,
    SlidingWindow,
    Summarizing,
    compose_request,
    sliding_window,
)
from .turns import group_turns, transcript, validity_problems

__all__ = [
    "ESTIMATE_MARGIN", "AccountingCheck", "RequestTokens", "account", "compare_with_api", "message_tokens",
    "request_tokens",
    "Conversation", "ScriptedTurn", "is_correct", "load_conversation",
    "RunResult", "TurnRecord", "is_overflow", "run_conversation",
    "SUMMARY_HEADER", "CacheLayout", "ContextBudgetExceeded", "ContextStrategy", "FullHistory", "Hybrid",
    "Prompt", "SideCall", "SlidingWindow", "Summarizing", "compose_request", "sliding_window",
    "group_turns", "transcript", "validity_problems",
]
