"""Checks for lesson 06 (Cost optimization).

6.1 ``cost_by_feature`` (a cost report from a ledger slice), 6.2 ``cache_key`` (the exact-cache
key), 6.3 ``compress`` (context into a token budget), 6.4 ``route`` (cheap first, escalate; graded
on a hidden labelled set through the simulator's ledger), 6.5 ``SpendGuard`` (reserve, then settle;
50 concurrent requests on virtual time, graded through the ledger).
"""

from __future__ import annotations

from .cache_key import key
from .compress import compress_ex
from .cost_by_feature import report
from .route import router
from .spend_guard import guard_ex

__all__ = ["EXERCISES"]

EXERCISES = [report, key, compress_ex, router, guard_ex]
