"""What a notebook or a check may do to a running simulator, however it is served."""

from __future__ import annotations

from typing import Any

from .config import SimulatorConfig
from .simulator import Simulator

__all__ = ["SimulatorControls"]


class SimulatorControls:
    """The public controls of a served :class:`Simulator` (``self.simulator``)."""

    simulator: Simulator

    @property
    def config(self) -> SimulatorConfig:
        return self.simulator.config

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
        """Switch the fault scenario: a preset (calm, flaky, overloaded, outage, rate-limited), a dict or a Scenario."""
        return self.simulator.set_scenario(scenario)

    def configure(self, *, seed: int | None = None, time_scale: float | None = None) -> None:
        """Change the seed and/or time scale of the running simulator (see :meth:`Simulator.configure`)."""
        self.simulator.configure(seed=seed, time_scale=time_scale)

    def set_rate_limits(self, api_key: str, tier: Any) -> None:
        """Give ``api_key`` its own limits: a tier name (see ``ratelimit.TIERS``) or a ``RateLimits``."""
        self.simulator.set_rate_limits(api_key, tier)
