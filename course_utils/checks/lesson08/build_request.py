"""Checks for exercise 8.2 ``build_request``: the tenant's k nearest articles and the newest turns, in one budget."""

from __future__ import annotations

import itertools
from typing import Any

from ...architecture.help_centre import questions
from ...architecture.store import DeskStore
from ...architecture.vectors import VectorIndex
from ...context import request_tokens, sliding_window
from ..framework import CaseFailed, Exercise, expect, expect_equal
from .common import FILLER, REFERENCES, articles_in, desk_store, help_centre_index


# =============================================================================================
# 8.2 build_request(store, index, tenant, conversation_id, upto, *, budget, k) -> {"system", "messages"}
# =============================================================================================
request = Exercise(
    "8.2",
    "The model request: the tenant's k nearest articles and the newest turns, within one token budget",
    points=3,
    signature="build_request(store, index, tenant, conversation_id, upto, *, budget, k) -> "
    '{"system": str, "messages": list[dict]}',
    reference=REFERENCES,
    task="build the request (retrieval and history) yourself",
    hints=[
        "Two queries, each with the tenant in it: the KNN query of the vector index (`AND tenant = ?` inside it, "
        "so it returns k of the tenant's articles, never fewer) and the conversation's history up to `upto` "
        "(store.history). The articles go into the system prompt; the budget is for the whole request, so count "
        "the system prompt before you keep turns (lesson 01: sliding_window(..., system=system)).",
        "question = store.message(tenant, upto).content; rows = index.db.execute('SELECT text FROM docs WHERE "
        "embedding MATCH ? AND k = ? AND tenant = ? ORDER BY distance', (embed_one(question).tobytes(), k, "
        "tenant)).fetchall(); system = 'Answer from these articles:\\n\\n' + '\\n\\n'.join(r[0] for r in rows); "
        "messages = sliding_window(store.history(tenant, conversation_id, upto=upto), budget, system=system).",
    ],
)


def _request(fn: Any, store: DeskStore, tenant: str, budget: int, k: int, upto: str | None = None) -> dict:
    got = fn(store, help_centre_index(), tenant, "c1", upto or f"{tenant}-now", budget=budget, k=k)
    if (
        not isinstance(got, dict)
        or not isinstance(got.get("system"), str)
        or not isinstance(got.get("messages"), list)
        or not all(isinstance(m, dict) for m in got["messages"])
    ):
        raise CaseFailed(
            "build_request must return a dict with 'system' (a string) and 'messages' (a list of API messages)",
            expected='{"system": "...", "messages": [{"role": ..., "content": ...}, ...]}',
            got=type(got).__name__ if not isinstance(got, dict) else {k: type(v).__name__ for k, v in got.items()},
            hint="Return {'system': system, 'messages': messages}: what client.messages.create(**request) takes.",
        )
    return got


def _tokens(got: dict) -> int:
    return request_tokens({"system": got["system"], "messages": got["messages"]})


@request.case("only the tenant's own messages and articles, the history ending with `upto`")
def _request_tenant(fn) -> None:
    store = desk_store()
    for tenant in ("acme", "globex"):
        got = _request(fn, store, tenant, 100_000, 3)
        other = next(t for t in FILLER if t != tenant)
        leaked = [m for m in got["messages"] if FILLER[other] in str(m.get("content"))]
        expect(
            not leaked,
            f"the request of tenant {tenant!r} contains {len(leaked)} messages of tenant {other!r} "
            "(same conversation id)",
            expected=f"{tenant}'s messages only",
            got=leaked[:2],
            hint="Every query filters on the tenant: conversation ids are chosen by tenants and collide.",
        )
        _, foreign = articles_in(got["system"], tenant)
        expect(
            not foreign,
            f"the system prompt of tenant {tenant!r} carries other tenants' articles {foreign[:3]}",
            expected=f"only {tenant}/... articles",
            got=foreign[:3],
            hint="Put the tenant in the KNN query (AND tenant = ?): another company's help centre must never "
            "reach the prompt.",
        )
        expect_equal(
            got["messages"],
            store.history(tenant, "c1", upto=f"{tenant}-now"),
            f"with a budget that fits everything, the messages of tenant {tenant!r}",
            hint="Every answered turn in order, then the message `upto` (store.history(..., upto=upto)).",
        )


