"""The ceiling: a bare Starlette app that returns a fixed Message (and a fixed stream) with no work.

Served by the same uvicorn, called by the same SDK, it measures what SDK + HTTP cost on this
machine, so the simulator's numbers can be read as a fraction of what is possible.
"""

from __future__ import annotations

import json

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

WORDS = ["Rate", " limits", " protect", " the", " service", " from", " bursts", "."] * 12
TEXT = "".join(WORDS)
USAGE = {"input_tokens": 20, "output_tokens": len(WORDS), "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
MESSAGE = {
    "id": "msg_01bench", "type": "message", "role": "assistant", "model": "claude-haiku-5-5",
    "content": [{"type": "text", "text": TEXT}], "stop_reason": "end_turn", "stop_sequence": None, "usage": USAGE,
}


def _ev(data: dict) -> bytes:
    return f"event: {data['type']}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


async def messages(request: Request) -> Response:
    body = await request.json()
    if not body.get("stream"):
        return JSONResponse(MESSAGE, headers={"request-id": "req_bench"})

    async def gen():
        yield _ev({"type": "message_start", "message": {**MESSAGE, "content": [], "stop_reason": None,
                                                           "usage": {**USAGE, "output_tokens": 1}}})
        yield _ev({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})
        yield _ev({"type": "ping"})
        for w in WORDS:
            yield _ev({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": w}})
        yield _ev({"type": "content_block_stop", "index": 0})
        yield _ev({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                   "usage": {"output_tokens": len(WORDS)}})
        yield _ev({"type": "message_stop"})

    return StreamingResponse(gen(), media_type="text/event-stream", headers={"request-id": "req_bench"})


app = Starlette(routes=[Route("/v1/messages", messages, methods=["POST"])])
