"""The simulated provider's state: its settings, clock, ledger and the pipeline of stages.

One :class:`Simulator` owns everything a real deployment would: the clock, the ledger, the
scripted replies, the batch store, and the stages each request passes through. It knows nothing
of HTTP: :func:`~.app.create_app` serves it, with one handler module per endpoint
(:mod:`.handlers`), the stream writer (:mod:`.stream`) and billing (:mod:`.billing`).
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
import logging
from typing import Any

from ..clock import SYSTEM_CLOCK, Clock
from .batches import BatchStore
from .billing import batch_result_row, charge_for
from .cache import PromptCache
from .config import SimulatorConfig
from .errors import APIError, InvalidRequest, Overloaded
from .exchange import Exchange, mask_key
from .ids import new_id
from .faults import FaultInjector, Scenario, get_scenario
from .ledger import Ledger, LedgerRow
from .ratelimit import RateLimiter, RateLimits
from .render import message_json
from .spend import SpendLimits
from .stages import Authenticate, EnforceRateLimits, Generate, InjectFaults, PromptCaching, Stage, Validate
from .stream import DroppedConnection

__all__ = ["Simulator", "DroppedConnection", "mask_key"]

log = logging.getLogger("course_utils.mock_provider")


class Simulator:
    """A simulated provider instance."""

    def __init__(self, config: SimulatorConfig | None = None, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.config = config or SimulatorConfig()
        self.clock = clock
        self.loop: asyncio.AbstractEventLoop | None = None
        """The event loop serving requests (set when the app starts), for introspection."""
        self.ledger = Ledger()
        self.scripted: list[tuple[Any, str]] = []
        self.auth = Authenticate(self.config.require_version_header)
        # Stages between validation and generation (faults, prompt cache, rate limits) plug in here.
        self._initial_scenario = self.config.scenario
        self.faults = FaultInjector(self.config.scenario, self.config, clock=clock)
        self.limiter = RateLimiter(
            clock, self.config.rate_limit_tier, exact_remaining=self.config.exact_ratelimit_remaining
        )
        self.spend = SpendLimits()
        # Caches and batches belong to a workspace: every key of the workspace shares them.
        self.cache = PromptCache(clock, scope_of=self.limiter.workspace_scope)
        self.rate_limits = EnforceRateLimits(self.limiter)
        # Order as the API: a fault can strike any valid request; the cache split decides what
        # counts against input-token limits; admission comes last before generation.
        self.middle: list[Stage] = [InjectFaults(self.faults), PromptCaching(self.cache), self.rate_limits]
        self.batches = BatchStore(
            clock,
            self.config,
            self._process_batch_item,
            on_result=self._bill_batch_result,
            scope_of=self.limiter.workspace_scope,
        )
        self.validate = Validate(self.config)
        self.validate_count = Validate(self.config, for_count=True)
        self.generate = Generate(self.config, self.scripted)

    # ----- configuration used by notebooks -----------------------------------------------------
    def script(self, pattern: Any, reply: str) -> None:
        """Register a scripted reply: when the last user turn matches ``pattern``, answer ``reply``."""
        self.scripted.append((pattern, reply))

    def set_scenario(self, scenario: "str | Scenario | dict[str, Any]") -> Scenario:
        """Switch the fault scenario at runtime: a preset name, a :class:`Scenario`, or a dict."""
        resolved = Scenario.from_dict(scenario) if isinstance(scenario, dict) else get_scenario(scenario)
        self.faults.set_scenario(resolved)
        self.config.scenario = resolved.name
        return resolved

    def configure(self, *, seed: int | None = None, time_scale: float | None = None) -> None:
        """The one way to change settings at run time; every component reads ``self.config``.

        ``time_scale`` is taken as given (servers apply the CI cap before calling this): how fast
        simulated latency, batch processing and outage windows run (1 = realistic, 0 = instant).
        """
        if seed is not None:
            if isinstance(seed, bool) or not isinstance(seed, int):
                raise ValueError(f"seed must be an integer, not {seed!r}")
            self.config.seed = seed
        if time_scale is not None:
            if not isinstance(time_scale, (int, float)) or isinstance(time_scale, bool) or not time_scale >= 0:
                raise ValueError(f"time_scale must be a number >= 0, not {time_scale!r}")
            self.faults.rescale(float(time_scale))  # writes self.config.time_scale, banking elapsed time

    def set_rate_limits(self, api_key: str, tier: "str | RateLimits") -> None:
        """Make ``api_key`` an organisation of its own with these limits (a tier name or a
        :class:`RateLimits`): only another organisation has limits of its own."""
        self.limiter.set_tier(api_key, tier)

    def spend_scopes(self, api_key: str) -> tuple[str, str | None]:
        """(organisation, named workspace or None) whose spend limits a request of ``api_key`` meets."""
        workspace = self.limiter.workspaces.workspace_of(api_key)
        return self.limiter.organization_of(api_key), (None if workspace is None else "ws:" + workspace)

    def set_spend_limit(
        self, usd: "Decimal | float | str | None", *, api_key: str = "", workspace: str | None = None
    ) -> None:
        """A monthly spend limit (USD) of the organisation of ``api_key`` (default: the simulated
        organisation), or of ``workspace``; ``None`` removes it. Reaching it is a 400 (errors page)."""
        if workspace is not None:
            if workspace not in self.limiter.workspaces.names():
                raise KeyError(f"no workspace {workspace!r}; create it first")
            self.spend.set("ws:" + workspace, usd)
        else:
            self.spend.set(self.limiter.organization_of(api_key), usd)

    def revoke_key(self, api_key: str) -> None:
        """From now on ``api_key`` gets 401 ``authentication_error`` (a revoked or expired key)."""
        self.auth.revoke(api_key)

    def reset(self) -> None:
        """Back to a fresh server: empty ledger, no scripted replies, empty cache, full rate-limit
        buckets, the scenario it was started with. Batches are kept (they are the client's data)."""
        self.ledger.clear()
        self.spend.reset()
        self.scripted.clear()
        self.set_scenario(self._initial_scenario)
        for stage in self.middle:
            reset = getattr(stage, "reset", None)
            if reset:
                reset()

    # ----- the pipeline ----------------------------------------------------------------------------
    async def run_stages(self, ex: Exchange, *, count_only: bool = False) -> None:
        """Pass a request through the stages, in the API's order; a stage refuses it by raising."""
        await self.auth.before(ex)
        if count_only:
            await self.validate_count.before(ex)
            return
        await self.validate.before(ex)
        self.spend.check(self.clock.time(), *self.spend_scopes(ex.api_key or ""))
        for stage in self.middle:
            await stage.before(ex)
        await self.generate.before(ex)

    def settle(self, ex: Exchange, status: int, error: APIError | None = None, *, at: float | None = None) -> None:
        """Close the request's books once (later calls do nothing): its status, every stage's
        settlement (rate-limit reservations, prompt-cache writes), its price, its ledger row.
        ``at``: when the provider finished (clock time), if not now."""
        row = ex.row
        if row.finish is not None:
            return
        row.finish = self.clock.time() if at is None else at
        row.status = status
        if error is not None:
            row.error_type = error.type
        for stage in (self.auth, self.validate, *self.middle, self.generate):
            try:
                stage.after(ex, status)
            except Exception:  # noqa: BLE001 - settlement must never break the response
                log.exception("stage %s failed to settle request %s", type(stage).__name__, ex.request_id)
        if status == 200 and ex.model is not None and row.endpoint == "/v1/messages":
            row.cost_usd = charge_for(row)
            self.spend.add(self.clock.time(), *self.spend_scopes(ex.api_key or ""), row.cost_usd)
        self.ledger.add(row)

    async def run_batches(self) -> None:
        """Process batches in the background for as long as the server runs."""
        await self.batches.run()

    # ----- batch items: the core runs them as it runs a Messages request --------------------------
    def batches_queued_in_org(self, api_key: str) -> int:
        """Batch requests of ``api_key``'s organisation still waiting to be processed (the queue
        limit is the organisation's: every key of it counts)."""
        org = self.limiter.organization_of(api_key)
        return sum(n for key, n in self.batches.queued_by_key().items() if self.limiter.organization_of(key) == org)

    async def _process_batch_item(self, params: dict[str, Any], custom_id: str, batch_id: str) -> dict[str, Any]:
        """Run one batch item through validation, the prompt cache and the skills; invalid params become
        ``errored``.

        Prompt caching applies inside batches as in the Messages API: the item reads and writes the
        cache of the batch owner's key (the batch guide recommends the 1-hour TTL for context shared
        across a batch), and its usage reports the cache reads and writes, billed at the batch discount.
        """
        rid = new_id("req")
        ex = Exchange(
            request_id=rid,
            api_key=None,
            headers={},
            body=params,
            row=LedgerRow(request_id=rid, endpoint="/v1/messages/batches", method="BATCH", api_key=None),
        )
        try:
            if not isinstance(params, dict):
                raise InvalidRequest("params: Input should be a valid object")
            if params.get("stream"):
                raise InvalidRequest("stream: streaming is not supported for requests in a Message Batch")
            await self.validate.before(ex)
            if self.faults.batch_error(batch_id, custom_id, ex.body_key):
                # A transient failure: the same request, resubmitted in a new batch, is a fresh draw.
                raise Overloaded("Overloaded")
            owner = self.batches.owner_of(batch_id)
            if owner is not None and ex.model is not None:
                ex.usage = self.cache.lookup_and_store(
                    owner, ex.model.id, ex.body, ex.model.min_cache_tokens
                ).as_usage()
            await self.generate.before(ex)
        except APIError as err:
            return {"type": "errored", "error": err.body(rid)}
        message = message_json(ex, final=True)
        message["usage"]["service_tier"] = "batch"
        return {"type": "succeeded", "message": message}

    def _bill_batch_result(
        self, api_key: str, custom_id: str, params: dict[str, Any], result: dict[str, Any], batch_id: str
    ) -> None:
        """One ledger row per finished batch request; only ``succeeded`` ones are billed (at the discount)."""
        row = batch_result_row(api_key, custom_id, params, result, batch_id, self.clock.time())
        row.workspace = self.limiter.workspaces.workspace_of(api_key or "")
        self.ledger.add(row)
        # Counted against spend limits as billed; a batch "may slightly exceed a workspace spend limit".
        self.spend.add(self.clock.time(), *self.spend_scopes(api_key or ""), row.cost_usd)
