"""Reading a Messages API reply by block type, never by position.

The current models can start a reply with a ``thinking`` block, and can end it with
``stop_reason: "refusal"`` or ``"pause_turn"`` (https://platform.claude.com/docs/en/models/haiku-5-5/whats-new-haiku-5-5:
"select content blocks by type, not position"; https://platform.claude.com/docs/build-with-claude/handling-stop-reasons).
Code that reads the first block's text by position breaks on such replies; :func:`text_of` does not.
"""

from __future__ import annotations

from typing import Any, Iterable

__all__ = ["text_of", "blocks_of"]


def _get(block: Any, key: str) -> Any:
    # SDK objects expose attributes; raw JSON (dicts, batch results) exposes keys.
    return block.get(key) if isinstance(block, dict) else getattr(block, key, None)


def blocks_of(message: Any, block_type: str) -> list[Any]:
    """The blocks of ``message`` (an SDK ``Message``, a dict, or a list of blocks) whose ``type`` is ``block_type``."""
    content: Iterable[Any] = message if isinstance(message, list) else (_get(message, "content") or [])
    return [b for b in content if _get(b, "type") == block_type]


def text_of(message: Any, sep: str = "") -> str:
    """The text of every ``text`` block of ``message``, joined with ``sep``; ``""`` if it has none.

    Accepts an SDK ``Message``, the same as a dict (``message.model_dump()``, a batch result's
    ``message``), or a bare list of content blocks. Thinking, tool_use and other blocks are skipped.
    """
    return sep.join(str(_get(b, "text") or "") for b in blocks_of(message, "text"))
