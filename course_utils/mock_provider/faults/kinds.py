"""Fault injection: the failures a client of the real API must survive, on demand and reproducibly.

A :class:`Scenario` says how often things go wrong; a :class:`FaultInjector` decides, request by
request, whether this one fails and how. Decisions are a pure function of
``(seed, scenario name, request key, n)``, where ``n`` counts earlier requests with the same key
(the same body): the same seed and the same requests give the same faults on every run, and a
retry of a failed body draws afresh, so it can succeed. Outages are the exception by design: they
follow the clock, because a circuit breaker can only be taught against time.

Fault kinds are declared once each, in :data:`FAULT_SPECS` (a :class:`FaultKind` says the status, the error
the response carries, whether it strikes mid-stream, holds the response, and which scenario probability draws
it); adding a kind is one declaration there. The forceable ones are the values of the ``x-mock-fault`` header:

================== ==================================================================================
kind               how the pipeline applies it
================== ==================================================================================
overloaded         answer 529 ``overloaded_error``
api_error          answer 500 ``api_error``
rate_limit         answer 429 ``rate_limit_error`` with ``retry-after``
stream_error       streaming: HTTP 200, then an ``event: error`` (``overloaded_error``) after
                   ``after_tokens`` text deltas; non-streaming: a plain 529
disconnect         streaming: drop the connection after ``after_tokens`` text deltas;
                   non-streaming: close the connection without any response
timeout            await ``delay_s`` *real* seconds (beyond the SDKs' 600 s default timeout), then
                   answer normally: the client's timeout is what the student should see fire
timeout_error      answer 504 ``timeout_error`` (the API timed out while processing)
billing_error      answer 402 ``billing_error``
permission_error   answer 403 ``permission_error``
spend_limit        answer the spend-cap 429: ``rate_limit_error`` with
                   ``details.error_code = "enforced_spend_limit_reached"``, no ``retry-after``
slow               (scenarios only, not forceable) await ``delay_s`` real seconds, then answer normally
================== ==================================================================================

Times: ``delay_s`` and ``retry_after`` are real seconds, never scaled, because they are what a
client's timeouts and sleeps act on. Outage windows are in *simulated* seconds since the scenario
was set, where simulated time = real elapsed time / ``time_scale`` (``time_scale`` 0 means
simulated time is infinitely fast, so every outage is already over).
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections import defaultdict
import time
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Callable, Mapping

from ..clock import SYSTEM_CLOCK, Clock
from .config import SimulatorConfig
from .errors import (
    APIError,
    BillingError,
    GatewayTimeout,
    InternalError,
    Overloaded,
    PermissionDenied,
    RateLimited,
    SpendLimitReached,
)

__all__ = [
    "FAULT_KINDS",
    "FAULT_SPECS",
    "FaultKind",
    "TIMEOUT_DELAY_S",
    "Fault",
    "Burst",
    "Scenario",
    "SCENARIOS",
    "get_scenario",
    "InvalidFault",
    "validate_forced",
    "FaultInjector",
]

TIMEOUT_DELAY_S = 900.0
"""Real seconds a ``timeout`` fault holds the response: past the official SDKs' 10-minute default."""

_RATE_LIMIT_MESSAGE = (
    "Number of request tokens has exceeded your per-minute rate limit "
    "(https://docs.claude.com/en/api/rate-limits); see the response headers for current usage. "
    "Please reduce the prompt length or the maximum tokens requested, or try again later. "
    "You may also contact sales at https://claude.com/contact-sales to discuss your options for a "
    "rate limit increase."
)


@dataclass(frozen=True)
class Fault:
    """One injected failure. ``status`` is None when the fault produces no error response itself."""

    kind: str
    status: int | None
    error_type: str | None
    message: str
    after_tokens: int | None = None
    """For ``disconnect``/``stream_error`` on a stream: text deltas sent before the fault strikes."""
    retry_after: int | None = None
    """For ``rate_limit``: whole seconds the client should wait before retrying."""
    delay_s: float | None = None
    """For ``timeout``/``slow``: real seconds to hold the response."""
    cause: str = "scenario"
    """Why it happened: ``forced`` (header), ``outage``, ``burst`` or ``scenario`` (random draw)."""

    @property
    def headers(self) -> dict[str, str]:
        """Extra response headers the fault's error response carries."""
        return {"retry-after": str(self.retry_after)} if self.retry_after is not None else {}

    def error(self) -> APIError | None:
        """The error response to send instead of a reply, or None (delays, disconnects, mid-stream)."""
        make = FAULT_SPECS[self.kind].error
        return make(self) if make is not None else None

    def for_non_streaming(self) -> "Fault":
        """The same fault as a non-streaming request experiences it (no mid-stream position)."""
        return replace(self, after_tokens=None) if FAULT_SPECS[self.kind].mid_stream else self


