"""Prose: the fallback. Fluent, deterministic, on-topic filler whose length follows the prompt.

Length is a token target: about 90 tokens by default (a little more for longer questions),
~25 for "in one sentence", ~45 for "briefly", ~100 per requested paragraph, ~300 for "in
detail", ~650 for an essay ("long essay" ~900), scaled by the model's ``verbosity`` with ±10%
jitter from ``ctx.rng``. The text is never cut here (the generation stage applies
``max_tokens``), but it is capped near ``2 * max_tokens`` so work stays bounded.
"""

from __future__ import annotations

import re

from ...tokens import count_text
from .base import Reply, SkillContext, TextOut
from .text import STOPWORDS, words

__all__ = ["ProseSkill", "target_tokens", "topic_of", "compose"]

_INSTRUCTION_WORDS = {
    "write",
    "explain",
    "describe",
    "essay",
    "paragraph",
    "paragraphs",
    "sentence",
    "sentences",
    "briefly",
    "brief",
    "detail",
    "detailed",
    "short",
    "long",
    "please",
    "summary",
    "give",
    "show",
    "discuss",
    "article",
    "words",
    "quick",
    "quickly",
    "answer",
    "question",
    "something",
    "thing",
    "things",
    "way",
    "ways",
    "depth",
    "concise",
    "thorough",
    "comprehensive",
    "overview",
    "simple",
    "simply",
    "terms",
    "few",
    "lot",
    "much",
    "many",
    "now",
    "today",
    "using",
    "use",
    "mean",
    "means",
    "say",
    "think",
    "help",
    "can",
}
_NUMBER_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "a": 1, "an": 1, "single": 1}


def _count(word: str) -> int:
    return int(word) if word.isdigit() else _NUMBER_WORDS.get(word.lower(), 1)


def target_tokens(prompt: str, verbosity: float = 1.0) -> int:
    """How long an answer to ``prompt`` should be, in tokens, before jitter."""
    p = prompt.lower()
    n_words = len(p.split())
    if m := re.search(r"\b(\d+)\s+words?\b", p):
        base = int(m.group(1)) * 1.3
    elif m := re.search(r"\b(one|two|three|four|five|six|a|an|single|\d+)\s+sentences?\b", p):
        base = 25 * _count(m.group(1))
    elif m := re.search(r"\b(one|two|three|four|five|six|a|an|single|\d+)\s+paragraphs?\b", p):
        base = 100 * _count(m.group(1))
    elif re.search(r"\blong (?:essay|article|report|story)\b", p):
        base = 900
    elif re.search(r"\b(essay|article|report|story|blog post|chapter)\b", p):
        base = 650
    elif re.search(r"\b(in detail|detailed|in depth|in-depth|thorough|comprehensive|step by step|elaborate)\b", p):
        base = 300
    elif re.search(r"\b(one-liner|one liner|tl;?dr)\b", p):
        base = 25
    elif re.search(r"\b(briefly|brief|short|quick|quickly|concise|in a nutshell)\b", p):
        base = 45
    else:
        # Longer questions get longer answers, within a typical 60-160 token band.
        base = 70 + min(n_words, 30) * 3
    return max(8, int(base * verbosity))


def topic_of(prompt: str) -> str:
    """A short topic phrase from the prompt: the longest run of meaningful words, preferring one after 'about'."""
    tokens = re.findall(r"[A-Za-z0-9][A-Za-z0-9'+#.-]*", prompt)
    runs, current = [], []
    for t in tokens:
        low = t.lower().strip(".")
        if low in STOPWORDS or low in _INSTRUCTION_WORDS or low in _NUMBER_WORDS or len(low) < 2:
            if current:
                runs.append(current)
            current = []
        else:
            current.append(t.strip("."))
    if current:
        runs.append(current)
    if not runs:
        return "this topic"
    after = re.search(
        r"(?i)\b(?:about|on|regarding|of|explain|describe|is|are)\s+(?:the\s+|a\s+|an\s+)?([A-Za-z0-9][\w'+#-]*)",
        prompt,
    )
    if after:
        for run in runs:
            if run[0].lower() == after.group(1).lower():
                return " ".join(run[:4])
    return " ".join(max(runs, key=len)[:4])


