"""From a skill's reply to what the API returns: content blocks, stop reason, usage and deltas.

This is where the API's output rules live, applied the same way to every skill:
``max_tokens`` cuts text at a token boundary (``stop_reason: "max_tokens"``), ``stop_sequences``
end the text before the sequence (``stop_reason: "stop_sequence"``), tool_use blocks get ids, and
output tokens are counted with the same tokenizer as input tokens.

A tool call that ``max_tokens`` cuts short stays in the reply as its last block, the incomplete
``tool_use`` (issue 13 item 10): its streamed ``input_json_delta`` pieces are the JSON that fit, and
its ``input`` is that prefix read leniently (the longest prefix that closes into valid JSON), so code
that checks ``stop_reason`` first sees ``max_tokens`` and code that doesn't sees a partial call.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field, replace
from typing import Any, Iterator

from ..tokens import count_text, encoding
from .ids import base58
from .skills.base import Reply, TextOut, ToolUseOut
from .skills.thinking import OMITTED_THINKING_TOKENS, ThinkingPlan, reply_scenario

__all__ = [
    "Generated",
    "finalize",
    "text_deltas",
    "json_deltas",
    "tool_use_id",
    "partial_json_object",
    "RESPONSE_SHAPES",
    "apply_shape",
    "delta_payload",
    "start_block",
]

# The API counts a few tokens of framing even for an empty answer.
_EMPTY_OUTPUT_TOKENS = 1


@dataclass
class Generated:
    """The model's output for one request, ready to serialise or stream."""

    content: list[dict[str, Any]]
    stop_reason: str
    stop_sequence: str | None
    output_tokens: int
    skill: str
    block_tokens: list[list[str]] = field(default_factory=list)
    """Per content block, the pieces to stream (text deltas or partial JSON)."""
    stop_details: dict[str, Any] | None = None
    """``{"type": "refusal", "category", "explanation"}`` on a refusal (both nullable, as documented), else None."""


def tool_use_id(seed: int, body_key: str, index: int) -> str:
    """A deterministic ``toolu_`` id, so a streamed and a non-streamed reply are identical."""
    digest = hashlib.sha256(f"{seed}:{body_key}:{index}".encode()).hexdigest()
    return "toolu_01" + base58(int(digest[:30], 16))[:22]


def text_deltas(text: str) -> list[str]:
    """Split text into token-sized pieces whose concatenation is exactly ``text``.

    Single tokens can hold part of a multi-byte character, so bytes are accumulated until they
    decode, as a real server has to.
    """
    enc = encoding()
    pieces: list[str] = []
    pending = b""
    for token in enc.encode(text, disallowed_special=()):
        pending += enc.decode_single_token_bytes(token)
        try:
            pieces.append(pending.decode("utf-8"))
            pending = b""
        except UnicodeDecodeError:
            continue
    if pending:
        pieces.append(pending.decode("utf-8", errors="replace"))
    return pieces


def json_deltas(payload: str, size: int = 12) -> list[str]:
    """Chunk a JSON string into ``input_json_delta`` pieces (the API streams partial JSON)."""
    return [payload[i : i + size] for i in range(0, len(payload), size)] or [""]


def _truncate(text: str, budget: int) -> tuple[str, list[str], bool]:
    """Cut ``text`` to at most ``budget`` tokens; returns (text, its token pieces, was_cut)."""
    pieces = text_deltas(text)
    if len(pieces) <= budget:
        return text, pieces, False
    cut = "".join(pieces[:budget])
    return cut, text_deltas(cut), True  # the cut text's own pieces: it may tokenize differently at its end


