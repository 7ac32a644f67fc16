"""Validating what the model is given: turns and their content blocks, the system prompt, tools
and ``tool_choice``. Consecutive turns of the same role are merged, as the API does, and a
``tool_result`` is accepted only when the previous assistant turn holds its ``tool_use``."""

from __future__ import annotations

from typing import Any

from ..errors import InvalidRequest
from .fields import cache_control, check_type, no_extra, require, type_name
from .schema import _BLOCK_FIELDS, _BLOCK_TYPES, _CUSTOM_TOOL_FIELDS, _ROLES, _SERVER_TOOL_TYPE, _TOOL_CHOICE_FIELDS
from .types import Message

__all__ = ["messages", "system", "tools", "tool_choice"]


def _block(raw: Any, path: str, role: str) -> dict[str, Any]:
    check_type(raw, dict, path, "object")
    btype = require(raw, "type", f"{path}.")
    # A list or object as the tag is not hashable: compare only strings with the known tags.
    if not isinstance(btype, str) or btype not in _BLOCK_TYPES:
        raise InvalidRequest(
            f"{path}.type: Input tag '{btype}' found using 'type' does not match any of the expected tags: "
            + ", ".join(f"'{t}'" for t in sorted(_BLOCK_TYPES))
        )
    no_extra(raw, _BLOCK_FIELDS[btype], path)
    block = dict(raw)
    if "cache_control" in raw:
        block["cache_control"] = cache_control(raw["cache_control"], f"{path}.cache_control")
    if btype == "text":
        check_type(require(raw, "text", f"{path}."), str, f"{path}.text", "string")
        if raw["text"] == "":
            raise InvalidRequest(f"{path}.text: text content blocks must be non-empty")
    elif btype == "tool_use":
        if role != "assistant":
            raise InvalidRequest(f"{path}: tool_use blocks can only appear in assistant messages")
        check_type(require(raw, "id", f"{path}."), str, f"{path}.id", "string")
        check_type(require(raw, "name", f"{path}."), str, f"{path}.name", "string")
        check_type(require(raw, "input", f"{path}."), dict, f"{path}.input", "object")
    elif btype == "tool_result":
        if role != "user":
            raise InvalidRequest(f"{path}: tool_result blocks can only appear in user messages")
        check_type(require(raw, "tool_use_id", f"{path}."), str, f"{path}.tool_use_id", "string")
        content = raw.get("content", "")
        if isinstance(content, list):
            block["content"] = [_block(c, f"{path}.content.{i}", "user") for i, c in enumerate(content)]
        elif not isinstance(content, str):
            raise InvalidRequest(f"{path}.content: Input should be a valid string or list of content blocks")
    elif btype in ("image", "document"):
        check_type(require(raw, "source", f"{path}."), dict, f"{path}.source", "object")
    return block


def _content(raw: Any, path: str, role: str) -> tuple[dict[str, Any], ...]:
    if isinstance(raw, str):
        if raw == "" and role == "user":
            raise InvalidRequest(f"{path}: user messages must have non-empty content")
        return ({"type": "text", "text": raw},) if raw else ()
    if not isinstance(raw, list):
        raise InvalidRequest(f"{path}: Input should be a valid string or list of content blocks, got {type_name(raw)}")
    if not raw and role == "user":
        raise InvalidRequest(f"{path}: user messages must have non-empty content")
    return tuple(_block(b, f"{path}.{i}", role) for i, b in enumerate(raw))


def messages(raw: Any) -> tuple[Message, ...]:
    check_type(raw, list, "messages", "list")
    if not raw:
        raise InvalidRequest("messages: at least one message is required")
    merged: list[Message] = []
    for i, m in enumerate(raw):
        path = f"messages.{i}"
        check_type(m, dict, path, "object")
        no_extra(m, frozenset({"role", "content"}), path)
        role = require(m, "role", f"{path}.")
        if role not in _ROLES:
            raise InvalidRequest(f"{path}.role: Input should be 'user' or 'assistant'")
        content = _content(require(m, "content", f"{path}."), f"{path}.content", role)
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


def system(raw: Any) -> tuple[dict[str, Any], ...]:
    if raw is None:
        return ()
    if isinstance(raw, str):
        return ({"type": "text", "text": raw},) if raw else ()
    if not isinstance(raw, list):
        raise InvalidRequest(f"system: Input should be a valid string or list of text blocks, got {type_name(raw)}")
    blocks = []
    for i, b in enumerate(raw):
        blk = _block(b, f"system.{i}", "system")
        if blk["type"] != "text":
            raise InvalidRequest(f"system.{i}.type: Input should be 'text'")
        blocks.append(blk)
    return tuple(blocks)


def tools(raw: Any) -> tuple[dict[str, Any], ...]:
    if raw is None:
        return ()
    check_type(raw, list, "tools", "list")
    tools = []
    names: set[str] = set()
    for i, t in enumerate(raw):
        path = f"tools.{i}"
        check_type(t, dict, path, "object")
        ttype = t.get("type", "custom")
        if not isinstance(ttype, str) or not (ttype == "custom" or _SERVER_TOOL_TYPE.fullmatch(ttype)):
            raise InvalidRequest(
                f"{path}.type: Input should be 'custom' or a versioned server tool type (such as 'web_search_20250305')"
            )
        if ttype == "custom":
            # Server tools have their own fields; custom ones are checked strictly.
            no_extra(t, _CUSTOM_TOOL_FIELDS, path)
        name = require(t, "name", f"{path}.")
        check_type(name, str, f"{path}.name", "string")
        if not name or len(name) > 128 or not all(c.isalnum() or c in "_-" for c in name):
            raise InvalidRequest(f"{path}.name: String should match pattern '^[a-zA-Z0-9_-]{{1,128}}$'")
        if name in names:
            raise InvalidRequest(f"tools: Tool names must be unique. Duplicate name: {name}")
        names.add(name)
        schema = require(t, "input_schema", f"{path}.")
        check_type(schema, dict, f"{path}.input_schema", "object")
        tool = dict(t)
        if "cache_control" in t:
            tool["cache_control"] = cache_control(t["cache_control"], f"{path}.cache_control")
        tools.append(tool)
    return tuple(tools)


def tool_choice(raw: Any, tools: tuple[dict[str, Any], ...]) -> dict[str, Any] | None:
    if raw is None:
        return None
    check_type(raw, dict, "tool_choice", "object")
    kind = raw.get("type")
    if not isinstance(kind, str) or kind not in _TOOL_CHOICE_FIELDS:
        raise InvalidRequest("tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'")
    no_extra(raw, _TOOL_CHOICE_FIELDS[kind], "tool_choice")
    if "disable_parallel_tool_use" in raw:
        check_type(raw["disable_parallel_tool_use"], bool, "tool_choice.disable_parallel_tool_use", "boolean")
    if kind == "tool":
        name = require(raw, "name", "tool_choice.")
        check_type(name, str, "tool_choice.name", "string")
        if name not in {t["name"] for t in tools}:
            raise InvalidRequest(f"tool_choice: Tool '{name}' not found in provided tools")
    if kind in ("any", "tool") and not tools:
        raise InvalidRequest("tool_choice: tool_choice requires tools to be provided")
    return dict(raw)
