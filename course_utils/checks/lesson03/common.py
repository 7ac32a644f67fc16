"""What lesson 03's checks share: the tickets they classify, and how an answer is awaited (a time limit
that names the answer, and an empty input whose error is a failure of the case)."""

from __future__ import annotations

import asyncio
from typing import Any

from ...concurrency.workload import load_tickets
from ..framework import CaseFailed

__all__ = ["sample_tickets", "await_answer", "on_empty"]


def sample_tickets(n: int) -> list[str]:
    return list(load_tickets(n)["text"])


async def await_answer(fn: Any, *args: Any, limit: float, what: str) -> Any:
    result = fn(*args)
    if not asyncio.iscoroutine(result) and not isinstance(result, asyncio.Future):
        raise CaseFailed(
            f"{what} returned {type(result).__name__}, not a coroutine",
            hint="Define the function with `async def` so callers can `await` it.",
        )
    scope = asyncio.timeout(limit)
    try:
        async with scope:
            return await result
    except TimeoutError:
        if not scope.expired():  # the answer's own TimeoutError: the case reports it as the answer's
            raise
        raise CaseFailed(f"{what} did not finish within {limit:g} s", hint=None) from None


async def on_empty(fn: Any, *args: Any, what: str) -> Any:
    """Call the answer with an empty input; an exception is a failure of this case, named as such."""
    try:
        return await await_answer(fn, *args, limit=30, what=f"{what} (empty input)")
    except (CaseFailed, NotImplementedError):
        raise
    except Exception as exc:  # noqa: BLE001 - the answer's own error on an empty input
        raise CaseFailed(
            f"{what} of an empty list raised {type(exc).__name__}: {exc}",
            expected="[]",
            got=f"{type(exc).__name__} raised",
            hint="An empty input is a normal input: return [] before doing anything that needs an item "
            "(asyncio.wait on an empty set raises ValueError; bodies[0] raises IndexError).",
        ) from None
