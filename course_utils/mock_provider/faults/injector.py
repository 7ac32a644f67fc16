"""The :class:`FaultInjector`: decides, request by request, whether this one fails and how.

Decisions are a pure function of ``(seed, scenario name, request key, n)``, where ``n`` counts
earlier requests with the same key (the same body): the same seed and the same requests give the
same faults on every run, and a retry of a failed body draws afresh, so it can succeed. Outages
are the exception by design: they follow the clock, because a circuit breaker can only be taught
against time.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import threading
from collections import defaultdict, deque
from dataclasses import dataclass, replace
from typing import Any

from ...clock import SYSTEM_CLOCK, Clock, is_virtual
from ..config import SimulatorConfig
from .kinds import DRAWN, FAULT_SPECS, Fault, make_fault, validate_forced
from .scenarios import Outage, Scenario, get_scenario

__all__ = ["FaultInjector"]


def _time_domain() -> object:
    """Which time line clock readings are on here: a virtual loop's own, or real time (shared by
    every real loop and by code outside any loop)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return None
    return id(loop) if is_virtual(loop) else None


def _unit(*parts: object) -> float:
    """A uniform draw in [0, 1) determined by ``parts`` (hashlib, so identical across processes)."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


@dataclass
class _BurstState:
    window: int = -1
    started: float = 0.0
    over: bool = False


class FaultInjector:
    """Decides, request by request, which fault (if any) to inject.

    Thread-safe. Reads the seed and time scale from the simulator's settings; when the scale
    changes through :meth:`rescale`, simulated time already elapsed is kept.
    """

    def __init__(
        self,
        scenario: "Scenario | str" = "calm",
        settings: SimulatorConfig | None = None,
        *,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        # The simulator's settings, read at every draw: the seed and time scale are never copied.
        self.settings = settings if settings is not None else SimulatorConfig()
        self._clock = clock
        self._scale = self.settings.time_scale  # the scale in effect since the last reading
        self._lock = threading.Lock()
        self.set_scenario(scenario)

    @property
    def seed(self) -> int:
        """The simulator's seed (read from its settings)."""
        return self.settings.seed

    # ----- configuration -------------------------------------------------------------------------
    @property
    def scenario(self) -> Scenario:
        """The scenario in effect."""
        return self._scenario

    def set_scenario(self, scenario: "Scenario | str") -> None:
        """Switch scenario; outage windows and request counts start again from now."""
        resolved = get_scenario(scenario)
        with self._lock:
            self._scenario = resolved
            self._seen: defaultdict[str, int] = defaultdict(int)
            self._count = 0
            self._burst = _BurstState()
            # Capacity: per model (or "*"), the (simulated time, work) of the requests in the window.
            self._load: defaultdict[str, deque[tuple[float, float]]] = defaultdict(deque)
            self._sim_elapsed = 0.0
            self._last = self._clock.monotonic()
            self._domain = _time_domain()

    def reset(self) -> None:
        """Start the current scenario over (as :meth:`set_scenario` with the same scenario)."""
        self.set_scenario(self._scenario)

    @property
    def time_scale(self) -> float:
        """Real seconds per simulated second (read from the simulator's settings)."""
        return self.settings.time_scale

    def rescale(self, time_scale: float) -> None:
        """Set the shared settings' time scale, keeping the simulated time elapsed at the old one.

        (A scale changed in the settings directly takes effect at the next reading instead.)
        """
        with self._lock:
            self._advance()
            self.settings.time_scale = self._scale = float(time_scale)

    # ----- simulated time and outages ----------------------------------------------------------
    def _advance(self) -> float:
        now = self._clock.monotonic()
        domain = _time_domain()
        # Readings on different time lines (real time, or one virtual loop's time) cannot be
        # subtracted: at a switch, simulated time carries on from where it was.
        real = max(0.0, now - self._last) if domain == self._domain else 0.0
        self._last, self._domain = now, domain
        if real > 0:
            self._sim_elapsed += real / self._scale if self._scale > 0 else math.inf
        elif self._scale <= 0:
            self._sim_elapsed = math.inf
        self._scale = self.settings.time_scale
        return self._sim_elapsed

    def simulated_elapsed(self) -> float:
        """Simulated seconds since the scenario was set."""
        with self._lock:
            return self._advance()

    def _open_outages(self) -> list[Outage]:
        t = self._advance()
        return [o for o in self._scenario.outages if o.start_s <= t < o.end_s]

    def _outage_for(self, model: str | None) -> Outage | None:
        t = self._advance()
        return next((o for o in self._scenario.outages if o.strikes(t, model)), None)

    def outage_active(self, model: str | None = None) -> bool:
        """Whether an outage window is open right now: any window, or one that strikes ``model``."""
        with self._lock:
            return bool(self._open_outages()) if model is None else self._outage_for(model) is not None

    def add_outage(
        self,
        duration_s: float,
        *,
        models: "str | tuple[str, ...] | list[str]" = (),
        kind: str = "overloaded",
        start_in_s: float = 0.0,
    ) -> Outage:
        """Open an outage ``start_in_s`` simulated seconds from now, lasting ``duration_s``, for
        ``models`` (a model id or several; none: every model), without restarting the scenario's
        clock or counters. Returns the window, in simulated seconds since the scenario was set.
        """
        models = (models,) if isinstance(models, str) else tuple(models)
        with self._lock:
            outage = Outage(self._advance() + float(start_in_s), duration_s, models, kind)
            self._scenario = replace(self._scenario, outages=(*self._scenario.outages, outage))
        return outage

    def status(self) -> dict[str, Any]:
        """A JSON-ready summary for status endpoints."""
        with self._lock:
            return {
                "scenario": self._scenario.name,
                "seed": self.seed,
                "simulated_elapsed_s": self._advance(),
                "outage_active": bool(self._open_outages()),
                "open_outages": [o.to_dict() for o in self._open_outages()],
                "decisions": self._count,
            }

    # ----- decisions ---------------------------------------------------------------------------
    def batch_error(self, batch_id: str, custom_id: str, request_key: str) -> bool:
        """Whether this valid batch request fails transiently.

        Seeded and reproducible; the batch id is part of the draw, so a request resubmitted in a new
        batch is a fresh draw (as on the real API, where an overload passes), even across restarts.
        """
        sc = self._scenario
        return (
            sc.batch_error_fraction > 0
            and _unit(self.seed, sc.name, "batch", batch_id, custom_id, request_key) < sc.batch_error_fraction
        )

    def decide(self, request_key: str, forced: str | None = None, model: str | None = None) -> Fault | None:
        """The fault for this request, or None to serve it normally.

        ``request_key`` identifies the request body (e.g. a hash of it); ``forced`` is the
        ``x-mock-fault`` header value and raises :class:`InvalidFault` if it names no fault kind.
        The fault carries the clock's time (``at``): its error response dates from then.
        """
        fault = self._decide(request_key, validate_forced(forced), model)
        return None if fault is None else replace(fault, at=self._clock.time())

    def _decide(self, request_key: str, kind: str | None, model: str | None) -> Fault | None:
        with self._lock:
            n = self._seen[request_key]
            self._seen[request_key] = n + 1
            index = self._count
            self._count += 1
            sc = self._scenario
            if kind is not None:
                return self._build(kind, request_key, n, cause="forced")
            outage = self._outage_for(model)
            if outage is not None:
                # A dropped connection strikes a stream at once (no text before it).
                return make_fault(outage.kind, after_tokens=0, cause="outage")
            if self._shed(model):
                return make_fault("overloaded", cause="capacity")
            burst = self._burst_fault(index)
            if burst is not None:
                return burst
            u = _unit(self.seed, sc.name, request_key, n, "kind")
            for spec in DRAWN:
                p = getattr(sc, spec.probability)
                if u < p:
                    return self._build(spec.name, request_key, n, cause="scenario")
                u -= p
            return None

    def _build(self, kind: str, request_key: str, n: int, *, cause: str) -> Fault:
        sc = self._scenario
        after = None
        if FAULT_SPECS[kind].mid_stream:
            lo, hi = sc.after_tokens
            after = lo + int(_unit(self.seed, sc.name, request_key, n, "after") * (hi - lo + 1))
        hold_from = FAULT_SPECS[kind].hold_from
        delay = getattr(sc, hold_from) if hold_from else None
        return make_fault(kind, after_tokens=after, retry_after=sc.retry_after_s, delay_s=delay, cause=cause)

    def _shed(self, model: str | None) -> bool:
        """Whether the scenario's :class:`~.scenarios.Capacity` sheds this request (and record its work)."""
        capacity = self._scenario.capacity
        if capacity is None:
            return False
        t = self._sim_elapsed  # advanced by the outage check just before
        window = self._load[(model or "") if capacity.per_model else "*"]
        while window and window[0][0] <= t - capacity.window_s:
            window.popleft()
        shed = sum(w for _, w in window) + 1.0 > capacity.units + 1e-9
        window.append((t, capacity.shed_cost if shed else 1.0))
        return shed

    def load(self, model: str | None = None) -> float:
        """Work in the capacity window right now (served requests plus ``shed_cost`` per shed one), 0 without one."""
        capacity = self._scenario.capacity
        with self._lock:
            if capacity is None:
                return 0.0
            t = self._advance()
            window = self._load.get((model or "") if capacity.per_model else "*", ())
            return sum(w for at, w in window if at > t - capacity.window_s)

    def _burst_fault(self, index: int) -> Fault | None:
        burst = self._scenario.burst
        if burst is None:
            return None
        window = index // burst.length
        if (window + 1) % burst.every:
            return None
        now = self._clock.monotonic()
        state = self._burst
        if state.window != window:
            state.window, state.started, state.over = window, now, False
        elapsed = now - state.started
        # The slack absorbs float noise in epoch-sized clock readings.
        if state.over or elapsed >= burst.retry_after_s - 1e-6:
            state.over = True  # once lifted, a burst stays lifted for the rest of its window
            return None
        # Round up so a retry at exactly retry-after lands after the burst has lifted.
        retry_after = max(1, math.ceil(burst.retry_after_s - elapsed - 1e-6))
        return make_fault("rate_limit", retry_after=retry_after, cause="burst")
