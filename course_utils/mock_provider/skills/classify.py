"""Classification: answer exactly one of the labels the prompt lists, as well as the model can.

Ground truth comes from :func:`true_label`: each label is scored by the item's overlap with the
label's own words (weight 2) and a small built-in synonym map (weight 1); the best score wins.

Difficulty, in [0, 1], measures how clearly the text signals that label::

    clarity    = (top - runner_up) / (top + 0.5)
    difficulty = 1 - clarity            # no signal at all (or a tie) = 1.0

The simulated model answers the true label with probability::

    p = clamp(1 - (1 - quality) * (0.25 + 1.5 * difficulty), 0.0, 0.995)

so an item of average difficulty (0.5) is labelled correctly with probability ``quality`` (the
catalog's definition), easy items are right for every model (difficulty 0.1: Haiku 5.5 ~91%,
Opus 5.5 ~98%) and hard items separate the tiers (difficulty 1.0: Haiku 5.5 ~62%, Sonnet 5.5
~83%, Opus 5.5 ~93%). On a mixed set the accuracies land near Haiku ~78%, Sonnet ~90%, Opus
~96%. Otherwise the model gives the runner-up label: a plausible mistake, not a random one.
"""

from __future__ import annotations

import re
from typing import Sequence

from .base import Reply, SkillContext, TextOut
from .text import content_words, split_sentences, stem, words

__all__ = [
    "ClassifySkill",
    "SYNONYMS",
    "true_label",
    "label_scores",
    "p_correct",
    "choose_label",
    "find_labels",
    "item_text",
]

