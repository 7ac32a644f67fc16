"""Scenarios: how often and how requests fail (bursts of 429s, outage windows, batch failures).

Outage windows are in *simulated* seconds since the scenario was set, where simulated time = real
elapsed time / ``time_scale`` (``time_scale`` 0 means simulated time is infinitely fast, so every
outage is already over).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Mapping

from .kinds import PROBABILITIES

__all__ = ["Burst", "Capacity", "Outage", "OUTAGE_KINDS", "Scenario", "SCENARIOS", "get_scenario"]

OUTAGE_KINDS = ("overloaded", "api_error", "timeout_error", "disconnect", "timeout")
"""How requests fail during an outage: 529, 500, 504, a dropped connection, or no answer at all."""


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


@dataclass(frozen=True)
class Capacity:
    """A provider that can serve only so much: above ``rps`` requests per simulated second, it sheds
    the excess with 529 ``overloaded_error``, so overload follows the *offered* load.

    Admission looks at the last ``window_s`` simulated seconds: a request is served when the work
    already in the window plus its own fits in ``rps * window_s``, else it is shed. A served request
    is one unit of work; a shed one costs ``shed_cost`` units (turning a request away still costs the
    server something: reading it, authenticating, answering the 529). With ``shed_cost`` > 0, a crowd
    of retries above capacity crowds out the requests that could be served, so retries *prolong*
    the overload, and it ends only when the offered load falls (clients give up, back off, or are
    throttled). ``per_model``: one capacity per model id (else one for the whole server).
    """

    rps: float
    window_s: float = 1.0
    shed_cost: float = 0.0
    per_model: bool = False

    def __post_init__(self) -> None:
        for name in ("rps", "window_s", "shed_cost"):
            object.__setattr__(self, name, float(getattr(self, name)))
        if not self.rps > 0 or not self.window_s > 0 or not 0.0 <= self.shed_cost <= 1.0:
            raise ValueError("capacity: rps and window_s must be > 0, shed_cost in [0, 1]")

    @property
    def units(self) -> float:
        """Work the window holds: ``rps * window_s``."""
        return self.rps * self.window_s

    @classmethod
    def parse(cls, c: Any) -> "Capacity | None":
        """A :class:`Capacity`, None, or a ``{"rps", "window_s", "shed_cost", "per_model"}`` object."""
        if c is None or isinstance(c, Capacity):
            return c
        if not isinstance(c, Mapping) or "rps" not in c or set(c) - {"rps", "window_s", "shed_cost", "per_model"}:
            raise ValueError("capacity must be an object with keys rps (required), window_s, shed_cost, per_model")
        return cls(**c)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Outage:
    """A window of simulated time, ``[start_s, start_s + duration_s)`` since the scenario was set,
    during which requests fail with ``kind``: every request, or with ``models`` only requests to
    those models (ids as the API names them), so the others keep working and a fallback chain has
    somewhere to go."""

    start_s: float
    duration_s: float
    models: tuple[str, ...] = ()
    kind: str = "overloaded"

    def __post_init__(self) -> None:
        if isinstance(self.models, str):
            object.__setattr__(self, "models", (self.models,))
        object.__setattr__(self, "start_s", float(self.start_s))
        object.__setattr__(self, "duration_s", float(self.duration_s))
        object.__setattr__(self, "models", tuple(str(m) for m in self.models))
        if self.start_s < 0 or not self.duration_s > 0:
            raise ValueError("outages are (start_s >= 0, duration_s > 0) windows")
        if self.kind not in OUTAGE_KINDS:
            raise ValueError(f"outage kind {self.kind!r} is not one of: {', '.join(OUTAGE_KINDS)}")

    @property
    def end_s(self) -> float:
        """Simulated second at which the outage is over."""
        return self.start_s + self.duration_s

    def strikes(self, t: float, model: str | None) -> bool:
        """Whether a request to ``model`` at simulated second ``t`` falls into this outage."""
        return self.start_s <= t < self.end_s and (not self.models or model in self.models)

    @classmethod
    def parse(cls, o: Any) -> "Outage":
        """An :class:`Outage`, a ``(start_s, duration_s)`` pair, or a ``{"start_s", "duration_s",
        "models", "kind"}`` object."""
        if isinstance(o, Outage):
            return o
        if isinstance(o, Mapping):
            extra = set(o) - {"start_s", "duration_s", "models", "kind"}
            if extra:
                raise ValueError(f"unknown outage field(s) {', '.join(sorted(extra))}")
            return cls(o["start_s"], o["duration_s"], tuple(o.get("models") or ()), o.get("kind", "overloaded"))
        start, duration = o
        return cls(start, duration)

    def to_dict(self) -> dict[str, Any]:
        return {"start_s": self.start_s, "duration_s": self.duration_s, "models": list(self.models), "kind": self.kind}


@dataclass(frozen=True)
class Scenario:
    """How often and how requests fail; independent of the seed (the seed picks *which* ones).

    Per-request probabilities are exclusive (one draw picks at most one fault), so they must sum
    to at most 1. ``outages`` are :class:`Outage` windows of simulated seconds since the scenario
    was set (a ``(start_s, duration_s)`` pair is one for every model, answering 529).
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
    p_lost_response: float = 0.0
    """Share of requests the provider completes and bills, then loses (the connection drops)."""
    p_late_response: float = 0.0
    """Share of requests the provider completes and bills, then delivers ``late_s`` late."""
    late_s: float = 30.0
    """Seconds a late response is held after the provider finished it (past a typical client timeout)."""
    burst: Burst | None = None
    outages: tuple[Outage, ...] = ()
    capacity: Capacity | None = None
    """Load-dependent overload (:class:`Capacity`): requests above it are shed with 529."""
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
        for name in PROBABILITIES:
            p = getattr(self, name)
            if not (isinstance(p, (int, float)) and 0.0 <= p <= 1.0):
                raise ValueError(f"scenario {self.name!r}: {name} must be a probability in [0, 1], got {p!r}")
        total = sum(getattr(self, name) for name in PROBABILITIES)
        if total > 1.0 + 1e-9:
            raise ValueError(f"scenario {self.name!r}: fault probabilities sum to {total:g}, more than 1")
        if not 0.0 <= self.batch_error_fraction <= 1.0:
            raise ValueError(f"scenario {self.name!r}: batch_error_fraction must be in [0, 1]")
        if not 0.0 <= self.batch_expire_fraction <= 1.0 or self.batch_slow_factor <= 0:
            raise ValueError(f"scenario {self.name!r}: batch_expire_fraction must be in [0, 1], batch_slow_factor > 0")
        if self.slow_s < 0 or self.late_s < 0 or self.retry_after_s < 1:
            raise ValueError(f"scenario {self.name!r}: slow_s and late_s must be >= 0 and retry_after_s >= 1")
        lo, hi = self.after_tokens
        if not 0 <= lo <= hi:
            raise ValueError(f"scenario {self.name!r}: after_tokens must be (lo, hi) with 0 <= lo <= hi")
        try:
            outages = tuple(Outage.parse(o) for o in self.outages)
        except (ValueError, TypeError, KeyError) as exc:
            raise ValueError(f"scenario {self.name!r}: {exc}") from None
        object.__setattr__(self, "outages", outages)
        object.__setattr__(self, "after_tokens", (int(lo), int(hi)))
        try:
            object.__setattr__(self, "capacity", Capacity.parse(self.capacity))
        except (ValueError, TypeError) as exc:
            raise ValueError(f"scenario {self.name!r}: {exc}") from None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Scenario":
        """Build a scenario from JSON-like data (the body of ``POST /mock/scenario``).

        ``{"preset": "flaky", "p_overloaded": 0.3}`` starts from a preset and overrides fields.
        ``outages`` take ``[start_s, duration_s]`` pairs (every model, 529) or
        ``{"start_s", "duration_s", "models", "kind"}`` objects (see :class:`Outage`);
        ``burst`` takes ``{"every", "length", "retry_after_s"}`` or null; ``capacity`` takes
        ``{"rps", "window_s", "shed_cost", "per_model"}`` or null (see :class:`Capacity`).
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
            data["outages"] = tuple(data["outages"] or ())
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
        out["outages"] = [o.to_dict() for o in self.outages]
        out["after_tokens"] = list(self.after_tokens)
        out["capacity"] = self.capacity.to_dict() if self.capacity is not None else None
        return out


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
        Scenario(
            "slow-lossy",
            "The provider is slow and loses answers it has billed: 10% of responses arrive 30 s late (after "
            "a typical client timeout), 5% are lost when the connection drops after the work is done, 3% get "
            "529 overloaded.",
            p_overloaded=0.03,
            p_lost_response=0.05,
            p_late_response=0.10,
            late_s=30.0,
        ),
        Scenario(
            "model-outage",
            "Claude Sonnet 5.5 is down from 2 s to 62 s of simulated time (529 overloaded_error); every "
            "other model keeps working, so a fallback chain has somewhere to go.",
            outages=(Outage(2.0, 60.0, models=("claude-sonnet-5-5",)),),
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
