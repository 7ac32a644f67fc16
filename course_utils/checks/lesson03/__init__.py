"""Checks for lesson 03 (Async LLM calls): 3.1 ``bounded_map``, 3.2 ``collect_outcomes``,
3.3 ``run_workers`` and 3.4 ``dispatch``.

3.1 and 3.4 grade through the simulator's ledger: how many requests were really in flight at
once (overlap of arrival/finish), how many 429s, how close to the rate limit the requests came.
Every case runs on virtual time against a simulator with realistic latency, so durations and
overlaps are exact and the same on any machine.

Every exercise also gets an empty input, a check that its inputs are left as they were, and
seeded random workloads compared with the reference (the contract holds for all inputs).
3.4's key is limited the way the API may enforce a limit, over about a second (``burst_s=1``):
a dispatcher must pace, and cannot pass by spending a minute's quota at once.

One module per exercise, named for the function it grades (``bounded_map.py``, ``collect_outcomes.py``,
``run_workers.py``, ``dispatch.py``); what two or more of them share (the tickets, awaiting an answer
with a time limit, an empty input) is in ``common.py``.
"""

from __future__ import annotations

from .bounded_map import fanout
from .collect_outcomes import outcomes
from .run_workers import pool
from .dispatch import dispatcher

__all__ = ["EXERCISES"]

EXERCISES = [fanout, outcomes, pool, dispatcher]
