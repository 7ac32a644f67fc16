"""The limiter: admits or refuses each request against its organisation's (and workspace's) limits
per model group, and writes the rate-limit headers."""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field

from ...clock import Clock
from ..errors import RateLimited
from . import tiers
from .buckets import TIME_SLACK_S, LimitBucket, reset_timestamp
from .tiers import RateLimits, check_burst, get_tier
from .refusals import (
    acceleration_exceeded,
    endpoint_exceeded,
    limit_exceeded,
    org_id,
    prompt_too_large,
    queue_exceeded,
)
from .acceleration import Acceleration, AccelerationLog
from .groups import group_of
from .workspaces import ORG_SCOPE, Workspaces, effective_limits

__all__ = ["Admission", "Limit", "RateLimiter", "round_thousand"]


def round_thousand(tokens: int) -> int:
    """A token count "rounded to the nearest thousand", as the ``*-tokens-remaining`` headers carry it."""
    return int(math.floor(tokens / 1000 + 0.5)) * 1000


class Limit:
    """One per-minute limit: the burst bucket that admits requests, and the minute-sized view.

    Both refill at ``per_minute / 60`` per second and are charged alike, so the burst bucket
    (capacity ``per_minute * burst_s / 60``, at least ``floor``) is never fuller than the minute
    bucket; with ``burst_s = 60`` they are one bucket. Headers report the minute bucket.
    """

    def __init__(self, per_minute: float, clock: Clock, burst_s: float, floor: float = 0.0) -> None:
        self.per_minute = per_minute
        self.minute = LimitBucket.per_minute(per_minute, clock)
        capacity = max(floor, per_minute * burst_s / 60.0)
        self.burst = self.minute if capacity >= per_minute else LimitBucket(capacity, per_minute / 60.0, clock)

    def wait_for(self, need: float) -> float:
        """Seconds until a demand of ``need`` is admissible: ``need`` available in the burst bucket,
        or a full burst bucket if ``need`` is bigger than it."""
        return self.burst.time_until(min(need, self.burst.capacity))

    def charge(self, n: float) -> None:
        """Charge ``n`` (may overdraw; negative refunds)."""
        self.minute.take_unchecked(n)
        if self.burst is not self.minute:
            self.burst.take_unchecked(n)


@dataclass
class _Buckets:
    limits: RateLimits
    burst_s: float
    requests: Limit
    input: Limit
    output: Limit

    @classmethod
    def create(cls, limits: RateLimits, clock: Clock, default_burst_s: float) -> "_Buckets":
        burst_s = limits.burst_s if limits.burst_s is not None else default_burst_s
        return cls(
            limits,
            burst_s,
            Limit(limits.requests_per_minute, clock, burst_s, floor=1.0),
            Limit(limits.input_tokens_per_minute, clock, burst_s),
            Limit(limits.output_tokens_per_minute, clock, burst_s),
        )


@dataclass
class Admission:
    """A request let through: what it was charged, and the headers its response should carry."""

    api_key: str
    model: str
    input_tokens: int
    """Uncached input tokens charged against ITPM."""
    output_reserved: int
    """Always 0: OTPM counts actual output only (charged by :meth:`RateLimiter.settle`)."""
    headers: dict[str, str]
    """``anthropic-ratelimit-*`` headers as of admission (after this request was charged)."""
    admitted_at: float
    settled: bool = False
    _groups: list[_Buckets] = field(default_factory=list, repr=False, compare=False)
    """Every set of buckets the request was charged to (its workspace's and its organization's)."""


