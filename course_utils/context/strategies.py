"""Context strategies: what part of a long conversation to send with the next request.

Every strategy has the same interface, so swapping one for another is a one-line change::

    strategy = SlidingWindow(budget=2_000)          # or Summarizing(...), Hybrid(...), CacheLayout(Hybrid(...))
    prompt = strategy.build(system, history)        # history: every message so far, the new user turn last
    reply = client.messages.create(**prompt.body(model, max_tokens))

``history`` is the whole conversation, append-only; the strategy decides what goes into the
request. Strategies that call the model themselves (summarization) record those calls in
``side_calls`` so their tokens and cost are not hidden from the bill.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Mapping, Protocol, Sequence, runtime_checkable

from ..clients import SyncClient
from ..clock import SYSTEM_CLOCK, Clock
from ..models import UnknownModelError, get_model
from .accounting import message_tokens, request_tokens
from .turns import Message, group_turns, transcript
from .errors import ContextError

__all__ = [
    "Prompt",
    "SideCall",
    "ContextStrategy",
    "ContextBudgetExceeded",
    "FullHistory",
    "SlidingWindow",
    "Summarizing",
    "Hybrid",
    "CacheLayout",
    "sliding_window",
    "SUMMARY_HEADER",
    "SUMMARIZE_INSTRUCTIONS",
    "compose_request",
]

SUMMARY_HEADER = "Summary of the earlier conversation (facts the user gave):\n"
"""Introduces the running summary in the system prompt, so the model reads it as context."""
SUMMARIZE_INSTRUCTIONS = (
    "Summarize the conversation below for the support agent who continues it. "
    "Keep all facts the user stated (names, numbers, places, dates, plans) word for word."
)


@dataclass
class Prompt:
    """What one request sends: the system prompt, the messages and the tools."""

    system: str | list[dict[str, Any]] | None
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None = None
    context_management: dict[str, Any] | None = None
    """Server-side edits (``context_management``), sent with their beta headers (:attr:`betas`)."""
    betas: tuple[str, ...] = ()
    cache_control: dict[str, Any] | None = None
    """Top-level ``cache_control``: automatic caching up to the last cacheable block."""

    def body(self, model: str, max_tokens: int) -> dict[str, Any]:
        """Keyword arguments for ``client.messages.create`` (``client.beta.messages.create`` when
        :attr:`betas` is set: the body then carries ``betas``)."""
        body: dict[str, Any] = {"model": model, "max_tokens": max_tokens, "messages": self.messages}
        if self.system:
            body["system"] = self.system
        if self.tools:
            body["tools"] = self.tools
        if self.cache_control:
            body["cache_control"] = self.cache_control
        if self.context_management:
            body["context_management"] = self.context_management
        if self.betas:
            body["betas"] = list(self.betas)
        return body

    @property
    def tokens(self) -> int:
        """Input tokens of this prompt (equals ``count_tokens`` in simulation)."""
        return request_tokens({"system": self.system, "tools": self.tools, "messages": self.messages})


@dataclass(frozen=True)
class SideCall:
    """A request a strategy made on its own behalf (e.g. a summarization), for the bill."""

    purpose: str
    model: str
    usage: Any
    latency_s: float


class ContextBudgetExceeded(ContextError, ValueError):
    """Even the newest turn alone does not fit the token budget."""

    def __init__(self, needed: int, budget: int) -> None:
        super().__init__(f"the newest turn needs {needed} tokens with the system prompt; the budget is {budget}")
        self.needed = needed
        self.budget = budget


@runtime_checkable
class ContextStrategy(Protocol):
    """The interface every strategy implements."""

    name: str
    side_calls: list[SideCall]

    def build(self, system: Any, history: Sequence[Message], tools: list[dict[str, Any]] | None = None) -> Prompt:
        """The prompt for the next request, given every message so far (the new user turn last)."""

    def reset(self) -> None:
        """Forget any state kept between turns (start of a new conversation)."""


def sliding_window(
    messages: Sequence[Message], budget: int, *, system: Any = None, tools: list[dict[str, Any]] | None = None
) -> list[Message]:
    """The newest whole turns whose request (with ``system`` and ``tools``) fits ``budget`` tokens.

    Raises :class:`ContextBudgetExceeded` when not even the newest turn fits.
    """
    used = request_tokens({"system": system, "tools": tools, "messages": []})
    kept: list[list[Message]] = []
    for turn in reversed(group_turns(messages)):
        cost = sum(message_tokens(m) for m in turn)
        if used + cost > budget:
            break
        kept.append(turn)
        used += cost
    if not kept and messages:
        newest = group_turns(messages)[-1]
        raise ContextBudgetExceeded(used + sum(message_tokens(m) for m in newest), budget)
    return [m for turn in reversed(kept) for m in turn]


class FullHistory:
    """The naive strategy: send every message, every time (cost grows each turn, then it overflows)."""

    name = "full history"

    def __init__(self) -> None:
        self.side_calls: list[SideCall] = []

    def build(self, system: Any, history: Sequence[Message], tools: list[dict[str, Any]] | None = None) -> Prompt:
        return Prompt(system, list(history), tools)

    def reset(self) -> None:
        self.side_calls.clear()


class SlidingWindow:
    """Keep the system prompt and the newest whole turns within ``budget`` input tokens."""

    name = "sliding window"

    def __init__(self, budget: int) -> None:
        self.budget = int(budget)
        self.side_calls: list[SideCall] = []

    def build(self, system: Any, history: Sequence[Message], tools: list[dict[str, Any]] | None = None) -> Prompt:
        return Prompt(system, sliding_window(history, self.budget, system=system, tools=tools), tools)

    def reset(self) -> None:
        self.side_calls.clear()


def _context_window(model: str) -> int | None:
    """The model's context window from the catalog, or ``None`` for a model it does not list."""
    try:
        return get_model(model).context_window
    except UnknownModelError:
        return None