_OPENERS = [
    "It is worth understanding {topic} well, because small decisions about it add up quickly in production.",
    "Here is how I would think about {topic}.",
    "Good question: decisions about {topic} come up in almost every system that has to run reliably at scale.",
    "At its core, working with {topic} is about making trade-offs explicit rather than leaving them to chance.",
    "It is easiest to reason about {topic} once you separate what must happen from what is merely convenient.",
]
_BODY = [
    "The first step is to measure what you have today, so that any change can be compared against a baseline.",
    "A common mistake is to optimise for the average case while the tail of the distribution causes most of the pain.",
    "In practice, an approach to {topic} works best when the rules are simple enough that everyone on the team can apply them consistently.",
    "It helps to write down the failure modes you expect, and then check which ones your current design actually handles.",
    "Costs tend to hide in the details, so it is worth logging the numbers that matter, such as {kw} and latency, for every request.",
    "When you look at {kw} closely, the trade-off is usually between simplicity now and flexibility later.",
    "Teams that succeed with {topic} usually start small, verify the behaviour under load, and only then generalise.",
    "Another consideration is how the approach degrades: a good design fails gracefully instead of all at once.",
    "Clear limits, sensible defaults and good observability make {topic} much easier to operate.",
    "If you are unsure, prefer the option that is easier to reverse, because you will learn more once it is running.",
    "The details of {kw} matter less than having a feedback loop that tells you quickly when something goes wrong.",
    "Documentation matters too: the next engineer should be able to see why the approach to {topic} was set up the way it was.",
    "It is also worth testing the edge cases explicitly, since anything involving {kw} rarely behaves the same way at the boundaries.",
    "Automation pays off here, as manual steps around {topic} are where inconsistencies creep in.",
    "Finally, revisit the decision periodically, because the right answer for {kw} changes as usage grows.",
    "A useful rule of thumb is to make the common path fast and the rare path correct.",
    "Keep the interfaces narrow, so that changes to {kw} do not ripple through the rest of the system.",
    "Security and privacy deserve attention early, since retrofitting them around {topic} is always harder.",
    "Simple dashboards showing {kw} over time often reveal problems long before users report them.",
    "Budgets and alerts turn surprises into routine events that the team can handle calmly.",
]
_CLOSERS = [
    "In short, treat {topic} as an engineering problem with measurable outcomes, and iterate from there.",
    "Start with the simplest version that works, measure it, and improve {topic} step by step.",
    "With those pieces in place, {topic} becomes a predictable part of the system rather than a source of surprises.",
]
_GREETINGS = [
    "Hello! How can I help you today?",
    "Hi there! What would you like to work on?",
    "Yes, I'm here. What can I do for you?",
]


def _fill(template: str, topic: str, kw: str) -> str:
    return template.format(topic=topic, Topic=topic[:1].upper() + topic[1:], kw=kw)


def compose(ctx: SkillContext, prompt: str) -> str:
    """Deterministic prose about ``prompt``'s topic, sized by :func:`target_tokens`."""
    rng = ctx.rng
    target = target_tokens(prompt, ctx.model.verbosity) * rng.uniform(0.9, 1.1)
    if ctx.request.max_tokens:
        target = min(target, 2 * ctx.request.max_tokens)
    topic = topic_of(prompt)
    keywords = [w for w in words(prompt) if w not in STOPWORDS and w not in _INSTRUCTION_WORDS and len(w) > 2] or [
        "the details"
    ]
    if target < 20:
        return _fill(rng.choice(_OPENERS), topic, keywords[0])
    sentences = [_fill(rng.choice(_OPENERS), topic, rng.choice(keywords))]
    body = list(_BODY)
    rng.shuffle(body)
    closer = _fill(rng.choice(_CLOSERS), topic, rng.choice(keywords))
    used = count_text(sentences[0]) + count_text(closer)
    i = 0
    while used < target:
        if i and i % len(body) == 0:
            rng.shuffle(body)
        s = _fill(body[i % len(body)], topic, rng.choice(keywords))
        sentences.append(s)
        used += count_text(s) + 1
        i += 1
    sentences.append(closer)
    # Paragraphs of four to six sentences read like a real answer and give streams some structure.
    paragraphs, current = [], []
    size = rng.randint(4, 6)
    for s in sentences:
        current.append(s)
        if len(current) >= size:
            paragraphs.append(" ".join(current))
            current, size = [], rng.randint(4, 6)
    if current:
        paragraphs.append(" ".join(current))
    return "\n\n".join(paragraphs)


class ProseSkill:
    """The fallback skill: always answers."""

    name = "prose"

    def respond(self, ctx: SkillContext) -> Reply:
        """Prose about the last user turn (a greeting gets a greeting)."""
        prompt = ctx.request.last_user_text or ctx.request.system_text
        if re.fullmatch(
            r"(?i)\s*(hi|hello|hey|good (morning|afternoon|evening)|are you there|ping)[\s!.?,]*(are you there[?!.]*)?\s*",
            prompt.replace("\n", " "),
        ):
            return Reply(blocks=(TextOut(ctx.rng.choice(_GREETINGS)),), skill=self.name)
        return Reply(blocks=(TextOut(compose(ctx, prompt)),), skill=self.name)
