"""Lesson 08's help centre and its labelled questions, from ``data/`` (made by ``data/make_lesson08_kb.py``)."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Iterable

from .vectors import VectorIndex

__all__ = ["DATA_DIR", "articles", "questions", "load_help_centre", "tenant_names"]

DATA_DIR = Path(__file__).resolve().parents[2] / "data"


def _jsonl(name: str) -> list[dict]:
    return [json.loads(line) for line in (DATA_DIR / name).read_text(encoding="utf-8").splitlines() if line]


def articles(tenants: Iterable[str] | None = None) -> list[dict]:
    """The help-centre articles (``tenant, doc_id, topic, title, text``), of ``tenants`` only if given."""
    wanted = None if tenants is None else set(tenants)
    return [a for a in _jsonl("lesson08_kb.jsonl") if wanted is None or a["tenant"] in wanted]


def questions(*, hidden: bool = False) -> list[dict]:
    """The labelled questions (``tenant, question, doc_id``); ``hidden=True``: the graded held-out set."""
    return _jsonl("lesson08_questions_hidden.jsonl" if hidden else "lesson08_questions.jsonl")


def load_help_centre(index: VectorIndex, tenants: Iterable[str] | None = None) -> int:
    """Index every article (title and body) of ``tenants`` (all by default); returns how many."""
    by_tenant: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for a in articles(tenants):
        by_tenant[a["tenant"]].append((a["doc_id"], f"{a['title']}. {a['text']}"))
    return sum(index.add(tenant, docs) for tenant, docs in by_tenant.items())


def tenant_names(n: int) -> list[str]:
    """The first ``n`` tenants of the help centre, in the generator's order."""
    seen: list[str] = []
    for a in articles():
        if a["tenant"] not in seen:
            seen.append(a["tenant"])
    if not 1 <= n <= len(seen):
        raise ValueError(f"the help centre has {len(seen)} tenants; asked for {n}")
    return seen[:n]
