"""The incident's design, kept to measure against: one synchronous handler does everything inline.

:class:`SyncDesk` is the support assistant before lesson 08. Each POST holds one of ``web_workers``
handler slots (a gunicorn worker, a thread) while it retrieves, calls the model *without streaming*
and bills the tenant, all inline; conversations live in a dict in process memory. Production met
it three ways, and :func:`run_synchronous_load` reproduces each on virtual time with the same
load, simulator and seed as :func:`~.loadtest.run_load`:

* **a slow call holds a worker**: requests queue for a free slot, and the user sees nothing until
  the whole answer is back (time to first token is the whole response time, queueing included);
* **a retry re-runs the handler**: the client gives up after ``client_timeout_s`` and sends the
  message again, while the first handler (which never learns the client left) still finishes and
  bills: two model calls, two charges, two answers;
* **a deploy restarts the process**: even a graceful one (in-flight requests finish) starts with empty
  memory, so every open conversation's next turn is answered without its history.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from typing import Any, Callable

from ..clock import SYSTEM_CLOCK, run_virtual
from ..content import text_of
from ..mock_provider.inprocess import InProcessServer
from .help_centre import load_help_centre, questions, tenant_names
from .loadtest import LOAD_NOOP_CYCLES, LoadSpec
from .trace import percentile
from .vectors import VectorIndex
from .workers import SYSTEM_TEMPLATE, PipelineConfig

__all__ = ["SyncDesk", "SyncResult", "run_synchronous_load"]


class SyncDesk:
    """The synchronous support desk: retrieval, the model and billing inline in the request handler.

    ``clients(tenant)`` returns the tenant's ``AsyncAnthropic`` client. ``handle`` is one request:
    it waits for a free handler slot, then does everything and returns the answer's text (or raises
    the model's error). :meth:`restart` is a deploy: the conversations in memory are gone.
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
        self._client_cache: dict[str, Any] = {}
        self._running: dict[asyncio.Task, None] = {}  # ordered (a set's order would vary run to run)
        self.conversations: dict[tuple[str, str], list[dict[str, Any]]] = {}
        """Each conversation's history, in process memory (what a restart loses)."""
        self.charges: dict[str, int] = {}
        """Charges per message id, billed inline after each model call."""

    def post(self, tenant: str, conversation_id: str, text: str, *, message_id: str) -> asyncio.Task:
        """Start handling one POST; the task's result is the answer text."""
        task = asyncio.create_task(self.handle(tenant, conversation_id, text, message_id=message_id))
        self._running[task] = None
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task) -> None:
        self._running.pop(task, None)
        if not task.cancelled():
            task.exception()  # retrieved: a client that gave up never reads it, and that is the design's point

    async def handle(self, tenant: str, conversation_id: str, text: str, *, message_id: str) -> str:
        """The handler: one slot held from retrieval to billing (the model call included)."""
        async with self._slots:
            hits = self.index.search(tenant, text, k=self.config.k)
            articles = "\n\n".join(f"[{h.doc_id}] {h.text}" for h in hits) or "(no articles found)"
            history = self.conversations.setdefault((tenant, conversation_id), [])
            messages = [*history, {"role": "user", "content": text}]
            client = self._client_cache.get(tenant) or self._client_cache.setdefault(tenant, self.clients(tenant))
            reply = await client.messages.create(
                model=self.config.primary_model,
                max_tokens=self.config.max_tokens,
                system=SYSTEM_TEMPLATE.format(tenant=tenant, articles=articles),
                messages=messages,
            )
            self.charges[message_id] = self.charges.get(message_id, 0) + 1  # billing, inline
            answer = text_of(reply)
            history += [{"role": "user", "content": text}, {"role": "assistant", "content": answer or "(no text)"}]
            return answer

    def restart(self) -> int:
        """A deploy: a new process takes the traffic with empty memory (handlers in flight finish in the
        old one, appending to histories nobody will read). Returns how many conversations were dropped."""
        dropped, self.conversations = len(self.conversations), {}
        return dropped

    async def drain(self) -> None:
        """Wait for every handler still running (those whose clients gave up included)."""
        await asyncio.gather(*list(self._running), return_exceptions=True)

    async def aclose(self) -> None:
        for client in self._client_cache.values():
            await client.close()


@dataclass
class SyncResult:
    """What the synchronous design's load test measured (the keys of :meth:`~.loadtest.LoadResult.slo`)."""

    spec: LoadSpec
    sent: int
    answered: int
    ttfts: list[float]
    charges: dict[str, int]
    histories_lost: int
    """Conversations that continued after the restart without their history."""
    retries: int
    cost_usd: float

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
            "cost_per_conversation_usd": self.cost_usd / max(1, self.spec.tenants * self.spec.conversations),
        }


