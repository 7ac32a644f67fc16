"""The request pipeline's stages. Each does one job and may refuse the request with an APIError.

Order matters and mirrors the API: authenticate, validate, then decide faults, look up the prompt
cache, admit against rate limits, and generate. Stages that hold resources (a rate-limit
reservation) settle them in ``after``, which runs whatever the outcome.
"""

from __future__ import annotations

import hashlib
import json
import random
from typing import TYPE_CHECKING, Protocol

from ..models import UnknownModelError, get_model
from ..tokens import count_request
from .config import SimulatorConfig
from .errors import AuthenticationFailed, InvalidRequest, NotFound
from .exchange import Exchange
from .generation import RESPONSE_SHAPES, apply_shape, finalize
from .latency import plan_latency
from .request import KNOWN_BETAS, parse_messages_request
from .rules import check_model_rules

if TYPE_CHECKING:
    from .cache import PromptCache
    from .faults import FaultInjector
    from .ratelimit import RateLimiter

__all__ = [
    "Stage",
    "Authenticate",
    "Validate",
    "Generate",
    "PromptCaching",
    "InjectFaults",
    "EnforceRateLimits",
    "body_key",
]


class Stage(Protocol):
    """One step of the pipeline."""

    async def before(self, ex: Exchange) -> None:
        """Inspect or enrich the exchange; raise an APIError to refuse the request."""

    def after(self, ex: Exchange, status: int) -> None:
        """Called once the response is complete (or failed) with its HTTP status."""


# Output controls change where an answer is cut or how it is delivered, not what the model says.
_NOT_PROMPT = frozenset({"stream", "max_tokens", "stop_sequences", "metadata"})


