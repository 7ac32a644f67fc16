"""The pipeline's workers: one consumer group per stage, each stage idempotent under redelivery.

::

    POST  ->  message.received  ->  [context]  ->  context.ready  ->  [model]  ->  answer.streamed
          ->  [metering]  ->  usage.recorded  ->  [observer: traces]

* **context** (group ``context``): retrieval from the tenant's help centre (:mod:`.vectors`, tenant
  filter inside the KNN query), then the history from the store within a token budget (lesson 01's
  strategies), composed into the request. Pure computation on stored data: redoing it is harmless.
* **model** (group ``model``): optionally triages the message with lesson 06's router (``config.router``:
  the label picks the model), then streams the answer through lesson 05's resilience (a
  :class:`~course_utils.resilience.RetryPolicy` per link, a :class:`~course_utils.resilience.BreakerBoard`
  breaker per model, a :class:`~course_utils.resilience.FallbackChain` from the primary model to the
  fallback), publishing each text delta on the conversation's delta topic for the SSE stream. It
  checks the store first: a message that already has an answer is not sent to the model again
  (a redelivery after a crash republishes the stored answer: one answer, one charge). A stream that
  fails after some text was published publishes ``restart`` first, so a client never shows two
  answers spliced into one.
* **metering** (group ``metering``): charges the tenant (the ``meter`` hook, lesson 07's metering)
  once per message, and publishes ``usage.recorded``.
* **observer** (group ``observer``): collects each request's :class:`~.trace.Trace` (once per message).

With :class:`~.controls.TenantControls` (lessons 06 and 07), the model stage keeps to the models the
tenant's plan allows, waits for the tenant's own rate limit and reserves its budget before the call,
and settles after it; a refusal becomes the message's answered error, never a retry storm. With a
``cache_path``, lesson 06's exact-match cache answers a repeated request without a model call.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Mapping

from ..clock import SYSTEM_CLOCK, Clock
from ..content import text_of
from ..resilience import AllLinksFailed, BreakerBoard, is_retryable
from .answering import ModelCaller, usage_of
from .controls import TenantControls
from .bus import ANSWER_STREAMED, CONTEXT_READY, MESSAGE_RECEIVED, USAGE_RECORDED, Event, EventBus, consume
from .outbox import OutboxRelay
from .telemetry import Telemetry
from .store import DeskStore
from .trace import Trace, TraceLog, span
from .vectors import VectorIndex
from .errors import ArchitectureError

__all__ = [
    "PipelineConfig",
    "Pipeline",
    "WorkerCrash",
    "message_id_for",
    "deltas_topic",
    "TENANT_NAME",
    "ACCEPTED",
]

log = logging.getLogger("course_utils.architecture.workers")

TENANT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
"""A tenant name: 1-64 letters, digits, ``_``, ``.`` or ``-`` (it names keys and topics)."""

SYSTEM_TEMPLATE = (
    "You are the support assistant of {tenant}. Answer the customer's question in a few sentences, "
    "using only these help-centre articles:\n\n{articles}"
)


class WorkerCrash(ArchitectureError):
    """Raised by a test's fault hook to simulate a worker dying at a given point (never in production)."""


def message_id_for(tenant: str, idempotency_key: str) -> str:
    """The message id of a POST: derived from the tenant and its ``Idempotency-Key``, so a retried
    request that got as far as storing the message finds the same message, never a second one."""
    return hashlib.sha256(f"{tenant}\x00{idempotency_key}".encode()).hexdigest()[:24]


ACCEPTED = "accepted"
"""Type of the marker :meth:`Pipeline.accept` puts on a conversation's topic (not relayed to clients)."""


def deltas_topic(tenant: str, conversation_id: str) -> str:
    """The topic that carries one conversation's answer deltas (read by its SSE stream)."""
    return f"answer.delta.{tenant}.{conversation_id}"


