"""Summarization: an extractive summary that keeps the facts and drops the filler.

What is summarized: the text that follows the instruction in the last user turn when there is
one ("Summarize this: ..."), otherwise the conversation so far (earlier turns, or the system
prompt when there are none). The instruction may also be the system prompt, with the material in
the user turn(s) (``system="Summarize the conversation below..."``, the transcript as the user
message): a system prompt that *instructs* summarizing (a sentence starting with the verb, "Your
task is to summarize", "You are a summarizer") in its first sentence, or anywhere in a short
prompt, triggers it; one that merely *carries* a summary ("Summary of the earlier conversation:
...") or mentions summarizing deep in a long prompt does not. Sentences are scored for the facts they carry (first-person
statements such as "my order number is 4417", numbers, dates, codes, proper nouns, "Key: value"
lines); fact sentences are kept verbatim in their original order, greetings and acknowledgements
are dropped. The result stays under half the input and within ``max_tokens``, dropping the
lowest-scoring sentences first, so planted facts survive compaction. Incremental updates ("Here
is the previous summary: ... New turns: ...") work the same way: the old summary's fact lines
score like any other fact and are carried over.
"""

from __future__ import annotations

import re
from collections import Counter

from ...tokens import count_text
from .base import Reply, SkillContext, TextOut
from .text import content_words, earlier_turns, split_sentences, stem

__all__ = ["SummarizeSkill", "is_summary_request", "is_summary_instruction", "fact_score", "summarize_text"]

_TRIGGER = re.compile(
    r"\b(summari[sz]e|summari[sz]ing|summari[sz]ation|condense|tl;?dr|recap)\b"
    r"|\b(write|give|produce|create|make|provide|update|prepare|draft|generate)\b[^.?!\n]{0,30}\bsummary\b"
    r"|\bsummary of\b",
    re.I,
)
# Headings that introduce content inside an instruction ("Previous summary:", "New turns:").
_HEADING = re.compile(
    r"(?i)\b(?:here is|here's|below is|this is)?\s*(?:the\s+)?(?:previous|current|existing|old|running|prior|last)?\s*"
    r"(?:summary|new turns|new messages|conversation|transcript|text|document|article|notes|messages|history)"
    r"(?:\s+so far)?\s*:\s*"
)
_FILLER = re.compile(
    r"^(?:(?:user|assistant)\s*:\s*)?(?:hi|hello|hey|thanks|thank you|ok|okay|sure|great|noted|got it|understood|"
    r"sounds good|nice to meet you|you're welcome|no problem|of course|cool|perfect|good)\b[\s,.!]*\S{0,12}[.!]?$",
    re.I,
)
_MONTHS = r"jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec|january|february|march|april|june|july|august|september|october|november|december"
_DAYS = r"monday|tuesday|wednesday|thursday|friday|saturday|sunday|today|tomorrow|yesterday"


# A system prompt that instructs summarizing: the verb opens a sentence (optionally after "please",
# "your task is to", "you will"), or the model is cast as a summarizer.
_VERB = (
    r"(?:summari[sz]e|condense|recap|(?:write|give|produce|create|make|provide|update|prepare|draft|generate)"
    r"\b[^.?!\n]{0,30}\bsummary\b)"
)
_SYSTEM_TRIGGER = re.compile(
    r"(?:^|[.!?:]\s+|\n)\s*(?:please\s+)?(?:(?:your|the)\s+(?:only\s+|sole\s+)?(?:task|job|role|goal)\s+is\s+to\s+"
    r"|you\s+(?:will|must|should|shall)\s+|you\s+)?" + _VERB + r"\b"
    r"|\byou\s+are\s+(?:a|an)\s+[\w -]{0,40}?summari[sz](?:er|ation|ing)\b",
    re.I,
)


def is_summary_instruction(system: str) -> bool:
    """Whether a system prompt instructs the model to summarize (not merely contains a summary).

    The instruction must be the prompt's task: in its first sentence, or anywhere in a short
    prompt (at most 60 words). A long assistant prompt that mentions summarizing in passing
    ("Summarise the case for the agent in three lines" under its escalation rules) is not one.
    """
    sentences = split_sentences(system or "")
    if not sentences:
        return False
    if _SYSTEM_TRIGGER.search(sentences[0].strip()):
        return True
    return len((system or "").split()) <= 60 and bool(_SYSTEM_TRIGGER.search(system))


def is_summary_request(text: str) -> bool:
    """Whether ``text`` asks for a summary (summarize/summarise/condense/TL;DR/recap, 'write a summary')."""
    return bool(_TRIGGER.search(text or ""))


def fact_score(sentence: str) -> float:
    """How many key facts a sentence carries (0 for filler)."""
    s = sentence.strip()
    if not s or _FILLER.match(s):
        return 0.0
    score = 0.0
    if re.search(r"\b(?:my|the user's|your)\s+[\w -]{1,30}?\s+(?:is|was|are)\b", s, re.I):
        score += 3
    if re.search(
        r"\b(?:i|the user)\s+(?:live|work|am|'m|was born|moved|have|need|want|prefer|booked|ordered)\b|\bi'm\b|\bcall me\b",
        s,
        re.I,
    ):
        score += 2
    if re.search(r"\d", s):
        score += 2
    if re.search(rf"\b(?:{_MONTHS}|{_DAYS})\b", s, re.I):
        score += 1.5
    if re.search(r"\b[A-Z]{2,}[-_]?\d+\b|[\w.+-]+@[\w-]+\.\w+", s):
        score += 2
    if re.match(r"^\s*(?:[-*•]\s*)?[A-Za-z][\w ]{0,30}:\s*\S", s) and not re.match(
        r"(?i)^\s*(?:[-*•]\s*)?(?:user|assistant)\s*:", s
    ):
        score += 2
    tokens = s.split()
    proper = [
        w
        for i, w in enumerate(tokens)
        if i > 0 and re.match(r"^[A-Z][a-z]+", w) and w.lower().strip(".,!?") not in ("i",)
    ]
    score += min(len(proper), 3)
    return score