# Words that signal common support, sentiment, priority and topic labels (stemmed on use).
# fmt: off
SYNONYMS: dict[str, set[str]] = {
    "billing": {"invoice", "charge", "charged", "refund", "payment", "pay", "card", "bill", "billed", "price",
                "subscription", "fee", "money", "credit", "debit", "receipt", "overcharged", "plan", "cost"},
    "bug": {"error", "crash", "crashes", "broken", "fails", "failure", "bug", "exception", "freeze", "glitch",
            "stack", "trace", "500", "timeout", "doesn't", "working", "not", "issue", "defect", "hang"},
    "technical": {"error", "crash", "broken", "fails", "api", "server", "install", "configure", "setup",
                  "integration", "timeout", "latency", "bug", "code", "sdk", "exception"},
    "account": {"login", "log", "password", "sign", "signin", "username", "profile", "locked", "reset",
                "email", "2fa", "authentication", "access", "register", "delete", "account"},
    "shipping": {"delivery", "deliver", "package", "parcel", "tracking", "shipped", "courier", "arrive",
                 "arrived", "late", "lost", "address", "ship", "shipment", "dispatch", "order"},
    "refund": {"refund", "money", "back", "return", "reimburse", "chargeback"},
    "cancellation": {"cancel", "cancellation", "terminate", "unsubscribe", "close", "stop"},
    "feature": {"feature", "request", "add", "wish", "suggest", "suggestion", "would", "support", "idea",
                "roadmap", "improvement", "option"},
    "sales": {"pricing", "quote", "demo", "enterprise", "buy", "purchase", "discount", "licence", "license",
              "seats", "trial", "upgrade"},
    "positive": {"love", "great", "excellent", "amazing", "good", "happy", "fantastic", "wonderful", "best",
                 "perfect", "awesome", "recommend", "pleased", "delighted", "satisfied", "enjoy", "thanks"},
    "negative": {"hate", "terrible", "awful", "bad", "worst", "poor", "disappointed", "angry", "broken",
                 "useless", "horrible", "waste", "annoying", "frustrated", "slow", "refund", "never"},
    "neutral": {"okay", "ok", "average", "fine", "received", "arrived", "standard", "normal", "expected",
                "neither", "mixed", "adequate", "unremarkable"},
    "spam": {"winner", "won", "prize", "free", "click", "offer", "lottery", "viagra", "crypto", "urgent",
             "claim", "limited", "act", "now", "guaranteed", "cash", "bitcoin", "unsubscribe"},
    "ham": {"meeting", "lunch", "project", "report", "tomorrow", "attached", "thanks", "regards", "team"},
    "urgent": {"urgent", "asap", "immediately", "critical", "emergency", "down", "outage", "production",
               "now", "blocker", "severe", "sev1", "p0", "escalate"},
    "low": {"whenever", "minor", "cosmetic", "someday", "curious", "question", "wondering", "typo", "small"},
    "sports": {"game", "match", "team", "score", "league", "player", "goal", "season", "coach", "win",
               "football", "soccer", "tennis", "basketball", "olympic"},
    "politics": {"election", "government", "vote", "senate", "policy", "minister", "president", "parliament",
                 "campaign", "law", "congress"},
    "technology": {"software", "ai", "computer", "app", "chip", "startup", "internet", "smartphone", "cloud",
                   "data", "model", "robot", "tech"},
    "business": {"market", "stock", "company", "revenue", "profit", "earnings", "ceo", "merger", "shares",
                 "investor", "quarter", "economy"},
    "science": {"research", "study", "scientists", "space", "physics", "biology", "experiment", "discovery",
                "climate", "nasa", "species"},
    "health": {"doctor", "hospital", "disease", "vaccine", "patient", "medicine", "health", "symptoms",
               "treatment", "diet"},
    "entertainment": {"movie", "film", "music", "album", "actor", "celebrity", "show", "concert", "tv",
                      "series", "festival"},
    "question": {"how", "what", "why", "can", "where", "question", "wondering"},
    "complaint": {"complaint", "unacceptable", "disappointed", "angry", "terrible", "worst", "poor"},
}
# fmt: on
# Labels that are aliases of a synonym-map entry.
_ALIASES = {
    "tech": "technical",
    "technical_support": "technical",
    "support": "technical",
    "it": "technical",
    "payments": "billing",
    "payment": "billing",
    "invoice": "billing",
    "finance": "business",
    "login": "account",
    "accounts": "account",
    "delivery": "shipping",
    "logistics": "shipping",
    "feature_request": "feature",
    "feature request": "feature",
    "enhancement": "feature",
    "pos": "positive",
    "neg": "negative",
    "not_spam": "ham",
    "not spam": "ham",
    "legitimate": "ham",
    "high": "urgent",
    "critical": "urgent",
    "urgent_priority": "urgent",
    "not_urgent": "low",
    "not urgent": "low",
    "normal": "low",
    "tech_news": "technology",
    "sport": "sports",
    "cancel": "cancellation",
    "defect": "bug",
    "bug_report": "bug",
    "bug report": "bug",
}
# Catch-all labels win only when nothing else is signalled.
_FALLBACK_LABELS = {"other", "general", "misc", "miscellaneous", "none", "unknown", "neutral", "ham", "low"}
_NEGATORS = {"not", "never", "no", "isn't", "wasn't", "don't", "didn't", "doesn't", "hardly"}


def _vocab(label: str) -> tuple[set[str], set[str]]:
    """(stems of the label's own words, stems of its synonyms)."""
    norm = label.strip().lower()
    own = {stem(w) for w in re.split(r"[^a-z0-9']+", norm) if w}
    keys = {norm, norm.replace(" ", "_"), *re.split(r"[^a-z0-9']+", norm)}
    syn: set[str] = set()
    for k in keys:
        entry = SYNONYMS.get(_ALIASES.get(k, k))
        if entry:
            syn |= {stem(w) for w in entry}
    return own, syn - own


