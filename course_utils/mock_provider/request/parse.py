"""Parsing a whole ``POST /v1/messages`` (or count_tokens) body into a :class:`MessagesRequest`."""

from __future__ import annotations

from typing import Any, Mapping

from ..errors import InvalidRequest
from .content import messages as _messages, system as _system, tool_choice as _tool_choice, tools as _tools
from .fields import cache_control, check_type, enum, no_extra, require
from .schema_subset import unsupported_feature
from .schema import _COUNT_FIELDS, _CREATE_FIELDS, _EFFORTS, _SERVICE_TIERS, _SPEEDS, _THINKING_FIELDS
from .types import MessagesRequest

__all__ = ["parse_messages_request", "MIN_THINKING_BUDGET"]

MIN_THINKING_BUDGET = 1024
"""The smallest ``thinking.budget_tokens`` (SDK ``ThinkingConfigEnabledParam``: "Must be ≥1024")."""


def parse_messages_request(body: Mapping[str, Any], *, for_count: bool = False) -> MessagesRequest:
    """Validate a request body (``for_count``: a count_tokens body, which takes no ``max_tokens``,
    ``stream``, sampling or output controls). Raises :class:`InvalidRequest` naming the field."""
    no_extra(body, _COUNT_FIELDS if for_count else _CREATE_FIELDS, "")
    model = require(body, "model")
    check_type(model, str, "model", "string")
    messages = _messages(require(body, "messages"))
    max_tokens = None
    if not for_count:
        max_tokens = require(body, "max_tokens")
        check_type(max_tokens, int, "max_tokens", "integer")
        if max_tokens < 1:
            raise InvalidRequest("max_tokens: Input should be greater than or equal to 1")
    stops = body.get("stop_sequences") or []
    check_type(stops, list, "stop_sequences", "list")
    for i, s in enumerate(stops):
        check_type(s, str, f"stop_sequences.{i}", "string")
        if not s.strip():
            raise InvalidRequest(f"stop_sequences.{i}: each stop sequence must contain non-whitespace")
    stream = body.get("stream", False)
    check_type(stream, bool, "stream", "boolean")
    temperature = body.get("temperature")
    if temperature is not None:
        check_type(temperature, (int, float), "temperature", "number")
        if not 0.0 <= float(temperature) <= 1.0:
            raise InvalidRequest("temperature: Input should be less than or equal to 1 and greater than or equal to 0")
    metadata = body.get("metadata")
    if metadata is not None:
        check_type(metadata, dict, "metadata", "object")
        no_extra(metadata, frozenset({"user_id"}), "metadata")
        if metadata.get("user_id") is not None:
            check_type(metadata["user_id"], str, "metadata.user_id", "string")
    enum(body.get("service_tier"), _SERVICE_TIERS, "service_tier")
    enum(body.get("speed"), _SPEEDS, "speed")
    if body.get("top_k") is not None:
        check_type(body["top_k"], int, "top_k", "integer")
        if body["top_k"] < 0:
            raise InvalidRequest("top_k: Input should be greater than or equal to 0")
    if body.get("top_p") is not None:
        check_type(body["top_p"], (int, float), "top_p", "number")
        if not 0.0 <= float(body["top_p"]) <= 1.0:
            raise InvalidRequest("top_p: Input should be less than or equal to 1 and greater than or equal to 0")
    thinking = _thinking(body.get("thinking"))
    output_config = _output_config(body.get("output_config"))
    tools = _tools(body.get("tools"))
    return MessagesRequest(
        model=model,
        messages=messages,
        max_tokens=max_tokens,
        system=_system(body.get("system")),
        tools=tools,
        tool_choice=_tool_choice(body.get("tool_choice"), tools),
        stop_sequences=tuple(stops),
        stream=stream,
        temperature=float(temperature) if temperature is not None else None,
        cache_control=cache_control(body.get("cache_control"), "cache_control"),
        top_p=float(body["top_p"]) if body.get("top_p") is not None else None,
        top_k=body.get("top_k"),
        thinking=thinking,
        output_config=output_config,
        raw=body,
    )


def _thinking(raw: Any) -> dict[str, Any] | None:
    if raw is None:
        return None
    check_type(raw, dict, "thinking", "object")
    kind = raw.get("type")
    if not isinstance(kind, str) or kind not in _THINKING_FIELDS:
        raise InvalidRequest("thinking.type: Input should be 'enabled', 'disabled', 'adaptive' or 'between_tools'")
    no_extra(raw, _THINKING_FIELDS[kind], "thinking")
    if kind == "enabled":
        check_type(require(raw, "budget_tokens", "thinking."), int, "thinking.budget_tokens", "integer")
        # "Must be ≥1024 and less than `max_tokens`" (SDK ThinkingConfigEnabledParam.budget_tokens);
        # the max_tokens half is checked with the model's rules (count_tokens has no max_tokens).
        if raw["budget_tokens"] < MIN_THINKING_BUDGET:
            raise InvalidRequest(
                f"thinking.budget_tokens: Input should be greater than or equal to {MIN_THINKING_BUDGET}"
            )
    if raw.get("display") is not None:
        enum(raw["display"], ("summarized", "omitted"), "thinking.display")
    return dict(raw)


def _output_config(raw: Any) -> dict[str, Any] | None:
    """``output_config``: ``effort`` and the structured-outputs ``format`` (a JSON schema)."""
    if raw is None:
        return None
    check_type(raw, dict, "output_config", "object")
    no_extra(raw, frozenset({"effort", "format"}), "output_config")
    enum(raw.get("effort"), _EFFORTS, "output_config.effort")
    fmt = raw.get("format")
    if fmt is not None:
        check_type(fmt, dict, "output_config.format", "object")
        no_extra(fmt, frozenset({"type", "schema"}), "output_config.format")
        if fmt.get("type") != "json_schema":
            raise InvalidRequest("output_config.format.type: Input should be 'json_schema'")
        schema = require(fmt, "schema", "output_config.format.")
        check_type(schema, dict, "output_config.format.schema", "object")
        _check_schema(schema)
        problem = unsupported_feature(schema)  # valid JSON schema, but outside the supported subset
        if problem is not None:
            raise InvalidRequest(problem)
    return dict(raw)


def _check_schema(schema: dict[str, Any]) -> None:
    # An invalid JSON schema is the caller's error (400), never the server's; jsonschema's own
    # meta-schema check decides, for whichever draft the schema names.
    from jsonschema import exceptions, validators

    try:
        validators.validator_for(schema).check_schema(schema)
    except exceptions.SchemaError as exc:
        raise InvalidRequest(f"output_config.format.schema: invalid JSON schema: {exc.message}") from None
    except (RecursionError, TypeError, ValueError) as exc:  # pathological schemas the checker trips on
        raise InvalidRequest(f"output_config.format.schema: invalid JSON schema ({type(exc).__name__})") from None
