"""A growing support chat, four ways: what each costs per conversation and what it still answers.

The chat's history is the same prefix on every turn, so the documented fix is the provider's
prompt cache: a top-level ``cache_control`` ("automatic caching") puts the breakpoint on the last
cacheable block and moves it forward as the conversation grows, so each turn reads everything the
previous turn wrote and writes only what is new. Compression is for what *is* new each turn: the
retrieved notes, squeezed to a budget for their own question before they enter the history. Compressing
the whole history for each new question does the opposite: the prompt is different every turn, so the
cache never hits and every turn pays a fresh write.

:func:`chat_policies` runs the policies on the same conversations (the fact-recall items, one turn
each) and reports, from each reply's ``usage`` and text: input tokens by class, dollars, and the
share of turns answered with the fact the turn's notes hold.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Callable, Sequence

import pandas as pd

from ..content import text_of
from ..pricing import cost
from ..progress import ProgressCallback, ProgressEvent

__all__ = ["conversations", "CHAT_SYSTEM", "ChatPolicy", "CHAT_POLICIES", "chat_turn_body", "run_chat", "chat_policies"]

CHAT_SYSTEM = "You are the support assistant of a software company. Answer the customer's question from the notes.\n"

Shrink = Callable[[str, str, int], str]


@dataclass(frozen=True)
class ChatPolicy:
    """How one turn's request is built.

    ``cache``: send a top-level ``cache_control`` (automatic caching). ``compress_notes``: squeeze the
    new turn's retrieved notes to ``budget`` for their question before they join the history.
    ``compress_history``: instead of the history, send only what ``shrink`` keeps of the whole history
    and the new notes for the new question (a prompt that changes every turn).
    """

    name: str
    cache: bool = False
    compress_notes: bool = False
    compress_history: bool = False


CHAT_POLICIES: tuple[ChatPolicy, ...] = (
    ChatPolicy("resend the history"),
    ChatPolicy("automatic caching", cache=True),
    ChatPolicy("compress per question + caching", cache=True, compress_history=True),
    ChatPolicy("caching + compress retrieved notes", cache=True, compress_notes=True),
)
"""The naive chat, the documented fix, the fix that defeats it, and the fix plus compression where it fits."""


def conversations(items: Sequence[dict[str, Any]], turns: int) -> list[list[dict[str, Any]]]:
    """``items`` cut into conversations of ``turns`` turns (a shorter last one is dropped, so all are alike)."""
    if turns < 1:
        raise ValueError(f"turns must be >= 1, got {turns}")
    return [list(items[i : i + turns]) for i in range(0, len(items) - turns + 1, turns)]


def _user_turn(notes: str, question: str) -> str:
    return f"Retrieved notes:\n{notes}\n\nQuestion: {question}"


def chat_turn_body(
    policy: ChatPolicy,
    history: Sequence[dict[str, Any]],
    notes: Sequence[str],
    item: dict[str, Any],
    *,
    model: str,
    shrink: Shrink,
    notes_budget: int,
    history_budget: int,
) -> dict[str, Any]:
    """The Messages body of one turn: ``history`` (earlier turns as sent) and ``item`` (context, question).

    ``compress_history`` re-selects from the whole history and the new notes, within ``history_budget``
    tokens; ``compress_notes`` squeezes the new notes to ``notes_budget``. ``notes`` (every earlier
    turn's retrieved notes, as retrieved) is kept for policies that need the originals.
    """
    question = item["question"]
    if policy.compress_history:
        # Everything said so far (each turn as sent, each answer), and the new notes.
        everything = "\n".join([*(m["content"] for m in history), item["context"]])
        messages = [{"role": "user", "content": _user_turn(shrink(everything, question, history_budget), question)}]
    else:
        new = shrink(item["context"], question, notes_budget) if policy.compress_notes else item["context"]
        messages = [*history, {"role": "user", "content": _user_turn(new, question)}]
    body: dict[str, Any] = {"model": model, "max_tokens": 200, "system": CHAT_SYSTEM, "messages": messages}
    if policy.cache:
        body["cache_control"] = {"type": "ephemeral"}
    return body


async def run_chat(
    client: Any,
    items: Sequence[dict[str, Any]],
    policy: ChatPolicy,
    *,
    model: str,
    shrink: Shrink,
    notes_budget: int,
    history_budget: int,
) -> list[dict[str, Any]]:
    """One conversation, one turn per item, in order; a row per turn from the reply and its ``usage``."""
    history: list[dict[str, Any]] = []
    notes: list[str] = []
    rows = []
    for turn, item in enumerate(items, 1):
        body = chat_turn_body(
            policy,
            history,
            notes,
            item,
            model=model,
            shrink=shrink,
            notes_budget=notes_budget,
            history_budget=history_budget,
        )
        reply = await client.messages.create(**body)
        answer = text_of(reply)
        usage = reply.usage
        rows.append(
            {
                "policy": policy.name,
                "turn": turn,
                "uncached": usage.input_tokens,
                "cache_write": usage.cache_creation_input_tokens or 0,
                "cache_read": usage.cache_read_input_tokens or 0,
                "output": usage.output_tokens,
                "cost": cost(usage, model),
                "answered": item["answer"] in answer,
                "answer": answer,
            }
        )
        said = {"role": "assistant", "content": answer or "(no answer)"}
        if policy.compress_history:
            # The conversation as it happened; each turn re-selects from it.
            history = [*history, {"role": "user", "content": _user_turn(item["context"], item["question"])}, said]
        else:
            # The history is what was sent (the user turn as built) and the reply's text.
            history = [*body["messages"], said]
        notes.append(item["context"])
    return rows


async def chat_policies(
    client: Any,
    conversations: Sequence[Sequence[dict[str, Any]]],
    *,
    model: str,
    shrink: Shrink,
    notes_budget: int,
    history_budget: int,
    policies: Sequence[ChatPolicy] = CHAT_POLICIES,
    on_progress: ProgressCallback | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every policy on every conversation: (per-turn rows, one summary row per policy).

    The summary: input tokens per turn, the shares of them read from and written to the cache,
    dollars per conversation (exact ``Decimal``), the share of turns answered with the fact of that
    turn's notes, and the share of turns whose reply is word for word the first policy's.
    ``on_progress`` is called after each policy.
    """
    turns = []
    started = time.perf_counter()
    for done, policy in enumerate(policies, 1):
        for n, conversation in enumerate(conversations):
            for row in await run_chat(
                client,
                conversation,
                policy,
                model=model,
                shrink=shrink,
                notes_budget=notes_budget,
                history_budget=history_budget,
            ):
                turns.append({**row, "conversation": n})
        if on_progress is not None:
            on_progress(ProgressEvent(done, len(policies), time.perf_counter() - started, policy.name))
    frame = pd.DataFrame(turns)
    first = frame[frame["policy"] == policies[0].name].set_index(["conversation", "turn"])["answer"]
    summary = []
    for policy in policies:
        rows = frame[frame["policy"] == policy.name]
        prompt = rows["uncached"] + rows["cache_write"] + rows["cache_read"]
        summary.append(
            {
                "policy": policy.name,
                "input_per_turn": round(float(prompt.mean()), 1),
                "read_share": float(rows["cache_read"].sum() / prompt.sum()) if prompt.sum() else 0.0,
                "write_share": float(rows["cache_write"].sum() / prompt.sum()) if prompt.sum() else 0.0,
                "cost_per_conversation": sum(rows["cost"], Decimal(0)) / len(conversations),
                "answered": float(rows["answered"].mean()),
                "same_answer": float((rows.set_index(["conversation", "turn"])["answer"] == first).mean()),
            }
        )
    return frame, pd.DataFrame(summary).set_index("policy")
