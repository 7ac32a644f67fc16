"""Values for the keys of a JSON reply, taken from the request's content (labels, facts, sentiment, prose)."""

from __future__ import annotations

import re
from typing import Any

from .base import SkillContext
from .classify import choose_label, find_labels, true_label
from .prose import compose
from .recall import NO_INFO, answer_question, extract_facts
from .text import STOPWORDS, content_words, split_sentences

__all__ = ["JsonValues"]

# fmt: off
_SENT_POS = {"love", "great", "excellent", "amazing", "good", "happy", "fantastic", "wonderful", "best", "perfect", "awesome"}
# fmt: on


class JsonValues:
    """Fills a value per key from the content, with classification where labels make sense."""

    def __init__(self, ctx: SkillContext, content: str, prompt: str) -> None:
        self.ctx, self.content, self.prompt = ctx, content, prompt
        self.labels, _ = find_labels(prompt)

    def for_key(self, key: str, example: Any = None) -> Any:
        k = key.lower()
        if isinstance(example, dict):
            return {sk: self.for_key(sk, sv) for sk, sv in example.items()}
        if isinstance(example, list):
            inner = example[0] if example else None
            if isinstance(inner, dict):
                return [self.for_key(k, inner)]
            return self._list(k, inner)
        if isinstance(example, bool):
            return self._bool(k)
        if isinstance(example, (int, float)):
            v = self._number(k)
            return int(v) if isinstance(example, int) else float(v)
        if "sentiment" in k or k in ("tone", "mood", "polarity"):
            return self._label(["positive", "negative", "neutral"])
        if k in ("label", "category", "class", "classification", "intent", "topic", "department", "type", "priority"):
            return (
                self._label(self.labels)
                if self.labels
                else self._label(["billing", "technical", "account", "shipping", "general"])
            )
        if k in ("summary", "description", "abstract", "tldr", "gist", "synopsis", "overview"):
            return self._summary()
        if k in ("title", "headline", "subject"):
            return " ".join(w.capitalize() for w in content_words(self.content)[:5]) or "Untitled"
        if k in ("keywords", "tags", "topics", "entities", "key_points", "items", "list"):
            return self._list(k, None)
        if k.startswith(("is_", "has_", "needs_", "requires_")) or k in (
            "urgent",
            "valid",
            "spam",
            "resolved",
            "escalate",
        ):
            return self._bool(k)
        if k in ("confidence", "score", "probability", "certainty"):
            return round(0.6 + 0.39 * self.ctx.rng.random(), 2)
        if k in (
            "count",
            "number",
            "amount",
            "total",
            "price",
            "quantity",
            "age",
            "year",
            "rating",
            "order_number",
            "id",
            "days",
        ):
            return self._number(k)
        if "email" in k:
            m = re.search(r"[\w.+-]+@[\w-]+\.[\w.-]+", self.content)
            return m.group().rstrip(".") if m else None
        if "date" in k or k in ("when", "time", "deadline"):
            m = re.search(
                r"\b\d{4}-\d{2}-\d{2}\b|\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.? \d{1,2}(?:, \d{4})?",
                self.content,
                re.I,
            )
            return m.group() if m else None
        if k in ("language", "lang"):
            return "en"
        fact = self._fact(k)
        if fact is not None:
            return fact
        if k in ("name", "person", "customer", "author", "full_name", "company", "organization", "city", "location"):
            proper = re.search(r"\b[A-Z][a-z]+(?:\s+[A-Z][a-z]+)*", self.content)
            return proper.group() if proper else None
        if k in ("answer", "response", "result", "text", "output", "reply", "reason", "reasoning", "explanation"):
            return self._answer()
        return self._summary() if not example else str(example)

    def _answer(self) -> str:
        """A one-sentence answer: a relevant context sentence if recall finds one, else brief prose."""
        found = answer_question(self.ctx.request)
        if found and NO_INFO not in found:
            return found
        return compose(self.ctx, f"In one sentence: {self.content}")

    def _label(self, labels: list[str]) -> str:
        return choose_label(self.ctx, self.content, labels)

    def _summary(self) -> str:
        first = split_sentences(self.content)
        text = first[0] if first else self.content
        ws = text.split()
        return " ".join(ws[:25]) + ("..." if len(ws) > 25 else "")

    def _list(self, key: str, example: Any) -> list[Any]:
        if key in ("entities",):
            found = re.findall(r"\b[A-Z][a-z]+(?:\s+[A-Z][a-z]+)*", self.content)
            return list(dict.fromkeys(found))[:5]
        if isinstance(example, (int, float)) and not isinstance(example, bool):
            return [float(n) if "." in n else int(n) for n in re.findall(r"-?\d+(?:\.\d+)?", self.content)][:5]
        kws = [w for w in content_words(self.content) if w not in STOPWORDS and len(w) > 3]
        return list(dict.fromkeys(kws))[:5]

    def _bool(self, key: str) -> bool:
        bare = re.sub(r"^(is|has|needs|requires)_", "", key)
        if bare in ("urgent", "escalate"):
            return bool(re.search(r"\b(urgent|asap|immediately|critical|down|outage)\b", self.content, re.I))
        if bare == "spam":
            return true_label(self.content, ["spam", "ham"])[0] == "spam"
        if bare in ("positive",):
            return bool(set(content_words(self.content)) & _SENT_POS)
        return bare.replace("_", " ") in self.content.lower()

    def _number(self, key: str) -> float | int:
        nums = re.findall(r"-?\d+(?:\.\d+)?", self.content)
        if nums:
            n = nums[0]
            return float(n) if "." in n else int(n)
        return 0

    def _fact(self, key: str) -> str | None:
        want = key.replace("_", " ")
        for norm, display, value in reversed(extract_facts(self.content)):
            if display == want or want in display:
                return value
        return None