def finalize(
    reply: Reply,
    *,
    max_tokens: int,
    stop_sequences: tuple[str, ...] = (),
    seed: int = 0,
    body_key: str = "",
) -> Generated:
    """Apply the API's output rules to a skill reply.

    A reply that starts with thinking (``reply.thinking``, planned per model by the skills) gets its
    ``thinking`` block first, and its tokens count towards ``max_tokens`` as on the API. The reply
    scenario (:func:`.skills.thinking.reply_scenario`) may then end it with ``refusal`` or
    ``pause_turn``, drawn from the seed and the prompt.
    """
    thinking = getattr(reply, "thinking", None)
    if thinking is not None:
        if max_tokens <= thinking.tokens:
            # The thinking alone uses up max_tokens: the reply is the thinking block, cut.
            text = "".join(text_deltas(thinking.text)[:max_tokens])
            empty = Generated(
                content=[],
                stop_reason="max_tokens",
                stop_sequence=None,
                output_tokens=0,
                skill=reply.skill,
                block_tokens=[],
            )
            return _with_thinking(empty, ThinkingPlan(text, max(0, max_tokens)), seed=seed, body_key=body_key)
        gen = finalize(
            replace(reply, thinking=None),
            max_tokens=max_tokens - thinking.tokens,
            stop_sequences=stop_sequences,
            seed=seed,
            body_key=body_key,
        )
        return _with_thinking(gen, thinking, seed=seed, body_key=body_key)
    content: list[dict[str, Any]] = []
    streams: list[list[str]] = []
    budget = max_tokens
    stop_reason = reply.stop_reason
    stop_sequence: str | None = None
    used = 0
    for index, block in enumerate(reply.blocks):
        if budget <= 0:
            stop_reason = "max_tokens"
            break
        if isinstance(block, TextOut):
            text = block.text
            hit = _first_stop(text, stop_sequences)
            if hit is not None:
                text, stop_sequence = text[: hit[0]], hit[1]
            text, pieces, cut = _truncate(text, budget)
            if text:
                content.append({"type": "text", "text": text})
                streams.append(pieces)
            used += len(pieces)
            budget -= len(pieces)
            if cut:
                stop_reason, stop_sequence = "max_tokens", None
                break
            if stop_sequence is not None:
                stop_reason = "stop_sequence"
                break
        elif isinstance(block, ToolUseOut):
            payload = json.dumps(block.input, separators=(",", ":"))
            cost = count_text(block.name) + count_text(payload) + 3
            if cost > budget:
                # Cut mid-call: the incomplete tool_use is the last block, holding the JSON that fit.
                room = max(0, budget - count_text(block.name) - 3)
                partial = "".join(text_deltas(payload)[:room])
                content.append(
                    {
                        "type": "tool_use",
                        "id": tool_use_id(seed, body_key, index),
                        "name": block.name,
                        "input": partial_json_object(partial),
                    }
                )
                streams.append(json_deltas(partial))
                used += budget
                stop_reason = "max_tokens"
                break
            content.append(
                {"type": "tool_use", "id": tool_use_id(seed, body_key, index), "name": block.name, "input": block.input}
            )
            streams.append(json_deltas(payload))
            used += cost
            budget -= cost
    gen = Generated(
        content=content,
        stop_reason=stop_reason,
        stop_sequence=stop_sequence,
        output_tokens=max(used, _EMPTY_OUTPUT_TOKENS),
        skill=reply.skill,
        block_tokens=streams,
    )
    scenario = reply_scenario()
    if scenario["refusal"] or scenario["pause_turn"]:
        draw = random.Random(f"shape:{seed}:{body_key}").random()
        if draw < scenario["refusal"]:
            gen = apply_shape(gen, "refusal", seed=seed, body_key=body_key)
        elif draw < scenario["refusal"] + scenario["pause_turn"]:
            gen = apply_shape(gen, "pause_turn", seed=seed, body_key=body_key)
    return gen


def partial_json_object(prefix: str) -> dict[str, Any]:
    """The object a truncated JSON text ``prefix`` starts, read leniently: the longest prefix that becomes
    valid JSON once its open strings, arrays and objects are closed; ``{}`` if none does."""
    for end in range(len(prefix), 0, -1):
        closed = _close_json(prefix[:end])
        if closed is None:
            continue
        try:
            value = json.loads(closed)
        except ValueError:
            continue
        return value if isinstance(value, dict) else {}
    return {}


def _close_json(text: str) -> str | None:
    """``text`` with its open string and brackets closed, or None if it ends mid-token in a way that can't be."""
    stack: list[str] = []
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "{[":
            stack.append("}" if ch == "{" else "]")
        elif ch in "}]":
            if not stack:
                return None
            stack.pop()
    if escaped:
        return None
    tail = text.rstrip()
    if not in_string and tail.endswith((",", ":")):
        return None  # a dangling separator: the shorter prefix will do
    return text + ('"' if in_string else "") + "".join(reversed(stack))


RESPONSE_SHAPES = ("thinking", "refusal", "pause_turn")
"""Reply shapes of the current models that a request can ask for (``x-mock-shape`` header):

- ``thinking``: the reply starts with a ``thinking`` block whose text is empty, as at the 5.5 models'
  default ``display`` (https://platform.claude.com/docs/en/models/opus-5-5/whats-new-opus-5-5);
  streamed as ``content_block_start`` + ``signature_delta`` (+ ``thinking_delta`` when summarized).
- ``refusal``: the model stops early with ``stop_reason: "refusal"``; the text produced before the
  refusal (the first third) is kept, tool calls are dropped.
- ``pause_turn``: ``stop_reason: "pause_turn"`` (a server-tool loop paused); the content is kept and
  the client is expected to send it back to continue.

All from https://platform.claude.com/docs/build-with-claude/handling-stop-reasons.
"""


