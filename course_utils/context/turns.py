"""Turns: the unit a context strategy keeps or drops, and the rules a message list must obey.

A *turn* starts with a user message that says something (not one that only carries
``tool_result`` blocks) and runs up to the next such message: the assistant's reply, any
``tool_use`` it made and the user message with the matching ``tool_result``. Dropping or folding
whole turns is what keeps a trimmed history valid for the API: it still starts with a user turn,
roles still alternate, and a ``tool_use`` is never separated from its ``tool_result``.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

__all__ = ["Message", "group_turns", "is_tool_result_only", "validity_problems", "transcript"]

Message = Mapping[str, Any]


def _blocks(message: Message) -> list[Mapping[str, Any]]:
    content = message.get("content", "")
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return list(content)


def is_tool_result_only(message: Message) -> bool:
    """A user message that only returns tool results: it continues a turn, it does not start one."""
    blocks = _blocks(message)
    return message.get("role") == "user" and bool(blocks) and all(b.get("type") == "tool_result" for b in blocks)


def group_turns(messages: Sequence[Message]) -> list[list[Message]]:
    """Split a history into whole turns (oldest first); messages before the first user turn go with it."""
    turns: list[list[Message]] = []
    for message in messages:
        starts_turn = message.get("role") == "user" and not is_tool_result_only(message)
        if starts_turn or not turns:
            turns.append([message])
        else:
            turns[-1].append(message)
    return turns


def validity_problems(messages: Sequence[Message]) -> list[str]:
    """What makes ``messages`` unfit to send (empty list: valid), in the API's terms."""
    problems: list[str] = []
    if not messages:
        return ["there are no messages"]
    if messages[0].get("role") != "user" or is_tool_result_only(messages[0]):
        problems.append("the first message is not a user turn")
    for i in range(1, len(messages)):
        if messages[i].get("role") == messages[i - 1].get("role"):
            problems.append(f"messages {i - 1} and {i} have the same role")
    for i, message in enumerate(messages):
        if message.get("role") != "user":
            continue
        prev = messages[i - 1] if i > 0 and messages[i - 1].get("role") == "assistant" else None
        offered = {b.get("id") for b in _blocks(prev) if b.get("type") == "tool_use"} if prev else set()
        answered = {b.get("tool_use_id") for b in _blocks(message) if b.get("type") == "tool_result"}
        if answered - offered:
            problems.append(f"message {i} has a tool_result whose tool_use is not in the message before it")
        if offered - answered:
            problems.append(f"message {i - 1} has a tool_use whose tool_result is not in the next message")
    last = messages[-1]
    if last.get("role") == "assistant" and any(b.get("type") == "tool_use" for b in _blocks(last)):
        problems.append("the last message is a tool_use with no tool_result")
    return problems


def _text(message: Message) -> str:
    parts = []
    for block in _blocks(message):
        kind = block.get("type")
        if kind == "text":
            parts.append(str(block.get("text", "")))
        elif kind == "tool_use":
            parts.append(f"[called tool {block.get('name')} with {block.get('input')}]")
        elif kind == "tool_result":
            inner = block.get("content", "")
            parts.append(f"[tool result: {inner if isinstance(inner, str) else _text({'content': inner})}]")
    return " ".join(p for p in parts if p)


def transcript(messages: Sequence[Message]) -> str:
    """Messages as plain "User: ..." / "Assistant: ..." lines, the input a summarizer reads."""
    return "\n".join(f"{str(m.get('role', '')).title()}: {_text(m)}" for m in messages)
