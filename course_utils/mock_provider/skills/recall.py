"""Recall: answer a question from what is in the context window, or admit the gap.

Questions about the user's own facts ("What is my name?", "Where do I live?") are answered from
facts stated anywhere the model can see: the system prompt and every earlier turn, including
summaries written by an earlier compaction step ("my X is Y", "I live in Y", "I'm Ada",
"call me Ada", "Name: Ada" lines, "The user's X is Y"). Later statements win, as corrections do.
When the fact is absent the answer contains "I don't have that information." so lessons can show
what a sliding window forgot. Other questions are answered with the most relevant context
sentence when the word overlap is strong; otherwise the skill declines and prose answers.
"""

from __future__ import annotations

import re

from ..request import MessagesRequest
from .base import Reply, SkillContext, TextOut
from .text import earlier_turns, split_sentences, stem, stems, strip_question_sentences

__all__ = ["RecallSkill", "NO_INFO", "extract_facts", "personal_key", "find_fact", "answer_question"]

NO_INFO = "I don't have that information."

# Equivalent words in fact keys ('favourite colour' == 'favorite color', 'order no' == 'order number').
_KEY_SYNONYMS = {
    "favorite": "favourite",
    "color": "colour",
    "no": "number",
    "num": "number",
    "#": "number",
    "id": "number",
    "home": "location",
    "city": "location",
    "town": "location",
    "live": "location",
    "lives": "location",
    "based": "location",
    "from": "location",
    "called": "name",
    "postcode": "zip",
    "postal": "zip",
    "mobile": "phone",
    "telephone": "phone",
    "cell": "phone",
    "e-mail": "email",
    "mail": "email",
    "occupation": "job",
    "profession": "job",
    "work": "job",
    "role": "job",
    "birthday": "birthday",
    "bday": "birthday",
    "appt": "appointment",
    "meeting": "appointment",
    "full": "",
}
# Words in a 'Key: value' line that mean it is a speaker tag or heading, not a fact.
_NOT_KEYS = {
    "user",
    "assistant",
    "human",
    "ai",
    "system",
    "summary",
    "note",
    "notes",
    "question",
    "answer",
    "previous summary",
    "new turns",
    "conversation",
    "context",
    "q",
    "a",
    "example",
    "instructions",
    "turn",
    "task",
    "important",
    "update",
}

_VALUE_END = r"(?=\s*(?:[.!?;\n](?:\s|$)|,(?!\s*\d)|\s+(?:and|but|so|because|which)\s+(?:my|i|i'm|the|your|he|she|it|we)\b|\s*$))"
_MY = re.compile(
    r"\b(?:my|the user's|user's|your)\s+((?:[a-z][\w-]*\s+){0,3}?[a-z][\w-]*)\s+(?:is|was|are|=)\s+(.+?)" + _VALUE_END,
    re.I,
)
_LIVE = re.compile(
    r"\b(?:[Ii]|[Tt]he user|[Yy]ou)\s+(?:live|lives|am based|is based|are based|am from|is from|are from|moved to|reside)\s+"
    r"(?:in\s+)?([A-Z][\w'-]*(?:[ ,]+[A-Z][\w'-]*){0,3})"
)
_NAME = re.compile(
    r"\b(?:I'm|I am|call me|this is|name's|the user is|you are)\s+([A-Z][a-z][\w'-]*(?:\s+[A-Z][a-z][\w'-]*)?)"
)
_JOB = re.compile(r"\b(?:I|the user)\s+(?:work|works)\s+as\s+(?:an?\s+)?([\w -]+?)" + _VALUE_END, re.I)
_CALLED = re.compile(r"\bmy\s+([a-z][\w-]*)(?:'s name is|\s+is\s+(?:called|named))\s+([A-Z][\w'-]*)", re.I)
_COLON = re.compile(r"^\s*(?:[-*•]\s*)?([A-Za-z][A-Za-z' ]{0,30}?)\s*:\s*(\S.*?)\s*$", re.M)
_NOT_NAMES = {"Sorry", "Not", "Just", "Here", "Happy", "Glad", "Fine", "Good", "Back", "Sure", "Ready", "Done"}


def _norm_key(key: str) -> tuple[str, ...]:
    """A comparable form of a fact key: content words mapped through the synonym table."""
    out = []
    for w in re.findall(r"[a-z0-9#-]+", key.lower()):
        w = _KEY_SYNONYMS.get(w, w)
        if w and w not in ("the", "a", "an", "of", "my", "your", "user's"):
            out.append(stem(w))
    return tuple(out)


