"""Lesson 06's router in the model stage: the triage label picks the model (virtual time, in-process simulator)."""

from __future__ import annotations

import asyncio

from course_utils.architecture import DeskStore, InMemoryBus, Pipeline, PipelineConfig, VectorIndex, load_help_centre
from course_utils.clock import run_virtual
from course_utils.concurrency.workload import LABEL_MAX_TOKENS
from course_utils.cost import CascadeRouter
from course_utils.mock_provider import InProcessServer

HAIKU, SONNET = "claude-haiku-5-5", "claude-sonnet-5-5"
QUESTIONS = {
    "m-account": "I forgot my password and my login is locked, how do I reset it?",
    "m-technical": "The API integration fails with a server error and a timeout when I configure the SDK.",
}


def _run(config: PipelineConfig, scenario: str = "calm") -> tuple[Pipeline, object]:
    index = VectorIndex()
    load_help_centre(index, ["acme"])

    async def run() -> tuple[Pipeline, object]:
        with InProcessServer(seed=0, time_scale=1.0, rate_limit_tier="unlimited") as server:
            server.set_scenario(scenario)
            pipeline = Pipeline(
                InMemoryBus(), DeskStore(), index, lambda t: server.tenant(t).async_client(), config=config
            )
            stop = asyncio.Event()
            runner = asyncio.create_task(pipeline.run(stop))
            for mid, text in QUESTIONS.items():
                await pipeline.submit("acme", mid, text, message_id=mid)
            while not all(pipeline.finished(mid) for mid in QUESTIONS):
                await asyncio.sleep(0.5)
            stop.set()
            await runner
            await pipeline.aclose()
            return pipeline, server.ledger()

    return run_virtual(run(), limit=3600)


def _spans(pipeline: Pipeline, mid: str, stage: str) -> dict:
    trace = next(t for t in pipeline.traces.traces if t.request_id == mid)
    return next(s.attrs for s in trace.spans if s.stage == stage)


def test_the_triage_label_picks_the_model_and_its_calls_are_traced_and_billed():
    router = CascadeRouter(HAIKU, SONNET, ("account", "billing", "technical"), votes=2)
    config = PipelineConfig(router=router, route_to={"account": HAIKU, "billing": HAIKU, "technical": SONNET})
    pipeline, ledger = _run(config)
    account, technical = _spans(pipeline, "m-account", "routing"), _spans(pipeline, "m-technical", "routing")
    assert (account["label"], technical["label"]) == ("account", "technical")
    assert _spans(pipeline, "m-account", "model")["model"] == HAIKU
    assert _spans(pipeline, "m-technical", "model")["model"] == SONNET
    assert account["cost_usd"] > 0 and account["calls"][:2] == [HAIKU, HAIKU]
    label_calls = ledger[(ledger["endpoint"] == "/v1/messages") & (ledger["max_tokens"] == LABEL_MAX_TOKENS)]
    assert len(label_calls) >= 4  # two votes per message, on the cheap model, billed like any call


def test_without_a_router_every_message_goes_to_the_primary_model():
    pipeline, ledger = _run(PipelineConfig())
    assert {_spans(pipeline, mid, "model")["model"] for mid in QUESTIONS} == {SONNET}
    assert all(s.stage != "routing" for t in pipeline.traces.traces for s in t.spans)
    assert len(ledger[ledger["endpoint"] == "/v1/messages"]) == 2


class _BrokenRouter:
    name = "broken"

    async def classify(self, client, text):
        raise RuntimeError("the triage model is down")


def test_a_failed_triage_answers_with_the_default_models():
    pipeline, _ = _run(PipelineConfig(router=_BrokenRouter(), route_to={"account": HAIKU}))
    for mid in QUESTIONS:
        assert _spans(pipeline, mid, "routing") == {"routing_failed": "RuntimeError"}
        assert _spans(pipeline, mid, "model")["model"] == SONNET
    assert all(t.error is None for t in pipeline.traces.traces)  # routing is an optimisation, not a failure