@dataclass(frozen=True)
class FaultKind:
    """The one declaration of a fault kind: what it answers and how it is drawn.

    ``error`` builds the response that replaces the reply (None: the fault acts later, by holding,
    dropping, or erroring mid-stream). ``probability`` names the :class:`Scenario` field that draws
    it at random (None: it can only be forced with the header).
    """

    name: str
    status: int | None
    error_type: str | None
    message: str
    error: Callable[[Fault], APIError] | None = None
    forceable: bool = True
    mid_stream: bool = False
    """Streams carry it as an ``after_tokens`` position (a non-streaming request gets it up front)."""
    retry_after: bool = False
    """The response carries ``retry-after`` (the scenario's ``retry_after_s``)."""
    hold_s: float | None = None
    """Real seconds the response is held; ``None`` with ``hold_from_scenario`` uses ``Scenario.slow_s``."""
    hold_from_scenario: bool = False
    probability: str | None = None


def _spend_cap_regain_date(now: float) -> str:
    """When a paused organisation regains access: 00:00 UTC on the first day of the next month."""
    t = time.gmtime(now)
    year, month = (t.tm_year + 1, 1) if t.tm_mon == 12 else (t.tm_year, t.tm_mon + 1)
    return f"{year:04d}-{month:02d}-01 at 00:00 UTC"


# In the order a scenario draws them (the order is part of the reproducible fault timeline).
FAULT_SPECS: dict[str, FaultKind] = {k.name: k for k in (
    FaultKind("overloaded", 529, "overloaded_error", "Overloaded", lambda f: Overloaded(f.message),
              probability="p_overloaded"),
    FaultKind("api_error", 500, "api_error", "Internal server error", lambda f: InternalError(f.message),
              probability="p_api_error"),
    FaultKind("rate_limit", 429, "rate_limit_error", _RATE_LIMIT_MESSAGE,
              lambda f: RateLimited(f.message, headers=f.headers), retry_after=True, probability="p_rate_limit"),
    FaultKind("stream_error", 529, "overloaded_error", "Overloaded", lambda f: Overloaded(f.message),
              mid_stream=True, probability="p_stream_error"),
    FaultKind("disconnect", None, None, "Connection dropped by the server", mid_stream=True,
              probability="p_disconnect"),
    FaultKind("timeout", None, None, "No response before the client's timeout", hold_s=TIMEOUT_DELAY_S,
              probability="p_timeout"),
    FaultKind("slow", None, None, "Slow response", forceable=False, hold_from_scenario=True, probability="slow_p"),
    # Errors production code must tell apart (https://platform.claude.com/docs/en/api/errors); forced only.
    FaultKind("timeout_error", 504, "timeout_error",
              "The request timed out while processing. Consider using streaming for long-running requests.",
              lambda f: GatewayTimeout(f.message)),
    FaultKind("billing_error", 402, "billing_error", "Billing error", lambda f: BillingError(f.message)),
    FaultKind("permission_error", 403, "permission_error", "Permission denied", lambda f: PermissionDenied(f.message)),
    FaultKind("spend_limit", 429, "rate_limit_error", "Spend limit reached",
              lambda f: SpendLimitReached(_spend_cap_regain_date(time.time()))),
)}
"""Every fault kind, declared once."""

FAULT_KINDS: tuple[str, ...] = tuple(k.name for k in FAULT_SPECS.values() if k.forceable)
"""The kinds a request can force with the ``x-mock-fault`` header."""


def _make_fault(kind: str, *, after_tokens: int | None = None, retry_after: int = 1, delay_s: float | None = None,
                cause: str = "scenario") -> Fault:
    try:
        spec = FAULT_SPECS[kind]
    except KeyError:
        raise ValueError(f"unknown fault kind {kind!r}") from None
    return Fault(
        kind, spec.status, spec.error_type, spec.message,
        after_tokens=after_tokens if spec.mid_stream else None,
        retry_after=retry_after if spec.retry_after else None,
        delay_s=delay_s if spec.hold_from_scenario else spec.hold_s,
        cause=cause,
    )


class InvalidFault(ValueError):
    """An ``x-mock-fault`` header value that names no fault kind (the pipeline answers 400)."""


def validate_forced(value: str | None) -> str | None:
    """Check an ``x-mock-fault`` header value; return the kind, or None when the header is absent."""
    if value is None:
        return None
    kind = value.strip()
    if kind not in FAULT_KINDS:
        raise InvalidFault(f"x-mock-fault: {value!r} is not a fault kind; valid values are: {', '.join(FAULT_KINDS)}")
    return kind


_DRAWN = tuple(k for k in FAULT_SPECS.values() if k.probability)


