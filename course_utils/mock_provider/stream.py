"""The stream writer: a reply as Server-Sent Events, in the API's event order and pacing.

Framing follows the API (an ``event:`` line naming ``data.type``): ``message_start``, then per
content block ``content_block_start``, its deltas and ``content_block_stop`` (a ``ping`` after the
first start), then ``message_delta`` with the final usage and ``message_stop``. A mid-stream fault
either sends an ``event: error`` or drops the connection (:class:`DroppedConnection`).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, AsyncIterator, Callable

from ..clock import Clock
from .exchange import Exchange
from .generation import delta_payload, iter_stream_pieces, start_block
from .render import delta_usage_json, message_json
from .errors import SimulatorError

__all__ = ["sse_event", "delta_event", "DroppedConnection", "stream_reply"]


class DroppedConnection(SimulatorError):
    """Raised inside a response body to make the server drop the connection."""


def sse_event(data: dict[str, Any]) -> bytes:
    """Frame one event; the event name is the payload's ``type``."""
    return f"event: {data['type']}\ndata: {json.dumps(data, separators=(',', ':'), ensure_ascii=False)}\n\n".encode()


PING = sse_event({"type": "ping"})
MESSAGE_STOP = sse_event({"type": "message_stop"})


def delta_event(index: int, block_type: str, piece: Any) -> bytes:
    """A content_block_delta event, formatted directly (the hot path of every stream)."""
    if isinstance(piece, dict):  # thinking_delta / signature_delta (generation.delta_payload)
        return sse_event({"type": "content_block_delta", "index": index, "delta": delta_payload(block_type, piece)})
    if block_type == "text":
        body = f'{{"type":"content_block_delta","index":{index},"delta":{{"type":"text_delta","text":{json.dumps(piece, ensure_ascii=False)}}}}}'
    else:
        body = (
            f'{{"type":"content_block_delta","index":{index},'
            f'"delta":{{"type":"input_json_delta","partial_json":{json.dumps(piece, ensure_ascii=False)}}}}}'
        )
    return f"event: content_block_delta\ndata: {body}\n\n".encode()


def _empty(block: dict[str, Any]) -> dict[str, Any]:
    return start_block(block)


async def stream_reply(
    ex: Exchange, *, clock: Clock, settle: Callable[[Exchange, int], None], paced: bool = True
) -> AsyncIterator[bytes]:
    """The reply of ``ex`` as SSE bytes, paced by its latency plan (``paced=False``: all at once,
    for a reply the provider has already finished). Settles the exchange when the stream ends,
    billing only the output tokens actually sent if the client leaves or the connection drops."""
    gen, plan = ex.generated, ex.latency
    assert gen is not None and plan is not None
    fault = ex.fault
    emitted = 0
    status = 200
    pieces = list(iter_stream_pieces(gen))
    ttft, per_token = (plan.ttft, plan.per_token) if paced else (0.0, 0.0)
    # A mid-stream fault strikes after `after_tokens` deltas, or at the last one if the reply is shorter.
    fire_at = min(fault.after_tokens, len(pieces)) if fault is not None and fault.after_tokens is not None else None
    # Events due at the same moment go out in one write; a sleep (pacing) flushes them first,
    # so at realistic time scales every delta is its own chunk, as on the wire from the API.
    out: list[bytes] = []
    try:
        yield sse_event({"type": "message_start", "message": message_json(ex, final=False)})
        start = clock.monotonic()
        await clock.sleep(ttft)
        open_index = -1
        for position in range(len(pieces) + 1):
            if fire_at is not None and position == fire_at:
                if out:
                    yield b"".join(out)
                    out.clear()
                if fault.kind == "disconnect":
                    raise DroppedConnection(ex.request_id)
                status = fault.status or 529
                ex.row.error_type = fault.error_type
                yield sse_event({"type": "error", "error": {"type": fault.error_type, "message": fault.message}})
                return
            if position == len(pieces):
                break
            index, block, piece = pieces[position]
            if index != open_index:
                if open_index >= 0:
                    out.append(sse_event({"type": "content_block_stop", "index": open_index}))
                out.append(sse_event({"type": "content_block_start", "index": index, "content_block": _empty(block)}))
                if open_index < 0:
                    out.append(PING)
                open_index = index
            out.append(delta_event(index, block["type"], piece))
            emitted += 1
            # Pace against a schedule rather than sleeping per token: cheap at small time scales.
            ahead = start + ttft + per_token * emitted - clock.monotonic()
            if ahead > 0.002:
                yield b"".join(out)
                out.clear()
                await clock.sleep(ahead)
        out.append(PING if open_index < 0 else sse_event({"type": "content_block_stop", "index": open_index}))
        out.append(
            sse_event(
                {
                    "type": "message_delta",
                    "delta": {
                        "stop_reason": gen.stop_reason,
                        "stop_sequence": gen.stop_sequence,
                        "stop_details": gen.stop_details,
                    },
                    "usage": delta_usage_json(ex, gen.output_tokens),
                }
            )
        )
        out.append(MESSAGE_STOP)
        yield b"".join(out)
        emitted = gen.output_tokens
    except (asyncio.CancelledError, GeneratorExit, DroppedConnection):
        ex.row.disconnected = True
        raise
    finally:
        # Bill what was actually generated: a client that hangs up early stops the meter.
        ex.row.output_tokens = min(emitted, gen.output_tokens) if emitted else (1 if status == 200 else 0)
        if ex.row.disconnected or status != 200:
            ex.row.output_tokens = max(ex.row.output_tokens, 1)
        settle(ex, status)
