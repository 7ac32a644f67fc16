"""The API's JSON objects built from a served exchange: a message and its usage."""

from __future__ import annotations

from typing import Any

from .exchange import Exchange
from .ids import new_id

__all__ = ["message_json", "usage_json", "delta_usage_json"]


def usage_json(ex: Exchange, output_tokens: int) -> dict[str, Any]:
    """A message's ``usage`` (input side from the exchange, with the cache TTL breakdown)."""
    u = ex.usage
    return {
        "input_tokens": u["input_tokens"],
        "cache_creation_input_tokens": u["cache_creation_input_tokens"],
        "cache_read_input_tokens": u["cache_read_input_tokens"],
        "cache_creation": dict(u["cache_creation"]),
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }


def delta_usage_json(ex: Exchange, output_tokens: int) -> dict[str, Any]:
    """``message_delta`` usage: cumulative counts, without the TTL breakdown (as the API sends it)."""
    u = ex.usage
    return {
        "input_tokens": u["input_tokens"],
        "cache_creation_input_tokens": u["cache_creation_input_tokens"],
        "cache_read_input_tokens": u["cache_read_input_tokens"],
        "output_tokens": output_tokens,
    }


def message_json(ex: Exchange, *, final: bool) -> dict[str, Any]:
    """The reply as a ``message`` object: whole (``final``) or as ``message_start`` carries it (empty)."""
    gen = ex.generated
    assert gen is not None and ex.model is not None
    return {
        "id": ex.row.extra.setdefault("message_id", new_id("msg")),
        "type": "message",
        "role": "assistant",
        "model": ex.model.id,
        "content": gen.content if final else [],
        "stop_reason": gen.stop_reason if final else None,
        "stop_sequence": gen.stop_sequence if final else None,
        "stop_details": gen.stop_details if final else None,
        "usage": usage_json(ex, gen.output_tokens if final else 1),
    }
