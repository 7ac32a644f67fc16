"""Parsing and validating a Messages API request body into a :class:`MessagesRequest`.

Validation follows the API: precise ``invalid_request_error`` messages that name the field
(``messages.1.content.0.text: Field required``), consecutive turns of the same role merged, and a
``tool_result`` accepted only when the previous assistant turn holds its ``tool_use``.

Unknown fields are refused, at the top level and inside messages, blocks, tools, ``tool_choice``,
``thinking``, ``cache_control``, ``metadata`` and ``output_config``, with the API's wording
``<path>: Extra inputs are not permitted`` (so ``max_tokens`` on count_tokens is a 400 too). The known
fields are those of the installed SDK's request types (anthropic 2.14: ``MessageCreateParams``,
``MessageCountTokensParams``, the block, tool and config params), plus ``stream`` and the sampling
parameters the 4.x models still accept. Per-model rules (which *known* settings a model refuses)
live in :mod:`.rules`.

Contract: :func:`parse_json_body` and :func:`parse_messages_request` raise only
:class:`~.errors.InvalidRequest` for bad input, never another exception, whatever the body holds.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from .errors import InvalidRequest

__all__ = [
    "KNOWN_BETAS",
    "Message",
    "MessagesRequest",
    "parse_json_body",
    "parse_messages_request",
    "text_of",
    "all_text",
]

_ROLES = ("user", "assistant")

# ----- the request schema: known fields at every level -------------------------------------------
_CREATE_FIELDS = frozenset({
    "model", "messages", "max_tokens", "system", "tools", "tool_choice", "stop_sequences", "stream", "metadata",
    "thinking", "output_config", "service_tier", "cache_control", "container", "diagnostics", "inference_geo",
    "speed", "user_profile_id", "workspace_id",
    # Sampling parameters: gone from SDK 2.14's types, still accepted by the 4.x models (rules.py refuses
    # them per model).
    "temperature", "top_p", "top_k",
})
_COUNT_FIELDS = frozenset({
    "model", "messages", "system", "tools", "tool_choice", "thinking", "output_config", "cache_control", "speed",
    "user_profile_id", "workspace_id",
})
_BLOCK_FIELDS: dict[str, frozenset[str]] = {
    "text": frozenset({"type", "text", "cache_control", "citations"}),
    "image": frozenset({"type", "source", "cache_control", "transformations"}),
    "document": frozenset({"type", "source", "cache_control", "citations", "context", "title"}),
    "tool_use": frozenset({"type", "id", "name", "input", "cache_control", "caller", "toolset_name"}),
    "tool_result": frozenset({"type", "tool_use_id", "content", "is_error", "cache_control", "toolset_name"}),
    "thinking": frozenset({"type", "thinking", "signature"}),
    "redacted_thinking": frozenset({"type", "data"}),
}
_BLOCK_TYPES = frozenset(_BLOCK_FIELDS)
_CUSTOM_TOOL_FIELDS = frozenset({
    "type", "name", "description", "input_schema", "cache_control", "strict", "input_examples", "allowed_callers",
    "defer_loading", "eager_input_streaming",
})
_TOOL_CHOICE_FIELDS = {
    "auto": frozenset({"type", "disable_parallel_tool_use"}),
    "any": frozenset({"type", "disable_parallel_tool_use"}),
    "tool": frozenset({"type", "name", "disable_parallel_tool_use"}),
    "none": frozenset({"type"}),
}
_THINKING_FIELDS = {
    "enabled": frozenset({"type", "budget_tokens", "display"}),
    "adaptive": frozenset({"type", "display"}),
    "between_tools": frozenset({"type", "display"}),
    "disabled": frozenset({"type"}),
}
_SERVER_TOOL_TYPE = re.compile(r"[a-z][a-z0-9_]*_\d{8}")
_EFFORTS = ("low", "medium", "high", "xhigh", "max")
_SERVICE_TIERS = ("auto", "standard_only")
_SPEEDS = ("standard", "fast")

KNOWN_BETAS: frozenset[str] = frozenset({
    # The literal values of the installed SDK's ``AnthropicBetaParam`` (anthropic 2.14).
    "message-batches-2024-09-24", "prompt-caching-2024-07-31", "computer-use-2024-10-22", "computer-use-2025-01-24",
    "pdfs-2024-09-25", "token-counting-2024-11-01", "token-efficient-tools-2025-02-19", "output-128k-2025-02-19",
    "files-api-2025-04-14", "mcp-client-2025-04-04", "mcp-client-2025-11-20", "dev-full-thinking-2025-05-14",
    "interleaved-thinking-2025-05-14", "code-execution-2025-05-22", "extended-cache-ttl-2025-04-11",
    "context-1m-2025-08-07", "context-management-2025-06-27", "model-context-window-exceeded-2025-08-26",
    "skills-2025-10-02", "fast-mode-2026-02-01", "output-300k-2026-03-24", "user-profiles-2026-03-24",
    "user-profiles-2026-08-18", "user-profiles-2026-09-04", "advisor-tool-2026-03-01", "managed-agents-2026-04-01",
    "dreaming-2026-04-21", "thinking-token-count-2026-05-13", "server-side-fallback-2026-06-01",
    "server-side-fallback-2026-07-01", "fallback-credit-2026-06-01", "fallback-credit-2026-07-01",
    "agent-memory-2026-07-22", "mid-conversation-tool-changes-2026-07-01", "compact-2026-01-12",
    "computer-use-2025-11-24", "mcp-tunnels-2026-06-22", "structured-outputs-2025-11-13", "task-budgets-2026-03-13",
    "thinking-display-updates-2026-08-18", "mid-conversation-output-config-2026-07-01",
    "thinking-binding-controls-2026-08-01", "mid-conversation-system-clear-at-2026-08-21", "compact-2026-09-04",
    "inline-tools-2026-09-15", "mcp-client-2026-09-15", "ce-plugins-2026-09-01", "spend-limit-reads-2026-09-26",
    "telemetry-destinations-2026-08-11", "webhooks-2026-10-07", "admin-user-sign-out-2026-10-08",
    "message-threads-2026-08-12", "analytics-usage-cost-2026-08-24", "experimental-claude-tag-2026-10-21",
    "cache-diagnosis-2026-04-07", "ce-user-management-2026-07-13", "ce-claude-code-managed-settings-2026-10-06",
    "efs-2026-10-01", "google-managed-data-controls-2026-09-01",
})
"""``anthropic-beta`` values the simulator accepts; any other value is a 400."""


def _no_extra(obj: Mapping[str, Any], known: frozenset[str], path: str) -> None:
    """Refuse the first field (in sorted order, so the message is stable) that ``known`` lacks."""
    extra = sorted((k for k in obj if k not in known), key=str)
    if extra:
        where = f"{path}.{extra[0]}" if path else str(extra[0])
        raise InvalidRequest(f"{where}: Extra inputs are not permitted")


@dataclass(frozen=True)
class Message:
    """One turn, with its content normalised to a tuple of block dicts."""

    role: str
    content: tuple[dict[str, Any], ...]

    @property
    def text(self) -> str:
        """The concatenated text of this turn (text blocks and tool results)."""
        return text_of(self.content)


@dataclass(frozen=True)
class MessagesRequest:
    """A validated ``POST /v1/messages`` (or count_tokens) body."""

    model: str
    messages: tuple[Message, ...]
    max_tokens: int | None
    system: tuple[dict[str, Any], ...] = ()
    tools: tuple[dict[str, Any], ...] = ()
    tool_choice: dict[str, Any] | None = None
    stop_sequences: tuple[str, ...] = ()
    stream: bool = False
    temperature: float | None = None
    cache_control: dict[str, Any] | None = None
    top_p: float | None = None
    top_k: int | None = None
    thinking: dict[str, Any] | None = None
    output_config: dict[str, Any] | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def prefill(self) -> bool:
        """Whether the conversation ends with an assistant turn (a prefill the model continues)."""
        return bool(self.messages) and self.messages[-1].role == "assistant"

    @property
    def output_schema(self) -> dict[str, Any] | None:
        """The JSON schema of ``output_config.format`` (structured outputs), or None."""
        fmt = (self.output_config or {}).get("format")
        return fmt.get("schema") if isinstance(fmt, dict) else None

    @property
    def system_text(self) -> str:
        return "\n".join(b.get("text", "") for b in self.system)

    @property
    def last_user_text(self) -> str:
        """Text of the final user turn (what the simulated model is asked), or ''."""
        for m in reversed(self.messages):
            if m.role == "user":
                return m.text
        return ""


def text_of(blocks: tuple[dict[str, Any], ...] | list[dict[str, Any]]) -> str:
    """Plain text of a list of content blocks (tool_result content included)."""
    parts: list[str] = []
    for b in blocks:
        t = b.get("type")
        if t == "text":
            parts.append(str(b.get("text", "")))
        elif t == "tool_result":
            c = b.get("content")
            if isinstance(c, str):
                parts.append(c)
            elif isinstance(c, list):
                parts.append(text_of([x for x in c if isinstance(x, dict)]))
    return "\n".join(p for p in parts if p)


def all_text(req: MessagesRequest) -> str:
    """Everything the model can 'see' as text: system prompt then every turn."""
    return "\n".join([req.system_text, *(m.text for m in req.messages)]).strip()


def parse_json_body(raw: bytes) -> dict[str, Any]:
    """Decode a JSON object body, or raise the API's 400 for malformed JSON."""
    if not raw.strip():
        raise InvalidRequest("Request body is empty; expected a JSON object.")
    try:
        body = json.loads(raw, parse_constant=_reject_constant)
    except (UnicodeDecodeError, json.JSONDecodeError, ValueError) as exc:
        raise InvalidRequest(f"There was an issue with your request body: invalid JSON: {exc}") from None
    except RecursionError:
        raise InvalidRequest("There was an issue with your request body: JSON nested too deeply.") from None
    if not isinstance(body, dict):
        raise InvalidRequest(f"Request body must be a JSON object, got {type(body).__name__}.")
    try:
        _check_strings(body, "", 0)
    except RecursionError:
        raise InvalidRequest("There was an issue with your request body: JSON nested too deeply.") from None
    return body


