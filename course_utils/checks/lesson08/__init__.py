"""Checks for lesson 08 (AI product architecture).

8.1 ``handle_event`` (an idempotent consumer under at-least-once delivery), 8.2 ``build_request``
(the model request: the tenant's k nearest articles in the system prompt, the newest turns, the whole
request within a token budget), 8.3 ``answer_event`` (the model stage: the answer's own 8.1 and 8.2
around one model call), 8.4 ``wire_pipeline`` (the pipeline's settings, graded by the SLO table of a
chaos load test) and 8.5 ``conversations_per_minute`` (capacity planning, graded against the formula
and a simulation). The consumer cases run on virtual time against the in-process bus, with the crashes
placed where production has them (inside the work, between the work and the ack); 8.3 adds a
simulator and grades through its ledger and the request bodies its client sent; the load test and the
capacity simulation run on virtual time, so the grade is the same on any machine.
"""

from __future__ import annotations

from .answer_event import answering
from .build_request import request
from .conversations_per_minute import capacity
from .handle_event import consumer
from .wire_pipeline import wiring

__all__ = ["EXERCISES"]


EXERCISES = [consumer, request, answering, wiring, capacity]
