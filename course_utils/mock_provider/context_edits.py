"""Server-side context management: ``context_management.edits`` on ``POST /v1/messages``.

Three documented strategies (docs/api-notes.md §14.1), each behind its beta header:

- ``compact_20260112`` (``compact-2026-01-12``): when the prompt reaches ``trigger`` input tokens
  (default 150,000; at least 50,000), the conversation is summarized into a ``compaction`` block
  that opens the reply, and the reply is generated from the compacted context. On later requests
  everything before the last ``compaction`` block is dropped. ``pause_after_compaction`` returns
  the block alone, with ``stop_reason: "compaction"``. The summary is a separate sampling step:
  ``usage.iterations`` lists it (``type: "compaction"``) beside the reply (``type: "message"``);
  top-level ``usage`` is the reply's; both are billed.
- ``clear_tool_uses_20250919`` (``context-management-2025-06-27``): past ``trigger`` (default
  100,000 input tokens) the oldest tool results are replaced by a placeholder, keeping the last
  ``keep`` tool uses (default 3), never those of ``exclude_tools``; ``clear_tool_inputs`` clears the
  calls' inputs too; nothing is cleared unless at least ``clear_at_least`` tokens would be.
- ``clear_thinking_20251015`` (same beta): thinking blocks of all but the last ``keep`` assistant
  turns that hold thinking (default 1; ``"all"`` keeps every one).

Edits apply before the prompt reaches the model: the pipeline then counts, caches, rate-limits and
answers the *edited* prompt, so a clearing that changes the prefix really costs a cache write.
Cleared edits are reported in ``context_management.applied_edits``.

Simulator choices (not API facts): the summary is the simulator's extractive summarizer (it keeps
fact sentences, so recall after compaction is the summarizer's, not a model's); the compacted
context is the summary placed after the system prompt (where the skills read context), then the
turns that follow it; the placeholder's wording is the simulator's; and ``sim-teaching-4k``, a
simulator-only model with a 4,096-token window, accepts a compaction trigger from
:data:`SIM_MIN_COMPACT_TRIGGER` tokens (the API's 50,000 would never fire on it).
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..tokens import count_request, count_text
from .errors import InvalidRequest
from .request.fields import check_type, no_extra, require, type_name

__all__ = [
    "COMPACT",
    "CLEAR_TOOL_USES",
    "CLEAR_THINKING",
    "BETA_OF",
    "SIM_MIN_COMPACT_TRIGGER",
    "ContextOutcome",
    "apply_context_management",
    "PLACEHOLDER",
]

COMPACT = "compact_20260112"
CLEAR_TOOL_USES = "clear_tool_uses_20250919"
CLEAR_THINKING = "clear_thinking_20251015"
BETA_OF = {
    COMPACT: "compact-2026-01-12",
    CLEAR_TOOL_USES: "context-management-2025-06-27",
    CLEAR_THINKING: "context-management-2025-06-27",
}
_FIELDS = {
    COMPACT: frozenset({"type", "trigger", "pause_after_compaction", "instructions"}),
    CLEAR_TOOL_USES: frozenset({"type", "trigger", "keep", "clear_at_least", "exclude_tools", "clear_tool_inputs"}),
    CLEAR_THINKING: frozenset({"type", "keep"}),
}
COMPACT_DEFAULT_TRIGGER = 150_000
COMPACT_MIN_TRIGGER = 50_000
SIM_MIN_COMPACT_TRIGGER = 1_024
"""The smallest compaction trigger on simulator-only models (ids starting ``sim-``): 50,000 scaled
by the teaching model's 4,096-token window against a 200,000-token one, rounded up."""
CLEAR_TOOL_USES_DEFAULT_TRIGGER = 100_000
CLEAR_TOOL_USES_DEFAULT_KEEP = 3
CLEAR_THINKING_DEFAULT_KEEP = 1
SUMMARY_HEAD = "Summary:"
"""How the simulator's summaries begin (the summarizer's own heading)."""
PLACEHOLDER = "[tool result cleared by context management]"
"""What a cleared tool result holds (the simulator's wording; the docs say only 'placeholder text')."""