def _reject_constant(name: str) -> Any:
    # NaN and Infinity are not JSON; Python's parser accepts them unless told otherwise.
    raise ValueError(f"{name} is not valid JSON")


_MAX_DEPTH = 64


def _check_strings(value: Any, path: str, depth: int) -> None:
    """Reject what JSON can encode but text cannot hold (lone surrogates), and absurd nesting."""
    if depth > _MAX_DEPTH:
        raise InvalidRequest(f"{path or 'body'}: JSON nested more than {_MAX_DEPTH} levels deep")
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidRequest(f"{path or 'body'}: string is not valid UTF-8 (lone surrogate)") from None
    elif isinstance(value, dict):
        for k, v in value.items():
            _check_strings(k, path, depth + 1)
            _check_strings(v, f"{path}.{k}" if path else str(k), depth + 1)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_strings(v, f"{path}.{i}", depth + 1)


def _type_name(v: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
        type(v), "integer" if isinstance(v, int) else "number" if isinstance(v, float) else type(v).__name__
    )


def _require(body: Mapping[str, Any], key: str, where: str = "") -> Any:
    if key not in body:
        raise InvalidRequest(f"{where}{key}: Field required")
    return body[key]


def _check_type(value: Any, expected: type | tuple[type, ...], path: str, name: str) -> None:
    ok = isinstance(value, expected) and not (isinstance(value, bool) and bool not in _as_tuple(expected))
    if not ok:
        raise InvalidRequest(f"{path}: Input should be a valid {name}, got {_type_name(value)}")