def _system_blocks(system: Any) -> list[dict[str, Any]]:
    if not system:
        return []
    if isinstance(system, str):
        return [{"type": "text", "text": system}]
    return [dict(block) for block in system]


class Summarizing:
    """Fold the oldest turns into a running summary once the prompt passes ``threshold`` tokens.

    The summary is made by the model, incrementally: each compaction sends the previous summary
    plus only the turns being folded, never the whole history again. It lives in the system
    prompt (after the instructions), so the facts in it stay visible to the model. After a
    compaction the newest turns within ``keep_recent`` tokens stay verbatim (always at least the
    current turn); ``keep_recent=0`` keeps only the current turn.

    ``window`` caps the input tokens of every request (default: the model's context window from
    the catalog, none for a model it does not list). A newest turn too big to sit beside the
    summary cannot be summarized away, so then the request falls back to a sliding window over the
    unfolded turns, and raises :class:`ContextBudgetExceeded` when not even the newest turn fits.
    """

    name = "summarization"

    def __init__(
        self,
        client: SyncClient,
        *,
        model: str,
        threshold: int,
        keep_recent: int = 0,
        summary_max_tokens: int = 400,
        window: int | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.client = client
        self.model = model
        self.threshold = int(threshold)
        self.window = int(window) if window is not None else _context_window(model)
        self.keep_recent = int(keep_recent)
        self.summary_max_tokens = int(summary_max_tokens)
        self.clock = clock
        self.summary = ""
        self.folded = 0
        """How many messages of the history are already in the summary."""
        self.side_calls: list[SideCall] = []

    def reset(self) -> None:
        self.summary, self.folded = "", 0
        self.side_calls.clear()

    def compose(self, system: Any, messages: Sequence[Message], tools: list[dict[str, Any]] | None = None) -> Prompt:
        """The prompt with the current summary appended to the system prompt."""
        blocks = _system_blocks(system)
        if self.summary:
            blocks.append({"type": "text", "text": SUMMARY_HEADER + self.summary})
        return Prompt(blocks or None, list(messages), tools)

    def build(self, system: Any, history: Sequence[Message], tools: list[dict[str, Any]] | None = None) -> Prompt:
        if len(history) < self.folded:  # a different, shorter conversation: start over
            self.reset()
        prompt = self.compose(system, history[self.folded :], tools)
        if prompt.tokens <= self.threshold:
            return self._fit(prompt)
        turns = group_turns(history[self.folded :])
        keep = self._turns_to_keep(turns)
        fold = [m for turn in turns[: len(turns) - keep] for m in turn]
        if fold:
            self.summary = self._summarize(fold)
            self.folded += len(fold)
        return self._fit(self.compose(system, history[self.folded :], tools))

    def _fit(self, prompt: Prompt) -> Prompt:
        """``prompt`` itself when it fits ``window``; else the newest whole turns that fit beside the summary.

        Only this request is trimmed: the turns left out stay unfolded, so the next compaction
        still summarizes them. Raises :class:`ContextBudgetExceeded` when not even the newest turn fits.
        """
        if self.window is None or prompt.tokens <= self.window:
            return prompt
        kept = sliding_window(prompt.messages, self.window, system=prompt.system, tools=prompt.tools)
        return Prompt(prompt.system, kept, prompt.tools)

    def _turns_to_keep(self, turns: list[list[Message]]) -> int:
        kept, used = 1, sum(message_tokens(m) for m in turns[-1])
        for turn in reversed(turns[:-1]):
            cost = sum(message_tokens(m) for m in turn)
            if used + cost > self.keep_recent:
                break
            kept, used = kept + 1, used + cost
        return kept

    def _summarize(self, messages: Sequence[Message]) -> str:
        previous = self.summary or "(none yet)"
        request = f"{SUMMARIZE_INSTRUCTIONS}\n\nPrevious summary:\n{previous}\n\nNew turns:\n{transcript(messages)}"
        started = self.clock.monotonic()
        reply = self.client.messages.create(
            model=self.model, max_tokens=self.summary_max_tokens, messages=[{"role": "user", "content": request}]
        )
        self.side_calls.append(SideCall("summarize", self.model, reply.usage, self.clock.monotonic() - started))
        text = "".join(getattr(block, "text", "") for block in reply.content).strip()
        # An empty or useless reply must not erase what the old summary knew.
        return text or self.summary


class Hybrid(Summarizing):
    """A running summary of the old turns plus a verbatim window of the recent ones (the production default).

    ``keep_recent`` defaults to a quarter of the threshold: enough recent turns to keep the thread
    of the conversation, while leaving room to grow so compactions stay occasional.
    """

    name = "hybrid"

    def __init__(
        self, client: SyncClient, *, model: str, threshold: int, keep_recent: int | None = None, **kwargs: Any
    ) -> None:
        super().__init__(
            client,
            model=model,
            threshold=threshold,
            keep_recent=threshold // 4 if keep_recent is None else keep_recent,
            **kwargs,
        )


class CacheLayout:
    """Lay out another strategy's prompt for prompt caching.

    The stable prefix (tools, system prompt and summary) ends with a ``cache_control``
    breakpoint, so every turn reads it from the cache. With ``cache_tail`` a second breakpoint on
    the newest message lets the next turn also read the history up to here (the API looks back
    up to 20 blocks for the previous entry). Whatever changes every turn must come after the
    breakpoints, or nothing is ever read back.
    """

    def __init__(self, inner: ContextStrategy, *, cache_tail: bool = True, ttl: str | None = None) -> None:
        self.inner = inner
        self.cache_tail = cache_tail
        self.marker: dict[str, Any] = {"type": "ephemeral", **({"ttl": ttl} if ttl else {})}
        self.name = f"{inner.name} + cache"

    @property
    def side_calls(self) -> list[SideCall]:
        return self.inner.side_calls

    def reset(self) -> None:
        self.inner.reset()

    def build(self, system: Any, history: Sequence[Message], tools: list[dict[str, Any]] | None = None) -> Prompt:
        prompt = self.inner.build(system, history, tools)
        blocks = _system_blocks(prompt.system)
        if blocks:
            blocks[-1] = {**blocks[-1], "cache_control": dict(self.marker)}
        elif prompt.tools:
            prompt.tools = [*prompt.tools[:-1], {**prompt.tools[-1], "cache_control": dict(self.marker)}]
        messages = list(prompt.messages)
        if self.cache_tail and messages:
            messages[-1] = self._mark_last_block(messages[-1])
        return Prompt(blocks or prompt.system, messages, prompt.tools)

    def _mark_last_block(self, message: Mapping[str, Any]) -> dict[str, Any]:
        # A copy: the caller's history must not collect breakpoints turn after turn (max 4).
        content = message.get("content", "")
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else copy.deepcopy(list(content))
        if not blocks:
            return dict(message)
        blocks[-1] = {**blocks[-1], "cache_control": dict(self.marker)}
        return {**message, "content": blocks}


def compose_request(
    system: str, summary: str, messages: Sequence[Message], *, model: str, max_tokens: int
) -> dict[str, Any]:
    """A create body whose system prompt ends with the running ``summary`` (when there is one).

    The simple layout of exercise 1.3: one system string, the summary after the instructions.
    """
    text = f"{system}\n\n{SUMMARY_HEADER}{summary}" if summary else system
    return {"model": model, "max_tokens": max_tokens, "system": text, "messages": list(messages)}
