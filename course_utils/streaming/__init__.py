"""Streaming responses (lesson 02): consume a model stream, parse SSE, relay it to browsers.

* :mod:`.consume` — read the SDK's stream (sync and async) and time it: time to first token,
  tokens per second, total.
* :mod:`.sse` — an incremental Server-Sent Events parser that is correct on any chunking, and the
  writer side (events, comments).
* :mod:`.backpressure` — a bounded queue between a fast upstream and a slow client, with the two
  policies that keep memory bounded (pause the upstream, coalesce deltas).
* :mod:`.loopback` — backpressure on real sockets: a relay under uvicorn and a reader that stalls.
* :mod:`.relay` — a Starlette app that turns the model's stream (POSTed prompt) into browser SSE
  (headers, heartbeats, a thinking state, an end event, error and refusal events, cancellation on
  disconnect, metering by estimate when the final usage never came) and a threaded server for it.
* :mod:`.wire` — raw HTTP bytes from a real socket, to see chunked transfer encoding.
* :mod:`.display` — the Explore cell's policy table (a recorded stream replayed on virtual time).

Everything a notebook uses is exported here; import it from ``course_utils.streaming``.
"""

from __future__ import annotations

from .backpressure import POLICIES, DeltaQueue, QueueStats, relay_deltas, run_simulation, simulate_policy
from .consume import StreamResult, aconsume_stream, complete_timed, consume_stream, timing_from_events
from .display import describe_pace, mean_gap_ms, policy_table, recorded_deltas
from .loopback import StallRun, stall_run, stall_runs
from .relay import RelayConfig, RelayRecord, RelayServer, create_relay_app
from .sse import SSEEvent, SSEParser, format_comment, format_event, iter_sse
from .wire import RawResponse, decode_chunked, raw_request

__all__ = [
    "SSEEvent",
    "SSEParser",
    "iter_sse",
    "format_event",
    "format_comment",
    "StreamResult",
    "consume_stream",
    "aconsume_stream",
    "complete_timed",
    "timing_from_events",
    "DeltaQueue",
    "QueueStats",
    "POLICIES",
    "relay_deltas",
    "simulate_policy",
    "run_simulation",
    "recorded_deltas",
    "mean_gap_ms",
    "policy_table",
    "describe_pace",
    "StallRun",
    "stall_run",
    "stall_runs",
    "RelayConfig",
    "RelayRecord",
    "RelayServer",
    "create_relay_app",
    "RawResponse",
    "raw_request",
    "decode_chunked",
]