def _as_tuple(t: type | tuple[type, ...]) -> tuple[type, ...]:
    return t if isinstance(t, tuple) else (t,)


def _cache_control(value: Any, path: str) -> dict[str, Any] | None:
    if value is None:
        return None
    _check_type(value, dict, path, "object")
    _no_extra(value, frozenset({"type", "ttl"}), path)
    if value.get("type") != "ephemeral":
        raise InvalidRequest(f"{path}.type: Input should be 'ephemeral'")
    ttl = value.get("ttl", "5m")
    if ttl not in ("5m", "1h"):
        raise InvalidRequest(f"{path}.ttl: Input should be '5m' or '1h'")
    return {"type": "ephemeral", "ttl": ttl}


def _block(raw: Any, path: str, role: str) -> dict[str, Any]:
    _check_type(raw, dict, path, "object")
    btype = _require(raw, "type", f"{path}.")
    # A list or object as the tag is not hashable: compare only strings with the known tags.
    if not isinstance(btype, str) or btype not in _BLOCK_TYPES:
        raise InvalidRequest(
            f"{path}.type: Input tag '{btype}' found using 'type' does not match any of the expected tags: "
            + ", ".join(f"'{t}'" for t in sorted(_BLOCK_TYPES))
        )
    _no_extra(raw, _BLOCK_FIELDS[btype], path)
    block = dict(raw)
    if "cache_control" in raw:
        block["cache_control"] = _cache_control(raw["cache_control"], f"{path}.cache_control")
    if btype == "text":
        _check_type(_require(raw, "text", f"{path}."), str, f"{path}.text", "string")
        if raw["text"] == "" :
            raise InvalidRequest(f"{path}.text: text content blocks must be non-empty")
    elif btype == "tool_use":
        if role != "assistant":
            raise InvalidRequest(f"{path}: tool_use blocks can only appear in assistant messages")
        _check_type(_require(raw, "id", f"{path}."), str, f"{path}.id", "string")
        _check_type(_require(raw, "name", f"{path}."), str, f"{path}.name", "string")
        _check_type(_require(raw, "input", f"{path}."), dict, f"{path}.input", "object")
    elif btype == "tool_result":
        if role != "user":
            raise InvalidRequest(f"{path}: tool_result blocks can only appear in user messages")
        _check_type(_require(raw, "tool_use_id", f"{path}."), str, f"{path}.tool_use_id", "string")
        content = raw.get("content", "")
        if isinstance(content, list):
            block["content"] = [_block(c, f"{path}.content.{i}", "user") for i, c in enumerate(content)]
        elif not isinstance(content, str):
            raise InvalidRequest(f"{path}.content: Input should be a valid string or list of content blocks")
    elif btype in ("image", "document"):
        _check_type(_require(raw, "source", f"{path}."), dict, f"{path}.source", "object")
    return block