async def _sync_load(spec: LoadSpec, index: VectorIndex, config: PipelineConfig, web_workers: int, timeout: float):
    server = InProcessServer(seed=spec.seed, time_scale=1.0, rate_limit_tier="unlimited")
    server.set_scenario(spec.scenario)
    if spec.outage_at is not None:
        server.model_outage(config.primary_model, spec.outage_s, start_in_s=spec.outage_at)
    # max_retries=0: the SDK's backoff jitter comes from the unseeded global `random`, which would make
    # the figures differ run to run; the browser's retry (below) is this design's retry.
    desk = SyncDesk(
        index, lambda t: server.tenant(t).async_client(max_retries=0), web_workers=web_workers, config=config
    )
    rng = random.Random(spec.seed)
    tenants = tenant_names(spec.tenants)
    pool = {t: [q["question"] for q in questions() if q["tenant"] == t] for t in tenants}
    counts = {"sent": 0, "answered": 0, "retries": 0}
    ttfts: list[float] = []
    started_before_restart: set[tuple[str, str]] = set()
    histories_lost: set[tuple[str, str]] = set()
    restarted = asyncio.Event()

    async def attempt(tenant: str, conv: str, text: str, mid: str) -> str | None:
        """One POST as the browser sees it: the answer, or None (timed out or failed)."""
        task = desk.post(tenant, conv, text, message_id=mid)
        done, _ = await asyncio.wait({task}, timeout=timeout)  # virtual time; the handler runs on regardless
        if not done or task.cancelled() or task.exception() is not None:
            return None
        return task.result()

    async def user(tenant: str, conv: str, delay: float, seed: int) -> None:
        r = random.Random(seed)
        await asyncio.sleep(delay)
        for turn in range(spec.turns):
            mid, text = f"{tenant}-{conv}-{turn}", r.choice(pool[tenant])
            if restarted.is_set() and (tenant, conv) in started_before_restart:
                histories_lost.add((tenant, conv))
            elif not restarted.is_set():
                started_before_restart.add((tenant, conv))
            counts["sent"] += 1
            t0 = SYSTEM_CLOCK.monotonic()
            answer = await attempt(tenant, conv, text, mid)
            if answer is None:  # the browser (or load balancer) retries once: the handler runs again
                counts["retries"] += 1
                answer = await attempt(tenant, conv, text, mid)
            if answer is not None:  # else lost: sent - answered
                counts["answered"] += 1
                ttfts.append(SYSTEM_CLOCK.monotonic() - t0)  # no streaming: the first token comes with the last
            await asyncio.sleep(r.expovariate(1 / spec.think_s))

    async def deploy(at: float) -> None:
        await asyncio.sleep(at)
        desk.restart()
        restarted.set()

    deployer = asyncio.create_task(deploy(spec.restart_at)) if spec.restart_at is not None else None
    users = [
        user(t, f"c{c}", rng.uniform(0, spec.ramp_s), rng.getrandbits(32))
        for t in tenants
        for c in range(spec.conversations)
    ]
    await asyncio.gather(*users)
    if deployer is not None:
        deployer.cancel()
        await asyncio.gather(deployer, return_exceptions=True)
    await desk.drain()  # handlers the clients gave up on still finish (and bill)
    await desk.aclose()
    ledger = server.ledger()
    calls = ledger[(ledger["endpoint"] == "/v1/messages") & (ledger["status"] == 200)]
    return SyncResult(
        spec=spec,
        sent=counts["sent"],
        answered=counts["answered"],
        ttfts=ttfts,
        charges=dict(desk.charges),
        histories_lost=len(histories_lost),
        retries=counts["retries"],
        cost_usd=float(sum(float(c) for c in calls["cost_usd"])),
    )


def run_synchronous_load(
    spec: LoadSpec | None = None,
    *,
    index: VectorIndex | None = None,
    config: PipelineConfig | None = None,
    web_workers: int = 8,
    client_timeout_s: float = 30.0,
) -> SyncResult:
    """Run ``spec`` against :class:`SyncDesk` on a fresh virtual loop: the same users, simulator, faults
    and restart as :func:`~.loadtest.run_load`, so the two designs' rows compare. ``web_workers``
    handler slots; the client retries once after ``client_timeout_s`` or an error."""
    spec = spec or LoadSpec()
    config = config if config is not None else PipelineConfig()
    if index is None:
        index = VectorIndex()
        load_help_centre(index, tenant_names(spec.tenants))
    return run_virtual(
        _sync_load(spec, index, config, web_workers, client_timeout_s), limit=24 * 3600, noop_cycles=LOAD_NOOP_CYCLES
    )