# Supported models, from each page's front matter (docs/api-notes.md §14.1), plus the simulator-only model.
_COMPACT_MODELS = frozenset(
    {
        "claude-fable-5-1",
        "claude-mythos-5-1",
        "claude-fable-5",
        "claude-mythos-5",
        "claude-mythos-preview",
        "claude-opus-5-5",
        "claude-opus-5",
        "claude-sonnet-5-5",
        "claude-sonnet-5",
        "claude-haiku-5-5",
        "claude-opus-4-8",
        "claude-opus-4-7",
        "claude-opus-4-6",
        "claude-sonnet-4-6",
    }
)
_EDITING_MODELS = _COMPACT_MODELS | {
    "claude-haiku-4-5",
    "claude-haiku-4-5-20251001",
    "claude-opus-4-5",
    "claude-opus-4-5-20251101",
    "claude-sonnet-4-5",
    "claude-sonnet-4-5-20250929",
}


@dataclass
class ContextOutcome:
    """What context management did to one request."""

    body: dict[str, Any]
    """The body the model is asked (edits applied, ``context_management`` removed)."""
    applied_edits: list[dict[str, Any]] = field(default_factory=list)
    configured: bool = False
    """Whether the request carried ``context_management`` (the response then reports it)."""
    compaction: dict[str, Any] | None = None
    """When compaction ran: ``content`` (the summary), ``input_tokens`` and ``output_tokens`` of the
    summarizing step."""
    pause: bool = False


def apply_context_management(body: Mapping[str, Any], headers: Mapping[str, str]) -> ContextOutcome | None:
    """Validate ``context_management`` and apply its edits to ``body``; None when the request has
    neither ``context_management`` nor a ``compaction`` block (nothing to do).

    Raises :class:`InvalidRequest` (the API's 400) for an invalid configuration, a strategy whose
    beta header is missing, or a model the strategy does not support.
    """
    raw = body.get("context_management")
    has_block = _has_compaction_block(body.get("messages"))
    if raw is None and not has_block:
        return None
    betas = {b.strip() for b in headers.get("anthropic-beta", "").split(",") if b.strip()}
    edits = _parse(raw) if raw is not None else []
    for i, edit in enumerate(edits):
        beta = BETA_OF[edit["type"]]
        if beta not in betas:
            raise InvalidRequest(
                f"context_management.edits.{i}: '{edit['type']}' requires the `anthropic-beta: {beta}` header"
            )
    if has_block and BETA_OF[COMPACT] not in betas:
        raise InvalidRequest(f"compaction blocks require the `anthropic-beta: {BETA_OF[COMPACT]}` header")
    model = body.get("model")
    for i, edit in enumerate(edits):
        supported = _COMPACT_MODELS if edit["type"] == COMPACT else _EDITING_MODELS
        if isinstance(model, str) and not model.startswith("sim-") and model not in supported:
            raise InvalidRequest(f"context_management.edits.{i}: '{edit['type']}' is not supported on model {model}")
        if edit["type"] == COMPACT:
            floor = (
                SIM_MIN_COMPACT_TRIGGER if isinstance(model, str) and model.startswith("sim-") else COMPACT_MIN_TRIGGER
            )
            if edit["trigger"] < floor:
                raise InvalidRequest(
                    f"context_management.edits.{i}.trigger.value: Input should be greater than or equal to {floor}"
                )

    stripped = {k: v for k, v in body.items() if k != "context_management"}
    work = copy.deepcopy(stripped)
    out = ContextOutcome(body=work, configured=raw is not None)
    try:
        _drop_before_compaction(work)
        for edit in edits:
            if edit["type"] == CLEAR_THINKING:
                _clear_thinking(work, edit, out)
            elif edit["type"] == CLEAR_TOOL_USES:
                _clear_tool_uses(work, edit, out)
            else:
                _compact(work, edit, out)
    except (AttributeError, KeyError, TypeError, ValueError):
        # A malformed body (a message that is not an object, content of the wrong type...): leave it
        # as sent, so the request parser answers with the 400 that names the bad field.
        return ContextOutcome(body=stripped, configured=raw is not None)
    return out