def _content(raw: Any, path: str, role: str) -> tuple[dict[str, Any], ...]:
    if isinstance(raw, str):
        if raw == "" and role == "user":
            raise InvalidRequest(f"{path}: user messages must have non-empty content")
        return ({"type": "text", "text": raw},) if raw else ()
    if not isinstance(raw, list):
        raise InvalidRequest(f"{path}: Input should be a valid string or list of content blocks, got {_type_name(raw)}")
    if not raw and role == "user":
        raise InvalidRequest(f"{path}: user messages must have non-empty content")
    return tuple(_block(b, f"{path}.{i}", role) for i, b in enumerate(raw))


def _messages(raw: Any) -> tuple[Message, ...]:
    _check_type(raw, list, "messages", "list")
    if not raw:
        raise InvalidRequest("messages: at least one message is required")
    merged: list[Message] = []
    for i, m in enumerate(raw):
        path = f"messages.{i}"
        _check_type(m, dict, path, "object")
        _no_extra(m, frozenset({"role", "content"}), path)
        role = _require(m, "role", f"{path}.")
        if role not in _ROLES:
            raise InvalidRequest(f"{path}.role: Input should be 'user' or 'assistant'")
        content = _content(_require(m, "content", f"{path}."), f"{path}.content", role)
        if merged and merged[-1].role == role:
            # The API merges consecutive turns of the same role into one turn.
            merged[-1] = Message(role, merged[-1].content + content)
        else:
            merged.append(Message(role, content))
    _check_tool_pairs(merged)
    return tuple(merged)


