"""The one client type of the course library: the official SDK's clients, nothing else.

Every function of the lesson packages that talks to the API takes an ``anthropic.Anthropic``
(sync functions) or an ``anthropic.AsyncAnthropic`` (``async def`` functions) as its first
argument, named ``client``. A simulator is reached through such a client (``MockServer.client()``,
``course_utils.client()``), never passed in place of one, so the same code runs against the real
API unchanged.
"""

from __future__ import annotations

from typing import Union

from anthropic import Anthropic, AsyncAnthropic

__all__ = ["SyncClient", "AsyncClient", "AnyClient"]

SyncClient = Anthropic
"""The client type of synchronous library functions."""

AsyncClient = AsyncAnthropic
"""The client type of ``async def`` library functions."""

AnyClient = Union[Anthropic, AsyncAnthropic]
"""For the few helpers that accept either (and say so)."""
