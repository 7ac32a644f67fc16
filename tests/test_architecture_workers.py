"""The pipeline's workers end to end on the simulator, on virtual time: answers, traces, crashes, outages."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, Callable

import pytest

from decimal import Decimal

from course_utils.architecture.bus import InMemoryBus
from course_utils.architecture.controls import TenantControls
from course_utils.architecture.store import DeskStore
from course_utils.architecture.vectors import VectorIndex
from course_utils.architecture.workers import Pipeline, PipelineConfig, deltas_topic, message_id_for
from course_utils.clock import run_virtual
from course_utils.mock_provider import use_reply_scenario
from course_utils.mock_provider.inprocess import InProcessServer
from course_utils.tenancy import BudgetGuard, MemoryBudgetStore, MemoryLimiter, Plan, TenantRegistry

DATA = Path(__file__).resolve().parents[1] / "data"
TENANTS = ("acme", "globex")


@pytest.fixture(scope="module")
def index() -> VectorIndex:
    idx = VectorIndex()
    for line in (DATA / "lesson08_kb.jsonl").read_text(encoding="utf-8").splitlines():
        a = json.loads(line)
        if a["tenant"] in TENANTS:
            idx.add(a["tenant"], [(a["doc_id"], f"{a['title']}. {a['text']}")])
    return idx


def _sim(make_server: Callable[..., InProcessServer], scenario: str = "calm") -> InProcessServer:
    """A simulator for one test (``make_server`` closes it afterwards) with realistic latency and no rate limits."""
    server = make_server(seed=0, time_scale=1.0, rate_limit_tier="unlimited")
    server.set_scenario(scenario)
    return server


def _pipeline(server: InProcessServer, index: VectorIndex, bus: InMemoryBus, store: DeskStore, **kw: Any):
    return Pipeline(bus, store, index, lambda tenant: server.tenant(tenant).async_client(), **kw)


async def _until(predicate, *, step: float = 0.5, limit: float = 600.0) -> None:
    waited = 0.0
    while not predicate():
        await asyncio.sleep(step)
        waited += step
        if waited > limit:
            raise AssertionError("the pipeline did not finish in time")


def _billed(server: InProcessServer) -> int:
    ledger = server.ledger()
    return int(((ledger["endpoint"] == "/v1/messages") & (ledger["status"] == 200)).sum())


def test_messages_flow_through_every_stage_and_each_answer_is_charged_once(index, make_server):
    server = _sim(make_server)
    bus, store = InMemoryBus(idle_timeout_s=30.0), DeskStore()
    pipeline = _pipeline(server, index, bus, store)

    async def scenario() -> None:
        stop = asyncio.Event()
        runner = asyncio.create_task(pipeline.run(stop))
        await pipeline.submit("acme", "c1", "I forgot my password", message_id="m1")
        await _until(lambda: len(pipeline.traces) == 1)
        await pipeline.submit("acme", "c1", "And how do I turn on two-factor?", message_id="m2")
        await pipeline.submit("globex", "c1", "Can I get a refund?", message_id="m3")
        await _until(lambda: len(pipeline.traces) == 3)
        stop.set()
        await runner

    run_virtual(scenario(), limit=3600)
    for tenant, mid in (("acme", "m1"), ("acme", "m2"), ("globex", "m3")):
        answer = store.answer_for(tenant, mid)
        assert answer is not None and answer.content.strip()
    assert [m.role for m in store.messages("acme", "c1")] == ["user", "assistant", "user", "assistant"]
    assert _billed(server) == 3 and pipeline.model_calls == 3
    assert len(store.usage("acme")) == 2 and len(store.usage("globex")) == 1
    by_id = {t.request_id: t for t in pipeline.traces.traces}
    trace = by_id["m2"]
    assert [s.stage for s in trace.spans] == ["retrieval", "context", "model", "metering"]
    assert trace.spans[1].attrs["messages"] == 3  # the first turn came back from the store
    assert 0 < trace.ttft_s < trace.total_s
    assert all(d.startswith("acme/") for d in trace.spans[0].attrs["docs"])
    assert all(d.startswith("globex/") for d in by_id["m3"].spans[0].attrs["docs"])
    row = trace.summary()
    assert row["output_tokens"] > 0 and row["cost_usd"] > 0 and row["error"] is None

    async def deltas() -> list[dict]:
        return [e.data for e in await bus.tail(deltas_topic("acme", "c1"))]

    events = run_virtual(deltas())
    m1 = [e for e in events if e["message_id"] == "m1"]
    assert m1[-1]["type"] == "end" and all(e["type"] == "delta" for e in m1[:-1])
    assert "".join(e["text"] for e in m1[:-1]) == store.answer_for("acme", "m1").content


def test_a_worker_killed_after_the_answer_and_before_the_ack_is_redelivered_and_charged_once(index, make_server):
    """The crash the incident's retry turned into a double charge: here one answer, one ledger row."""
    server = _sim(make_server)
    bus, store = InMemoryBus(idle_timeout_s=30.0), DeskStore()
    hang = asyncio.Event()

    async def die_here() -> None:
        hang.set()
        await asyncio.Event().wait()  # the process is killed while it sits here

    doomed = _pipeline(server, index, bus, store, faults={"model:after_answer": die_here})
    survivor = _pipeline(server, index, bus, store)

    async def scenario() -> None:
        stop = asyncio.Event()
        first = asyncio.create_task(doomed.run(stop, consumers={"model": 1}, name="doomed"))
        await pipeline_submit(doomed)
        await asyncio.wait_for(hang.wait(), 600)
        first.cancel()  # kill -9: no ack, no cleanup
        await asyncio.gather(first, return_exceptions=True)
        second = asyncio.create_task(survivor.run(stop, name="survivor"))
        await _until(lambda: len(survivor.traces) == 1)
        stop.set()
        await second

    async def pipeline_submit(p: Pipeline) -> None:
        await p.submit("acme", "c9", "How do I export my data?", message_id=message_id_for("acme", "key-1"))

    run_virtual(scenario(), limit=3600)
    mid = message_id_for("acme", "key-1")
    assert (doomed.model_calls, survivor.model_calls, survivor.replayed_answers) == (1, 0, 1)
    assert _billed(server) == 1
    assert [m.role for m in store.messages("acme", "c9")] == ["user", "assistant"]
    assert [u.message_id for u in store.usage("acme")] == [mid]
    (trace,) = survivor.traces.traces
    assert trace.request_id == mid and trace.error is None