@dataclass(frozen=True)
class Burst:
    """Bursts of 429s: requests are counted in windows of ``length``, and every ``every``-th window
    is refused with ``rate_limit``.

    A burst lasts until its window's requests are used up or ``retry_after_s`` real seconds have
    passed since it began, whichever comes first, so a client that waits what ``retry-after``
    says gets through, while one that retries in a tight loop burns the whole window.
    """

    every: int = 3
    length: int = 10
    retry_after_s: int = 1

    def __post_init__(self) -> None:
        if self.every < 1 or self.length < 1 or self.retry_after_s < 1:
            raise ValueError("burst: every, length and retry_after_s must all be >= 1")


_PROBABILITIES = tuple(k.probability for k in FAULT_SPECS.values() if k.probability)


@dataclass(frozen=True)
class Scenario:
    """How often and how requests fail; independent of the seed (the seed picks *which* ones).

    Per-request probabilities are exclusive (one draw picks at most one fault), so they must sum
    to at most 1. ``outages`` are ``(start_s, duration_s)`` windows of simulated seconds since the
    scenario was set, during which every request gets 529.
    """

    name: str = "custom"
    description: str = ""
    p_overloaded: float = 0.0
    p_api_error: float = 0.0
    p_rate_limit: float = 0.0
    p_stream_error: float = 0.0
    p_disconnect: float = 0.0
    p_timeout: float = 0.0
    slow_p: float = 0.0
    slow_s: float = 30.0
    """Real seconds a slow response is held (meant to exceed a sensible client timeout)."""
    burst: Burst | None = None
    outages: tuple[tuple[float, float], ...] = ()
    retry_after_s: int = 1
    """``retry-after`` of randomly drawn (and forced) ``rate_limit`` faults."""
    after_tokens: tuple[int, int] = (3, 30)
    """Range (inclusive) of text deltas sent before a mid-stream fault strikes."""
    batch_expire_fraction: float = 0.0
    """Share of a Message Batch's requests that are never processed and come back ``expired``."""
    batch_slow_factor: float = 1.0
    """Stretch of a batch's processing window (past 24 h, the late requests expire)."""
    batch_error_fraction: float = 0.0
    """Share of valid batch requests that come back ``errored`` with a transient ``overloaded_error``."""

    def __post_init__(self) -> None:
        for name in _PROBABILITIES:
            p = getattr(self, name)
            if not (isinstance(p, (int, float)) and 0.0 <= p <= 1.0):
                raise ValueError(f"scenario {self.name!r}: {name} must be a probability in [0, 1], got {p!r}")
        total = sum(getattr(self, name) for name in _PROBABILITIES)
        if total > 1.0 + 1e-9:
            raise ValueError(f"scenario {self.name!r}: fault probabilities sum to {total:g}, more than 1")
        if not 0.0 <= self.batch_error_fraction <= 1.0:
            raise ValueError(f"scenario {self.name!r}: batch_error_fraction must be in [0, 1]")
        if not 0.0 <= self.batch_expire_fraction <= 1.0 or self.batch_slow_factor <= 0:
            raise ValueError(f"scenario {self.name!r}: batch_expire_fraction must be in [0, 1], batch_slow_factor > 0")
        if self.slow_s < 0 or self.retry_after_s < 1:
            raise ValueError(f"scenario {self.name!r}: slow_s must be >= 0 and retry_after_s >= 1")
        lo, hi = self.after_tokens
        if not 0 <= lo <= hi:
            raise ValueError(f"scenario {self.name!r}: after_tokens must be (lo, hi) with 0 <= lo <= hi")
        outages = tuple((float(s), float(d)) for s, d in self.outages)
        if any(s < 0 or d <= 0 for s, d in outages):
            raise ValueError(f"scenario {self.name!r}: outages are (start_s >= 0, duration_s > 0) pairs")
        object.__setattr__(self, "outages", outages)
        object.__setattr__(self, "after_tokens", (int(lo), int(hi)))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Scenario":
        """Build a scenario from JSON-like data (the body of ``POST /mock/scenario``).

        ``{"preset": "flaky", "p_overloaded": 0.3}`` starts from a preset and overrides fields.
        ``outages`` take ``[start_s, duration_s]`` pairs or ``{"start_s", "duration_s"}`` objects;
        ``burst`` takes ``{"every", "length", "retry_after_s"}`` or null.
        """
        if not isinstance(data, Mapping):
            raise ValueError("a scenario must be a JSON object")
        data = dict(data)
        base = get_scenario(data.pop("preset")) if "preset" in data else None
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(
                f"unknown scenario field(s) {', '.join(unknown)}; known: preset, {', '.join(sorted(known))}"
            )
        if "burst" in data and data["burst"] is not None:
            burst = data["burst"]
            if not isinstance(burst, Mapping) or set(burst) - {"every", "length", "retry_after_s"}:
                raise ValueError("burst must be an object with keys every, length, retry_after_s")
            data["burst"] = Burst(**{k: int(v) for k, v in burst.items()})
        if "outages" in data:
            data["outages"] = tuple(_outage(o) for o in data["outages"] or ())
        if "after_tokens" in data:
            lo, hi = data["after_tokens"]
            data["after_tokens"] = (int(lo), int(hi))
        if base is not None:
            data.setdefault("name", f"{base.name}+custom" if len(data) else base.name)
            return replace(base, **data)
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form that :meth:`from_dict` reads back."""
        out = asdict(self)
        out["outages"] = [list(o) for o in self.outages]
        out["after_tokens"] = list(self.after_tokens)
        return out


def _outage(o: Any) -> tuple[float, float]:
    if isinstance(o, Mapping):
        return float(o["start_s"]), float(o["duration_s"])
    start, duration = o
    return float(start), float(duration)


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("calm", "No faults: every request succeeds (the default)."),
        Scenario(
            "flaky",
            "About 13% of requests fail: 529 overloaded, 500 api_error, or an error event mid-stream; "
            "5% of batch requests expire and 3% come back errored with overloaded_error.",
            p_overloaded=0.06,
            p_api_error=0.04,
            p_stream_error=0.03,
            batch_expire_fraction=0.05,
            batch_error_fraction=0.03,
        ),
        Scenario("overloaded", "About 40% of requests get 529 overloaded_error.", p_overloaded=0.4),
        Scenario(
            "outage",
            "Calm, then a full outage from 2 s to 12 s of simulated time (every request gets 529), then calm.",
            outages=((2.0, 10.0),),
        ),
        Scenario(
            "rate-limited",
            "Bursts of 429 rate_limit_error: every 3rd window of 10 requests is refused, with retry-after: 1.",
            burst=Burst(every=3, length=10, retry_after_s=1),
        ),
    )
}


def get_scenario(name: "str | Scenario") -> Scenario:
    """A preset by name (a key of :data:`SCENARIOS`), or a :class:`Scenario` passed through."""
    if isinstance(name, Scenario):
        return name
    try:
        return SCENARIOS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"Unknown scenario {name!r}; presets are: {', '.join(SCENARIOS)} "
            "(or define your own with Scenario(...) / Scenario.from_dict(...))"
        ) from None


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

    def __init__(self, scenario: "Scenario | str" = "calm", settings: SimulatorConfig | None = None, *,
                 clock: Clock = SYSTEM_CLOCK) -> None:
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
            self._sim_elapsed = 0.0
            self._last = self._clock.monotonic()

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
        real = max(0.0, now - self._last)
        self._last = now
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

    def _outage_locked(self) -> tuple[float, float] | None:
        t = self._advance()
        for start, duration in self._scenario.outages:
            if start <= t < start + duration:
                return start, duration
        return None

    def outage_active(self) -> bool:
        """Whether an outage window is open right now."""
        with self._lock:
            return self._outage_locked() is not None

    def status(self) -> dict[str, Any]:
        """A JSON-ready summary for status endpoints."""
        with self._lock:
            return {
                "scenario": self._scenario.name,
                "seed": self.seed,
                "simulated_elapsed_s": self._advance(),
                "outage_active": self._outage_locked() is not None,
                "decisions": self._count,
            }

    # ----- decisions ---------------------------------------------------------------------------
    def batch_error(self, batch_id: str, custom_id: str, request_key: str) -> bool:
        """Whether this valid batch request fails transiently.

        Seeded and reproducible; the batch id is part of the draw, so a request resubmitted in a new
        batch is a fresh draw (as on the real API, where an overload passes), even across restarts.
        """
        sc = self._scenario
        return (sc.batch_error_fraction > 0
                and _unit(self.seed, sc.name, "batch", batch_id, custom_id, request_key) < sc.batch_error_fraction)

    def decide(self, request_key: str, forced: str | None = None) -> Fault | None:
        """The fault for this request, or None to serve it normally.

        ``request_key`` identifies the request body (e.g. a hash of it); ``forced`` is the
        ``x-mock-fault`` header value and raises :class:`InvalidFault` if it names no fault kind.
        """
        kind = validate_forced(forced)
        with self._lock:
            n = self._seen[request_key]
            self._seen[request_key] = n + 1
            index = self._count
            self._count += 1
            sc = self._scenario
            if kind is not None:
                return self._build(kind, request_key, n, cause="forced")
            if self._outage_locked() is not None:
                return _make_fault("overloaded", cause="outage")
            burst = self._burst_fault(index)
            if burst is not None:
                return burst
            u = _unit(self.seed, sc.name, request_key, n, "kind")
            for spec in _DRAWN:
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
        return _make_fault(kind, after_tokens=after, retry_after=sc.retry_after_s, delay_s=sc.slow_s, cause=cause)

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
        return _make_fault("rate_limit", retry_after=retry_after, cause="burst")