@request.case("the system prompt carries the text of exactly the tenant's k nearest articles (k = 1, 3, 5)")
def _request_articles(fn) -> None:
    sample = questions(hidden=True)[::40]
    store = DeskStore()
    for i, q in enumerate(sample):
        store.add_message(q["tenant"], "c1", "user", q["question"], message_id=f"q{i}")
    for i, (q, k) in enumerate(zip(sample, itertools.cycle((1, 3, 5)))):
        got = _request(fn, store, q["tenant"], 100_000, k, upto=f"q{i}")
        own, foreign = articles_in(got["system"], q["tenant"])
        expect(
            not foreign,
            f"for tenant {q['tenant']!r} the system prompt carries other tenants' articles {foreign[:3]}",
            expected=f"only {q['tenant']}/... articles",
            got=foreign[:3],
            hint="Every query needs the tenant filter: another company's help centre must never reach the prompt.",
        )
        expect(
            len(own) == k,
            f"the system prompt carries {len(own)} of the tenant's articles for k={k}, although {q['tenant']!r} "
            "has 12" + (": the tenant filter ran after the top-k" if len(own) < k else ""),
            expected=f"{k} articles (their docs.text)",
            got=own,
            hint="Pass k to the KNN query (AND k = ?) and filter inside it (AND tenant = ?), not on its results; "
            "put each article's docs.text in the system prompt verbatim.",
        )
        nearest = [h.doc_id for h in VectorIndex.search(help_centre_index(), q["tenant"], q["question"], k)]
        expect(
            sorted(own) == sorted(nearest),
            f"for k={k}, the system prompt carries {sorted(own)}, not the tenant's {k} nearest articles to "
            f"{q['question']!r}",
            expected=sorted(nearest),
            got=sorted(own),
            hint="Rank by the embedding distance of the question (embed_one of the text of `upto`).",
        )


@request.case("the whole request (system prompt and messages) within the budget: the newest whole turns that fit")
def _request_budget(fn) -> None:
    store = desk_store()
    full = store.history("acme", "c1", upto="acme-now")
    system = _request(fn, store, "acme", 100_000, 3)["system"]
    # Every boundary: the budget that keeps exactly j newest turns, and one token less (j - 1 turns).
    needs = [
        request_tokens({"system": system, "messages": full[len(full) - 1 - 2 * j :]}) for j in range(len(full) // 2 + 1)
    ]
    for budget in sorted({b for need in needs for b in (need, need - 1)} - {needs[0] - 1}):
        got = _request(fn, store, "acme", budget, 3)
        used = _tokens(got)
        without = request_tokens({"messages": got["messages"]})
        expect(
            used <= budget,
            f"the request needs {used} input tokens, over the budget of {budget}"
            + (" (its messages alone fit: the system prompt counts too)" if without <= budget else ""),
            expected=f"<= {budget} tokens",
            got=used,
            hint="The budget is for the whole request: count the system prompt with the history "
            "(sliding_window(messages, budget, system=system), or request_tokens of the whole body).",
        )
        expect_equal(
            got["messages"],
            sliding_window(full, budget, system=got["system"]),
            f"with a budget of {budget} tokens",
            hint="Keep the newest whole turns, as many as fit: an over-budget history is cut from the oldest "
            "end, a turn (user + assistant) at a time, and the new message always stays last.",
        )


@request.case("when not even the system prompt and the new message fit: no older turn is sent")
def _request_nothing_fits(fn) -> None:
    store = desk_store()
    newest = store.history("acme", "c1", upto="acme-now")[-1:]
    system = _request(fn, store, "acme", 100_000, 3)["system"]
    alone = request_tokens({"system": system, "messages": newest})
    try:
        got = fn(store, help_centre_index(), "acme", "c1", "acme-now", budget=alone - 1, k=3)
    except (CaseFailed, NotImplementedError):
        raise
    except Exception:  # noqa: BLE001 - the library's reading: ContextBudgetExceeded
        return
    messages = got.get("messages") if isinstance(got, dict) else got
    expect(
        messages in ([], newest),
        f"with a budget of {alone - 1} tokens, one less than the system prompt and the new message alone, "
        f"build_request sent {len(messages) if isinstance(messages, list) else messages!r} messages",
        expected="an exception (ContextBudgetExceeded), or messages [] or the new message alone",
        got=messages if not isinstance(messages, list) else f"{len(messages)} messages",
        hint="Nothing fits, so no older turn may be sent: raise (sliding_window raises ContextBudgetExceeded), "
        "or send no older turn.",
    )