class RateLimiter:
    """Token-bucket rate limits owned by organisations, per model group, with workspace limits on top.

    * Every key belongs to an organisation. A key given limits of its own (:meth:`set_tier`) stands
      for an organisation of its own (another account, with its own tier); every other key belongs
      to the one simulated organisation (limits: :meth:`set_org_limits`, else the default tier), so
      its keys share its buckets: a second key adds no capacity.
    * Keys of that organisation may sit in a workspace (:meth:`assign_workspace`); a workspace with
      limits of its own (:meth:`set_workspace`) is enforced as well as the organisation's.
    * Buckets are per model *group* (:mod:`.groups`): pooled models share one set of limits.

    ``exact_remaining``: the ``*-tokens-remaining`` headers carry exact token counts instead of
    the API's "rounded to the nearest thousand" (a teaching option; off by default).

    Safe to call from several threads: every operation holds one lock, so an admission checks
    and charges its buckets atomically.
    """

    def __init__(
        self,
        clock: Clock,
        default_tier: str | RateLimits = "default",
        *,
        burst_s: float | None = None,
        exact_remaining: bool = False,
    ) -> None:
        self._clock = clock
        self.exact_remaining = bool(exact_remaining)
        self._default = get_tier(default_tier)
        # Read at construction (not at import), so the module constant is the one place to change it.
        self._default_burst_s = check_burst(tiers.DEFAULT_BURST_S if burst_s is None else burst_s)
        self._tiers: dict[str, RateLimits] = {}
        self._buckets: dict[tuple[str, str], _Buckets] = {}
        self._endpoint_buckets: dict[tuple[str, str], Limit] = {}
        self.workspaces = Workspaces()
        self._acceleration: Acceleration | None = None
        self._acceleration_logs: dict[str, AccelerationLog] = {}
        self._lock = threading.Lock()

    # ----- configuration -------------------------------------------------------------------------
    @property
    def default_burst_s(self) -> float:
        """Burst capacity (seconds' worth of each limit) of limits that do not set ``burst_s``."""
        return self._default_burst_s

    def set_default_burst(self, burst_s: float) -> None:
        """Burst capacity for every limit without its own ``burst_s`` (1.0 = short-interval
        enforcement, 60 = a minute's quota at once); the affected buckets start afresh (full)."""
        burst_s = check_burst(burst_s)
        with self._lock:
            self._default_burst_s = burst_s
            for key, b in list(self._buckets.items()):
                if b.limits.burst_s is None:
                    del self._buckets[key]

    def set_acceleration(self, rule: Acceleration | None) -> None:
        """Switch on acceleration limits (429s on a sharp increase of an organisation's traffic) with
        ``rule`` (e.g. ``Acceleration()``), or off with ``None`` (the default). See :mod:`.acceleration`."""
        with self._lock:
            self._acceleration = rule
            self._acceleration_logs.clear()

    def set_tier(self, api_key: str, tier: str | RateLimits) -> None:
        """Make ``api_key`` an organisation of its own with these limits (another account: only a
        separate organisation has separate limits); its buckets start afresh (full)."""
        limits = get_tier(tier)
        with self._lock:
            self._tiers[api_key] = limits
            self._drop_key(api_key)

    def set_default_tier(self, tier: str | RateLimits) -> None:
        """Change the limits of every key without a tier of its own (their buckets start afresh)."""
        limits = get_tier(tier)
        with self._lock:
            self._default = limits
            own = {_own_org(k) for k in self._tiers}
            for key in [k for k in self._buckets if k[0] not in own]:
                del self._buckets[key]
            for key in [k for k in self._endpoint_buckets if k[0] not in own]:
                del self._endpoint_buckets[key]

    def set_workspace(self, name: str, limits: str | RateLimits | None = None) -> None:
        """Create workspace ``name`` with its own limits (capped at the organization's), or none
        (``None``: its keys share the organization's limits only). Its buckets start afresh."""
        resolved = None if limits is None else get_tier(limits)
        with self._lock:
            self.workspaces.define(name, resolved)
            self._drop_scope("\x00ws:" + name)

    def set_org_limits(self, limits: str | RateLimits) -> None:
        """The limits of the organization every workspace belongs to (default: the default tier)."""
        resolved = get_tier(limits)
        with self._lock:
            self.workspaces.org_limits = resolved
            for key in [k for k in self._buckets if k[0] == ORG_SCOPE or k[0].startswith("\x00ws:")]:
                del self._buckets[key]
            for key in [k for k in self._endpoint_buckets if k[0] == ORG_SCOPE]:
                del self._endpoint_buckets[key]

    def assign_workspace(self, api_key: str, name: str) -> None:
        """Put ``api_key`` in workspace ``name``: from now on it draws on that workspace's limits and
        the organization's, shared with every other key there."""
        with self._lock:
            self.workspaces.assign(api_key, name)
            self._drop_key(api_key)

    def limits_for(self, api_key: str) -> RateLimits:
        """The limits of ``api_key``'s organisation."""
        with self._lock:
            return self._org_of(api_key)[1]

    def organization_of(self, api_key: str) -> str:
        """An opaque name of the organisation ``api_key`` belongs to (equal for keys that share limits)."""
        with self._lock:
            return self._org_of(api_key)[0]

    def workspace_scope(self, api_key: str) -> str:
        """An opaque name of the workspace ``api_key`` belongs to (its organisation's default
        workspace unless it was put in one): what prompt caches and batches are isolated by."""
        with self._lock:
            workspace = self.workspaces.workspace_of(api_key)
            if workspace is not None:
                return "ws:" + workspace
            return self._org_of(api_key)[0] + "/default"

    def org_limits(self, api_key: str | None = None) -> RateLimits:
        """The limits of the simulated organisation, or of ``api_key``'s organisation."""
        with self._lock:
            if api_key is None:
                return self.workspaces.org_limits or self._default
            return self._org_of(api_key)[1]

    def burst_for(self, api_key: str) -> float:
        """The burst capacity (seconds) that applies to ``api_key``."""
        limits = self.limits_for(api_key)
        return self._default_burst_s if limits.burst_s is None else limits.burst_s

    def reset(self) -> None:
        """Refill every bucket (forget all usage); per-key tiers are kept."""
        with self._lock:
            self._buckets.clear()
            self._acceleration_logs.clear()
            self._endpoint_buckets.clear()

    def _drop_scope(self, scope: str) -> None:
        for key in [k for k in self._buckets if k[0] == scope]:
            del self._buckets[key]

    def _drop_key(self, api_key: str) -> None:
        scope = _own_org(api_key)
        for key in [k for k in self._buckets if k[0] == scope]:
            del self._buckets[key]
        for key in [k for k in self._endpoint_buckets if k[0] == scope]:
            del self._endpoint_buckets[key]

    def _org_of(self, api_key: str) -> tuple[str, RateLimits]:
        """(bucket scope, limits) of ``api_key``'s organisation: its own if it was given a tier (and
        is in no workspace), else the simulated organisation's."""
        if api_key in self._tiers and self.workspaces.workspace_of(api_key) is None:
            return _own_org(api_key), self._tiers[api_key]
        return ORG_SCOPE, self.workspaces.org_limits or self._default

    def _scope(self, scope: str, model: str, limits: RateLimits) -> _Buckets:
        key = (scope, group_of(model).id)
        buckets = self._buckets.get(key)
        if buckets is None:
            buckets = _Buckets.create(limits, self._clock, self._default_burst_s)
            self._buckets[key] = buckets
        return buckets

    def _groups(self, api_key: str, model: str) -> list[tuple[str, _Buckets]]:
        """The buckets a request of ``api_key`` must fit, each with how a 429 names it: its
        workspace's (when the workspace has limits of its own) and always its organisation's, for
        the model group of ``model``."""
        scope, org = self._org_of(api_key)
        name = org_id(api_key if scope != ORG_SCOPE else ORG_SCOPE)
        groups = []
        workspace = self.workspaces.workspace_of(api_key)
        own = self.workspaces.limits_of(workspace) if workspace is not None else None
        if own is not None:
            scoped = self._scope("\x00ws:" + workspace, model, effective_limits(own, org))  # type: ignore[operator]
            groups.append((f"workspace's|workspace: {workspace}", scoped))
        groups.append((f"organization's|org: {name}", self._scope(scope, model, org)))
        return groups

    # ----- admission -----------------------------------------------------------------------------
    def admit(
        self,
        api_key: str,
        model: str,
        input_tokens: int,
        max_tokens: int = 0,
        cache_read_tokens: int = 0,
    ) -> Admission:
        """Charge a request against the limits, or refuse it with :class:`RateLimited` (429).

        ``input_tokens`` is the whole prompt, including any part that will be read from the
        prompt cache; ``cache_read_tokens`` of it are not charged (cache reads don't count
        towards ITPM). Charges 1 request and the uncached input. ``max_tokens`` is accepted for
        the caller's convenience and ignored: OTPM counts the output actually produced, charged by
        :meth:`settle`; admission only needs the output bucket not to be exhausted.
        """
        del max_tokens  # "does not factor into OTPM rate limit calculations" (rate-limits page)
        uncached = max(0, int(input_tokens) - max(0, int(cache_read_tokens)))
        with self._lock:
            groups = self._groups(api_key, model)
            buckets = [b for _, b in groups]
            for label, b in groups:
                if uncached > b.limits.input_tokens_per_minute:
                    whose, scope = label.split("|")
                    headers = self._headers_locked(buckets)
                    headers["x-should-retry"] = "false"
                    raise RateLimited(
                        prompt_too_large(whose, scope, b.limits.input_tokens_per_minute, model, uncached),
                        headers=headers,
                    )
            # (wait, name, group label, limit per minute) for every bucket of every group
            needs = (("requests", 1), ("input", uncached), ("output", 1))
            waits = [
                (getattr(b, n).wait_for(k), n, label, getattr(b, n).per_minute) for label, b in groups for n, k in needs
            ]
            wait, binding, label, per_minute = max(waits, key=lambda w: (w[0], w[1]))
            if wait > 0:
                whose, scope = label.split("|")
                headers = self._headers_locked(buckets)
                # Whole seconds, rounded up, never 0: an earlier retry would be refused again.
                headers["retry-after"] = str(max(1, math.ceil(wait - TIME_SLACK_S)))
                raise RateLimited(limit_exceeded(whose, scope, per_minute, binding, model), headers=headers)
            accel = self._acceleration_log(api_key)
            now = self._clock.monotonic()
            if accel is not None and accel.wait_s(now) > 0:
                headers = self._headers_locked(buckets)
                headers["retry-after"] = str(max(1, math.ceil(accel.wait_s(now) - TIME_SLACK_S)))
                recent, allowed = accel.allowance(now)
                raise RateLimited(acceleration_exceeded(recent, allowed, accel.rule.window_s), headers=headers)
            if accel is not None:
                accel.record(now)
            for b in buckets:
                b.requests.charge(1)
                if uncached:
                    b.input.charge(uncached)
            return Admission(
                api_key=api_key,
                model=model,
                input_tokens=uncached,
                output_reserved=0,
                headers=self._headers_locked(buckets),
                admitted_at=self._clock.time(),
                _groups=buckets,
            )

    def _acceleration_log(self, api_key: str) -> AccelerationLog | None:
        if self._acceleration is None:
            return None
        scope = self._org_of(api_key)[0]
        log = self._acceleration_logs.get(scope)
        if log is None:
            log = self._acceleration_logs[scope] = AccelerationLog(self._acceleration)
        return log

    def settle(self, admission: Admission, actual_output_tokens: int) -> None:
        """Charge the output the reply actually produced against OTPM (may overdraw the bucket).

        Settling twice is a no-op, so callers may settle in a ``finally``.
        """
        with self._lock:
            if admission.settled:
                return
            admission.settled = True
            for b in admission._groups:
                b.output.charge(max(0, int(actual_output_tokens)))

    # ----- other endpoints: token counting and Message Batches -------------------------------------
    ENDPOINTS = {
        "count_tokens": ("count_tokens_rpm", "token counting"),
        "batches": ("batch_rpm", "Message Batches API"),
    }

    def admit_endpoint(self, api_key: str, endpoint: str) -> dict[str, str]:
        """Charge one request to ``endpoint`` (``count_tokens`` or ``batches``) against its own
        requests-per-minute limit, or refuse it with :class:`RateLimited`. Returns the endpoint's
        ``anthropic-ratelimit-requests-*`` headers (empty when the endpoint is not limited)."""
        field_name, label = self.ENDPOINTS[endpoint]
        with self._lock:
            scope, limits = self._org_of(api_key)
            rpm = getattr(limits, field_name)
            if rpm is None:
                return {}
            key = (scope, f"endpoint:{endpoint}")
            bucket = self._endpoint_buckets.get(key)
            if bucket is None:
                burst = limits.burst_s if limits.burst_s is not None else self._default_burst_s
                bucket = self._endpoint_buckets[key] = Limit(rpm, self._clock, burst, floor=1.0)
            wait = bucket.wait_for(1)
            headers = _bucket_headers("requests", bucket.minute)
            if wait > 0:
                headers["retry-after"] = str(max(1, math.ceil(wait - TIME_SLACK_S)))
                raise RateLimited(endpoint_exceeded(rpm, label, api_key), headers=headers)
            bucket.charge(1)
            return _bucket_headers("requests", bucket.minute)

    def check_batch_queue(self, api_key: str, queued: int, adding: int) -> None:
        """Refuse (429) a batch create that would put more than ``batch_queue`` requests of this key's organisation in
        the processing queue (``queued`` already waiting, ``adding`` in the new batch)."""
        limit = self.limits_for(api_key).batch_queue
        if limit is None or queued + adding <= limit:
            return
        retryable = adding <= limit
        headers = {"retry-after": "60"} if retryable else {"x-should-retry": "false"}
        raise RateLimited(queue_exceeded(limit, api_key, queued, adding, retryable), headers=headers)

    # ----- headers -------------------------------------------------------------------------------
    def headers(self, api_key: str, model: str) -> dict[str, str]:
        """The ``anthropic-ratelimit-*`` headers for ``api_key`` and ``model`` right now."""
        with self._lock:
            return self._headers_locked([b for _, b in self._groups(api_key, model)])

    def _headers_locked(self, groups: list[_Buckets]) -> dict[str, str]:
        # Under a workspace with limits, each limit is reported from whichever of the workspace's
        # and the organization's buckets has less left: that is the one that will refuse first.
        def tightest_of(name: str) -> LimitBucket:
            return min((getattr(b, name).minute for b in groups), key=lambda bk: (bk.remaining(), -bk.reset_at()))

        exact = self.exact_remaining
        out: dict[str, str] = {}
        minute = {name: tightest_of(name) for name in ("requests", "input", "output")}
        out.update(_bucket_headers("requests", minute["requests"], exact=True))
        out.update(_bucket_headers("input-tokens", minute["input"], exact=exact))
        out.update(_bucket_headers("output-tokens", minute["output"], exact=exact))
        if len(groups) > 1:
            # "The anthropic-ratelimit-tokens-* headers display the values for the most restrictive
            # limit currently in effect" (rate-limits page): here, when workspace limits apply.
            tightest = min((minute["input"], minute["output"]), key=lambda bk: (bk.remaining(), -bk.reset_at()))
            out.update(_bucket_headers("tokens", tightest, exact=exact))
        else:
            # "If Workspace limits do not apply, the headers will return the total tokens remaining,
            # where total is the sum of input and output tokens."
            i, o = minute["input"], minute["output"]
            remaining = i.remaining() + o.remaining()
            out["anthropic-ratelimit-tokens-limit"] = str(int(i.capacity) + int(o.capacity))
            out["anthropic-ratelimit-tokens-remaining"] = str(remaining if exact else round_thousand(remaining))
            out["anthropic-ratelimit-tokens-reset"] = reset_timestamp(max(i.reset_at(), o.reset_at()))
        return out


def _own_org(api_key: str) -> str:
    """The bucket scope of the organisation a key with a tier of its own stands for."""
    return "\x00org:" + api_key


def _bucket_headers(prefix: str, bucket: LimitBucket, *, exact: bool = True) -> dict[str, str]:
    remaining = bucket.remaining()
    return {
        f"anthropic-ratelimit-{prefix}-limit": str(int(bucket.capacity)),
        f"anthropic-ratelimit-{prefix}-remaining": str(remaining if exact else round_thousand(remaining)),
        f"anthropic-ratelimit-{prefix}-reset": reset_timestamp(bucket.reset_at()),
    }
