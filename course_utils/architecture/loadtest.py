"""The end-to-end load test: tenants x conversations x turns through the whole pipeline, on virtual time.

Each conversation is a user who sends a turn, waits for its answer (or error), thinks, and sends
the next; conversations start at seeded random moments. The simulator runs in process on the same
virtual clock (a fault ``scenario`` such as ``flaky``, plus an optional outage of the primary model
from ``outage_at`` for ``outage_s``), so hours of traffic take seconds and the figures are the same
on every machine.

:class:`LoadResult` answers the SLO questions: p50/p95 time to first token, lost messages (sent but
never answered nor refused), duplicate charges (billed model calls beyond one per answered message),
cost per conversation, and fairness between tenants (each tenant's p95 TTFT against the median).
"""

from __future__ import annotations

import asyncio
import gc
import math
import os
import random
import shutil
import tempfile
from dataclasses import dataclass, field
from typing import Any

from ..clock import SYSTEM_CLOCK, run_virtual
from ..mock_provider.inprocess import InProcessServer
from ..progress import ProgressCallback, ProgressEvent
from .bus import CONTEXT_READY, InMemoryBus
from .help_centre import tenant_names, load_help_centre, questions
from .store import DeskStore
from ..lab import percentile
from .trace import Span, TraceLog
from .vectors import VectorIndex
from .workers import Pipeline, PipelineConfig

__all__ = ["LoadSpec", "LoadResult", "run_load", "LOAD_NOOP_CYCLES"]

LOAD_NOOP_CYCLES = 1
"""Idle loop cycles before each virtual-time jump. Everything in the load runs in this process and
this loop (no threads, no sockets), so one idle cycle means every task waits on a timer; looptime's
default of 42 triples the CPU time for the same figures (``tests/test_architecture_loadtest.py``)."""


@dataclass(frozen=True)
class LoadSpec:
    """The load: sizes, pacing, faults."""

    tenants: int = 20
    conversations: int = 10
    """Per tenant."""
    turns: int = 5
    think_s: float = 5.0
    """Mean pause between an answer and the user's next turn (exponential)."""
    ramp_s: float = 30.0
    """Conversations start uniformly within this many seconds."""
    scenario: str = "flaky"
    outage_at: float | None = None
    """Seconds after the start when the primary model goes down (None: no outage)."""
    outage_s: float = 60.0
    model_consumers: int = 8
    restart_at: float | None = None
    """Seconds after the start of a rolling deploy of the workers (None: none)."""
    question_skew: float = 0.0
    """How much users favour the common questions: question i of a tenant's list is asked with weight
    ``1 / (i + 1) ** question_skew`` (0: uniformly; 1: Zipf's law, as support traffic tends to be)."""
    cache: bool = False
    """Lesson 06's exact-match cache in front of the model (a repeated question in the same context is
    answered without a model call)."""
    seed: int = 0


@dataclass
class LoadResult:
    """What the load test measured."""

    spec: LoadSpec
    traces: TraceLog
    sent: int
    answered: int
    refused: int
    billed_calls: int
    """Completed model calls the provider billed (streams cut by a restart are in ``cut_streams``)."""
    billed_messages: int
    answered_by: dict[str, int]
    cost_usd: float
    duration_s: float
    per_tenant_p95: dict[str, float] = field(default_factory=dict)
    histories_lost: int = 0
    """Conversations with a turn whose context stage found fewer earlier answered turns than the user
    had seen answered (measured from each trace's ``context`` span, as the synchronous design's is)."""
    peak_queued: int = 0
    """Most events waiting at once for a model consumer (sampled each second of the run)."""
    cut_streams: int = 0
    """Streams cut before their end (a client that gave up, a worker that died), billed for what was generated."""
    restarts: int = 0
    started_at: float = 0.0
    """The run's start on its clock (epoch seconds): where ``outage_at`` and ``restart_at`` count from."""
    primary_model: str = ""

    @property
    def lost(self) -> int:
        """Messages sent and never answered nor refused."""
        return self.sent - self.answered - self.refused

    @property
    def duplicate_charges(self) -> int:
        """Billed model calls beyond one per billed message (0 when every message was charged once)."""
        return max(0, self.billed_calls - self.billed_messages)

    def slo(self) -> dict[str, Any]:
        """The SLO table's one row."""
        slo = self.traces.slo()
        p95s = [v for v in self.per_tenant_p95.values() if not math.isnan(v)]
        median = percentile(p95s, 0.5)
        return {
            "messages": self.sent,
            "p50_ttft_s": slo["p50_ttft_s"],
            "p95_ttft_s": slo["p95_ttft_s"],
            "lost_messages": self.lost,
            "duplicate_charges": self.duplicate_charges,
            "error_rate": slo["error_rate"],
            "histories_lost": self.histories_lost,
            "peak_queued": self.peak_queued,
            "cost_per_conversation_usd": self.cost_usd / max(1, self.spec.tenants * self.spec.conversations),
            "cache_hit_rate": slo["cache_hit_rate"],
            "worst_tenant_p95_over_median": (max(p95s) / median) if p95s and median else math.nan,
            "answered_by": dict(self.answered_by),
        }


