"""OpenTelemetry spans of the pipeline: GenAI semantic conventions, and the trace context carried in event headers."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from opentelemetry.trace import SpanKind

from course_utils.architecture.bus import CONTEXT_READY, MESSAGE_RECEIVED, InMemoryBus
from course_utils.architecture.dashboard import waterfall
from course_utils.architecture.store import DeskStore
from course_utils.architecture.telemetry import Telemetry
from course_utils.architecture.vectors import VectorIndex
from course_utils.architecture.workers import Pipeline
from course_utils.clock import run_virtual
from course_utils.mock_provider.inprocess import InProcessServer

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture(scope="module")
def index() -> VectorIndex:
    idx = VectorIndex()
    for line in (DATA / "lesson08_kb.jsonl").read_text(encoding="utf-8").splitlines():
        a = json.loads(line)
        if a["tenant"] == "acme":
            idx.add(a["tenant"], [(a["doc_id"], f"{a['title']}. {a['text']}")])
    return idx


def _run(index, n: int = 1):
    with InProcessServer(seed=0, time_scale=1.0, rate_limit_tier="unlimited") as server:
        bus, store, telemetry = InMemoryBus(idle_timeout_s=30.0), DeskStore(), Telemetry()
        pipeline = Pipeline(bus, store, index, lambda t: server.tenant(t).async_client(), telemetry=telemetry)

        async def scenario() -> None:
            stop = asyncio.Event()
            runner = asyncio.create_task(pipeline.run(stop))
            for i in range(n):
                await pipeline.submit("acme", "c1", "I forgot my password", message_id=f"m{i}")
                while not pipeline.finished(f"m{i}"):
                    await asyncio.sleep(0.25)
            stop.set()
            await runner
            await pipeline.aclose()

        run_virtual(scenario(), limit=3600)
    return bus, store, telemetry


def test_each_request_is_one_trace_whose_model_span_follows_the_genai_conventions(index):
    bus, store, telemetry = _run(index, n=2)
    assert len(telemetry.trace_ids()) == 2  # one trace per message, never one per stage
    spans = telemetry.spans(telemetry.trace_ids()[0])
    names = [s.name for s in spans]
    usage = next(u for u in store.usage("acme") if u.message_id == "m0")
    assert names == ["POST /conversations/{conversation_id}/messages", "retrieval", "context",
                     f"chat {usage.model}", "metering"]  # fmt: skip
    model = spans[3]
    assert model.kind == SpanKind.CLIENT and spans[0].kind == SpanKind.SERVER
    attrs = model.attributes
    assert attrs["gen_ai.operation.name"] == "chat" and attrs["gen_ai.provider.name"] == "anthropic"
    assert attrs["gen_ai.request.model"] == attrs["gen_ai.response.model"] == usage.model
    assert attrs["gen_ai.usage.input_tokens"] == usage.input_tokens
    assert attrs["gen_ai.usage.output_tokens"] == usage.output_tokens
    assert attrs["gen_ai.conversation.id"] == "c1"
    assert 0 < attrs["gen_ai.response.time_to_first_chunk"] <= (model.end_time - model.start_time) / 1e9


def test_the_trace_context_travels_in_the_event_headers_and_chains_the_stages(index):
    bus, store, telemetry = _run(index)
    spans = telemetry.spans()
    by_id = {s.context.span_id: s for s in spans}
    for child in spans[1:]:  # each stage's span is a child of the stage before it (or of the API's)
        assert child.parent is not None and child.parent.span_id in by_id
    received = asyncio.run(bus.events(MESSAGE_RECEIVED))[0].data["headers"]["traceparent"]
    ready = asyncio.run(bus.events(CONTEXT_READY))[0].data["headers"]["traceparent"]
    api, _, context = spans[0], spans[1], spans[2]
    # W3C Trace Context: version-trace id-parent span id-flags (sampled, and the SDK's random trace id flag)
    assert received.rsplit("-", 1)[0] == f"00-{api.context.trace_id:032x}-{api.context.span_id:016x}"
    assert ready.rsplit("-", 1)[0] == f"00-{context.context.trace_id:032x}-{context.context.span_id:016x}"


def test_the_waterfall_draws_the_sdk_spans(index):
    import matplotlib

    matplotlib.use("Agg")
    _, _, telemetry = _run(index)
    fig = waterfall(telemetry.spans(telemetry.trace_ids()[0]))
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels[0].startswith("POST") and any(label.startswith("chat ") for label in labels)


def test_without_telemetry_no_headers_are_needed(index, make_server):
    server = make_server(seed=0, time_scale=1.0, rate_limit_tier="unlimited")
    bus = InMemoryBus(idle_timeout_s=30.0)
    pipeline = Pipeline(bus, DeskStore(), index, lambda t: server.tenant(t).async_client())

    async def scenario() -> None:
        await pipeline.submit("acme", "c1", "hi there", message_id="m0")

    run_virtual(scenario(), limit=60)
    assert asyncio.run(bus.events(MESSAGE_RECEIVED))[0].data["headers"] == {}
