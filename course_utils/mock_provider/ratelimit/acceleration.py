"""Acceleration limits (optional): 429s when an organisation's traffic rises sharply.

The rate-limits page (https://platform.claude.com/docs/en/api/rate-limits): "You might also encounter
429 errors because of acceleration limits on the API if your organization has a sharp increase in
usage. To avoid hitting acceleration limits, ramp up your traffic gradually and maintain consistent
usage patterns." The page gives no figures, so this model's parameters are the simulator's own
(off by default; switch on with ``server.simulator.limiter.set_acceleration(...)``):

* the organisation's requests in the last ``window_s`` seconds may not exceed ``factor`` times what
  its average rate over the previous ``baseline_s`` seconds would send in that window, and never
  less than ``floor`` requests (so a quiet organisation can start);
* a refused request is a 429 ``rate_limit_error`` that says so, with ``retry-after``: waiting lets
  the recent window empty and the baseline catch up, as ramping up gradually does.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

__all__ = ["Acceleration", "AccelerationLog", "ACCELERATION_SOURCE"]

ACCELERATION_SOURCE = "https://platform.claude.com/docs/en/api/rate-limits"


@dataclass(frozen=True)
class Acceleration:
    """How sharp an increase is refused (the simulator's own figures: the docs publish none)."""

    factor: float = 3.0
    window_s: float = 60.0
    baseline_s: float = 600.0
    floor: int = 20

    def __post_init__(self) -> None:
        if not (self.factor > 1 and 0 < self.window_s < self.baseline_s and self.floor >= 1):
            raise ValueError("need factor > 1, 0 < window_s < baseline_s and floor >= 1")


class AccelerationLog:
    """Admission times of one organisation, and whether one more request is too sharp an increase."""

    def __init__(self, rule: Acceleration) -> None:
        self.rule = rule
        self._times: deque[float] = deque()

    def allowance(self, now: float) -> tuple[int, int]:
        """(requests in the recent window, requests the rule allows in it) as of ``now``."""
        r = self.rule
        while self._times and self._times[0] <= now - r.window_s - r.baseline_s:
            self._times.popleft()
        recent = sum(1 for t in self._times if t > now - r.window_s)
        before = len(self._times) - recent
        allowed = max(r.floor, math.floor(r.factor * before * r.window_s / r.baseline_s))
        return recent, allowed

    def wait_s(self, now: float) -> float:
        """Seconds until one more request fits (0 if it does now)."""
        recent, allowed = self.allowance(now)
        if recent < allowed:
            return 0.0
        window = [t for t in self._times if t > now - self.rule.window_s]
        # The oldest request of the window leaves it first; the baseline only grows by waiting.
        return max(0.0, window[recent - allowed] + self.rule.window_s - now) if window else 0.0

    def record(self, now: float) -> None:
        self._times.append(now)
