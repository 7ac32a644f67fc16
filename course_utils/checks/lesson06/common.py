"""What every lesson 06 check shares: the cheap and the mid model, awaiting the answer's coroutine."""

from __future__ import annotations

import inspect
from typing import Any

from ..framework import CaseFailed

CHEAP, MID = "claude-haiku-5-5", "claude-sonnet-5-5"


async def awaited(value: Any, what: str) -> Any:
    """Await what the answer returned, or fail the case if it is no coroutine (an answer missing `async`)."""
    if not inspect.isawaitable(value):
        raise CaseFailed(
            f"{what} returned {type(value).__name__}, not a coroutine",
            hint="Define it with `async def` and await the client calls inside.",
        )
    return await value
