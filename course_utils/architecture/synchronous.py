"""The incident's design, kept to measure against: one synchronous handler does everything inline.

:class:`SyncDesk` is the support assistant before lesson 08, given the same **streaming**, the same
**response-start timeout**, retries and fallback (the one :class:`~.answering.ModelCaller`) and the
same **idempotency key** as the event-driven pipeline, so that a comparison measures only what the
event bus and the durable store add. Each POST holds one of ``web_workers`` handler slots (a
gunicorn worker, a thread) while it retrieves, streams the answer to the client and bills the
tenant, all inline; conversations and the idempotency keys live in process memory.
:func:`run_synchronous_load` runs it on virtual time with the same load, simulator and seed as
:func:`~.loadtest.run_load`. What it still lacks, and what the load measures:

* **surviving a deploy**: even a graceful one (in-flight requests finish in the old process) starts
  with empty memory, so each open conversation's next turn is answered without its history, and a
  browser retry that reaches the new process is not recognised by its key: billed again;
* **redelivery**: a request that fails (every model down) is lost unless the browser retries; the
  event-driven design leaves it pending on the bus and redelivers it;
* **backpressure**: requests wait for a handler slot inside the web tier, holding a connection, and
  a browser that gives up (``client_timeout_s`` without a first token) retries into the same queue.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from typing import Any, Callable

from ..clock import SYSTEM_CLOCK, run_virtual
from ..mock_provider.inprocess import InProcessServer
from ..progress import ProgressCallback, ProgressEvent
from ..resilience import BreakerBoard
from .answering import ModelCaller
from .help_centre import load_help_centre, questions, tenant_names
from .loadtest import LOAD_NOOP_CYCLES, LoadSpec
from ..lab import percentile
from .vectors import VectorIndex
from .workers import SYSTEM_TEMPLATE, PipelineConfig

__all__ = ["SyncDesk", "SyncResult", "run_synchronous_load"]


class _Response:
    """The HTTP responses the handlers stream into: what the :class:`ModelCaller` publishes deltas to.

    It only notes when each message's first text reached the client (the topic is the message id)."""

    def __init__(self) -> None:
        self.first_token: dict[str, asyncio.Event] = {}

    def started(self, message_id: str) -> asyncio.Event:
        return self.first_token.setdefault(message_id, asyncio.Event())

    async def publish(self, topic: str, data: dict[str, Any]) -> str:
        if data.get("type") == "delta":
            self.started(topic).set()
        elif data.get("type") == "restart":  # the attempt failed after some text: the client starts over
            self.first_token[topic] = asyncio.Event()
        return "0-0"


class SyncDesk:
    """The synchronous support desk: retrieval, the streamed model call and billing inline in the handler.

    ``clients(tenant)`` returns the tenant's ``AsyncAnthropic`` client. :meth:`post` is one request
    with its ``message_id`` (the ``Idempotency-Key``): a retry of a key this process knows joins the
    handler already running (or its answer) instead of running again; a failed handler's key is
    released so its retry runs again. :meth:`restart` is a deploy: the new process's memory is
    empty (conversations and keys alike): :func:`run_synchronous_load` starts a new desk after
    :meth:`shut_down` of the old one.
    """

    def __init__(
        self,
        index: VectorIndex,
        clients: Callable[[str], Any],
        *,
        web_workers: int = 8,
        config: PipelineConfig | None = None,
    ) -> None:
        if web_workers < 1:
            raise ValueError(f"web_workers must be at least 1, got {web_workers}")
        self.index = index
        self.clients = clients
        self.config = config or PipelineConfig()
        self.web_workers = web_workers
        self._slots = asyncio.Semaphore(web_workers)
        self.response = _Response()
        self.caller = ModelCaller(
            self.response,
            clients,
            self.config,
            breakers=BreakerBoard(**self.config.breaker),  # type: ignore[arg-type]
        )
        self._running: dict[asyncio.Task, None] = {}  # ordered (a set's order would vary run to run)
        self.keys: dict[str, asyncio.Task] = {}
        """Idempotency keys of this process: message id -> its handler (what a restart loses)."""
        self.conversations: dict[tuple[str, str], list[dict[str, Any]]] = {}
        """Each conversation's history, in process memory (what a restart loses)."""
        self.charges: dict[str, int] = {}
        """Charges per message id, billed inline after each model call."""
        self.history_seen: dict[str, int] = {}
        """Earlier answered turns each message's handler found in memory (the deploy's loss, measured)."""
        self._queued: dict[asyncio.Task, None] = {}
        self.waiting = 0
        """Requests waiting for a free handler slot now."""
        self.peak_waiting = 0

    def post(self, tenant: str, conversation_id: str, text: str, *, message_id: str) -> asyncio.Task:
        """One POST; the task's result is the answer text. A known key joins its handler."""
        task = self.keys.get(message_id)
        if task is not None and not (task.done() and (task.cancelled() or task.exception() is not None)):
            return task
        task = asyncio.create_task(self.handle(tenant, conversation_id, text, message_id=message_id))
        self.keys[message_id] = task
        self._running[task] = None
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task) -> None:
        self._running.pop(task, None)
        if not task.cancelled():
            task.exception()  # retrieved: a client that gave up never reads it, and that is the design's point

    async def handle(self, tenant: str, conversation_id: str, text: str, *, message_id: str) -> str:
        """The handler: one slot held from retrieval to billing (the whole streamed answer included)."""
        task = asyncio.current_task()
        self._queued[task] = None  # type: ignore[index]
        self.waiting += 1
        self.peak_waiting = max(self.peak_waiting, self.waiting)
        try:
            await self._slots.acquire()
        finally:
            self.waiting -= 1
            self._queued.pop(task, None)  # type: ignore[arg-type]
        try:
            hits = self.index.search(tenant, text, k=self.config.k)
            articles = "\n\n".join(f"[{h.doc_id}] {h.text}" for h in hits) or "(no articles found)"
            history = self.conversations.setdefault((tenant, conversation_id), [])
            self.history_seen[message_id] = len(history) // 2
            body = {
                "system": SYSTEM_TEMPLATE.format(tenant=tenant, articles=articles),
                "messages": [*history, {"role": "user", "content": text}],
                "max_tokens": self.config.max_tokens,
            }
            models = [self.config.primary_model] + [m for m in [self.config.fallback_model] if m]
            result = await self.caller.answer(tenant, message_id, message_id, body, models, {})
            self.charges[message_id] = self.charges.get(message_id, 0) + 1  # billing, inline
            answer = result["text"]
            history += [{"role": "user", "content": text}, {"role": "assistant", "content": answer or "(no text)"}]
            return answer
        finally:
            self._slots.release()

    def shut_down(self) -> int:
        """A graceful shutdown (SIGTERM): handlers holding a slot finish; requests still waiting for one
        (in the listen backlog) get their connection reset, so their clients see an error. Returns how many."""
        queued = list(self._queued)
        for task in queued:
            task.cancel()
        return len(queued)

    async def drain(self) -> None:
        """Wait for every handler still running (those whose clients gave up included)."""
        await asyncio.gather(*list(self._running), return_exceptions=True)

    async def aclose(self) -> None:
        await self.caller.aclose()


