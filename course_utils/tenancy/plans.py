"""Plans: what a tenant of the SaaS may use (rate limits, monthly budget, models).

A plan is the product's own contract with its customer, enforced in front of the one provider
organisation the product shares between all customers. Its limits are deliberately far below the
provider's: 40 free tenants at their full rate must still fit in the organisation's limit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Mapping

__all__ = ["Plan", "PLANS", "get_plan"]


@dataclass(frozen=True)
class Plan:
    """Per-tenant limits and entitlements.

    ``requests_per_minute``, ``input_tokens_per_minute`` and ``output_tokens_per_minute`` are token
    buckets refilled continuously (the same shape as the provider's limits, so one estimate of a
    request's demand serves both). ``monthly_budget_usd`` is a hard cap in dollars per calendar month
    (UTC). ``models`` lists the model ids the plan may call. ``weight`` is the tenant's share in
    fair scheduling: a weight-4 tenant gets four times the throughput of a weight-1 tenant when
    both have work queued.
    """

    name: str
    requests_per_minute: int
    input_tokens_per_minute: int
    output_tokens_per_minute: int
    monthly_budget_usd: Decimal
    models: frozenset[str] = field(default_factory=frozenset)
    weight: int = 1

    def __post_init__(self) -> None:
        for name in ("requests_per_minute", "input_tokens_per_minute", "output_tokens_per_minute", "weight"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"Plan.{name} must be a positive integer, not {value!r}")
        if not isinstance(self.monthly_budget_usd, Decimal) or self.monthly_budget_usd < 0:
            raise ValueError(f"Plan.monthly_budget_usd must be a Decimal >= 0, not {self.monthly_budget_usd!r}")
        if not self.models:
            raise ValueError("Plan.models must name at least one model")
        object.__setattr__(self, "models", frozenset(self.models))

    def allows(self, model: str) -> bool:
        """Whether this plan may call ``model`` (an exact model id)."""
        return model in self.models

    @property
    def limits(self) -> Mapping[str, int]:
        """The three per-minute limits by name (``requests``, ``input_tokens``, ``output_tokens``)."""
        return {
            "requests": self.requests_per_minute,
            "input_tokens": self.input_tokens_per_minute,
            "output_tokens": self.output_tokens_per_minute,
        }


# The current models (course_utils.models); free tenants get the cheap one only.
_SMALL = frozenset({"claude-haiku-5-5"})
_ALL = frozenset({"claude-haiku-5-5", "claude-sonnet-5-5", "claude-opus-5-5"})

PLANS: dict[str, Plan] = {
    "free": Plan("free", 10, 20_000, 4_000, Decimal("5"), _SMALL, weight=1),
    "pro": Plan("pro", 60, 100_000, 20_000, Decimal("200"), _ALL, weight=2),
    "enterprise": Plan("enterprise", 300, 400_000, 80_000, Decimal("5000"), _ALL, weight=4),
}
"""The product's three plans (figures are the product's choice, not the provider's)."""


def get_plan(plan: str | Plan) -> Plan:
    """A plan by name (a key of :data:`PLANS`), or a :class:`Plan` passed through."""
    if isinstance(plan, Plan):
        return plan
    try:
        return PLANS[plan]
    except (KeyError, TypeError):
        raise ValueError(f"unknown plan {plan!r}; known plans: {', '.join(PLANS)}") from None