# ----- validation ------------------------------------------------------------------------------------
def _parse(raw: Any) -> list[dict[str, Any]]:
    check_type(raw, dict, "context_management", "object")
    no_extra(raw, frozenset({"edits"}), "context_management")
    edits = raw.get("edits") or []
    check_type(edits, list, "context_management.edits", "list")
    return [_edit(e, f"context_management.edits.{i}") for i, e in enumerate(edits)]


def _edit(raw: Any, path: str) -> dict[str, Any]:
    check_type(raw, dict, path, "object")
    kind = require(raw, "type", f"{path}.")
    if not isinstance(kind, str) or kind not in _FIELDS:
        raise InvalidRequest(
            f"{path}.type: Input tag '{kind}' found using 'type' does not match any of the expected tags: "
            + ", ".join(f"'{t}'" for t in sorted(_FIELDS))
        )
    no_extra(raw, _FIELDS[kind], path)
    if kind == COMPACT:
        trigger = _amount(raw.get("trigger"), f"{path}.trigger", ("input_tokens",), COMPACT_DEFAULT_TRIGGER, 1)[1]
        pause = raw.get("pause_after_compaction", False)
        check_type(pause, bool, f"{path}.pause_after_compaction", "boolean")
        instructions = raw.get("instructions")
        if instructions is not None:
            check_type(instructions, str, f"{path}.instructions", "string")
        return {"type": kind, "trigger": trigger, "pause": pause, "instructions": instructions}
    if kind == CLEAR_TOOL_USES:
        trig = _amount(
            raw.get("trigger"), f"{path}.trigger", ("input_tokens", "tool_uses"), CLEAR_TOOL_USES_DEFAULT_TRIGGER, 1
        )
        keep = _amount(raw.get("keep"), f"{path}.keep", ("tool_uses",), CLEAR_TOOL_USES_DEFAULT_KEEP, 0)[1]
        at_least = _amount(raw.get("clear_at_least"), f"{path}.clear_at_least", ("input_tokens",), 0, 0)[1]
        exclude = raw.get("exclude_tools") or []
        check_type(exclude, list, f"{path}.exclude_tools", "list")
        for j, name in enumerate(exclude):
            check_type(name, str, f"{path}.exclude_tools.{j}", "string")
        inputs = raw.get("clear_tool_inputs", False)
        if inputs is None:
            inputs = False
        if isinstance(inputs, list):
            for j, name in enumerate(inputs):
                check_type(name, str, f"{path}.clear_tool_inputs.{j}", "string")
        elif not isinstance(inputs, bool):
            raise InvalidRequest(f"{path}.clear_tool_inputs: Input should be a valid boolean or list of strings")
        return {
            "type": kind,
            "trigger": trig,
            "keep": keep,
            "clear_at_least": at_least,
            "exclude": frozenset(exclude),
            "inputs": inputs,
        }
    keep_raw = raw.get("keep")
    if keep_raw is None:
        keep: int | None = CLEAR_THINKING_DEFAULT_KEEP
    elif keep_raw == "all" or (isinstance(keep_raw, dict) and keep_raw.get("type") == "all"):
        if isinstance(keep_raw, dict):
            no_extra(keep_raw, frozenset({"type"}), f"{path}.keep")
        keep = None
    else:
        keep = _amount(keep_raw, f"{path}.keep", ("thinking_turns",), CLEAR_THINKING_DEFAULT_KEEP, 1)[1]
    return {"type": kind, "keep": keep}


