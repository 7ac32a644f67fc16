"""What context management adds to a reply: the ``compaction`` block, ``context_management`` and
``usage.iterations``, in a whole message and in a stream (docs/api-notes.md §14.1).

A reply whose request compacted opens with the ``compaction`` block; streamed, that block is one
``content_block_start`` (``content: null``), one ``compaction_delta`` carrying the whole summary,
and a ``content_block_stop``, and every later block's index moves up by one. The final
``message_delta`` carries ``context_management`` and the usage with its iterations.
"""

from __future__ import annotations

import json
from typing import Any, AsyncIterator

from .context_edits import ContextOutcome
from .exchange import Exchange
from .stream import sse_event

__all__ = ["iterations", "decorate_message", "rewrite_stream", "pause_reply", "bill_compaction"]


def iterations(ex: Exchange, outcome: ContextOutcome, output_tokens: int) -> list[dict[str, Any]] | None:
    """``usage.iterations`` when compaction ran: the summarizing step, then the reply."""
    if outcome.compaction is None:
        return None
    u = ex.usage
    return [
        {
            "type": "compaction",
            "input_tokens": outcome.compaction["input_tokens"],
            "output_tokens": outcome.compaction["output_tokens"],
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        },
        {
            "type": "message",
            "input_tokens": u["input_tokens"],
            "output_tokens": output_tokens,
            "cache_creation_input_tokens": u["cache_creation_input_tokens"],
            "cache_read_input_tokens": u["cache_read_input_tokens"],
        },
    ]


def _block(outcome: ContextOutcome) -> dict[str, Any]:
    assert outcome.compaction is not None
    return {"type": "compaction", "content": outcome.compaction["content"]}


def pause_reply(ex: Exchange, outcome: ContextOutcome) -> None:
    """``pause_after_compaction``: the reply is the compaction block alone (no sampling after it)."""
    gen = ex.generated
    if outcome.compaction is None or not outcome.pause or gen is None:
        return
    gen.content, gen.block_tokens, gen.output_tokens = [], [], 0
    gen.stop_reason, gen.stop_sequence, gen.stop_details = "compaction", None, None


def bill_compaction(ex: Exchange, outcome: ContextOutcome, *, output_only: bool = False) -> None:
    """The summarizing step is billed with the reply: its tokens join the ledger row (input once
    the usage is recorded; output on top of the reply's, which a stream meters as it goes, so a
    stream adds it at settlement with ``output_only``)."""
    if outcome.compaction is None:
        return
    if not output_only:
        ex.row.input_tokens += outcome.compaction["input_tokens"]
        ex.row.extra["compaction_input_tokens"] = outcome.compaction["input_tokens"]
        ex.row.extra["compaction_output_tokens"] = outcome.compaction["output_tokens"]
        if ex.request is not None and ex.request.stream:
            return
    ex.row.output_tokens += outcome.compaction["output_tokens"]


def decorate_message(ex: Exchange, outcome: ContextOutcome, message: dict[str, Any]) -> dict[str, Any]:
    """A whole ``message`` with the compaction block, ``context_management`` and iterations."""
    if outcome.compaction is not None:
        message["content"] = [_block(outcome), *message["content"]]
        its = iterations(ex, outcome, message["usage"]["output_tokens"])
        message["usage"]["iterations"] = its
    if outcome.configured:
        message["context_management"] = {"applied_edits": list(outcome.applied_edits)}
    return message


async def rewrite_stream(ex: Exchange, outcome: ContextOutcome, events: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The reply's SSE stream with the compaction block first and ``context_management`` at the end."""
    shift = 1 if outcome.compaction is not None else 0
    async for chunk in events:
        out: list[bytes] = []
        for frame in chunk.split(b"\n\n"):
            if not frame.strip():
                continue
            out.append(_rewrite(ex, outcome, frame, shift))
        yield b"".join(out)


def _rewrite(ex: Exchange, outcome: ContextOutcome, frame: bytes, shift: int) -> bytes:
    lines = frame.split(b"\n")
    data_line = next((ln for ln in lines if ln.startswith(b"data: ")), None)
    if data_line is None:
        return frame + b"\n\n"
    data = json.loads(data_line[6:])
    kind = data.get("type")
    if kind == "message_start" and outcome.compaction is not None:
        block = _block(outcome)
        return b"".join(
            [
                sse_event(data),
                sse_event({"type": "content_block_start", "index": 0, "content_block": {**block, "content": None}}),
                sse_event(
                    {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {"type": "compaction_delta", "content": block["content"]},
                    }
                ),
                sse_event({"type": "content_block_stop", "index": 0}),
            ]
        )
    if shift and "index" in data and kind in ("content_block_start", "content_block_delta", "content_block_stop"):
        data["index"] += shift
        return sse_event(data)
    if kind == "message_delta":
        its = iterations(ex, outcome, data["usage"]["output_tokens"])
        if its is not None:
            data["usage"]["iterations"] = its
        if outcome.configured:
            data["context_management"] = {"applied_edits": list(outcome.applied_edits)}
        return sse_event(data)
    return frame + b"\n\n"
