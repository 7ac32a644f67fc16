"""The simulated provider's state: its settings, clock, ledger and the pipeline of stages.

One :class:`Simulator` owns everything a real deployment would: the clock, the ledger, the
scripted replies, the batch store, and the stages each request passes through. It knows nothing
of HTTP: :func:`~.app.create_app` serves it, with one handler module per endpoint
(:mod:`.handlers`), the stream writer (:mod:`.stream`) and billing (:mod:`.billing`).
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
import functools
import logging
from typing import Any

from ..clock import SYSTEM_CLOCK, Clock
from .app import create_app
from .batches import BatchStore
from .billing import price
from .cache import PromptCache
from .config import SimulatorConfig
from .errors import APIError
from .exchange import Exchange, mask_key
from .faults import FaultInjector, Scenario, get_scenario
from .handlers.batches import bill_batch_result, process_batch_item
from .ledger import Ledger
from .ratelimit import RateLimiter, RateLimits
from .spend import SpendLimits
from .stages import Authenticate, EnforceRateLimits, Generate, InjectFaults, PromptCaching, Stage, Validate
from .stream import DroppedConnection

__all__ = ["Simulator", "create_app", "DroppedConnection", "mask_key"]

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
            functools.partial(process_batch_item, self),
            on_result=functools.partial(bill_batch_result, self),
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
            row.cost_usd = price(row)
            self.spend.add(self.clock.time(), *self.spend_scopes(ex.api_key or ""), row.cost_usd)
        self.ledger.add(row)

    async def run_batches(self) -> None:
        """Process batches in the background for as long as the server runs."""
        await self.batches.run()
