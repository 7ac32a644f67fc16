"""What the simulated provider charges: usage recorded on the ledger row, priced exactly.

A model call is billed when the provider has done the work (status 200), whether or not the
client received the answer: that is what makes lost responses and client timeouts cost money.
Batch requests are billed one ledger row each, at the batch discount, when they succeed.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from .exchange import Exchange
from .ids import new_id
from .ledger import LedgerRow

__all__ = ["charge_for", "record_usage", "batch_result_row"]


def charge_for(row: LedgerRow) -> Decimal:
    """What the provider charges for the usage on ``row``: exact dollars at its model's prices (batch rows at the discount)."""
    from ..pricing import cost

    return cost(
        {
            "input_tokens": row.input_tokens,
            "output_tokens": row.output_tokens,
            "cache_creation_input_tokens": row.cache_creation_input_tokens,
            "cache_read_input_tokens": row.cache_read_input_tokens,
            "cache_creation": row.extra.get("cache_creation"),
        },
        row.model,
        batch=row.batch,
    )


def record_usage(ex: Exchange) -> None:
    """Copy the exchange's usage (input split by the prompt cache, output generated) onto its row."""
    row, usage, gen = ex.row, ex.usage, ex.generated
    row.input_tokens = usage["input_tokens"]
    row.cache_creation_input_tokens = usage["cache_creation_input_tokens"]
    row.cache_read_input_tokens = usage["cache_read_input_tokens"]
    row.extra["cache_creation"] = usage.get("cache_creation")
    row.output_tokens = gen.output_tokens if gen else 0


def batch_result_row(
    api_key: str, custom_id: str, params: Any, result: dict[str, Any], batch_id: str, now: float
) -> LedgerRow:
    """The ledger row of one finished batch request; only ``succeeded`` ones cost anything."""
    kind = result.get("type")
    row = LedgerRow(
        request_id=new_id("req"),
        endpoint="/v1/messages/batches",
        method="BATCH",
        api_key=api_key,
        model=params.get("model") if isinstance(params, dict) else None,
        arrival=now,
        finish=now,
        batch=True,
        custom_id=custom_id,
        batch_id=batch_id,
    )
    metadata = params.get("metadata") if isinstance(params, dict) else None
    row.tenant_tag = metadata.get("user_id") if isinstance(metadata, dict) else None
    if kind == "succeeded":
        usage = result["message"]["usage"]
        row.status = 200
        row.input_tokens = usage["input_tokens"]
        row.output_tokens = usage["output_tokens"]
        row.cache_creation_input_tokens = usage.get("cache_creation_input_tokens") or 0
        row.cache_read_input_tokens = usage.get("cache_read_input_tokens") or 0
        row.extra["cache_creation"] = usage.get("cache_creation")
        row.cost_usd = charge_for(row)
    elif kind == "errored":
        error_type = result["error"]["error"]["type"]
        row.status = 404 if error_type == "not_found_error" else 400 if error_type == "invalid_request_error" else 500
        row.error_type = error_type
    else:
        row.error_type = kind
    return row