def _item_stems(text: str) -> list[str]:
    """Stems of the item's words; a sentiment word after a negator counts for the other polarity."""
    out: list[str] = []
    ws = words(text)
    pos, neg = {stem(w) for w in SYNONYMS["positive"]}, {stem(w) for w in SYNONYMS["negative"]}
    for i, w in enumerate(ws):
        s = stem(w)
        negated = any(x in _NEGATORS for x in ws[max(0, i - 2) : i])
        if negated and s in pos:
            out.append("bad")
        elif negated and s in neg:
            out.append("okay")
        else:
            out.append(s)
    return out


def label_scores(text: str, labels: Sequence[str]) -> list[float]:
    """Score of each label for ``text``: 2 per own-word hit, 1 per synonym hit (+0.25 for catch-alls)."""
    item = set(_item_stems(text))
    scores = []
    for label in labels:
        own, syn = _vocab(label)
        score = 2.0 * len(item & own) + 1.0 * len(item & syn)
        if label.strip().lower() in _FALLBACK_LABELS or _ALIASES.get(label.strip().lower()) in _FALLBACK_LABELS:
            score += 0.25
        scores.append(score)
    return scores


def _ranked(text: str, labels: Sequence[str]) -> list[tuple[float, int]]:
    scores = label_scores(text, labels)
    # Ties keep the listed order, so ground truth is stable.
    return sorted(((s, i) for i, s in enumerate(scores)), key=lambda x: (-x[0], x[1]))


def true_label(text: str, labels: Sequence[str]) -> tuple[str, float]:
    """The correct label for ``text`` and the item's difficulty in [0, 1] (see module docstring)."""
    if not labels:
        raise ValueError("true_label needs at least one label")
    ranked = _ranked(text, labels)
    top, i = ranked[0]
    second = ranked[1][0] if len(ranked) > 1 else 0.0
    clarity = (top - second) / (top + 0.5)
    return labels[i], round(min(1.0, max(0.0, 1.0 - clarity)), 4)


def p_correct(quality: float, difficulty: float) -> float:
    """Probability that a model of ``quality`` labels an item of ``difficulty`` correctly."""
    return min(0.995, max(0.0, 1.0 - (1.0 - quality) * (0.25 + 1.5 * difficulty)))


def choose_label(ctx: SkillContext, text: str, labels: Sequence[str]) -> str:
    """The label the simulated model answers: the true one with :func:`p_correct`, else the runner-up."""
    truth, difficulty = true_label(text, labels)
    if len(labels) == 1 or ctx.rng.random() < p_correct(ctx.model.quality, difficulty):
        return truth
    ranked = _ranked(text, labels)
    return labels[ranked[1][1]]


# ---------------------------------------------------------------------------------------------
# Finding the label set and the item in a prompt.

_LIST_HEAD = r"(?:labels?|categories|category|classes|class|options|choices|tags|intents?|one of)"
_INLINE = re.compile(rf"\b{_LIST_HEAD}\b\s*(?:\([^)]*\))?\s*[:=-]?\s*", re.I)
_BRACKET = re.compile(r"[\[(]\s*([\w' -]+(?:\s*\|\s*[\w' -]+)+)\s*[\])]")
_AS = re.compile(r"\b(?:as|into|between|either)\s+", re.I)
_BULLET = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+(.+?)\s*$")
_INTENT = re.compile(
    r"\b(classify|classif\w*|categori[sz]e|categor\w*|labels?|one of|tag|triage|sentiment|pick|choose|select)\b", re.I
)


def _clean_label(raw: str) -> str:
    s = raw.strip().strip("`'\"*").strip()
    # "billing (payments, invoices)" / "billing - money matters": the label is the head.
    s = re.split(r"\s+[-–:(]\s*|\s*\(", s)[0]
    return s.strip().strip("`'\"*.").strip()


def _label_segment(rest: str) -> str:
    """The label list at the start of ``rest``: up to the end of its sentence."""
    return re.split(r"(?<=[A-Za-z0-9'\"`])[.;?!:](?:\s|$)", rest)[0]