@dataclass
class SyncResult:
    """What the synchronous design's load test measured (the keys of :meth:`~.loadtest.LoadResult.slo`)."""

    spec: LoadSpec
    sent: int
    answered: int
    ttfts: list[float]
    charges: dict[str, int]
    histories_lost: int
    """Conversations with a turn whose handler found fewer earlier answered turns than the user had seen."""
    retries: int
    cost_usd: float
    peak_queued: int = 0
    """Most requests waiting at once for a handler slot (connections held open in the web tier)."""

    @property
    def lost(self) -> int:
        """Messages sent that never got an answer (even after the client's retry)."""
        return self.sent - self.answered

    @property
    def duplicate_charges(self) -> int:
        """Charges beyond one per charged message."""
        return sum(n - 1 for n in self.charges.values() if n > 1)

    def slo(self) -> dict[str, Any]:
        """The comparison's row."""
        n = max(1, self.sent)
        return {
            "messages": self.sent,
            "p50_ttft_s": percentile(self.ttfts, 0.50),
            "p95_ttft_s": percentile(self.ttfts, 0.95),
            "lost_messages": self.lost,
            "duplicate_charges": self.duplicate_charges,
            "error_rate": self.lost / n,
            "histories_lost": self.histories_lost,
            "peak_queued": self.peak_queued,
            "cost_per_conversation_usd": self.cost_usd / max(1, self.spec.tenants * self.spec.conversations),
        }


async def _sync_load(
    spec: LoadSpec,
    index: VectorIndex,
    config: PipelineConfig,
    web_workers: int,
    timeout: float,
    on_progress: ProgressCallback | None = None,
) -> SyncResult:
    """The run on a fresh in-process simulator, made on this (virtual) loop and closed after it."""
    with InProcessServer(seed=spec.seed, time_scale=1.0, rate_limit_tier="unlimited") as server:
        return await _sync_load_on(server, spec, index, config, web_workers, timeout, on_progress)