def extract_facts(text: str) -> list[tuple[tuple[str, ...], str, str]]:
    """Facts stated in ``text`` as (normalised key, display key, value), in order of appearance."""
    found: list[tuple[int, tuple[str, ...], str, str]] = []
    for m in _MY.finditer(text):
        key, value = m.group(1).strip(), m.group(2).strip().strip("\"'")
        if key.lower() in ("name",):
            nm = re.match(r"([A-Z][\w'-]*(?:\s+[A-Z][\w'-]*)?)", value)
            if not nm:
                continue
            value = nm.group(1)
        found.append((m.start(), _norm_key(key), key.lower(), value))
    for m in _CALLED.finditer(text):
        # "my dog is called Rex" / "my dog's name is Rex": the dog's name is the fact.
        found.append((m.start() + 1, _norm_key(m.group(1)), f"{m.group(1).lower()}'s name", m.group(2)))
    for m in _LIVE.finditer(text):
        found.append((m.start(), _norm_key("location"), "location", m.group(1).strip(" ,")))
    for m in _NAME.finditer(text):
        if m.group(1).split()[0] not in _NOT_NAMES:
            found.append((m.start(), _norm_key("name"), "name", m.group(1)))
    for m in _JOB.finditer(text):
        found.append((m.start(), _norm_key("job"), "job", m.group(1).strip()))
    for m in _COLON.finditer(text):
        key = m.group(1).strip()
        if key.lower() in _NOT_KEYS or len(key.split()) > 4:
            continue
        value = m.group(2).strip().rstrip(".")
        if len(value) > 80:
            continue
        found.append((m.start(), _norm_key(key), key.lower(), value))
    found.sort(key=lambda f: f[0])
    return [(k, d, v) for _, k, d, v in found if k and v]


_PERSONAL = [
    # (pattern over the question, fact key it asks for; None = take the captured key)
    (re.compile(r"\bwho am i\b|\bwhat(?:'s| is| was)? my name\b|\bwhat am i called\b|\bmy name\b", re.I), "name"),
    (
        re.compile(
            r"\bwhere (?:do |did )?i (?:live|stay|reside)\b|\bwhere am i (?:from|based)\b|\bwhere i(?:'m| am) (?:from|based)\b"
            r"|\bwhere (?:do|did) i come from\b|\b(?:city|town|country|place)\b[^?]*\bi\s+(?:live|am from|am based)\b",
            re.I,
        ),
        "location",
    ),
    (re.compile(r"\bmy\s+([\w-]+)'s\s+name\b", re.I), None),
    (re.compile(r"\bwhat (?:do i do|is my job)\b|\bwhere do i work\b", re.I), "job"),
    (re.compile(r"\bmy\s+((?:[\w-]+\s+){0,2}?[\w-]+)\s*(?:was|is|were|are)?\s*(?:again)?\s*[?.!]?\s*$", re.I), None),
    (
        re.compile(
            r"\b(?:what|what's|whats|which|when|where|who|how many|how much)\b[^?]*?\bmy\s+((?:[\w-]+\s+){0,2}?[\w-]+?)\s*(?:again\s*)?(?:\bwas\b|\bis\b|\bwere\b|\?|$)",
            re.I,
        ),
        None,
    ),
    (
        re.compile(r"\b(?:remember|recall|know)\s+my\s+((?:[\w-]+\s+){0,2}?[\w-]+?)\s*(?:\?|$|\bis\b|\bwas\b)", re.I),
        None,
    ),
]


def personal_key(question: str) -> str | None:
    """The fact a question asks about the user ('name', 'order number', ...), or None."""
    q = question.strip()
    if not (q.endswith("?") or re.match(r"(?i)(what|who|where|when|which|do you|tell me|remind me)\b", q)):
        return None
    for pattern, key in _PERSONAL:
        m = pattern.search(q)
        if m:
            if key:
                return key
            captured = m.group(1).strip().lower()
            # Long captures ("best option for caching my data") are not a personal fact.
            if 0 < len(captured.split()) <= 3 and not re.search(r"\b(i|me|should|could|can|do)\b", captured):
                return captured
    return None