def _strip_instruction(sentence: str) -> str:
    """Remove an instruction from a sentence, keeping any content it introduces after a colon."""
    if _TRIGGER.search(sentence) or re.search(r"(?i)\b(keep all|preserve|include all)\b.*\bfacts?\b", sentence):
        if ":" in sentence:
            return sentence.rsplit(":", 1)[1].strip()
        return ""
    return _HEADING.sub("", sentence).strip()


def _sentences_of(text: str, role: str | None = None) -> list[str]:
    out = []
    for raw in split_sentences(_HEADING.sub("\n", text)):
        s = _strip_instruction(raw)
        s = re.sub(r"^[-*•]\s*", "", s).strip()
        if s and len(content_words(s)) >= 1:
            out.append(f"{role.title()}: {s}" if role and not re.match(r"(?i)(user|assistant)\s*:", s) else s)
    return out


def _frequency_scores(sentences: list[str]) -> list[float]:
    """Classic extractive fallback: sentences whose words are frequent in the text matter more."""
    freq = Counter(stem(w) for s in sentences for w in content_words(s))
    scores = []
    for s in sentences:
        ws = [stem(w) for w in content_words(s)]
        scores.append(sum(freq[w] for w in ws) / (len(ws) + 3) if ws else 0.0)
    return scores


def summarize_text(sentences: list[str], budget_tokens: int) -> str:
    """Pick sentences by fact score (then frequency) to fit ``budget_tokens``; keep their order."""
    seen, uniq = set(), []
    for s in sentences:
        key = re.sub(r"^(?:user|assistant)\s*:\s*", "", s.lower()).strip(" .!")
        if key not in seen:
            seen.add(key)
            uniq.append(s)
    facts = [fact_score(s) for s in uniq]
    freq = _frequency_scores(uniq)
    chosen = [i for i, f in enumerate(facts) if f >= 2]
    if not chosen:
        # No facts: a lead-style summary of the most central quarter of the sentences.
        k = max(1, min(5, len(uniq) // 4))
        chosen = sorted(range(len(uniq)), key=lambda i: (-freq[i], i))[:k]
    ranked = sorted(chosen, key=lambda i: (-facts[i], -freq[i], i))
    kept: list[int] = []
    used = count_text("Summary:\n")
    for i in ranked:
        cost = count_text(f"- {uniq[i]}\n")
        if used + cost <= budget_tokens:
            kept.append(i)
            used += cost
    if not kept and ranked:
        # Even one sentence is too long: keep the start of the most important one.
        first = uniq[ranked[0]].split()
        piece = ""
        for w in first:
            if count_text(f"Summary:\n- {piece} {w}") > budget_tokens:
                break
            piece = f"{piece} {w}".strip()
        return f"Summary:\n- {piece}" if piece else ""
    return "Summary:\n" + "\n".join(f"- {uniq[i]}" for i in sorted(kept))


class SummarizeSkill:
    """Summarizes the text after the instruction, or the conversation so far."""

    name = "summarize"

    def respond(self, ctx: SkillContext) -> Reply | None:
        """An extractive summary, or None when the last user turn does not ask for one."""
        req = ctx.request
        user = req.last_user_text
        if not is_summary_request(user):
            if is_summary_instruction(req.system_text):
                return self._summarize_messages(req)
            return None
        own = _sentences_of(user)
        if len(" ".join(own).split()) >= 15:
            sentences, source = own, " ".join(own)
        else:
            turns = earlier_turns(req)
            sentences = [s for role, text in turns for s in _sentences_of(text, role)] + own
            if not turns:
                sentences = _sentences_of(req.system_text) + own
            source = "\n".join(sentences)
        return self._reply(req, sentences, source)

    def _summarize_messages(self, req) -> Reply:
        """The instruction is in ``system``: summarize the material in the messages (all turns)."""
        turns = [*earlier_turns(req), ("user", req.last_user_text)]
        single = len([t for t in turns if t[1].strip()]) == 1
        # One user turn is a pasted document or transcript: its sentences as they are. Several
        # turns are a conversation: each sentence tagged with who said it.
        sentences = [s for role, text in turns for s in _sentences_of(text, None if single else role)]
        return self._reply(req, sentences, "\n".join(sentences))

    def _reply(self, req, sentences: list[str], source: str) -> Reply:
        if not sentences:
            return Reply(blocks=(TextOut("There is nothing to summarize yet."),), skill=self.name)
        input_tokens = count_text(source)
        budget = max(8, (req.max_tokens or 1024) - 2)
        if input_tokens >= 40:
            # A summary must be worth having: at most half of what it replaces.
            budget = min(budget, input_tokens // 2 - 1)
        return Reply(blocks=(TextOut(summarize_text(sentences, budget)),), skill=self.name)