def _amount(raw: Any, path: str, kinds: tuple[str, ...], default: int, minimum: int) -> tuple[str, int]:
    """A ``{"type": ..., "value": n}`` object (or None: the default, in the first kind)."""
    if raw is None:
        return kinds[0], default
    if not isinstance(raw, dict):
        raise InvalidRequest(f"{path}: Input should be a valid object, got {type_name(raw)}")
    kind = require(raw, "type", f"{path}.")
    if kind not in kinds:
        raise InvalidRequest(f"{path}.type: Input should be " + " or ".join(f"'{k}'" for k in kinds))
    no_extra(raw, frozenset({"type", "value"}), path)
    value = require(raw, "value", f"{path}.")
    check_type(value, int, f"{path}.value", "integer")
    if value < minimum:
        raise InvalidRequest(f"{path}.value: Input should be greater than or equal to {minimum}")
    return kind, value


# ----- the edits -----------------------------------------------------------------------------------------
def _has_compaction_block(messages: Any) -> bool:
    if not isinstance(messages, list):
        return False
    return any(
        isinstance(m, dict)
        and isinstance(m.get("content"), list)
        and any(isinstance(b, dict) and b.get("type") == "compaction" for b in m["content"])
        for m in messages
    )


def _with_summary(body: dict[str, Any], summary: str, cache_control: Any = None) -> None:
    """Put the summary where the simulated model reads context: a text block after the system prompt."""
    system = body.get("system")
    blocks = [{"type": "text", "text": system}] if isinstance(system, str) and system else list(system or [])
    block: dict[str, Any] = {"type": "text", "text": summary}
    if cache_control is not None:
        block["cache_control"] = cache_control
    body["system"] = blocks + [block]


def _drop_before_compaction(body: dict[str, Any]) -> None:
    """The API drops every block before the last ``compaction`` block; the summary carries on."""
    messages = body.get("messages")
    if not isinstance(messages, list):
        return
    for mi in range(len(messages) - 1, -1, -1):
        content = messages[mi].get("content") if isinstance(messages[mi], dict) else None
        if not isinstance(content, list):
            continue
        at = [bi for bi, b in enumerate(content) if isinstance(b, dict) and b.get("type") == "compaction"]
        if not at:
            continue
        block = content[at[-1]]
        rest = content[at[-1] + 1 :]
        if block.get("content"):
            _with_summary(body, str(block["content"]), block.get("cache_control"))
        tail = ([{**messages[mi], "content": rest}] if rest else []) + messages[mi + 1 :]
        body["messages"] = tail
        return


def _blocks(body: dict[str, Any]) -> list[tuple[int, dict[str, Any]]]:
    return [
        (mi, b)
        for mi, m in enumerate(body.get("messages") or [])
        if isinstance(m, dict) and isinstance(m.get("content"), list)
        for b in m["content"]
        if isinstance(b, dict)
    ]


def _clear_thinking(body: dict[str, Any], edit: dict[str, Any], out: ContextOutcome) -> None:
    keep = edit["keep"]
    messages = body.get("messages") or []
    turns = [
        mi
        for mi, m in enumerate(messages)
        if isinstance(m, dict)
        and m.get("role") == "assistant"
        and isinstance(m.get("content"), list)
        and any(isinstance(b, dict) and b.get("type") in ("thinking", "redacted_thinking") for b in m["content"])
    ]
    if keep is None or len(turns) <= keep:
        return
    before = count_request(body)
    cleared = turns[: len(turns) - keep]
    for mi in cleared:
        kept = [b for b in messages[mi]["content"] if b.get("type") not in ("thinking", "redacted_thinking")]
        messages[mi] = {**messages[mi], "content": kept or [{"type": "text", "text": "(thinking cleared)"}]}
    out.applied_edits.append(
        {
            "type": CLEAR_THINKING,
            "cleared_thinking_turns": len(cleared),
            "cleared_input_tokens": max(0, before - count_request(body)),
        }
    )