def test_an_outage_of_the_primary_model_is_answered_by_the_fallback(index, make_server):
    server = _sim(make_server)
    config = PipelineConfig(max_attempts=2)
    server.model_outage(config.primary_model, 3600)
    bus, store = InMemoryBus(), DeskStore()
    pipeline = _pipeline(server, index, bus, store, config=config)

    async def scenario() -> None:
        stop = asyncio.Event()
        runner = asyncio.create_task(pipeline.run(stop))
        for i in range(3):
            await pipeline.submit("acme", f"c{i}", "Is the service down?", message_id=f"m{i}")
        await _until(lambda: len(pipeline.traces) == 3)
        stop.set()
        await runner

    run_virtual(scenario(), limit=3600)
    assert pipeline.answered_by == {config.fallback_model: 3}
    assert all(store.answer_for("acme", f"m{i}") is not None for i in range(3))
    assert {t.spans[2].attrs["link"] for t in pipeline.traces.traces} == {config.fallback_model}
    assert pipeline.traces.slo()["error_rate"] == 0


def _controls(plan: Plan, *, tenants=("acme", "globex")) -> TenantControls:
    registry = TenantRegistry()
    for tenant in tenants:
        registry.register(tenant, plan)
    return TenantControls(registry, MemoryLimiter(), BudgetGuard(MemoryBudgetStore()))


def test_a_tenant_over_its_budget_is_answered_with_an_error_and_nothing_is_charged(index, make_server):
    server = _sim(make_server)
    bus, store = InMemoryBus(), DeskStore()
    broke = Plan("broke", 60, 100_000, 20_000, Decimal("0.0001"), frozenset({"claude-sonnet-5-5"}))
    pipeline = _pipeline(server, index, bus, store, controls=_controls(broke))

    async def scenario() -> list[dict]:
        stop = asyncio.Event()
        runner = asyncio.create_task(pipeline.run(stop))
        await pipeline.submit("acme", "c1", "Can I get a refund?", message_id="m1")
        await _until(lambda: len(pipeline.traces) == 1)
        stop.set()
        await runner
        return [e.data for e in await bus.tail(deltas_topic("acme", "c1"))]

    deltas = run_virtual(scenario(), limit=3600)
    assert [d["type"] for d in deltas] == ["error"] and "TenantBudgetExceeded" in deltas[0]["error"]
    assert "budget of $0.0001" in deltas[0]["error"]
    assert _billed(server) == 0 and store.answer_for("acme", "m1") is None
    assert pipeline.traces.traces[0].error == "TenantBudgetExceeded"  # the model span says what refused it