async def _sync_load_on(
    server: InProcessServer,
    spec: LoadSpec,
    index: VectorIndex,
    config: PipelineConfig,
    web_workers: int,
    timeout: float,
    on_progress: ProgressCallback | None = None,
) -> SyncResult:
    server.set_scenario(spec.scenario)
    if spec.outage_at is not None:
        server.model_outage(config.primary_model, spec.outage_s, start_in_s=spec.outage_at)
    desks = [SyncDesk(index, lambda t: server.tenant(t).async_client(), web_workers=web_workers, config=config)]
    rng = random.Random(spec.seed)
    tenants = tenant_names(spec.tenants)
    pool = {t: [q["question"] for q in questions() if q["tenant"] == t] for t in tenants}
    counts = {"sent": 0, "answered": 0, "retries": 0}
    ttfts: list[float] = []
    expected: dict[str, tuple[tuple[str, str], int]] = {}  # message id -> conversation, turns it had answered

    async def attempt(tenant: str, conv: str, text: str, mid: str, t0: float) -> str | None:
        """One POST as the browser sees it: the answer, or None (no first token in time, or failed)."""
        desk = desks[-1]  # the load balancer sends each request to the current process
        task = desk.post(tenant, conv, text, message_id=mid)
        first = asyncio.ensure_future(desk.response.started(mid).wait())
        try:
            await asyncio.wait({task, first}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            first.cancel()
        if not desk.response.started(mid).is_set() and not task.done():
            return None  # the browser gives up on a response that has not started; the handler runs on
        if desk.response.started(mid).is_set() and mid not in first_token_at:
            first_token_at[mid] = SYSTEM_CLOCK.monotonic() - t0
        await asyncio.wait({task})  # the user reads the answer to its end
        if task.cancelled() or task.exception() is not None:
            return None
        return task.result()

    first_token_at: dict[str, float] = {}
    done, total, start = [0], spec.tenants * spec.conversations * spec.turns, SYSTEM_CLOCK.monotonic()

    async def user(tenant: str, conv: str, delay: float, seed: int) -> None:
        r = random.Random(seed)
        await asyncio.sleep(delay)
        answered_turns = 0
        for turn in range(spec.turns):
            mid, text = f"{tenant}-{conv}-{turn}", r.choice(pool[tenant])
            expected[mid] = ((tenant, conv), answered_turns)
            counts["sent"] += 1
            t0 = SYSTEM_CLOCK.monotonic()
            answer = await attempt(tenant, conv, text, mid, t0)
            if answer is None:  # the browser retries once, with the same Idempotency-Key
                counts["retries"] += 1
                answer = await attempt(tenant, conv, text, mid, t0)
            if answer is not None:  # else lost: sent - answered
                counts["answered"] += 1
                answered_turns += 1
                ttfts.append(first_token_at.get(mid, SYSTEM_CLOCK.monotonic() - t0))
            done[0] += 1
            if on_progress is not None:
                on_progress(ProgressEvent(done[0], total, SYSTEM_CLOCK.monotonic() - start, mid))
            await asyncio.sleep(r.expovariate(1 / spec.think_s))

    async def deploy(at: float) -> None:
        await asyncio.sleep(at)
        old = desks[-1]
        desks.append(SyncDesk(index, old.clients, web_workers=web_workers, config=config))  # empty memory
        old.shut_down()  # requests queued in the old process are reset; their browsers retry
        await old.drain()  # in-flight requests finish in the old process

    deployer = asyncio.create_task(deploy(spec.restart_at)) if spec.restart_at is not None else None
    users = [
        user(t, f"c{c}", rng.uniform(0, spec.ramp_s), rng.getrandbits(32))
        for t in tenants
        for c in range(spec.conversations)
    ]
    await asyncio.gather(*users)
    if deployer is not None:
        await deployer
    for desk in desks:
        await desk.drain()  # handlers the clients gave up on still finish (and bill)
        await desk.aclose()
    ledger = server.ledger()
    calls = ledger[(ledger["endpoint"] == "/v1/messages") & (ledger["status"] == 200)]
    charges: dict[str, int] = {}
    seen: dict[str, list[int]] = {}
    for desk in desks:
        for mid, n in desk.charges.items():
            charges[mid] = charges.get(mid, 0) + n
        for mid, n in desk.history_seen.items():
            seen.setdefault(mid, []).append(n)
    lost_history = {expected[mid][0] for mid, ns in seen.items() if min(ns) < expected[mid][1]}
    return SyncResult(
        spec=spec,
        sent=counts["sent"],
        answered=counts["answered"],
        ttfts=ttfts,
        charges=charges,
        histories_lost=len(lost_history),
        retries=counts["retries"],
        cost_usd=float(sum(float(c) for c in calls["cost_usd"])),
        peak_queued=max(d.peak_waiting for d in desks),
    )


def run_synchronous_load(
    spec: LoadSpec | None = None,
    *,
    index: VectorIndex | None = None,
    config: PipelineConfig | None = None,
    web_workers: int = 8,
    client_timeout_s: float = 30.0,
    on_progress: ProgressCallback | None = None,
) -> SyncResult:
    """Run ``spec`` against :class:`SyncDesk` on a fresh virtual loop: the same users, simulator, faults
    and restart as :func:`~.loadtest.run_load`, so the two designs' rows compare. ``web_workers``
    handler slots; the client retries once after ``client_timeout_s`` or an error. ``on_progress`` as in
    :func:`~.loadtest.run_load` (each message answered or given up on)."""
    spec = spec or LoadSpec()
    config = config if config is not None else PipelineConfig()
    if index is None:
        index = VectorIndex()
        load_help_centre(index, tenant_names(spec.tenants))
    return run_virtual(
        _sync_load(spec, index, config, web_workers, client_timeout_s, on_progress),
        limit=24 * 3600,
        noop_cycles=LOAD_NOOP_CYCLES,
    )
