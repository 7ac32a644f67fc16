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
        """Give ``api_key`` its own limits: a tier name (see ``ratelimit.TIERS``) or a ``RateLimits``."""
        self.simulator.set_rate_limits(api_key, tier)

    def tenant(self, name: str, tier: Any = None, *, workspace: str | None = None) -> Tenant:
        """Tenant ``name``: SDK clients with its own API key and its own view of the ledger.

        ``tier`` (a tier name such as ``"tier-1"``, or a ``RateLimits``) gives the tenant its own
        rate limits, with full buckets; None leaves its limits as they are (the server's default
        tier for a new tenant). ``workspace`` puts the tenant's key in that workspace (see
        :meth:`workspace`): it then draws on the workspace's and the organization's limits instead
        of limits of its own. The same name always means the same tenant (the same key).
        """
        if tier is not None and workspace is not None:
            raise ValueError("a key in a workspace uses the workspace's limits: give the workspace the tier")
        t = Tenant(self, name)
        if tier is not None:
            self.set_rate_limits(t.api_key, tier)
        if workspace is not None:
            self.simulator.limiter.assign_workspace(t.api_key, workspace)
        return t

    def workspace(self, name: str, limits: Any = None) -> str:
        """Create (or reconfigure) workspace ``name`` and return its name.

        ``limits`` (a tier name or a ``RateLimits``) are the workspace's own per-minute limits; the
        organization's still apply, so the lower of the two is enforced (as the Admin API's
        workspace rate limits work). ``None``: no limits of its own. Keys join it with
        ``tenant(..., workspace=name)``; every key of every workspace shares the organization's
        limits (:meth:`set_org_limits`).
        """
        self.simulator.limiter.set_workspace(name, limits)
        return name

    def set_org_limits(self, limits: Any) -> None:
        """The per-minute limits of the organization the workspaces belong to (default: the default tier)."""
        self.simulator.limiter.set_org_limits(limits)

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