def _split_labels(seg: str) -> list[str]:
    seg = _label_segment(seg)
    parts = re.split(r"\s*(?:,|/|\||\bor\b|\band\b)\s*", seg)
    return [_clean_label(p) for p in parts if _clean_label(p)]


def _valid(labels: list[str]) -> bool:
    if len(labels) < 2 or len(labels) > 20:
        return False
    # "is this, one of" is prose, not a label set: every label needs a meaningful word.
    return all(len(l) <= 40 and len(l.split()) <= 4 and content_words(l) for l in labels)


def find_labels(text: str) -> tuple[list[str], list[tuple[int, int]]]:
    """Labels listed in ``text`` and the character spans they occupy ([] when none are listed)."""
    for m in _BRACKET.finditer(text):
        labels = [_clean_label(p) for p in m.group(1).split("|")]
        if _valid(labels):
            return labels, [m.span()]
    lines = text.splitlines(keepends=True)
    offset = 0
    for n, line in enumerate(lines):
        for m in [*_INLINE.finditer(line), *_AS.finditer(line)]:
            rest = line[m.end() :].strip()
            labels = _split_labels(rest) if rest else []
            if _valid(labels):
                # The span ends with the list, so an item on the same line survives.
                end = m.end() + len(_label_segment(rest))
                return labels, [(offset + m.start(), offset + end)]
            if not rest or rest.endswith(":"):
                # A heading followed by a bulleted list of labels.
                bullets, end = [], offset + len(line)
                for nxt in lines[n + 1 :]:
                    b = _BULLET.match(nxt)
                    if not b:
                        if nxt.strip():
                            break
                        end += len(nxt)
                        continue
                    bullets.append(_clean_label(b.group(1)))
                    end += len(nxt)
                if _valid(bullets):
                    return bullets, [(offset + m.start(), end)]
        offset += len(line)
    return [], []


_ITEM_HEAD = re.compile(
    r"\b(?:text|ticket|review|message|item|input|email|query|comment|feedback|tweet|headline|article|sentence|"
    r"request|complaint|customer message)\s*:\s*",
    re.I,
)


def item_text(text: str, spans: list[tuple[int, int]]) -> str:
    """The thing to classify: ``text`` without the label list and the instruction sentences."""
    m = None
    for m in _ITEM_HEAD.finditer(text):
        pass
    if m is not None and not any(a <= m.start() < b for a, b in spans):
        rest = text[m.end() :]
        for a, b in spans:
            if a >= m.end():
                rest = text[m.end() : a]
                break
        if rest.strip():
            return rest.strip().strip('"')
    kept, pos = [], 0
    for a, b in sorted(spans):
        kept.append(text[pos:a])
        pos = b
    kept.append(text[pos:])
    remainder = "".join(kept)
    body = []
    for s in split_sentences(remainder):
        if re.search(r"\b(answer|respond|reply|output|return)\b.*\b(only|just|single|exactly)\b", s, re.I):
            continue
        if _INTENT.search(s):
            # "Classify this review: I love it" - the item follows the colon.
            if ":" in s and s.split(":")[-1].strip():
                body.append(s.split(":")[-1].strip())
            continue
        body.append(s)
    return " ".join(body).strip() or remainder.strip()


class ClassifySkill:
    """Answers one of the labels listed in the prompt (last user turn first, then the system prompt)."""

    name = "classify"

    def respond(self, ctx: SkillContext) -> Reply | None:
        """Exactly one label (chosen by :func:`choose_label`), or None when no label set is listed."""
        user = ctx.request.last_user_text
        system = ctx.request.system_text
        if not (_INTENT.search(user) or _INTENT.search(system)):
            return None
        labels, spans = find_labels(user)
        if labels:
            item = item_text(user, spans)
        else:
            labels, _ = find_labels(system)
            if not labels or not _INTENT.search(system):
                return None
            # The system prompt holds the instructions; the whole user turn is the item.
            item = user
        return Reply(blocks=(TextOut(choose_label(ctx, item, labels)),), skill=self.name)