def body_key(body: dict) -> str:
    """A stable hash of what the model is asked (the prompt), ignoring output controls.

    So a streamed and a plain reply match, and a smaller ``max_tokens`` cuts the same answer.
    """
    canonical = json.dumps({k: v for k, v in body.items() if k not in _NOT_PROMPT}, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


class Authenticate:
    """401 without a key or with a revoked one, 400 without ``anthropic-version`` or with an unknown
    ``anthropic-beta`` value (as the API does).

    Every key is valid by default (the simulator has no accounts); :meth:`revoke` marks a key
    invalid so code can be tested against the 401 of a revoked or expired key. Revocations last
    for the life of the stage (they survive ``Simulator.reset``, like a real revocation).
    """

    def __init__(self, require_version: bool = True) -> None:
        self.require_version = require_version
        self._revoked: set[str] = set()

    def revoke(self, api_key: str) -> None:
        """From now on, requests with ``api_key`` get 401 ``authentication_error``."""
        self._revoked.add(api_key)

    def restore(self, api_key: str) -> None:
        """Undo :meth:`revoke` (a new key with the same value, as far as the simulator can tell)."""
        self._revoked.discard(api_key)

    async def before(self, ex: Exchange) -> None:
        if not ex.api_key:
            raise AuthenticationFailed("x-api-key header is required")
        if ex.api_key in self._revoked:
            # The API's default message for this error type (API reference, shared error models).
            raise AuthenticationFailed("Authentication error")
        if self.require_version and "anthropic-version" not in ex.headers:
            raise InvalidRequest("anthropic-version: header is required")
        beta = ex.headers.get("anthropic-beta")
        if beta is not None:
            unknown = [b for b in (v.strip() for v in beta.split(",")) if b not in KNOWN_BETAS]
            if unknown:
                raise InvalidRequest(
                    "anthropic-beta: Unexpected value(s) "
                    + ", ".join(f"`{b}`" for b in unknown)
                    + " for the `anthropic-beta` header."
                )

    def after(self, ex: Exchange, status: int) -> None:
        return None


class Validate:
    """Parse the body, resolve the model, and enforce the context window and output limits."""

    def __init__(self, config: SimulatorConfig, *, for_count: bool = False) -> None:
        self.config = config
        self.for_count = for_count

    async def before(self, ex: Exchange) -> None:
        req = parse_messages_request(ex.body, for_count=self.for_count)
        try:
            model = get_model(req.model)
        except UnknownModelError:
            raise NotFound(f"model: {req.model}") from None
        # The per-model rules of data/model_rules.csv (sampling params, prefill, thinking, forced tools).
        check_model_rules(req, model)
        ex.request, ex.model = req, model
        ex.row.model, ex.row.stream, ex.row.max_tokens = model.id, req.stream, req.max_tokens
        metadata = ex.body.get("metadata")
        ex.row.tenant_tag = metadata.get("user_id") if isinstance(metadata, dict) else None
        ex.input_tokens_total = count_request(ex.body)
        ex.usage = {
            "input_tokens": ex.input_tokens_total,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
        }
        if self.for_count:
            return
        assert req.max_tokens is not None
        if req.max_tokens > model.max_output:
            raise InvalidRequest(
                f"max_tokens: {req.max_tokens} > {model.max_output}, which is the maximum allowed number of "
                f"output tokens for {model.id}"
            )
        if ex.input_tokens_total > model.context_window:
            raise InvalidRequest(f"prompt is too long: {ex.input_tokens_total} tokens > {model.context_window} maximum")
        ex.output_budget = min(req.max_tokens, model.context_window - ex.input_tokens_total)
        ex.body_key = body_key(ex.body)
        ex.rng = random.Random(f"{self.config.seed}:{model.id}:{ex.body_key}")

    def after(self, ex: Exchange, status: int) -> None:
        return None


class Generate:
    """Ask the skills for a reply, apply the output rules, and plan the latency."""

    def __init__(self, config: SimulatorConfig, scripted: list) -> None:
        self.config = config
        self.scripted = scripted

    async def before(self, ex: Exchange) -> None:
        from .skills import SkillContext, respond

        assert ex.request is not None and ex.model is not None and ex.rng is not None
        reply = respond(
            SkillContext(
                request=ex.request, model=ex.model, rng=ex.rng, seed=self.config.seed, scripted=list(self.scripted)
            )
        )
        gen = finalize(
            reply,
            max_tokens=ex.output_budget,
            stop_sequences=ex.request.stop_sequences,
            seed=self.config.seed,
            body_key=ex.body_key,
        )
        if gen.stop_reason == "max_tokens" and ex.output_budget < (ex.request.max_tokens or 0):
            gen.stop_reason = "model_context_window_exceeded"
        shape = _requested_shape(ex)
        if shape is not None:
            gen = apply_shape(gen, shape, seed=self.config.seed, body_key=ex.body_key)
        ex.generated = gen
        ex.row.skill = gen.skill
        # A separate RNG keeps latency draws from changing the content's randomness.
        lat_rng = random.Random(f"latency:{self.config.seed}:{ex.body_key}")
        ex.latency = plan_latency(
            ex.model,
            lat_rng,
            uncached_input_tokens=ex.usage["input_tokens"] + ex.usage["cache_creation_input_tokens"],
            cached_input_tokens=ex.usage["cache_read_input_tokens"],
            time_scale=self.config.time_scale,
        )

    def after(self, ex: Exchange, status: int) -> None:
        return None


def _requested_shape(ex: Exchange) -> str | None:
    """The ``x-mock-shape`` header (a reply shape of the current models, on request), validated."""
    value = ex.headers.get("x-mock-shape")
    if value is None:
        return None
    shape = value.strip()
    if shape not in RESPONSE_SHAPES:
        raise InvalidRequest(
            f"x-mock-shape: {value!r} is not a reply shape; valid values are: " + ", ".join(RESPONSE_SHAPES)
        )
    return shape


class PromptCaching:
    """Split input tokens into cache reads, cache writes and plain input, as the API reports them.

    ``before`` only peeks (a request refused later, e.g. by a rate limit, must not touch the
    cache); the cache is written when the request succeeds.
    """

    def __init__(self, cache: "PromptCache") -> None:
        self.cache = cache

    async def before(self, ex: Exchange) -> None:
        assert ex.model is not None
        usage = self.cache.peek(ex.api_key or "", ex.model.id, ex.body, ex.model.min_cache_tokens)
        ex.usage = usage.as_usage()

    def after(self, ex: Exchange, status: int) -> None:
        if status == 200 and ex.model is not None and ex.usage:
            self.cache.lookup_and_store(ex.api_key or "", ex.model.id, ex.body, ex.model.min_cache_tokens)

    def reset(self) -> None:
        self.cache.clear()


class InjectFaults:
    """Decide, per the scenario or the ``x-mock-fault`` header, whether this request fails and how.

    Errors that replace the response (529, 500, 429) are raised here; faults that act later
    (mid-stream errors, drops, delays) ride on ``ex.fault`` for the delivery code.
    """

    def __init__(self, injector: "FaultInjector") -> None:
        self.injector = injector

    async def before(self, ex: Exchange) -> None:
        from .faults import InvalidFault

        try:
            fault = self.injector.decide(
                ex.body_key, ex.headers.get("x-mock-fault"), model=ex.model.id if ex.model is not None else None
            )
        except InvalidFault as exc:
            raise InvalidRequest(f"x-mock-fault: {exc}") from None
        if fault is None:
            return
        assert ex.request is not None
        if not ex.request.stream:
            fault = fault.for_non_streaming()
        ex.fault = fault
        ex.row.fault = fault.kind
        error = fault.error() if (fault.after_tokens is None or not ex.request.stream) else None
        if error is not None:
            raise error

    def after(self, ex: Exchange, status: int) -> None:
        return None

    def reset(self) -> None:
        self.injector.reset()


class EnforceRateLimits:
    """Admit the request against its key's per-model buckets, and settle output tokens afterwards."""

    def __init__(self, limiter: "RateLimiter") -> None:
        self.limiter = limiter

    async def before(self, ex: Exchange) -> None:
        assert ex.request is not None and ex.model is not None
        ex.row.workspace = self.limiter.workspaces.workspace_of(ex.api_key or "")
        ex.admission = self.limiter.admit(
            ex.api_key or "",
            ex.model.id,
            input_tokens=ex.input_tokens_total,
            max_tokens=ex.request.max_tokens or 0,
            cache_read_tokens=ex.usage.get("cache_read_input_tokens", 0),
        )
        ex.response_headers.update(ex.admission.headers)

    def after(self, ex: Exchange, status: int) -> None:
        if ex.admission is not None:
            self.limiter.settle(ex.admission, ex.row.output_tokens)

    def headers(self, ex: Exchange) -> dict[str, str]:
        """Current rate-limit headers for this request's key and model (for error responses)."""
        if ex.model is None or not ex.api_key:
            return {}
        return self.limiter.headers(ex.api_key, ex.model.id)

    def reset(self) -> None:
        self.limiter.reset()
