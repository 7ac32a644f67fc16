"""What every lesson 05 check shares: the model, the report request body, awaiting the answer's coroutine."""

from __future__ import annotations

import inspect
from typing import Any

from ..framework import CaseFailed

MODEL = "claude-haiku-5-5"


def report_body(n: int, words: int = 12) -> dict[str, Any]:
    """The Messages body of "generate report ``n``" (short, so cases stay light)."""
    return {
        "model": MODEL,
        "max_tokens": 40,
        "messages": [{"role": "user", "content": f"Write a {words}-word status summary for account #{n}."}],
    }


async def awaited(value: Any, what: str) -> Any:
    """Await what the answer returned, or fail the case if it is no coroutine (an answer missing `async`)."""
    if not inspect.isawaitable(value):
        raise CaseFailed(
            f"{what} returned {type(value).__name__}, not a coroutine",
            hint="Define it with `async def` and await the calls inside.",
        )
    return await value
