"""The per-request state that flows through the simulator's pipeline stages."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from ..models import ModelSpec
from .generation import Generated
from .latency import LatencyPlan
from .ledger import LedgerRow
from .request import MessagesRequest

__all__ = ["Exchange"]


@dataclass
class Exchange:
    """One request on its way through the pipeline (auth → validate → faults → cache → limits → generate)."""

    request_id: str
    api_key: str | None
    headers: dict[str, str]
    row: LedgerRow
    body: dict[str, Any] = field(default_factory=dict)
    request: MessagesRequest | None = None
    model: ModelSpec | None = None
    body_key: str = ""
    rng: random.Random | None = None
    input_tokens_total: int = 0
    usage: dict[str, Any] = field(default_factory=dict)
    """Input-side usage: input_tokens (uncached), cache_creation_input_tokens, cache_read_input_tokens, cache_creation."""
    output_budget: int = 0
    generated: Generated | None = None
    latency: LatencyPlan | None = None
    fault: Any = None
    admission: Any = None
    response_headers: dict[str, str] = field(default_factory=dict)
    """Headers every response to this request carries (request-id, rate-limit headers)."""
