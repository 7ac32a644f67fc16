"""Context management at scale (lesson 01): token accounting, context strategies and a runner.

* :mod:`.accounting` — a whole request's tokens, part by part, checked against ``count_tokens``.
* :mod:`.turns` — whole turns and the validity rules a trimmed history must keep.
* :mod:`.strategies` — :class:`FullHistory`, :class:`SlidingWindow`, :class:`Summarizing`,
  :class:`Hybrid` and :class:`CacheLayout`, all behind one ``build(system, history)`` interface.
* :mod:`.server_side` — :class:`ServerSide`: the whole history, trimmed by the API's own compaction or
  context editing (``context_management``).
* :mod:`.runner` — plays the scripted conversation through a strategy and records every turn.
* :mod:`.display` — the Explore cell's budget plan (what each strategy keeps under a budget).

Everything a notebook uses is exported here; import it from ``course_utils.context``.
"""

from .accounting import (
    ESTIMATE_MARGIN,
    AccountingCheck,
    RequestTokens,
    account,
    compare_with_api,
    message_tokens,
    request_tokens,
)
from .conversation import Conversation, ScriptedTurn, is_correct, load_conversation
from .display import budget_plan, budget_strip, format_budget_plan
from .errors import ContextError
from .runner import RunResult, TurnRecord, error_message, run_conversation
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
from .server_side import BETA_OF_EDIT, ServerSide, context_editing, server_compaction
from .turns import group_turns, transcript, validity_problems

__all__ = [
    "BETA_OF_EDIT",
    "ServerSide",
    "context_editing",
    "server_compaction",
    "ESTIMATE_MARGIN",
    "AccountingCheck",
    "RequestTokens",
    "account",
    "compare_with_api",
    "message_tokens",
    "request_tokens",
    "Conversation",
    "ScriptedTurn",
    "is_correct",
    "load_conversation",
    "budget_plan",
    "budget_strip",
    "format_budget_plan",
    "RunResult",
    "TurnRecord",
    "error_message",
    "run_conversation",
    "SUMMARY_HEADER",
    "CacheLayout",
    "ContextError",
    "ContextBudgetExceeded",
    "ContextStrategy",
    "FullHistory",
    "Hybrid",
    "Prompt",
    "SideCall",
    "SlidingWindow",
    "Summarizing",
    "compose_request",
    "sliding_window",
    "group_turns",
    "transcript",
    "validity_problems",
]
