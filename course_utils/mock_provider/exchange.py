"""The per-request state that flows through the simulator's pipeline stages, and how it is opened."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..models import ModelSpec
from .generation import Generated
from .ids import new_id
from .latency import LatencyPlan
from .ledger import LedgerRow
from .request import MessagesRequest

__all__ = ["Exchange", "open_exchange", "mask_key"]


def mask_key(api_key: str | None) -> str | None:
    """How a key appears in the ledger: simulator keys as they are (they name tenants), anything
    that looks like a real Anthropic key reduced to its last four characters, so a student who
    points a real key at the simulator never sees it printed back."""
    if api_key and api_key.startswith("sk-ant-"):
        return f"sk-ant-...{api_key[-4:]}"
    return api_key


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


def open_exchange(headers: Mapping[str, str], method: str, endpoint: str, now: float) -> Exchange:
    """The exchange of an HTTP request that arrived at ``now``: its key (``x-api-key`` or a bearer
    token), a fresh request id, and its ledger row."""
    lowered = {k.lower(): v for k, v in headers.items()}
    api_key = lowered.get("x-api-key")
    if not api_key and lowered.get("authorization", "").lower().startswith("bearer "):
        api_key = lowered["authorization"][7:].strip() or None
    rid = new_id("req")
    row = LedgerRow(request_id=rid, endpoint=endpoint, method=method, api_key=mask_key(api_key), arrival=now)
    return Exchange(request_id=rid, api_key=api_key, headers=lowered, row=row, response_headers={"request-id": rid})
