"""OpenTelemetry traces of the pipeline, with the GenAI semantic conventions, through the OpenTelemetry SDK.

Each stage of a request is an SDK span; the model call's span follows the GenAI conventions for an
Anthropic inference (name ``chat {model}``, kind CLIENT, ``gen_ai.provider.name = "anthropic"``,
``gen_ai.operation.name``, ``gen_ai.request.model``, ``gen_ai.response.model``,
``gen_ai.usage.input_tokens``/``output_tokens``/``cache_read.input_tokens``,
``gen_ai.response.time_to_first_chunk``, ``gen_ai.conversation.id``, ``error.type``; see
``docs/api-notes.md`` §12.1). The trace context travels between workers in each event's
``headers`` (``traceparent``, W3C Trace Context, by the SDK's propagator), so a stage in another
process continues the same trace: its span is a child of the previous stage's.

Timestamps come from the injected clock (virtual in the load test), so a trace drawn from the
exporter shows the run's own time. :class:`Telemetry` owns its tracer provider and an in-memory
exporter (the notebook's waterfall reads it); production adds an OTLP exporter to ``provider``.
"""

from __future__ import annotations

from typing import Any, Mapping, MutableMapping

from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

__all__ = ["Telemetry", "GEN_AI_PROVIDER"]

GEN_AI_PROVIDER = "anthropic"
_PROPAGATOR = TraceContextTextMapPropagator()
_KINDS = {"api": SpanKind.SERVER, "model": SpanKind.CLIENT}


def _ns(seconds: float) -> int:
    return int(round(seconds * 1e9))


class Telemetry:
    """A tracer (its own provider, an in-memory exporter) and the mapping of stage attributes to spans."""

    def __init__(self, service_name: str = "support-desk") -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.tracer = self.provider.get_tracer("course_utils.architecture")

    # ----- the stage spans -------------------------------------------------------------------------
    def start(self, stage: str, start_s: float, headers: Mapping[str, str] | None, **attrs: Any) -> Any:
        """Start ``stage``'s span at ``start_s`` (epoch seconds), a child of the context in ``headers``."""
        parent: Context = _PROPAGATOR.extract(dict(headers or {}))
        return self.tracer.start_span(
            stage, context=parent, kind=_KINDS.get(stage, SpanKind.CONSUMER), start_time=_ns(start_s),
            attributes={k: v for k, v in attrs.items() if v is not None},
        )  # fmt: skip

    def end(
        self, span: Any, stage: str, record: Mapping[str, Any], end_s: float, headers: MutableMapping[str, str] | None
    ) -> None:
        """Set the span's attributes from the stage's ``record``, end it at ``end_s``, and write its context
        into ``headers`` (the next event's parent)."""
        if stage == "model":
            model = record.get("model")
            span.update_name(f"chat {model}" if model else "chat")
            span.set_attributes(
                {
                    "gen_ai.operation.name": "chat",
                    "gen_ai.provider.name": GEN_AI_PROVIDER,
                    "gen_ai.request.stream": True,
                }
            )
            for key, name in (
                ("model", "gen_ai.response.model"),
                ("input_tokens", "gen_ai.usage.input_tokens"),
                ("output_tokens", "gen_ai.usage.output_tokens"),
                ("cache_read_input_tokens", "gen_ai.usage.cache_read.input_tokens"),
                ("request_id", "gen_ai.response.id"),
                ("request_model", "gen_ai.request.model"),
                ("max_tokens", "gen_ai.request.max_tokens"),
                ("conversation_id", "gen_ai.conversation.id"),
            ):
                if record.get(key) is not None:
                    span.set_attribute(name, record[key])
            first = record.get("first_token_at")
            if first is not None:
                start = span.start_time / 1e9
                span.set_attribute("gen_ai.response.time_to_first_chunk", max(0.0, float(first) - start))
        for key, value in record.items():  # the stage's own figures, under the service's namespace
            if key != "first_token_at" and isinstance(value, (str, bool, int, float)):
                span.set_attribute(f"support_desk.{key}", value)
        if record.get("error"):
            span.set_attribute("error.type", str(record["error"]))
            span.set_status(Status(StatusCode.ERROR, str(record["error"])))
        span.end(end_time=_ns(end_s))
        if headers is not None:
            _PROPAGATOR.inject(headers, context=set_span_in_context(span))

    # ----- reading ---------------------------------------------------------------------------------
    def spans(self, trace_id: int | None = None) -> list[ReadableSpan]:
        """Finished spans (of one trace, if given), by start time."""
        found = [s for s in self.exporter.get_finished_spans() if trace_id is None or s.context.trace_id == trace_id]
        return sorted(found, key=lambda s: (s.start_time, s.end_time))

    def trace_ids(self) -> list[int]:
        """The traces recorded, in the order their first span started."""
        return list(dict.fromkeys(s.context.trace_id for s in self.spans()))

    def frame(self, trace_id: int) -> Any:
        """One row per span of the trace: name, kind, parent, ms from the trace's start, duration, attributes."""
        import pandas as pd

        spans = self.spans(trace_id)
        t0 = min(s.start_time for s in spans) if spans else 0
        names = {s.context.span_id: s.name for s in spans}
        return pd.DataFrame(
            [
                {
                    "span": s.name,
                    "kind": s.kind.name,
                    "parent": names.get(s.parent.span_id) if s.parent is not None else None,
                    "offset_ms": (s.start_time - t0) / 1e6,
                    "duration_ms": (s.end_time - s.start_time) / 1e6,
                    **{k: v for k, v in (s.attributes or {}).items() if k.startswith(("gen_ai.", "error."))},
                }
                for s in spans
            ]
        )


def traceparent(headers: Mapping[str, str] | None) -> str | None:
    """The ``traceparent`` header an event carries, or None."""
    return (headers or {}).get("traceparent")