def _check_tool_pairs(messages: list[Message]) -> None:
    for i, m in enumerate(messages):
        if m.role != "user":
            continue
        prev = messages[i - 1] if i > 0 and messages[i - 1].role == "assistant" else None
        offered = {b["id"] for b in prev.content if b.get("type") == "tool_use"} if prev else set()
        for j, b in enumerate(m.content):
            if b.get("type") == "tool_result" and b["tool_use_id"] not in offered:
                raise InvalidRequest(
                    f"messages.{i}.content.{j}: unexpected `tool_use_id` found in `tool_result` blocks: "
                    f"{b['tool_use_id']}. Each `tool_result` block must have a corresponding `tool_use` "
                    "block in the previous message."
                )
        if prev and offered:
            answered = {b["tool_use_id"] for b in m.content if b.get("type") == "tool_result"}
            missing = offered - answered
            if missing:
                raise InvalidRequest(
                    f"messages.{i}: `tool_use` ids were found without `tool_result` blocks immediately after: "
                    f"{', '.join(sorted(missing))}. Each `tool_use` block must have a corresponding "
                    "`tool_result` block in the next message."
                )


def _system(raw: Any) -> tuple[dict[str, Any], ...]:
    if raw is None:
        return ()
    if isinstance(raw, str):
        return ({"type": "text", "text": raw},) if raw else ()
    if not isinstance(raw, list):
        raise InvalidRequest(f"system: Input should be a valid string or list of text blocks, got {_type_name(raw)}")
    blocks = []
    for i, b in enumerate(raw):
        blk = _block(b, f"system.{i}", "system")
        if blk["type"] != "text":
            raise InvalidRequest(f"system.{i}.type: Input should be 'text'")
        blocks.append(blk)
    return tuple(blocks)


def _tools(raw: Any) -> tuple[dict[str, Any], ...]:
    if raw is None:
        return ()
    _check_type(raw, list, "tools", "list")
    tools = []
    names: set[str] = set()
    for i, t in enumerate(raw):
        path = f"tools.{i}"
        _check_type(t, dict, path, "object")
        ttype = t.get("type", "custom")
        if not isinstance(ttype, str) or not (ttype == "custom" or _SERVER_TOOL_TYPE.fullmatch(ttype)):
            raise InvalidRequest(f"{path}.type: Input should be 'custom' or a versioned server tool type "
                                 "(such as 'web_search_20250305')")
        if ttype == "custom":
            # Server tools have their own fields; custom ones are checked strictly.
            _no_extra(t, _CUSTOM_TOOL_FIELDS, path)
        name = _require(t, "name", f"{path}.")
        _check_type(name, str, f"{path}.name", "string")
        if not name or len(name) > 128 or not all(c.isalnum() or c in "_-" for c in name):
            raise InvalidRequest(f"{path}.name: String should match pattern '^[a-zA-Z0-9_-]{{1,128}}$'")
        if name in names:
            raise InvalidRequest(f"tools: Tool names must be unique. Duplicate name: {name}")
        names.add(name)
        schema = _require(t, "input_schema", f"{path}.")
        _check_type(schema, dict, f"{path}.input_schema", "object")
        tool = dict(t)
        if "cache_control" in t:
            tool["cache_control"] = _cache_control(t["cache_control"], f"{path}.cache_control")
        tools.append(tool)
    return tuple(tools)


def _tool_choice(raw: Any, tools: tuple[dict[str, Any], ...]) -> dict[str, Any] | None:
    if raw is None:
        return None
    _check_type(raw, dict, "tool_choice", "object")
    kind = raw.get("type")
    if not isinstance(kind, str) or kind not in _TOOL_CHOICE_FIELDS:
        raise InvalidRequest("tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'")
    _no_extra(raw, _TOOL_CHOICE_FIELDS[kind], "tool_choice")
    if "disable_parallel_tool_use" in raw:
        _check_type(raw["disable_parallel_tool_use"], bool, "tool_choice.disable_parallel_tool_use", "boolean")
    if kind == "tool":
        name = _require(raw, "name", "tool_choice.")
        _check_type(name, str, "tool_choice.name", "string")
        if name not in {t["name"] for t in tools}:
            raise InvalidRequest(f"tool_choice: Tool '{name}' not found in provided tools")
    if kind in ("any", "tool") and not tools:
        raise InvalidRequest("tool_choice: tool_choice requires tools to be provided")
    return dict(raw)