async def _load(
    spec: LoadSpec, index: VectorIndex, config: PipelineConfig, on_progress: ProgressCallback | None
) -> LoadResult:
    """The run on a fresh in-process simulator, made on this (virtual) loop and closed after it."""
    with InProcessServer(seed=spec.seed, time_scale=1.0, rate_limit_tier="unlimited") as server:
        return await _load_on(server, spec, index, config, on_progress)


async def _load_on(
    server: InProcessServer,
    spec: LoadSpec,
    index: VectorIndex,
    config: PipelineConfig,
    on_progress: ProgressCallback | None,
) -> LoadResult:
    server.set_scenario(spec.scenario)
    if spec.outage_at is not None:
        server.model_outage(config.primary_model, spec.outage_s, start_in_s=spec.outage_at)
    # The bus and the store outlive a restart of the workers: in production they are Redis and a
    # database file, other processes than the one a deploy restarts.
    bus, store = InMemoryBus(idle_timeout_s=30.0), DeskStore()
    cache_dir = tempfile.mkdtemp(prefix="load-cache-") if spec.cache else None
    cache_path = os.path.join(cache_dir, "cache.db") if cache_dir else None
    rng = random.Random(spec.seed)
    tenants = tenant_names(spec.tenants)
    pool = {t: [q["question"] for q in questions() if q["tenant"] == t] for t in tenants}
    weights = {t: [1 / (i + 1) ** spec.question_skew for i in range(len(qs))] for t, qs in pool.items()}
    sent = done = 0

    def ask(r: random.Random, tenant: str) -> str:
        if not spec.question_skew:
            return r.choice(pool[tenant])  # the uniform draw the figures without skew were measured with
        return r.choices(pool[tenant], weights[tenant])[0]

    total = spec.tenants * spec.conversations * spec.turns
    start = SYSTEM_CLOCK.monotonic()
    started_at = SYSTEM_CLOCK.time()
    pipelines: list[Pipeline] = []
    runners: list[asyncio.Task] = []
    stops: list[asyncio.Event] = []
    expected: dict[str, tuple[tuple[str, str], int]] = {}  # message id -> conversation, turns it had answered
    queued = [0]

    async def sample_queue() -> None:
        while True:
            queued[0] = max(queued[0], bus.backlog(CONTEXT_READY, "model"))
            await asyncio.sleep(1.0)

    def start_workers() -> None:
        pipeline = Pipeline(
            bus, store, index, lambda t: server.tenant(t).async_client(), config=config, cache_path=cache_path
        )
        pipelines.append(pipeline)
        stop = asyncio.Event()
        stops.append(stop)
        # Idle consumers wake every block_s to look at `stop`: 5 s, not 0.2 s, saves most of the CPU of 64.
        runners.append(asyncio.create_task(pipeline.run(stop, consumers={"model": spec.model_consumers}, block_s=5.0)))

    def finished(mid: str) -> bool:
        return any(p.finished(mid) for p in pipelines)

    async def user(tenant: str, conv: str, delay: float, seed: int) -> None:
        nonlocal sent, done
        r = random.Random(seed)
        await asyncio.sleep(delay)
        answered_turns = 0
        for turn in range(spec.turns):
            mid = f"{tenant}-{conv}-{turn}"
            expected[mid] = ((tenant, conv), answered_turns)
            now = SYSTEM_CLOCK.time()
            await pipelines[-1].submit(
                tenant, conv, ask(r, tenant), message_id=mid, trace=[Span("api", now, now).to_dict()]
            )
            sent += 1
            while not finished(mid):  # the user watches the stream until it ends
                await asyncio.sleep(0.25)
            done += 1
            answered_turns += store.answer_for(tenant, mid) is not None
            if on_progress is not None:
                on_progress(ProgressEvent(done, total, SYSTEM_CLOCK.monotonic() - start, mid))
            await asyncio.sleep(r.expovariate(1 / spec.think_s))

    async def deploy(at: float) -> None:
        # A rolling deploy: the new workers start, the old ones stop reading and finish what they hold
        # (SIGTERM and a grace period). A crash, where nothing is finished, is `test_architecture_crash`.
        await asyncio.sleep(at)
        old_runner, old = runners[-1], pipelines[-1]
        stops[-1].set()
        start_workers()
        await old_runner
        await old.aclose()

    start_workers()
    sampler = asyncio.create_task(sample_queue())
    deployer = asyncio.create_task(deploy(spec.restart_at)) if spec.restart_at is not None else None
    users = [
        user(t, f"c{c}", rng.uniform(0, spec.ramp_s), rng.getrandbits(32))
        for t in tenants
        for c in range(spec.conversations)
    ]
    await asyncio.gather(*users)
    if deployer is not None:
        await deployer  # a deploy after the last user left still drains
    stops[-1].set()
    await runners[-1]
    await pipelines[-1].aclose()
    sampler.cancel()
    await asyncio.gather(sampler, return_exceptions=True)
    if cache_dir is not None:
        shutil.rmtree(cache_dir, ignore_errors=True)
    traces = TraceLog([t for p in pipelines for t in p.traces.traces])
    answered_by: dict[str, int] = {}
    for p in pipelines:
        for model, n in p.answered_by.items():
            answered_by[model] = answered_by.get(model, 0) + n
    ledger = server.ledger()
    calls = ledger[(ledger["endpoint"] == "/v1/messages") & (ledger["status"] == 200)]
    complete = calls[~calls["disconnected"].astype(bool)]
    answered = sum(1 for t in tenants for c in store.conversations(t) for m in store.messages(t, c) if m.reply_to)
    billed = sum(len(store.usage(t)) for t in tenants)
    lost_history = set()
    for tr in traces.traces:
        contexts = [s.attrs["history_turns"] for s in tr.spans if s.stage == "context" and "history_turns" in s.attrs]
        if contexts and min(contexts) < expected[tr.request_id][1]:
            lost_history.add(expected[tr.request_id][0])
    per_tenant = {t: percentile([tr.ttft_s for tr in traces.traces if tr.tenant == t], 0.95) for t in tenants}
    return LoadResult(
        spec=spec,
        traces=traces,
        sent=sent,
        answered=answered,
        refused=sum(1 for tr in traces.traces if tr.error is not None),
        billed_calls=len(complete),
        billed_messages=billed,
        answered_by=answered_by,
        cost_usd=float(sum(float(c) for c in calls["cost_usd"])),
        duration_s=SYSTEM_CLOCK.monotonic() - start,
        per_tenant_p95=per_tenant,
        histories_lost=len(lost_history),
        peak_queued=queued[0],
        cut_streams=len(calls) - len(complete),
        restarts=len(pipelines) - 1,
        started_at=started_at,
        primary_model=config.primary_model,
    )


def run_load(
    spec: LoadSpec | None = None,
    *,
    index: VectorIndex | None = None,
    config: PipelineConfig | None = None,
    on_progress: ProgressCallback | None = None,
) -> LoadResult:
    """Run ``spec`` on a fresh virtual loop (seconds of wall time for hours of traffic), with the
    pipeline's ``config`` (default ``PipelineConfig()``; the outage hits its ``primary_model``).

    ``on_progress`` gets a :class:`~course_utils.progress.ProgressEvent` as each message is answered or
    refused (``latest``: its message id; ``elapsed_s`` on the run's virtual clock), from the loop's thread.
    """
    spec = spec or LoadSpec()
    config = config if config is not None else PipelineConfig()
    if index is None:
        index = VectorIndex()
        load_help_centre(index, tenant_names(spec.tenants))
    # An SDK async client dropped by earlier code closes itself from __del__ by adding a task to whatever
    # loop is running when the garbage collector finds it: inside this run, that task would shift the
    # order of ready callbacks and move a figure. Collect first; it also resets the collector's
    # counters, so the collections during the run fall at the same points every time.
    gc.collect()
    return run_virtual(_load(spec, index, config, on_progress), limit=24 * 3600, noop_cycles=LOAD_NOOP_CYCLES)
