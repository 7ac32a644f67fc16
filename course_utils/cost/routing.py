"""Model routing for classification: ask the cheap model first, escalate when it is unsure.

The confidence signal is *agreement*: the cheap model answers the same item under ``votes``
different phrasings of the instruction; if every answer is a valid label and they all agree, that
label stands, otherwise the item goes to the strong model. A reply that is not exactly one of the
labels (a refusal, a sentence) fails validation and also escalates.

Why agreement: a model's mistakes on an ambiguous item change with the wording, while its answers
on a clear item do not, so disagreement marks the hard items that the strong model is worth
paying for. The simulator draws each phrasing's answer independently; a real model's mistakes
are more correlated across phrasings, so measure the escalation rate on your own traffic before
trusting the simulator's figures (the lesson's "Against the real API" cell).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Iterable, Protocol, Sequence

import numpy as np
import pandas as pd

from ..clock import SYSTEM_CLOCK, Clock
from ..concurrency.workload import LABEL_MAX_TOKENS
from ..content import text_of
from ..pricing import cost

__all__ = [
    "PHRASINGS",
    "label_request",
    "parse_label",
    "Routed",
    "Classifier",
    "SingleModel",
    "CascadeRouter",
    "evaluate",
    "pareto_front",
]

PHRASINGS: tuple[str, ...] = (
    "Classify this support ticket as one of: {labels}. Answer with the label only.\nTicket: {text}",
    "Pick the category that fits this customer message best, one of: {labels}. Reply with just the label.\n"
    "Message: {text}",
    "Triage: choose one of: {labels}. Output only the label.\nRequest: {text}",
)
"""Instructions that ask the same question in different words (one per vote)."""


def label_request(
    text: str, labels: Sequence[str], *, model: str, phrasing: int = 0, max_tokens: int = LABEL_MAX_TOKENS
) -> dict[str, Any]:
    """The Messages body asking ``model`` for exactly one of ``labels`` for ``text`` (phrasing ``phrasing``);
    ``max_tokens`` leaves room for the thinking the 5.x models do by default (:data:`LABEL_MAX_TOKENS`)."""
    if not labels:
        raise ValueError("label_request needs at least one label")
    prompt = PHRASINGS[phrasing % len(PHRASINGS)].format(labels=", ".join(labels), text=text)
    return {"model": model, "max_tokens": max_tokens, "messages": [{"role": "user", "content": prompt}]}


def parse_label(message: Any, labels: Sequence[str]) -> str | None:
    """The label a reply gave if its text is exactly one of ``labels`` (case and a final period ignored), else None."""
    answer = text_of(message).strip().strip(".").strip().lower()
    wanted = {label.lower(): label for label in labels}
    return wanted.get(answer)


@dataclass
class Routed:
    """One routed answer: the label (None if no model gave a valid one), the models called, the cost and
    the output tokens billed (thinking included)."""

    label: str | None
    calls: list[str] = field(default_factory=list)
    cost: Decimal = Decimal(0)
    output_tokens: int = 0

    @property
    def escalated(self) -> bool:
        return len(set(self.calls)) > 1


class Classifier(Protocol):
    """Anything with ``await classify(client, text) -> Routed``."""

    name: str

    async def classify(self, client: Any, text: str) -> Routed: ...


class SingleModel:
    """Always one model, one call: the baselines of the Pareto plot. ``effort`` sets ``output_config.effort``
    (None: the model's default), and names the policy ``"<model> @<effort>"``."""

    def __init__(self, model: str, labels: Sequence[str], *, effort: str | None = None) -> None:
        self.model, self.labels, self.effort = model, tuple(labels), effort
        self.name = model if effort is None else f"{model} @{effort}"

    async def classify(self, client: Any, text: str) -> Routed:
        body = label_request(text, self.labels, model=self.model)
        if self.effort is not None:
            body["output_config"] = {"effort": self.effort}
        message = await client.messages.create(**body)
        return Routed(
            parse_label(message, self.labels),
            [self.model],
            cost(message.usage, self.model),
            message.usage.output_tokens,
        )


class CascadeRouter:
    """``votes`` phrasings on ``cheap`` (concurrently); unanimous valid answers stand, else one call to ``strong``."""

    def __init__(self, cheap: str, strong: str, labels: Sequence[str], *, votes: int = 2) -> None:
        if not 1 <= votes <= len(PHRASINGS):
            raise ValueError(f"votes must be between 1 and {len(PHRASINGS)}, got {votes}")
        self.cheap, self.strong, self.labels, self.votes = cheap, strong, tuple(labels), votes
        self.name = f"{cheap} x{votes} -> {strong}"

    async def classify(self, client: Any, text: str) -> Routed:
        bodies = [label_request(text, self.labels, model=self.cheap, phrasing=i) for i in range(self.votes)]
        replies = await asyncio.gather(*(client.messages.create(**b) for b in bodies))
        routed = Routed(
            None,
            [self.cheap] * self.votes,
            sum((cost(r.usage, self.cheap) for r in replies), Decimal(0)),
            sum(r.usage.output_tokens for r in replies),
        )
        answers = {parse_label(r, self.labels) for r in replies}
        if len(answers) == 1 and None not in answers:
            routed.label = answers.pop()
            return routed
        message = await client.messages.create(**label_request(text, self.labels, model=self.strong))
        routed.calls.append(self.strong)
        routed.cost += cost(message.usage, self.strong)
        routed.output_tokens += message.usage.output_tokens
        routed.label = parse_label(message, self.labels)
        return routed


async def evaluate(
    classifier: Classifier, client: Any, items: pd.DataFrame, *, concurrency: int = 32, clock: Clock = SYSTEM_CLOCK
) -> dict[str, Any]:
    """Accuracy, total cost (Decimal), cost per item, escalation rate, calls and output tokens per item, and the
    p50/p95 seconds an item takes once it starts (``clock``: virtual under ``on_virtual_time``), of
    ``classifier`` on ``items`` (text, label)."""
    if items.empty:
        raise ValueError("evaluate needs at least one labelled item")
    gate = asyncio.Semaphore(concurrency)
    seconds: list[float] = []

    async def one(text: str) -> Routed:
        async with gate:
            started = clock.monotonic()
            result = await classifier.classify(client, text)
            seconds.append(clock.monotonic() - started)
            return result

    routed = await asyncio.gather(*(one(t) for t in items["text"]))
    correct = [r.label == truth for r, truth in zip(routed, items["label"])]
    total = sum((r.cost for r in routed), Decimal(0))
    return {
        "policy": classifier.name,
        "accuracy": float(np.mean(correct)),
        "cost": total,
        "cost_per_1k": float(total / len(routed) * 1000),
        "escalation_rate": float(np.mean([r.escalated for r in routed])),
        "calls_per_item": float(np.mean([len(r.calls) for r in routed])),
        "output_per_item": float(np.mean([r.output_tokens for r in routed])),
        "p50_s": float(np.percentile(seconds, 50)),
        "p95_s": float(np.percentile(seconds, 95)),
    }


def pareto_front(points: Iterable[tuple[float, float]]) -> list[bool]:
    """For each (cost, accuracy) point: True if no other point is at least as cheap and as accurate, and better in one."""
    pts = list(points)
    return [
        not any((c2 <= c and a2 >= a) and (c2 < c or a2 > a) for j, (c2, a2) in enumerate(pts) if j != i)
        for i, (c, a) in enumerate(pts)
    ]