def parse_messages_request(body: Mapping[str, Any], *, for_count: bool = False) -> MessagesRequest:
    """Validate a request body (``for_count``: a count_tokens body, which takes no ``max_tokens``,
    ``stream``, sampling or output controls). Raises :class:`InvalidRequest` naming the field."""
    _no_extra(body, _COUNT_FIELDS if for_count else _CREATE_FIELDS, "")
    model = _require(body, "model")
    _check_type(model, str, "model", "string")
    messages = _messages(_require(body, "messages"))
    max_tokens = None
    if not for_count:
        max_tokens = _require(body, "max_tokens")
        _check_type(max_tokens, int, "max_tokens", "integer")
        if max_tokens < 1:
            raise InvalidRequest("max_tokens: Input should be greater than or equal to 1")
    stops = body.get("stop_sequences") or []
    _check_type(stops, list, "stop_sequences", "list")
    for i, s in enumerate(stops):
        _check_type(s, str, f"stop_sequences.{i}", "string")
        if not s.strip():
            raise InvalidRequest(f"stop_sequences.{i}: each stop sequence must contain non-whitespace")
    stream = body.get("stream", False)
    _check_type(stream, bool, "stream", "boolean")
    temperature = body.get("temperature")
    if temperature is not None:
        _check_type(temperature, (int, float), "temperature", "number")
        if not 0.0 <= float(temperature) <= 1.0:
            raise InvalidRequest("temperature: Input should be less than or equal to 1 and greater than or equal to 0")
    metadata = body.get("metadata")
    if metadata is not None:
        _check_type(metadata, dict, "metadata", "object")
        _no_extra(metadata, frozenset({"user_id"}), "metadata")
        if metadata.get("user_id") is not None:
            _check_type(metadata["user_id"], str, "metadata.user_id", "string")
    _enum(body.get("service_tier"), _SERVICE_TIERS, "service_tier")
    _enum(body.get("speed"), _SPEEDS, "speed")
    if body.get("top_k") is not None:
        _check_type(body["top_k"], int, "top_k", "integer")
        if body["top_k"] < 0:
            raise InvalidRequest("top_k: Input should be greater than or equal to 0")
    if body.get("top_p") is not None:
        _check_type(body["top_p"], (int, float), "top_p", "number")
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
        cache_control=_cache_control(body.get("cache_control"), "cache_control"),
        top_p=float(body["top_p"]) if body.get("top_p") is not None else None,
        top_k=body.get("top_k"),
        thinking=thinking,
        output_config=output_config,
        raw=body,
    )


def _enum(value: Any, allowed: tuple[str, ...], path: str) -> None:
    if value is not None and (not isinstance(value, str) or value not in allowed):
        raise InvalidRequest(f"{path}: Input should be " + " or ".join(f"'{a}'" for a in allowed))


def _thinking(raw: Any) -> dict[str, Any] | None:
    if raw is None:
        return None
    _check_type(raw, dict, "thinking", "object")
    kind = raw.get("type")
    if not isinstance(kind, str) or kind not in _THINKING_FIELDS:
        raise InvalidRequest("thinking.type: Input should be 'enabled', 'disabled', 'adaptive' or 'between_tools'")
    _no_extra(raw, _THINKING_FIELDS[kind], "thinking")
    if kind == "enabled":
        _check_type(_require(raw, "budget_tokens", "thinking."), int, "thinking.budget_tokens", "integer")
    if raw.get("display") is not None:
        _enum(raw["display"], ("summarized", "omitted"), "thinking.display")
    return dict(raw)


def _output_config(raw: Any) -> dict[str, Any] | None:
    """``output_config``: ``effort`` and the structured-outputs ``format`` (a JSON schema)."""
    if raw is None:
        return None
    _check_type(raw, dict, "output_config", "object")
    _no_extra(raw, frozenset({"effort", "format"}), "output_config")
    _enum(raw.get("effort"), _EFFORTS, "output_config.effort")
    fmt = raw.get("format")
    if fmt is not None:
        _check_type(fmt, dict, "output_config.format", "object")
        _no_extra(fmt, frozenset({"type", "schema"}), "output_config.format")
        if fmt.get("type") != "json_schema":
            raise InvalidRequest("output_config.format.type: Input should be 'json_schema'")
        schema = _require(fmt, "schema", "output_config.format.")
        _check_type(schema, dict, "output_config.format.schema", "object")
    return dict(raw)
