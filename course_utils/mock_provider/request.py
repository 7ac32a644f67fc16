"""Parsing and validating a Messages API request body into a :class:`MessagesRequest`.

Validation follows the API: precise ``invalid_request_error`` messages that name the field
(``messages.1.content.0.text: Field required``), unknown top-level fields accepted, consecutive
turns of the same role merged, and a ``tool_result`` accepted only when the previous assistant
turn holds its ``tool_use``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping

from .errors import InvalidRequest

__all__ = ["Message", "MessagesRequest", "parse_json_body", "parse_messages_request", "text_of", "all_text"]

_BLOCK_TYPES = {"text", "image", "document", "tool_use", "tool_result", "thinking", "redacted_thinking"}
_ROLES = ("user", "assistant")


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
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

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
    if value.get("type") != "ephemeral":
        raise InvalidRequest(f"{path}.type: Input should be 'ephemeral'")
    ttl = value.get("ttl", "5m")
    if ttl not in ("5m", "1h"):
        raise InvalidRequest(f"{path}.ttl: Input should be '5m' or '1h'")
    return {"type": "ephemeral", "ttl": ttl}


def _block(raw: Any, path: str, role: str) -> dict[str, Any]:
    _check_type(raw, dict, path, "object")
    btype = _require(raw, "type", f"{path}.")
    if btype not in _BLOCK_TYPES:
        raise InvalidRequest(
            f"{path}.type: Input tag '{btype}' found using 'type' does not match any of the expected tags: "
            + ", ".join(f"'{t}'" for t in sorted(_BLOCK_TYPES))
        )
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
    if kind not in ("auto", "any", "tool", "none"):
        raise InvalidRequest("tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'")
    if kind == "tool":
        name = _require(raw, "name", "tool_choice.")
        _check_type(name, str, "tool_choice.name", "string")
        if name not in {t["name"] for t in tools}:
            raise InvalidRequest(f"tool_choice: Tool '{name}' not found in provided tools")
    if kind in ("any", "tool") and not tools:
        raise InvalidRequest("tool_choice: tool_choice requires tools to be provided")
    return dict(raw)


def parse_messages_request(body: Mapping[str, Any], *, for_count: bool = False) -> MessagesRequest:
    """Validate a request body. ``for_count`` relaxes what count_tokens does not need (max_tokens)."""
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
    if body.get("top_k") is not None:
        _check_type(body["top_k"], int, "top_k", "integer")
        if body["top_k"] < 0:
            raise InvalidRequest("top_k: Input should be greater than or equal to 0")
    if body.get("top_p") is not None:
        _check_type(body["top_p"], (int, float), "top_p", "number")
        if not 0.0 <= float(body["top_p"]) <= 1.0:
            raise InvalidRequest("top_p: Input should be less than or equal to 1 and greater than or equal to 0")
    thinking = body.get("thinking")
    if thinking is not None:
        _check_type(thinking, dict, "thinking", "object")
        if thinking.get("type") not in ("enabled", "disabled", "adaptive"):
            raise InvalidRequest("thinking.type: Input should be 'enabled', 'disabled' or 'adaptive'")
        if "budget_tokens" in thinking:
            _check_type(thinking["budget_tokens"], int, "thinking.budget_tokens", "integer")
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
        raw=body,
    )
