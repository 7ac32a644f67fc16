"""Checks for lesson 01 (Context management at scale).

1.1 ``count_request_tokens(body)``, 1.2 ``sliding_window(body, budget)``,
1.3 ``compact(client, summary, messages, threshold)``, 1.4 ``place_breakpoints(body)``.
1.3 and 1.4 grade behaviour through the check simulator's ledger.

One module per exercise, named for the function it grades (``count_request_tokens.py``,
``sliding_window.py``, ``compact.py``, ``place_breakpoints.py``); what two or more of them share
(the teaching model, the conversation, sample histories and tools) is in ``common.py``.
"""

from __future__ import annotations

from .common import MAX_TOKENS, MODEL, SYSTEM, TOOL, TOOLS, sample_history
from .count_request_tokens import counting
from .sliding_window import window
from .compact import compaction
from .place_breakpoints import breakpoints

__all__ = ["EXERCISES", "MAX_TOKENS", "MODEL", "SYSTEM", "TOOL", "TOOLS", "sample_history"]

EXERCISES = [counting, window, compaction, breakpoints]
