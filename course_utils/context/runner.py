"""Play a scripted conversation through a context strategy and record what every turn cost.

Per turn: the prompt's tokens (cached, written to the cache, plain), output tokens, dollars
(including the strategy's own summarization calls), latency, and for fact questions whether the
reply was right. A "prompt is too long" error ends the run where it happened, as it ends a real
session.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

import anthropic

from .. import pricing
from ..clients import SyncClient
from ..clock import SYSTEM_CLOCK, Clock
from ..content import text_of
from ..progress import ProgressCallback, ProgressEvent
from .conversation import Conversation, is_correct
from .strategies import ContextStrategy

__all__ = ["TurnRecord", "RunResult", "run_conversation", "error_message"]


def _n(usage: Any, name: str) -> int:
    value = getattr(usage, name, None) if not isinstance(usage, dict) else usage.get(name)
    return int(value or 0)


@dataclass
class TurnRecord:
    """What one turn sent, cost and answered."""

    turn: int
    kind: str
    prompt_tokens: int = 0
    """Every input token of the request: plain + cache writes + cache reads."""
    input_tokens: int = 0
    cache_write_tokens: int = 0
    cache_read_tokens: int = 0
    output_tokens: int = 0
    messages_sent: int = 0
    side_calls: int = 0
    side_cost: Decimal = Decimal(0)
    cost: Decimal = Decimal(0)
    """This turn's request plus the strategy's side calls, in USD."""
    latency_s: float = 0.0
    expected: str | None = None
    answer: str = ""
    correct: bool | None = None
    error: str | None = None


@dataclass
class RunResult:
    """One strategy's run: a record per turn that was attempted, and the history it left."""

    strategy: str
    model: str
    records: list[TurnRecord] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None

    @property
    def completed(self) -> int:
        """Turns answered without an error."""
        return sum(r.error is None for r in self.records)

    @property
    def total_cost(self) -> Decimal:
        return sum((r.cost for r in self.records), Decimal(0))

    @property
    def recall_accuracy(self) -> float | None:
        """Fraction of fact questions answered correctly (None when none were asked)."""
        asked = [r.correct for r in self.records if r.correct is not None]
        return sum(asked) / len(asked) if asked else None

    @property
    def overflowed_at(self) -> int | None:
        """The turn whose request was too long for the context window, if any."""
        for r in self.records:
            if r.error and is_overflow_message(r.error):
                return r.turn
        return None

    def frame(self) -> Any:
        """One row per turn (the tables convention: units as suffixes, ``cost_usd`` as float for plotting;
        the exact total is ``total_cost``)."""
        import pandas as pd

        df = pd.DataFrame([asdict(r) for r in self.records])
        df = df.rename(columns={"cost": "cost_usd", "side_cost": "side_cost_usd"})
        if len(df):
            df["cost_usd"] = df["cost_usd"].astype(float)
            df["side_cost_usd"] = df["side_cost_usd"].astype(float)
            df["cumulative_cost_usd"] = df["cost_usd"].cumsum()
        df.insert(0, "strategy", self.strategy)
        return df


def error_message(exc: anthropic.APIStatusError) -> str:
    """The API's own error message ("prompt is too long: ..."), without the SDK's envelope."""
    body = exc.body if isinstance(exc.body, dict) else {}
    error = body.get("error") if isinstance(body.get("error"), dict) else body
    return str(error.get("message") or exc.message)


def _assistant_content(reply: Any, answer: str) -> str | list[dict[str, Any]]:
    """What the history keeps of a reply: its text, and a ``compaction`` block when the API compacted
    (the documentation: append the response, the API drops everything before the block next time)."""
    text = answer or "(no reply)"
    compaction = [b for b in reply.content if getattr(b, "type", None) == "compaction"]
    if not compaction:
        return text
    return [{"type": "compaction", "content": compaction[-1].content}, {"type": "text", "text": text}]


def is_overflow_message(message: str) -> bool:
    return "prompt is too long" in message


def run_conversation(
    client: SyncClient,
    strategy: ContextStrategy,
    conversation: Conversation,
    *,
    model: str,
    max_tokens: int = 150,
    clock: Clock = SYSTEM_CLOCK,
    on_progress: ProgressCallback | None = None,
) -> RunResult:
    """Play every user turn of ``conversation`` through ``strategy``; stop at the first API error.

    ``on_progress`` hears a :class:`~course_utils.progress.ProgressEvent` after every turn played
    (``latest`` is the turn's :class:`TurnRecord`; ``total`` the conversation's user turns).
    """
    strategy.reset()
    run_started = clock.monotonic()
    total = len(conversation.turns)

    def report(record: TurnRecord) -> None:
        if on_progress is not None:
            on_progress(ProgressEvent(len(result.records), total, clock.monotonic() - run_started, record))

    result = RunResult(strategy.name, model)
    history = result.history
    for scripted in conversation.turns:
        history.append({"role": "user", "content": scripted.user})
        record = TurnRecord(scripted.turn, scripted.kind, expected=scripted.expected)
        side_before = len(strategy.side_calls)
        started = clock.monotonic()
        try:
            prompt = strategy.build(conversation.system, history)
            record.messages_sent = len(prompt.messages)
            # Server-side context management is a beta: its edits go through the beta endpoint.
            create = client.beta.messages.create if prompt.betas else client.messages.create
            reply = create(**prompt.body(model, max_tokens))
        except anthropic.APIStatusError as exc:
            record.error = error_message(exc)
        record.latency_s = clock.monotonic() - started
        for call in strategy.side_calls[side_before:]:
            record.side_calls += 1
            record.side_cost += pricing.cost(call.usage, call.model)
        record.cost = record.side_cost
        if record.error is not None:
            history.pop()  # the turn never happened
            result.records.append(record)
            result.error = record.error
            report(record)
            break
        usage = reply.usage
        # A compaction is a sampling step of its own inside the request: usage.iterations bills it
        # beside the reply (top-level usage is the reply's), so it counts as a side call here.
        for step in getattr(usage, "iterations", None) or []:
            if getattr(step, "type", None) == "compaction":
                record.side_calls += 1
                record.side_cost += pricing.cost(step, model)
                record.cost += pricing.cost(step, model)
        record.input_tokens = _n(usage, "input_tokens")
        record.cache_write_tokens = _n(usage, "cache_creation_input_tokens")
        record.cache_read_tokens = _n(usage, "cache_read_input_tokens")
        record.prompt_tokens = record.input_tokens + record.cache_write_tokens + record.cache_read_tokens
        record.output_tokens = _n(usage, "output_tokens")
        record.cost += pricing.cost(usage, model)
        record.answer = text_of(reply)
        if scripted.kind == "question" and scripted.expected:
            record.correct = is_correct(record.answer, scripted.expected)
        history.append({"role": "assistant", "content": _assistant_content(reply, record.answer)})
        result.records.append(record)
        report(record)
    return result