@dataclass
class PipelineConfig:
    """What the pipeline asks the model, and how hard it tries."""

    primary_model: str = "claude-sonnet-5-5"
    fallback_model: str | None = "claude-haiku-5-5"
    max_tokens: int = 300
    context_budget: int = 3_000
    """Input tokens per request: system prompt (with the articles) plus the history that fits."""
    k: int = 3
    """Help-centre articles retrieved per message."""
    max_attempts: int = 3
    """Tries per model (lesson 05's RetryPolicy), before falling back to the next model."""
    deadline_s: float = 60.0
    """Time the whole fallback chain may take for one message."""
    router: Any = None
    """A lesson 06 classifier (``cost.CascadeRouter``, ``cost.SingleModel``: ``await classify(client, text)``)
    that triages each message into a label before the answer; None: no routing."""
    route_to: dict[str, str] = field(default_factory=dict)
    """The model that answers each label of ``router`` (the fallback model stays behind it); an unknown
    label or a failed triage keeps ``primary_model``."""
    key_limits: Any = None
    """The provider key's per-model limits (e.g. ``mock_provider.TIERS["tier-2"]``: anything with
    ``requests_per_minute``, ``input_tokens_per_minute``, ``output_tokens_per_minute``). Set, the model
    stage paces each model's calls below them with lesson 03's ``RateBudget`` (one second's burst), so
    a busy desk waits its turn instead of collecting 429s. None: no client-side pacing."""
    key_headroom: float = 0.05
    """The share of each limit left unused when pacing (network jitter, other clients of the key)."""
    response_timeout_s: float | None = 10.0
    """Seconds an attempt waits for the response to start before it counts as a timeout and is retried
    (None: wait as long as the provider holds it). A streamed answer starts within seconds."""
    breaker: dict[str, Any] = field(
        default_factory=lambda: {"failure_rate": 0.5, "min_calls": 5, "window_s": 30.0, "cooldown_s": 10.0}
    )
    """Settings of each model's circuit breaker (lesson 05's CircuitBreaker)."""


