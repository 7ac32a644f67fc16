"""Checks for lesson 02 (Streaming responses).

2.1 ``parse_sse`` (an incremental SSE parser), 2.2 ``stream_metrics`` (TTFT and tokens per
second), 2.3 ``bounded_relay`` (backpressure without losing text; reading overlaps sending, a
client that leaves stops the reader, an upstream error propagates), 2.4 ``relay_text``
(cancel the upstream when the client leaves; graded from the simulator's ledger).

One module per exercise, named for the function it grades (``parse_sse.py``, ``stream_metrics.py``,
``bounded_relay.py``, ``relay_text.py``); what two or more of them share is in ``common.py``.
"""

from __future__ import annotations

from .common import MODEL
from .parse_sse import parser
from .stream_metrics import metrics
from .bounded_relay import relay
from .relay_text import cancellation

__all__ = ["EXERCISES", "MODEL"]

EXERCISES = [parser, metrics, relay, cancellation]
