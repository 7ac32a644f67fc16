"""The model call of the support desk: one tenant's streamed answer, as resilient as lesson 05 makes it.

:class:`ModelCaller` streams an answer through a :class:`~course_utils.resilience.FallbackChain`
of models (each link retried by a :class:`~course_utils.resilience.RetryPolicy` and guarded by its
breaker in a :class:`~course_utils.resilience.BreakerBoard`), paced below the key's limits by lesson
03's :class:`~course_utils.concurrency.RateBudget` when ``config.key_limits`` is set, publishes each text delta on the
conversation's delta topic as it arrives (``restart`` first when a failed attempt had shown some
text), and answers a repeated request from lesson 06's exact cache (one namespace per tenant)
without a model call. One SDK client per tenant (its connection pool reused), with the SDK's own
retries off: the policy is the one retry layer.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any, Callable

from .. import pricing
from ..clock import SYSTEM_CLOCK, Clock
from ..concurrency import RateBudget, estimate_demand
from ..content import text_of
from ..resilience import BreakerBoard, FallbackChain, Link, RetryPolicy, is_retryable
from .bus import EventBus

__all__ = ["ModelCaller", "usage_of"]


class ModelCaller:
    """Streams answers for the pipeline (see the module docstring); counts what it did."""

    def __init__(
        self,
        bus: EventBus,
        clients: Callable[[str], Any],
        config: Any,
        *,
        breakers: BreakerBoard,
        cache_path: str | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.bus = bus
        self.clients = clients
        self.config = config
        self.breakers = breakers
        self.cache_path = cache_path
        self.clock = clock
        self.model_calls = 0
        """Model streams opened (every attempt of every link)."""
        self.answered_by: dict[str, int] = {}
        self._clients: dict[str, Any] = {}
        self._caches: dict[str, Any] = {}
        self._budgets: dict[str, RateBudget] = {}
        self._outputs = [0, 0]  # replies, output tokens: the expected output of the next request

    def _budget(self, model: str) -> RateBudget | None:
        """Lesson 03's pacing: one client-side copy of the key's limits per model (they apply per model)."""
        limits = getattr(self.config, "key_limits", None)
        if limits is None:
            return None
        if model not in self._budgets:
            self._budgets[model] = RateBudget.from_limits(
                limits, clock=self.clock, burst_s=1.0, headroom=self.config.key_headroom
            )
        return self._budgets[model]

    def _cache(self, tenant: str) -> Any:
        if self.cache_path is None:
            return None
        if tenant not in self._caches:
            from ..cost import ExactCache

            self._caches[tenant] = ExactCache(self.cache_path, namespace=tenant, clock=self.clock)
        return self._caches[tenant]

    async def answer(
        self, tenant: str, topic: str, mid: str, body: dict[str, Any], models: list[str], attrs: dict
    ) -> dict[str, Any]:
        client = self._client(tenant)
        cache = self._cache(tenant)
        if cache is not None:
            cached = cache.get({**body, "model": models[0]})
            if cached is not None:  # the same question in the same context: no model call, no charge
                attrs["first_token_at"] = self.clock.time()
                await self.bus.publish(topic, {"message_id": mid, "type": "delta", "text": text_of(cached)})
                attrs["link"] = "cache"
                return {**_result(cached, models[0]), "cost_usd": Decimal(0), "cache_hit": True, "request_id": None}

        async def attempt(model: str) -> dict[str, Any]:
            budget = self._budget(model)
            if budget is not None:  # pace below the key's limits instead of learning them from 429s
                # Output tokens are charged as generated: expect the mean so far; before any reply,
                # assume max_tokens (a cautious start, settled to what the reply really used).
                expected = self._outputs[1] / self._outputs[0] if self._outputs[0] else float(body["max_tokens"])
                demand = estimate_demand({**body, "model": model}, expected)
                attrs["paced_s"] = attrs.get("paced_s", 0.0) + await budget.acquire(demand)
            self.model_calls += 1
            published = 0
            try:
                # A provider that holds the response (no headers yet) is a hung call: give up after
                # response_timeout_s and retry (TimeoutError is retryable), instead of holding a consumer
                # for as long as it hangs. Once the response has started, a long answer is no hang.
                async with (
                    asyncio.timeout(self.config.response_timeout_s) as started,
                    client.messages.stream(model=model, **body) as stream,
                ):
                    started.reschedule(None)
                    async for text in stream.text_stream:
                        if "first_token_at" not in attrs:
                            attrs["first_token_at"] = self.clock.time()
                        published += 1
                        await self.bus.publish(topic, {"message_id": mid, "type": "delta", "text": text})
                    message = await stream.get_final_message()
                    request_id = stream.request_id  # the `request-id` header: what billing reconciles by
            except Exception as exc:  # not on cancellation: a worker being killed says nothing (its redelivery will)
                if budget is not None and getattr(exc, "status_code", None) == 429:
                    budget.refund(demand)  # refused, so never charged against the limits
                if published:  # the client has shown part of this attempt: tell it to start over
                    attrs.pop("first_token_at", None)
                    await self.bus.publish(topic, {"message_id": mid, "type": "restart"})
                raise
            used = int(message.usage.output_tokens or 0)
            self._outputs[0] += 1
            self._outputs[1] += used
            if budget is not None:
                budget.settle_output(demand.output_tokens, used)
            if cache is not None and model == models[0]:  # never cache a degraded (fallback) answer
                cache.put({**body, "model": model}, message)
            return {**_result(message, model), "cache_hit": False, "request_id": request_id}

        def link(model: str) -> Link:
            policy = RetryPolicy(
                max_attempts=self.config.max_attempts, deadline_s=None, retry_if=is_retryable, clock=self.clock
            )
            return Link(model, lambda: policy.acall(attempt, model))

        chain = FallbackChain(
            [link(m) for m in models],
            deadline_s=self.config.deadline_s,
            retry_if=is_retryable,
            breakers=self.breakers,
            clock=self.clock,
        )
        outcome = await chain.acall()
        self.answered_by[outcome.link] = self.answered_by.get(outcome.link, 0) + 1
        attrs["link"] = outcome.link
        return outcome.value

    def client_for(self, tenant: str) -> Any:
        """The tenant's SDK client (SDK retries off), shared with the stage's other calls (routing)."""
        return self._client(tenant)

    def _client(self, tenant: str) -> Any:
        # One client per tenant (its connection pool is reused); lesson 05's policy is the one retry layer.
        if tenant not in self._clients:
            self._clients[tenant] = self.clients(tenant).with_options(max_retries=0)
        return self._clients[tenant]

    async def aclose(self) -> None:
        """Close the SDK clients this caller opened (call from the loop that used them)."""
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.close()


def _result(message: Any, model: str) -> dict[str, Any]:
    u = message.usage
    return {
        "model": model,
        "text": text_of(message),
        "input_tokens": u.input_tokens,
        "output_tokens": u.output_tokens,
        "cache_read_input_tokens": u.cache_read_input_tokens or 0,
        "cost_usd": pricing.cost(u, model),  # exact dollars (a Decimal): what the store records
        "stop_reason": message.stop_reason,
    }


def usage_of(source: Any) -> dict[str, Any] | None:
    """The usage figures of a model result (dict) or a stored :class:`~.store.Usage`, for events (JSON:
    ``cost_usd`` is the exact Decimal's text, never a float)."""
    if source is None:
        return None
    get = source.get if isinstance(source, dict) else lambda k: getattr(source, k)
    keys = ("model", "input_tokens", "output_tokens", "cache_read_input_tokens", "cost_usd", "request_id")
    usage = {k: get(k) for k in keys}
    usage["cost_usd"] = str(usage["cost_usd"])  # events are JSON: money travels as the Decimal's text, exact
    return usage