def _clear_tool_uses(body: dict[str, Any], edit: dict[str, Any], out: ContextOutcome) -> None:
    uses = [(mi, b) for mi, b in _blocks(body) if b.get("type") == "tool_use"]
    kind, value = edit["trigger"]
    reached = (count_request(body) >= value) if kind == "input_tokens" else (len(uses) >= value)
    if not reached:
        return
    results = {b.get("tool_use_id"): b for _, b in _blocks(body) if b.get("type") == "tool_result"}
    candidates = [b for _, b in uses if b.get("name") not in edit["exclude"]]
    keep = edit["keep"]
    to_clear = candidates[: max(0, len(candidates) - keep)]
    to_clear = [b for b in to_clear if not _already_cleared(results.get(b.get("id")))]
    if not to_clear:
        return
    before = count_request(body)
    trial = copy.deepcopy(body)
    _clear(trial, {b.get("id") for b in to_clear}, edit["inputs"])
    cleared_tokens = max(0, before - count_request(trial))
    if cleared_tokens < edit["clear_at_least"]:
        return
    body.clear()
    body.update(trial)
    out.applied_edits.append(
        {"type": CLEAR_TOOL_USES, "cleared_tool_uses": len(to_clear), "cleared_input_tokens": cleared_tokens}
    )


def _already_cleared(result: dict[str, Any] | None) -> bool:
    return result is not None and result.get("content") == PLACEHOLDER


def _clear(body: dict[str, Any], ids: set[Any], inputs: bool | list[str]) -> None:
    for _, b in _blocks(body):
        if b.get("type") == "tool_result" and b.get("tool_use_id") in ids:
            b["content"] = PLACEHOLDER
        elif b.get("type") == "tool_use" and b.get("id") in ids:
            if inputs is True or (isinstance(inputs, list) and b.get("name") in inputs):
                b["input"] = {}


def _turn_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    parts = []
    for b in content or []:
        if not isinstance(b, dict):
            continue
        if b.get("type") == "text":
            parts.append(str(b.get("text", "")))
        elif b.get("type") == "tool_result":
            c = b.get("content")
            parts.append(c if isinstance(c, str) else _turn_text(c))
        elif b.get("type") == "tool_use":
            parts.append(f"Called {b.get('name')} with {json.dumps(b.get('input'), sort_keys=True)}.")
    return "\n".join(p for p in parts if p)


def _compact(body: dict[str, Any], edit: dict[str, Any], out: ContextOutcome) -> None:
    from .skills.summarize import summarize_text
    from .skills.text import split_sentences

    before = count_request(body)
    if before < edit["trigger"]:
        return
    messages = body.get("messages") or []
    # Keep the turn being answered (with the assistant turn its tool results answer).
    keep_from = len(messages) - 1 if messages else 0
    last = messages[-1] if messages else {}
    if keep_from > 0 and isinstance(last.get("content"), list):
        if any(isinstance(b, dict) and b.get("type") == "tool_result" for b in last["content"]):
            keep_from -= 1
    # An earlier summary (after the system prompt) is summarized again with the turns that followed it.
    system = body.get("system")
    blocks = [{"type": "text", "text": system}] if isinstance(system, str) and system else list(system or [])
    earlier = [b for b in blocks if isinstance(b, dict) and str(b.get("text", "")).startswith(SUMMARY_HEAD)]
    body["system"] = [b for b in blocks if b not in earlier]
    sentences = [line[2:].strip() for b in earlier for line in str(b["text"]).splitlines() if line.startswith("- ")]
    for m in messages[:keep_from]:
        role = str(m.get("role", "user")).title()
        sentences += [f"{role}: {s}" for s in split_sentences(_turn_text(m.get("content")))]
    budget = min(max(128, before // 4), 8_000)
    summary = summarize_text(sentences, budget) if sentences else f"{SUMMARY_HEAD}\n- (nothing to summarize yet)"
    summary_input = before + (count_text(edit["instructions"]) if edit["instructions"] else 0)
    out.compaction = {"content": summary, "input_tokens": summary_input, "output_tokens": count_text(summary)}
    out.pause = edit["pause"]
    body["messages"] = messages[keep_from:]
    _with_summary(body, summary)
