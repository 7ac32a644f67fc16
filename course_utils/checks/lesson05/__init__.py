"""Checks for lesson 05 (Idempotency and retries).

5.1 ``is_retryable``, 5.2 ``call_with_retries``, 5.3 ``CircuitBreaker``, 5.4 ``idempotent_call``,
5.5 ``make_handler`` (the chaos exercise). Every case that involves time runs on virtual time
against an in-process simulator; the retry and idempotency cases grade through its ledger (attempt
times, requests per logical operation), so the verdict is the same on any machine.
"""

from __future__ import annotations

from .call_with_retries import retries
from .circuit_breaker import breaker
from .idempotent_call import idempotent
from .is_retryable import retryable
from .make_handler import chaos

__all__ = ["EXERCISES"]

EXERCISES = [retryable, retries, breaker, idempotent, chaos]