def test_lesson_07_controls_limit_rate_keep_to_the_plan_settle_the_budget_and_meter_once(index, make_server):
    """A 2-requests-a-minute plan with Haiku only: 4 messages wait their turn, all answered by Haiku,
    the budget spent equals the answers' cost, and each answer is metered once."""
    server = _sim(make_server)
    bus, store = InMemoryBus(), DeskStore()
    slow = Plan("slow", 2, 100_000, 20_000, Decimal("10"), frozenset({"claude-haiku-5-5"}))
    controls = _controls(slow)
    pipeline = _pipeline(server, index, bus, store, controls=controls)

    async def scenario() -> Any:
        stop = asyncio.Event()
        runner = asyncio.create_task(pipeline.run(stop))
        for i in range(4):
            await pipeline.submit("acme", f"c{i}", "How do I reset my password?", message_id=f"m{i}")
        await _until(lambda: len(pipeline.traces) == 4)
        stop.set()
        await runner
        return controls.budgets.status(controls.registry.context("acme"))  # this (virtual) month's budget

    status = run_virtual(scenario(), limit=7200)
    assert pipeline.answered_by == {"claude-haiku-5-5": 4}  # the plan has no Sonnet: the chain skipped it
    assert controls.waits["acme"] > 30  # 4 requests at 2 a minute (burst included): someone waited
    records = controls.meter.records()
    assert len(records) == 4 and {r.tenant_id for r in records} == {"acme"}
    spent = sum(Decimal(str(u.cost_usd)) for u in store.usage("acme"))
    assert status.reserved == 0 and abs(status.spent - spent) < Decimal("0.000001")
    assert {r.key for r in records} == {u.request_id for u in store.usage("acme")}


def test_lesson_06_exact_cache_answers_a_repeated_first_question_without_a_model_call(index, tmp_path, make_server):
    server = _sim(make_server)
    bus, store = InMemoryBus(), DeskStore()
    pipeline = _pipeline(server, index, bus, store, cache_path=str(tmp_path / "cache.db"))

    async def scenario() -> None:
        stop = asyncio.Event()
        runner = asyncio.create_task(pipeline.run(stop))
        await pipeline.submit("acme", "c1", "How do I reset my password?", message_id="m1")
        await _until(lambda: len(pipeline.traces) == 1)
        await pipeline.submit("acme", "c2", "How do I reset my password?", message_id="m2")
        await pipeline.submit("globex", "c3", "How do I reset my password?", message_id="m3")
        await _until(lambda: len(pipeline.traces) == 3)
        stop.set()
        await runner

    with use_reply_scenario("plain"):  # about the cache, not reply shapes: a refusal is never cached
        run_virtual(scenario(), limit=3600)
    assert _billed(server) == 2  # acme's repeat came from the cache; globex's namespace is its own
    assert store.answer_for("acme", "m2").content == store.answer_for("acme", "m1").content
    hits = {t.request_id: t.summary()["cache_hit"] for t in pipeline.traces.traces}
    assert hits == {"m1": False, "m2": True, "m3": False}
    assert pipeline.traces.slo()["cache_hit_rate"] == pytest.approx(1 / 3)


def test_hostile_replies_thinking_and_refusals_end_every_message_once(index, make_server):
    """Thinking blocks, refusals and pause_turn: each message ends in an answer or a clean error,
    with one model call each (a refusal is billed and answered as an error, never retried)."""
    server = _sim(make_server)
    bus, store = InMemoryBus(), DeskStore()
    pipeline = _pipeline(server, index, bus, store)

    async def scenario() -> dict[str, list[str]]:
        stop = asyncio.Event()
        runner = asyncio.create_task(pipeline.run(stop))
        for i in range(8):
            await pipeline.submit("acme", f"c{i}", f"Question {i}: how do I export my data?", message_id=f"m{i}")
        await _until(lambda: len(pipeline.traces) == 8)
        stop.set()
        await runner
        return {f"m{i}": [e.data["type"] for e in await bus.tail(deltas_topic("acme", f"c{i}"))] for i in range(8)}

    with use_reply_scenario("hostile"):
        kinds = run_virtual(scenario(), limit=3600)
    assert _billed(server) == 8 and pipeline.model_calls == 8
    for mid, seen in kinds.items():
        answered = store.answer_for("acme", mid) is not None
        assert seen[-1] == ("end" if answered else "error"), (mid, seen)
    assert len(store.usage("acme")) == 8  # refusals are billed too, and recorded
