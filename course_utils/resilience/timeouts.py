"""A response-start timeout: give up on a call whose response has not *started*, never on a long answer.

A total timeout on a non-streamed call cannot tell a hung provider from a long answer: set it short and
it cuts (and retries, and pays again for) every answer that takes longer to generate; set it long and a
hung call holds its caller that long. Streaming separates the two: the response starts (HTTP headers,
then ``message_start``) within a second or two however long the answer, so a short timeout on *the
start* catches a hang, and once the stream is flowing it is lifted. (Lesson 08's answering stage uses
the same idea.) The Anthropic docs recommend streaming for long requests and say the SDKs refuse
non-streamed requests expected to take more than 10 minutes (docs/api-notes.md section 9).
"""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["stream_with_start_timeout"]


async def stream_with_start_timeout(client: Any, *, start_timeout_s: float, **body: Any) -> Any:
    """``client.messages.stream(**body)`` to its final Message, raising ``TimeoutError`` (retryable) if the
    response has not started within ``start_timeout_s`` seconds; after that, no time limit from here.

    (Pair it with a deadline at the retry layer, and the SDK's own ``timeout``, which bounds each read.)"""
    async with asyncio.timeout(start_timeout_s) as started:
        async with client.messages.stream(**body) as stream:
            started.reschedule(None)  # the response has started: a long answer is not a hang
            return await stream.get_final_message()
