"""Observability: each request's path through the stages, as spans carried along with its events.

A :class:`Span` is one stage of one request (``api``, ``retrieval``, ``context``, ``routing`` when a
router is set, ``model``, ``metering``): when it started and ended on the injected clock's epoch time (virtual in checks),
and what it measured (tokens, cost, cache reads, time to first token, errors). Workers run in
different tasks or processes, so spans travel *inside the events* (``data["trace"]``, the way W3C
trace context travels in headers): the last event of a request holds its whole :class:`Trace`, and
the gaps between spans are the time the request waited in a queue.

:class:`TraceLog` collects finished traces and answers the dashboard's questions: p50 and p95 time
to first token, error rate, cost per conversation and cache hit rate.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Sequence

from ..clock import SYSTEM_CLOCK, Clock
from ..lab import percentile

__all__ = ["Span", "Trace", "TraceLog", "span", "STAGES"]

STAGES = ("api", "retrieval", "context", "routing", "model", "metering")
"""The stages of a request, in pipeline order."""

_SUMMED = ("input_tokens", "output_tokens", "cache_read_input_tokens", "cost_usd")


@dataclass
class Span:
    """One stage of one request; ``start``/``end`` are epoch seconds on the injected clock."""

    stage: str
    start: float
    end: float
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def duration_s(self) -> float:
        return self.end - self.start

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, for an event's payload."""
        return {"stage": self.stage, "start": self.start, "end": self.end, "attrs": dict(self.attrs)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Span":
        return cls(str(data["stage"]), float(data["start"]), float(data["end"]), dict(data.get("attrs", {})))


@contextlib.contextmanager
def span(
    spans: list[dict[str, Any]],
    stage: str,
    *,
    clock: Clock = SYSTEM_CLOCK,
    telemetry: Any = None,
    headers: dict[str, str] | None = None,
    **attrs: Any,
) -> Iterator[dict]:
    """Time a stage and append its span (as a dict) to ``spans``; yields the attrs to fill in.

    With a :class:`~.telemetry.Telemetry`, the stage is also an OpenTelemetry span, a child of the
    context in ``headers`` (the event's), whose own context is written back into ``headers`` for the
    next event. An exception inside marks the span with ``error`` (its type) and propagates.
    """
    start = clock.time()
    record = dict(attrs)
    otel = telemetry.start(stage, start, headers) if telemetry is not None else None
    try:
        yield record
    except BaseException as exc:
        record["error"] = type(exc).__name__
        raise
    finally:
        end = clock.time()
        spans.append(Span(stage, start, end, record).to_dict())
        if otel is not None:
            telemetry.end(otel, stage, record, end, headers)


@dataclass
class Trace:
    """Every span of one request (one user message), in the order they started."""

    request_id: str
    tenant: str
    conversation_id: str
    spans: list[Span] = field(default_factory=list)

    @classmethod
    def from_event(cls, data: Mapping[str, Any]) -> "Trace":
        """The trace carried by an event's payload (``message_id``, ``tenant``, ``conversation_id``, ``trace``)."""
        spans = sorted((Span.from_dict(s) for s in data.get("trace", [])), key=lambda s: s.start)
        return cls(str(data["message_id"]), str(data["tenant"]), str(data["conversation_id"]), spans)

    def _sum(self, name: str) -> float:
        return sum(float(s.attrs.get(name, 0) or 0) for s in self.spans)

    @property
    def start(self) -> float:
        return self.spans[0].start if self.spans else math.nan

    @property
    def total_s(self) -> float:
        """From the first span's start to the last span's end."""
        return max(s.end for s in self.spans) - self.start if self.spans else math.nan

    @property
    def ttft_s(self) -> float:
        """Time to first token: from the request's arrival to the model's first text (NaN if none)."""
        firsts = [s.attrs["first_token_at"] for s in self.spans if s.attrs.get("first_token_at") is not None]
        return min(firsts) - self.start if firsts and self.spans else math.nan

    @property
    def error(self) -> str | None:
        """The first error a stage recorded, or None."""
        return next((str(s.attrs["error"]) for s in self.spans if s.attrs.get("error")), None)

    @property
    def stage_s(self) -> dict[str, float]:
        """Seconds spent in each stage (summed over its spans, e.g. redeliveries)."""
        out: dict[str, float] = {}
        for s in self.spans:
            out[s.stage] = out.get(s.stage, 0.0) + s.duration_s
        return out

    @property
    def queued_s(self) -> float:
        """Time between stages: waiting in the bus's queues (total minus time in stages, at least 0)."""
        busy = sum(s.duration_s for s in self.spans)
        return max(0.0, self.total_s - busy) if self.spans else math.nan

    def summary(self) -> dict[str, Any]:
        """One row of the request table."""
        row: dict[str, Any] = {
            "request_id": self.request_id,
            "tenant": self.tenant,
            "conversation_id": self.conversation_id,
            "total_s": self.total_s,
            "ttft_s": self.ttft_s,
            "queued_s": self.queued_s,
            "error": self.error,
        }
        row.update({f"{stage}_s": seconds for stage, seconds in self.stage_s.items()})
        row.update({name: self._sum(name) for name in _SUMMED})
        row["cache_hit"] = any(s.attrs.get("cache_hit") for s in self.spans)
        return row

    def frame(self) -> Any:
        """The waterfall: one row per span, ``offset_ms`` from the request's arrival and ``duration_ms``."""
        import pandas as pd

        return pd.DataFrame(
            [
                {
                    "stage": s.stage,
                    "offset_ms": 1000 * (s.start - self.start),
                    "duration_ms": 1000 * s.duration_s,
                    **{k: v for k, v in s.attrs.items() if k != "first_token_at"},
                }
                for s in self.spans
            ]
        )


class TraceLog:
    """Finished traces, and the dashboard's figures over them."""

    def __init__(self, traces: Sequence[Trace] = ()) -> None:
        self.traces: list[Trace] = list(traces)

    def add(self, trace: Trace) -> None:
        self.traces.append(trace)

    def __len__(self) -> int:
        return len(self.traces)

    def frame(self) -> Any:
        """One row per request (:meth:`Trace.summary`)."""
        import pandas as pd

        return pd.DataFrame([t.summary() for t in self.traces])

    def slo(self) -> dict[str, float]:
        """p50/p95 time to first token (s), error rate, cost per conversation and per request (USD), cache
        hit rate, and the share of requests whose model stage ran more than once (redelivered)."""
        ttfts = [t.ttft_s for t in self.traces]
        conversations = {(t.tenant, t.conversation_id) for t in self.traces}
        n = len(self.traces)
        return {
            "requests": n,
            "p50_ttft_s": percentile(ttfts, 0.50),
            "p95_ttft_s": percentile(ttfts, 0.95),
            "error_rate": sum(t.error is not None for t in self.traces) / n if n else math.nan,
            "cost_per_conversation_usd": (
                sum(t._sum("cost_usd") for t in self.traces) / len(conversations) if conversations else math.nan
            ),
            "cache_hit_rate": sum(t.summary()["cache_hit"] for t in self.traces) / n if n else math.nan,
            "cost_per_request_usd": sum(t._sum("cost_usd") for t in self.traces) / n if n else math.nan,
            "redelivered_rate": sum(sum(s.stage == "model" for s in t.spans) > 1 for t in self.traces) / n
            if n
            else math.nan,
        }