def find_fact(key: str, context: str) -> tuple[str, str] | None:
    """The latest (display key, value) in ``context`` matching ``key``, or None."""
    want = _norm_key(key)
    if not want:
        return None
    best = None
    for norm, display, value in extract_facts(context):
        common = set(want) & set(norm)
        # 'colour' matches 'favourite colour'; 'order number' matches 'order number'.
        if common and (set(want) <= set(norm) or set(norm) <= set(want)):
            best = (display, value)
    return best


def _context(req: MessagesRequest) -> str:
    """What the model can see besides the question: system prompt, earlier turns, statements in the question turn."""
    parts = [req.system_text, *(text for _, text in earlier_turns(req)), strip_question_sentences(req.last_user_text)]
    return "\n".join(p for p in parts if p)


def _phrase(display: str, value: str) -> str:
    if display == "name":
        return f"Your name is {value}."
    if display == "location":
        return f"You live in {value}."
    if display == "job":
        return f"You work as {value}."
    key = re.sub(r"^(?:my|your)\s+", "", display)
    return f"Your {key} is {value}."


def answer_question(req: MessagesRequest) -> str | None:
    """The recall answer for the request's last question, or None when it is not a recall question."""
    question = _last_question(req.last_user_text)
    if not question:
        return None
    context = _context(req)
    key = personal_key(question)
    if key:
        fact = find_fact(key, context)
        if fact:
            return _phrase(*fact)
        sentence = _best_sentence(key, context, user_only=True)
        if sentence:
            return f'You mentioned: "{sentence}"'
        return f"{NO_INFO} You haven't told me your {key} in this conversation."
    sentence = _best_sentence(question, context)
    return _to_second_person(sentence) if sentence else None


_SWAPS = [
    (r"\bI am\b", "you are"),
    (r"\bI'm\b", "you're"),
    (r"\bI've\b", "you've"),
    (r"\bI\b", "you"),
    (r"\bmy\b", "your"),
    (r"\bme\b", "you"),
    (r"\bmine\b", "yours"),
]


def _to_second_person(sentence: str) -> str:
    """Say a user's own sentence back to them ('My order is late' -> 'Your order is late')."""
    out = sentence
    for pattern, repl in _SWAPS:
        out = re.sub(pattern, repl, out, flags=re.I)
    return out[:1].upper() + out[1:]


def _last_question(text: str) -> str:
    sentences = split_sentences(text)
    for s in reversed(sentences):
        if s.endswith("?") or re.match(r"(?i)(what|who|where|when|which|how|do you|tell me my|remind me)\b", s):
            return s
    return ""


_PERSONA = re.compile(
    r"^(?:you are|you're|you will|always|never|answer|respond|reply|be |act as|your role|do not|don't)", re.I
)


def _values(text: str) -> set[str]:
    """Numbers and amounts in ``text`` ('3', '$49', '4.5')."""
    return set(re.findall(r"\d+(?:[.,]\d+)*", text))


def _best_sentence(question: str, context: str, user_only: bool = False) -> str | None:
    """The context sentence sharing the most content words with ``question``, if the overlap is strong."""
    q = stems(question) - {"remember", "recall", "say", "said", "tell", "told", "mention"}
    if not q:
        return None
    best, best_score = None, 0.0
    for sentence in split_sentences(context):
        if sentence.endswith("?") or _PERSONA.match(sentence):
            continue
        s = stems(sentence)
        shared = len(q & s)
        # An answer must add something the question does not already say: a new word or a value
        # (stems drop numbers, and "The seat limit is 3 seats." answers "What is the seat limit?").
        if not (s - q) and not (_values(sentence) - _values(question)):
            continue
        # A personal key ('dog') must appear whole; a general question needs half its words.
        needed = len(q) if user_only else max(2, (len(q) + 1) // 2)
        if shared >= needed and shared / len(q) > best_score:
            best, best_score = sentence, shared / len(q)
    if best is None:
        return None
    return re.sub(r"^(?:[-*•]\s*)?(?:user|assistant)\s*:\s*", "", best, flags=re.I)


class RecallSkill:
    """Answers questions from facts and sentences in the context window."""

    name = "recall"

    def respond(self, ctx: SkillContext) -> Reply | None:
        """A fact-based answer, an honest "I don't have that information.", or None (not a recall question)."""
        answer = answer_question(ctx.request)
        if answer is None:
            return None
        return Reply(blocks=(TextOut(answer),), skill=self.name)