class Pipeline:
    """The workers of the support desk, over one bus, one store and one index (see the module docstring).

    ``clients(tenant)`` returns the ``AsyncAnthropic`` client to call the model with for a tenant.
    ``faults`` maps a point (``"model:after_answer"``, ``"metering:after_meter"``) to a callable that
    may raise :class:`WorkerCrash` (or block) there: the tests' way to kill a worker mid-message.
    """

    def __init__(
        self,
        bus: EventBus,
        store: DeskStore,
        index: VectorIndex,
        clients: Callable[[str], Any],
        *,
        config: PipelineConfig | None = None,
        clock: Clock = SYSTEM_CLOCK,
        breakers: BreakerBoard | None = None,
        controls: TenantControls | None = None,
        cache_path: str | None = None,
        faults: Mapping[str, Callable[[], Awaitable[None]]] | None = None,
        telemetry: Telemetry | None = None,
    ) -> None:
        self.bus = bus
        self.store = store
        self.index = index
        self.clients = clients
        self.config = config or PipelineConfig()
        self.clock = clock
        self.breakers = breakers or BreakerBoard(clock=clock, **self.config.breaker)
        self.caller = ModelCaller(bus, clients, self.config, breakers=self.breakers, cache_path=cache_path, clock=clock)
        self.controls = controls
        self.faults = dict(faults or {})
        self.relay = OutboxRelay(store, bus, clock=clock)
        self.telemetry = telemetry
        """OpenTelemetry spans of every stage (None: only the spans carried in the events)."""
        self.traces = TraceLog()
        self._traced: set[str] = set()
        self.inbox_skipped = 0
        """Events acknowledged without the work: their message was already in the group's inbox."""
        self.replayed_answers = 0
        """Redelivered messages answered from the store without calling the model."""
        self.replayed_by_tenant: dict[str, int] = {}
        """:attr:`replayed_answers` per tenant (what a tenant's own figures show)."""

    # ----- entry -----------------------------------------------------------------------------------
    async def submit(
        self, tenant: str, conversation_id: str, text: str, *, message_id: str, trace: list[dict] | None = None
    ) -> str:
        """Store the user's message with its ``message.received`` event in the outbox (one transaction),
        then relay the outbox to the bus; returns the event's bus id ("" if the relay has not published it yet)."""
        if not TENANT_NAME.fullmatch(tenant or ""):
            raise ValueError(f"a tenant is 1-64 letters, digits, '_', '.' or '-', not {tenant!r}")
        data = {
            "tenant": tenant,
            "conversation_id": conversation_id,
            "message_id": message_id,
            "text": text,
            "trace": list(trace or []),
            "headers": {},
        }
        if self.telemetry is not None:  # the API's span: the root of the request's trace
            api = next((sp for sp in data["trace"] if sp.get("stage") == "api"), None)
            start = api["start"] if api else self.clock.time()
            root = self.telemetry.start("api", start, None, **{"gen_ai.conversation.id": conversation_id})
            root.update_name("POST /conversations/{conversation_id}/messages")
            self.telemetry.end(root, "api", {}, api["end"] if api else start, data["headers"])
        # The transactional outbox: the message and its event commit together; the relay publishes the
        # event. A crash after the commit delays the event until the relay loop's next flush, never loses it.
        self.store.add_message(
            tenant, conversation_id, "user", text, message_id=message_id, outbox=(MESSAGE_RECEIVED, data)
        )
        await self._fault("submit:after_commit")
        await self.relay.flush()
        return self.store.outbox_event_id(tenant, message_id) or ""

    async def accept(
        self, tenant: str, conversation_id: str, text: str, *, message_id: str, trace: list[dict] | None = None
    ) -> str:
        """What the API does with a new message: mark it on its conversation's own topic, then :meth:`submit`.

        Returns the marker's id, the id the API answers with: a position in the conversation's stream
        (a client may resume the stream after it), never an id of a topic other tenants share, whose
        numbering would tell one tenant how busy the others are. The stream does not relay the marker.
        """
        if not TENANT_NAME.fullmatch(tenant or ""):
            raise ValueError(f"a tenant is 1-64 letters, digits, '_', '.' or '-', not {tenant!r}")
        marker = {"message_id": message_id, "type": ACCEPTED}
        event_id = await self.bus.publish(deltas_topic(tenant, conversation_id), marker)
        await self.submit(tenant, conversation_id, text, message_id=message_id, trace=trace)
        return event_id

    def _otel(self, d: dict[str, Any]) -> dict[str, Any]:
        """The keyword arguments of :func:`~.trace.span` that make a stage an OpenTelemetry span: the
        telemetry, and the event's ``headers`` (a copy, updated with the stage's context for the next event)."""
        if self.telemetry is None:
            return {}
        d["headers"] = dict(d.get("headers") or {})
        return {"telemetry": self.telemetry, "headers": d["headers"]}

    async def _fault(self, point: str) -> None:
        hook = self.faults.get(point)
        if hook is not None:
            await hook()

    # ----- context ---------------------------------------------------------------------------------
    async def handle_message(self, event: Event) -> None:
        """``message.received`` -> retrieval and history within the budget -> ``context.ready``."""
        d = dict(event.data)
        spans = list(d.get("trace", []))
        tenant, conv, mid = d["tenant"], d["conversation_id"], d["message_id"]
        with span(spans, "retrieval", clock=self.clock, **self._otel(d)) as attrs:
            hits = self.index.search(tenant, d["text"], k=self.config.k)
            attrs.update(hits=len(hits), docs=[h.doc_id for h in hits])
        articles = "\n\n".join(f"[{h.doc_id}] {h.text}" for h in hits) or "(no articles found)"
        system = SYSTEM_TEMPLATE.format(tenant=tenant, articles=articles)
        with span(spans, "context", clock=self.clock, **self._otel(d)) as attrs:
            messages = self.store.history_within(tenant, conv, self.config.context_budget, upto=mid, system=system)
            # Earlier answered turns the store holds (before the budget trims them): what a deploy must keep.
            attrs.update(messages=len(messages), history_turns=len(self.store.history(tenant, conv, upto=mid)) // 2)
        await self.bus.publish(CONTEXT_READY, {**d, "system": system, "messages": messages, "trace": spans})

    # ----- model -----------------------------------------------------------------------------------
    async def handle_context(self, event: Event) -> None:
        """``context.ready`` -> the streamed answer (stored once) -> ``answer.streamed``."""
        d = dict(event.data)
        spans = list(d.get("trace", []))
        tenant, conv, mid = d["tenant"], d["conversation_id"], d["message_id"]
        topic = deltas_topic(tenant, conv)
        stored = self.store.answer_for(tenant, mid)
        usage = next((u for u in self.store.usage(tenant, conv) if u.message_id == mid), None)
        if stored is None and usage is not None:  # billed, but had no text: the same error, no new call
            self._replayed(tenant)
            await self._finish(d, spans, None, usage_of(usage), "the model returned no text")
            return
        if stored is not None:  # answered before a crash: republish, never call the model again
            self._replayed(tenant)
            content = stored.content if isinstance(stored.content, str) else text_of(stored.content)
            await self._finish(d, spans, content, usage_of(usage), None)
            return
        if event.redelivered:
            # A worker died mid-stream: the client may hold part of that attempt. Start it over visibly.
            await self.bus.publish(topic, {"message_id": mid, "type": "restart"})
        error: str | None = None
        result: dict[str, Any] | None = None
        try:
            with span(spans, "model", clock=self.clock, **self._otel(d)) as attrs:
                body = {"system": d["system"], "messages": d["messages"], "max_tokens": self.config.max_tokens}
                models = [self.config.primary_model] + [m for m in [self.config.fallback_model] if m]
                if self.config.router is not None:
                    models = await self._route(tenant, d["text"], models, spans)
                if self.controls is not None:
                    models = self.controls.models(tenant, models)
                    if not models:
                        raise PermissionError(f"the plan of tenant {tenant!r} allows none of the models {models}")
                attrs.update(request_model=models[0], max_tokens=self.config.max_tokens, conversation_id=conv)
                ticket = await self.controls.admit(tenant, {**body, "model": models[0]}) if self.controls else None
                if ticket is not None:
                    attrs["rate_wait_s"] = ticket.waited_s
                try:
                    result = await self.caller.answer(tenant, topic, mid, body, models, attrs)
                except BaseException:
                    if ticket is not None:
                        self.controls.settle(ticket, None)  # type: ignore[union-attr]
                    raise
                if ticket is not None:
                    self.controls.settle(ticket, result)  # type: ignore[union-attr]
                attrs.update({k: result[k] for k in ("model", "input_tokens", "output_tokens")})
                attrs["cost_usd"] = float(result["cost_usd"])  # a span's figure, for the dashboards (JSON)
                attrs["cache_hit"] = bool(result["cache_hit"])
        except AllLinksFailed as exc:
            if event.deliveries < self.bus.max_deliveries and all(is_retryable(e) for _, e in exc.errors):
                raise  # transient: left pending, redelivered after the idle timeout (spans go with this try)
            error = f"all models failed: {exc}"
        except Exception as exc:  # noqa: BLE001 - a refusal (plan, rate, budget, a 400) is this message's answer
            error = f"{type(exc).__name__}: {exc}"
        if result is None:
            await self.bus.publish(topic, {"message_id": mid, "type": "error", "error": error})
            await self._finish(d, spans, None, None, error)
            return
        if not result["text"].strip():  # a refusal, or only thinking: billed, but nothing to show
            error = f"the model returned no text (stop_reason {result['stop_reason']})"
            self._record_usage(tenant, conv, mid, result)
            await self.bus.publish(topic, {"message_id": mid, "type": "error", "error": error})
            await self._finish(d, spans, None, usage_of(result), error)
            return
        self.store.save_answer(tenant, conv, mid, result["text"])
        self._record_usage(tenant, conv, mid, result)
        await self._fault("model:after_answer")
        await self._finish(d, spans, result["text"], usage_of(result), None)

    def _replayed(self, tenant: str) -> None:
        self.replayed_answers += 1
        self.replayed_by_tenant[tenant] = self.replayed_by_tenant.get(tenant, 0) + 1

    async def _route(self, tenant: str, text: str, models: list[str], spans: list[dict]) -> list[str]:
        """Lesson 06's triage: the routed label's model first, then the others in order. Routing only
        saves money, so a failed triage (a 529, a refusal) answers with ``models`` as they were."""
        with span(spans, "routing", clock=self.clock) as attrs:
            try:
                routed = await self.router.classify(self.caller.client_for(tenant), text)
            except Exception as exc:  # noqa: BLE001 - see the docstring; recorded in the span, not an error
                attrs["routing_failed"] = type(exc).__name__
                return models
            attrs.update(label=routed.label, calls=list(routed.calls), cost_usd=float(routed.cost))
        chosen = self.config.route_to.get(routed.label or "")
        return [chosen] + [m for m in models if m != chosen] if chosen else models

    def _record_usage(self, tenant: str, conv: str, mid: str, result: Mapping[str, Any]) -> None:
        self.store.record_usage(
            tenant,
            conv,
            mid,
            model=result["model"],
            input_tokens=result["input_tokens"],
            output_tokens=result["output_tokens"],
            cache_read_input_tokens=result["cache_read_input_tokens"],
            cost_usd=result["cost_usd"],
            request_id=result["request_id"],
        )

    async def _finish(
        self, d: dict[str, Any], spans: list[dict], text: str | None, usage: dict[str, Any] | None, error: str | None
    ) -> None:
        tenant, conv, mid = d["tenant"], d["conversation_id"], d["message_id"]
        if text is not None:
            await self.bus.publish(deltas_topic(tenant, conv), {"message_id": mid, "type": "end", "usage": usage})
        data = {k: d[k] for k in ("tenant", "conversation_id", "message_id") if k in d}
        data["headers"] = d.get("headers") or {}
        await self.bus.publish(ANSWER_STREAMED, {**data, "text": text, "usage": usage, "error": error, "trace": spans})

    @property
    def router(self) -> Any:
        """The triage router of ``config`` (lesson 06), or None: a component the diagram draws when set."""
        return self.config.router

    @property
    def model_calls(self) -> int:
        """Model streams opened (every attempt of every link)."""
        return self.caller.model_calls

    @property
    def answered_by(self) -> dict[str, int]:
        """Answers per model (or ``cache``)."""
        return self.caller.answered_by

    async def aclose(self) -> None:
        """Close the model clients (call from the loop that used them)."""
        await self.caller.aclose()

    # ----- metering and observation ------------------------------------------------------------------
    async def handle_answer(self, event: Event) -> None:
        """``answer.streamed`` -> charge the tenant once (``meter``) -> ``usage.recorded``."""
        d = dict(event.data)
        spans = list(d.get("trace", []))
        with span(spans, "metering", clock=self.clock, **self._otel(d)) as attrs:
            if self.controls is not None and d.get("usage"):
                await self.controls.record(d["tenant"], d["message_id"], d["usage"])
            attrs["cost_usd_metered"] = float((d.get("usage") or {}).get("cost_usd", 0))
        await self._fault("metering:after_meter")
        await self.bus.publish(USAGE_RECORDED, {**d, "trace": spans})

    async def handle_usage(self, event: Event) -> None:
        """``usage.recorded`` -> the request's trace, once per message."""
        mid = str(event.data["message_id"])
        if mid in self._traced:
            return
        self._traced.add(mid)
        trace = Trace.from_event(event.data)
        if event.data.get("error") and trace.error is None:
            trace.spans[-1].attrs["error"] = event.data["error"]
        self.traces.add(trace)

    def inbox(self, group: str, handler: Callable[[Event], Awaitable[None]]) -> Callable[[Event], Awaitable[None]]:
        """``handler`` behind the consumer group's inbox: a message the group already processed (the event
        redelivered after a lost ack, or published twice by the relay) is acknowledged without the work."""

        async def handle(event: Event) -> None:
            tenant, mid = str(event.data["tenant"]), str(event.data["message_id"])
            if self.store.processed(group, tenant, mid):
                self.inbox_skipped += 1
                return
            await handler(event)
            self.store.mark_processed(group, tenant, mid)

        return handle

    def finished(self, message_id: str) -> bool:
        """True once ``message_id``'s trace was collected (it was answered or refused)."""
        return message_id in self._traced

    # ----- running -----------------------------------------------------------------------------------
    def stages(self) -> list[tuple[str, str, Callable[[Event], Awaitable[None]]]]:
        """``(topic, group, handler)`` of every worker, in pipeline order (the wiring the diagram draws)."""
        return [
            (MESSAGE_RECEIVED, "context", self.handle_message),
            (CONTEXT_READY, "model", self.handle_context),
            (ANSWER_STREAMED, "metering", self.handle_answer),
            (USAGE_RECORDED, "observer", self.handle_usage),
        ]

    async def run(
        self,
        stop: asyncio.Event,
        *,
        consumers: Mapping[str, int] | None = None,
        block_s: float = 0.2,
        name: str = "w",
        relay_poll_s: float = 1.0,
    ) -> None:
        """Run every stage's consumers until ``stop`` is set (``consumers``: how many per group, default 1;
        the model group gets 4 by default, since model calls are slow and wait on the network), and the
        outbox relay, which publishes every ``relay_poll_s`` what a crash left unpublished."""
        counts = {"model": 4, **(consumers or {})}
        async with asyncio.TaskGroup() as tg:
            for topic, group, handler in self.stages():
                for i in range(counts.get(group, 1)):
                    # count=1: a consumer takes only the event it works on. Prefetched events wait
                    # behind it without a lease renewal, and a slow stream ahead of them (minutes of
                    # retries) lets the idle timeout hand them to a second consumer: two model calls.
                    tg.create_task(
                        consume(
                            self.bus,
                            topic,
                            group,
                            f"{name}-{group}-{i}",
                            self.inbox(group, handler),
                            stop=stop,
                            block_s=block_s,
                            count=1,
                        )
                    )
            tg.create_task(self.relay.run(stop, poll_s=relay_poll_s))
