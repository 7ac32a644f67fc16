"""The ceiling: a bare Starlette app that returns a fixed Message (and a fixed stream) with no work.

Served by the same uvicorn, called by the same SDK, it measures what SDK + HTTP cost on this
machine, so the simulator's numbers can be read as a fraction of what is possible.
"""

from __future__ import annotations

import json
import os

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

# The benchmark sets BARE_TOKENS to the simulator's reply length, so both send the same amount.
_N = int(os.environ.get("BARE_TOKENS", "96"))
WORDS = (["Rate", " limits", " protect", " the", " service", " from", " bursts", "."] * (_N // 8 + 1))[:_N]
TEXT = "".join(WORDS)
USAGE = {
    "input_tokens": 20,
    "output_tokens": len(WORDS),
    "cache_creation_input_tokens": 0,
    "cache_read_input_tokens": 0,
}
MESSAGE = {
    "id": "msg_01bench",
    "type": "message",
    "role": "assistant",
    "model": "claude-haiku-5-5",
    "content": [{"type": "text", "text": TEXT}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": USAGE,
}


def _ev(data: dict) -> bytes:
    return f"event: {data['type']}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def _stream_bytes() -> bytes:
    events = [
        _ev(
            {
                "type": "message_start",
                "message": {**MESSAGE, "content": [], "stop_reason": None, "usage": {**USAGE, "output_tokens": 1}},
            }
        ),
        _ev({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        _ev({"type": "ping"}),
        *(_ev({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": w}}) for w in WORDS),
        _ev({"type": "content_block_stop", "index": 0}),
        _ev(
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": len(WORDS)},
            }
        ),
        _ev({"type": "message_stop"}),
    ]
    return b"".join(events)


STREAM = _stream_bytes()


async def messages(request: Request) -> Response:
    body = await request.json()
    if not body.get("stream"):
        return JSONResponse(MESSAGE, headers={"request-id": "req_bench"})

    async def gen():
        # The whole stream in one write: the cheapest a server can possibly deliver it.
        yield STREAM

    return StreamingResponse(gen(), media_type="text/event-stream", headers={"request-id": "req_bench"})


app = Starlette(routes=[Route("/v1/messages", messages, methods=["POST"])])