def _signature(seed: int, body_key: str) -> str:
    return hashlib.sha256(f"thinking:{seed}:{body_key}".encode()).hexdigest()[:48]


def _with_thinking(gen: Generated, plan: ThinkingPlan, *, seed: int, body_key: str) -> Generated:
    sig = _signature(seed, body_key)
    pieces: list[Any] = [{"type": "thinking_delta", "thinking": p} for p in text_deltas(plan.text)]
    pieces.append({"type": "signature_delta", "signature": sig})
    return Generated(
        content=[{"type": "thinking", "thinking": plan.text, "signature": sig}, *gen.content],
        stop_reason=gen.stop_reason,
        stop_sequence=gen.stop_sequence,
        stop_details=gen.stop_details,
        output_tokens=(gen.output_tokens if gen.content else 0) + plan.tokens,
        skill=gen.skill,
        block_tokens=[pieces, *gen.block_tokens],
    )


def start_block(block: dict[str, Any]) -> dict[str, Any]:
    """The ``content_block`` of a ``content_block_start`` event: the block before its deltas."""
    if block["type"] == "text":
        return {"type": "text", "text": ""}
    if block["type"] == "thinking":
        return {"type": "thinking", "thinking": "", "signature": ""}
    return {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}


def delta_payload(block_type: str, piece: Any) -> dict[str, Any]:
    """The ``delta`` of a ``content_block_delta`` event for one piece of a block."""
    if isinstance(piece, dict):  # thinking_delta / signature_delta
        return piece
    if block_type == "text":
        return {"type": "text_delta", "text": piece}
    return {"type": "input_json_delta", "partial_json": piece}


REFUSAL_EXPLANATION = "The simulated model declined to continue this reply (a simulated refusal)."


def refusal_details(seed: int, body_key: str) -> dict[str, Any]:
    """A refusal's ``stop_details``. Half of them name no category and carry no explanation, since the
    streaming-refusals page says both may be null and clients must bring their own message
    (docs/api-notes.md §15); drawn from the seed and the body, so a reply is the same every time."""
    named = int(hashlib.sha256(f"refusal:{seed}:{body_key}".encode()).hexdigest()[:8], 16) % 2 == 0
    return {
        "type": "refusal",
        "category": "general_harms" if named else None,
        "explanation": REFUSAL_EXPLANATION if named else None,
    }


def apply_shape(gen: Generated, shape: str, *, seed: int = 0, body_key: str = "") -> Generated:
    """``gen`` reshaped as one of :data:`RESPONSE_SHAPES` (a new object; ``gen`` is unchanged)."""
    if shape == "thinking":
        if gen.content and gen.content[0]["type"] == "thinking":
            return gen
        return _with_thinking(gen, ThinkingPlan("", OMITTED_THINKING_TOKENS), seed=seed, body_key=body_key)
    if shape == "refusal":
        content, streams, used = [], [], 0
        for block, pieces in zip(gen.content, gen.block_tokens):
            if block["type"] == "thinking":
                content.append(block)
                streams.append(pieces)
                used += OMITTED_THINKING_TOKENS if not block["thinking"] else len(text_deltas(block["thinking"]))
                continue
            if block["type"] != "text":
                continue
            keep = pieces[: max(1, len(pieces) // 3)]
            content.append({"type": "text", "text": "".join(keep)})
            streams.append(keep)
            used += len(keep)
            break
        return Generated(
            content=content,
            stop_reason="refusal",
            stop_sequence=None,
            output_tokens=max(used, _EMPTY_OUTPUT_TOKENS),
            skill=gen.skill,
            block_tokens=streams,
            stop_details=refusal_details(seed, body_key),
        )
    if shape == "pause_turn":
        return Generated(
            content=list(gen.content),
            stop_reason="pause_turn",
            stop_sequence=None,
            output_tokens=gen.output_tokens,
            skill=gen.skill,
            block_tokens=list(gen.block_tokens),
        )
    raise ValueError(f"unknown response shape {shape!r}")


def _first_stop(text: str, stops: tuple[str, ...]) -> tuple[int, str] | None:
    best: tuple[int, str] | None = None
    for s in stops:
        i = text.find(s)
        if i >= 0 and (best is None or i < best[0]):
            best = (i, s)
    return best


def iter_stream_pieces(gen: Generated) -> Iterator[tuple[int, dict[str, Any], str]]:
    """(block index, block, piece) for every delta, in order."""
    for index, (block, pieces) in enumerate(zip(gen.content, gen.block_tokens)):
        for piece in pieces:
            yield index, block, piece
