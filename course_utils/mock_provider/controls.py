"""What a notebook or a check may do to a running simulator, however it is served."""

from __future__ import annotations

from typing import Any

from .config import SimulatorConfig
from .faults import Outage
from .simulator import Simulator
from .tenants import Tenant

__all__ = ["SimulatorControls"]


class SimulatorControls:
    """The public controls of a served :class:`Simulator` (``self.simulator``)."""

    simulator: Simulator

    @property
    def config(self) -> SimulatorConfig:
        return self.simulator.config

    def client(self, api_key: str = "sim-key-default", **kwargs: Any) -> Any:  # pragma: no cover - per server
        """An ``anthropic.Anthropic`` client of this simulator (each server says how it connects)."""
        raise NotImplementedError

    def async_client(self, api_key: str = "sim-key-default", **kwargs: Any) -> Any:  # pragma: no cover
        """An ``anthropic.AsyncAnthropic`` client of this simulator (each server says how it connects)."""
        raise NotImplementedError

    def ledger(self) -> Any:
        """Every request served so far, as a pandas DataFrame (one row per request)."""
        return self.simulator.ledger.dataframe()

    def script(self, pattern: Any, reply: str) -> None:
        """Make the simulated model answer ``reply`` when the last user turn matches ``pattern``."""
        self.simulator.script(pattern, reply)

    def reset(self) -> None:
        """Clear the ledger, scripted replies, prompt cache and rate-limit buckets."""
        self.simulator.reset()

    def set_scenario(self, scenario: Any) -> Any:
        """Switch the fault scenario: a preset (calm, flaky, overloaded, outage, rate-limited,
        slow-lossy, model-outage), a dict or a Scenario."""
        return self.simulator.set_scenario(scenario)

    def configure(self, *, seed: int | None = None, time_scale: float | None = None) -> None:
        """Change the seed and/or time scale of the running simulator (see :meth:`Simulator.configure`)."""
        self.simulator.configure(seed=seed, time_scale=time_scale)

    def set_rate_limits(self, api_key: str, tier: Any) -> None:
        """Make ``api_key`` an organisation of its own with these limits (a tier name, see
        ``ratelimit.TIERS``, or a ``RateLimits``). Limits belong to an organisation, so only a key of
        another organisation (another account) has limits apart from the others'."""
        self.simulator.set_rate_limits(api_key, tier)

    def tenant(self, name: str, tier: Any = None, *, workspace: str | None = None) -> Tenant:
        """Tenant ``name``: SDK clients with its own API key and its own view of the ledger.

        Limits belong to the organisation, not to the key (rate-limits page: "Limits are set at the
        organization level"), so by default a tenant's key is one more key of the simulated
        organisation, in its default workspace: it shares the organisation's limits, prompt cache
        and batches with every other such key, and adds no capacity.

        ``workspace``: the key belongs to that workspace (see :meth:`workspace`): it shares the
        workspace's cache and batches, and draws on the workspace's limits (if it has any) *and*
        the organisation's. ``tier`` (a tier name such as ``"tier-1"``, or a ``RateLimits``): the
        tenant is an organisation of its own with those limits (another account), buckets full.
        The same name always means the same tenant (the same key).
        """
        if tier is not None and workspace is not None:
            raise ValueError(
                "a key in a workspace belongs to the simulated organisation: give the workspace limits instead"
            )
        t = Tenant(self, name)
        if tier is not None:
            self.set_rate_limits(t.api_key, tier)
        if workspace is not None:
            self.simulator.limiter.assign_workspace(t.api_key, workspace)
        return t

    def workspace(self, name: str, limits: Any = None) -> str:
        """Create (or reconfigure) workspace ``name`` of the simulated organisation; returns its name
        (also its id in the Rate Limits API, as is or as ``wrkspc_<name>``).

        ``limits`` (a tier name or a ``RateLimits``) are the workspace's own per-minute limits; the
        organization's still apply ("Organization-wide limits always apply, even if Workspace limits
        add up to more"), so the lower of the two is enforced. ``None``: no limits of its own. Keys
        join it with ``tenant(..., workspace=name)``.
        """
        self.simulator.limiter.set_workspace(name, limits)
        return name

    def set_org_limits(self, limits: Any) -> None:
        """The per-minute limits of the simulated organisation (default: the server's default tier),
        shared by every key that is not an organisation of its own."""
        self.simulator.limiter.set_org_limits(limits)

    def set_spend_limit(self, usd: Any, *, workspace: str | None = None) -> None:
        """A monthly spend limit in USD that the simulated organisation (or ``workspace``) set for
        itself; ``None`` removes it. Once reached, requests get the API's 400 ("You have reached your
        specified API usage limits"), not the 429 of a tier's cap. Message Batches may exceed it."""
        self.simulator.set_spend_limit(usd, workspace=workspace)

    def model_outage(
        self,
        models: "str | list[str] | tuple[str, ...]",
        duration_s: float,
        *,
        kind: str = "overloaded",
        start_in_s: float = 0.0,
    ) -> Outage:
        """Take ``models`` down for ``duration_s`` simulated seconds, starting ``start_in_s`` from now:
        their requests fail with ``kind`` (``overloaded`` 529, ``api_error`` 500, ``timeout_error``
        504, ``disconnect``, or ``timeout``: no answer), every other model keeps working. On top of
        the scenario in effect; ``reset()`` or a new scenario ends it. Returns the window
        (``start_s``/``end_s`` in simulated seconds since the scenario was set)."""
        return self.simulator.faults.add_outage(duration_s, models=models, kind=kind, start_in_s=start_in_s)
