"""Checks for lesson 06 (Cost optimization).

6.1 ``cost_by_feature`` (a cost report from a ledger slice), 6.2 ``cache_key`` (the exact-cache
key), 6.3 ``compress`` (context into a token budget), 6.4 ``route`` (cheap first, escalate; graded
on a hidden labelled set through the simulator's ledger), 6.5 ``SpendGuard`` (reserve, then settle;
50 concurrent requests on virtual time, graded through the ledger).
"""

from __future__ import annotations

import asyncio
import re
import copy
import inspect
import random
from collections import OrderedDict
from decimal import Decimal
from functools import lru_cache
from typing import Any

import pandas as pd

from .. import pricing
from ..cost import attribution, exact_cache, routing, spend_guard
from ..cost import compression as compress_mod
from ..models import DATA_DIR
from ..tokens import count_text
from .forbid import forbid
from .framework import CaseFailed, Exercise, expect
from .sim import probe

CHEAP, MID = "claude-haiku-5-5", "claude-sonnet-5-5"


async def _await(value: Any, what: str) -> Any:
    if not inspect.isawaitable(value):
        raise CaseFailed(
            f"{what} returned {type(value).__name__}, not a coroutine",
            hint="Define it with `async def` and await the client calls inside.",
        )
    return await value


# =============================================================================================
# 6.1 cost_by_feature(rows) -> dict[str, Decimal]
# =============================================================================================
report = Exercise(
    "6.1",
    "A cost report from a ledger slice",
    points=3,
    signature="cost_by_feature(rows) -> dict[str, Decimal]",
    hints=[
        "Per row: p = pricing.price(row['model']); input at p.input_per_mtok, cache_read_input_tokens at "
        "p.cache_read_per_mtok, cache_creation_5m at p.cache_write_5m_per_mtok, cache_creation_1h at "
        "p.cache_write_1h_per_mtok, output at p.output_per_mtok; all / Decimal(1_000_000); times p.batch_discount "
        "when row['batch'] is true. Sum per row['feature'].",
        "Keep every step in Decimal (rates are Decimal, counts int) and do not round: return the exact sums.",
    ],
)

_COST_SHORTCUTS = {
    "pricing.cost": pricing.cost,
    "pricing.cost_breakdown": pricing.cost_breakdown,
    "cost.row_cost": attribution.row_cost,
    "cost.cost_frame": attribution.cost_frame,
    "cost.cost_report": attribution.cost_report,
}
_COST_HINT = (
    "This exercise asks you to price each token class yourself with pricing.price(model); {name} does it for you."
)


def _row(feature: str, model: str, batch: bool = False, **tokens: int) -> dict[str, Any]:
    base = dict.fromkeys(attribution.LEDGER_COLUMNS[4:], 0)
    return {"ts": "2027-01-15T10:00:00Z", "feature": feature, "model": model, "batch": batch, **base, **tokens}


def _reference_report(rows: list[dict]) -> dict[str, Decimal]:
    out: dict[str, Decimal] = {}
    for r in rows:
        out[r["feature"]] = out.get(r["feature"], Decimal(0)) + attribution.row_cost(r)
    return out


def _run_report(fn: Any, rows: list[dict], what: str) -> dict:
    given = copy.deepcopy(rows)
    with forbid(fn, _COST_SHORTCUTS, task="price the ledger", hint=_COST_HINT):
        got = fn(given)
    if given != rows:
        raise CaseFailed(
            f"{what}: your function changed the rows it was given",
            expected="the ledger rows left as they were",
            got="changed rows",
            hint="Read the counts into local variables; the ledger is a record, not scratch space.",
        )
    if not isinstance(got, dict):
        raise CaseFailed(
            f"{what}: not a dict",
            expected="{feature: Decimal}",
            got=type(got).__name__,
            hint="Return a dict mapping each feature to its Decimal total.",
        )
    return got


def _compare_report(got: dict, expected: dict, what: str, hint: str) -> None:
    for feature, value in got.items():
        if not isinstance(value, Decimal):
            raise CaseFailed(
                f"{what}: the cost of {feature!r} is a {type(value).__name__}, not a Decimal",
                expected=expected.get(feature),
                got=value,
                hint="Money is Decimal end to end: pricing.price() rates are Decimal; multiply them by int counts.",
            )
    if set(got) != set(expected):
        raise CaseFailed(
            f"{what}: wrong features",
            expected=sorted(expected),
            got=sorted(got),
            hint="One entry per row['feature'] that appears in the rows, no other.",
        )
    for feature, want in expected.items():
        have = got[feature]
        if have != want:
            cause = hint
            if have == want.quantize(Decimal("0.0001")) or have == want.quantize(Decimal("0.01")):
                cause = "Your total is rounded; return it exactly and round only for display."
            elif abs(have - want) <= abs(want) * Decimal("1e-9"):
                cause = (
                    "Your total is off in its last digits: a step went through a float (float(rate), / 1e6, "
                    "Decimal(a_float)). Keep every step in Decimal and divide by Decimal(1_000_000)."
                )
            raise CaseFailed(f"{what}: the cost of {feature!r} is wrong", expected=want, got=have, hint=cause)


@report.case("uncached input and output, per feature, exact to the last digit")
def _plain_rows(fn) -> None:
    rows = [
        _row("chat", MID, input_tokens=1_234, output_tokens=567),
        _row("faq", CHEAP, input_tokens=3, output_tokens=1),
    ]
    rows += [_row("faq", CHEAP, input_tokens=7, output_tokens=3) for _ in range(999)]
    expected = _reference_report(rows)
    _compare_report(
        _run_report(fn, rows, "plain rows"), expected, "plain rows", "Price input and output at their rates."
    )


@report.case("cache reads at the read rate, 5-minute writes at 1.25x, 1-hour writes at 2x")
def _cache_rows(fn) -> None:
    rows = [
        _row("chat", MID, input_tokens=100, cache_read_input_tokens=20_000, output_tokens=200),
        _row("docs", "claude-haiku-4-5", cache_creation_5m=10_000, output_tokens=50),
        _row("docs", "claude-haiku-4-5", cache_creation_1h=10_000, output_tokens=50),
        _row("docs", "claude-haiku-4-5", input_tokens=10, cache_read_input_tokens=10_000, output_tokens=50),
    ]
    expected = _reference_report(rows)
    _compare_report(
        _run_report(fn, rows, "rows with cache reads and writes"),
        expected,
        "rows with cache reads and writes",
        "Cache tokens are not input tokens: reads cost p.cache_read_per_mtok (0.1x input on Haiku 4.5), 5-minute "
        "writes p.cache_write_5m_per_mtok (1.25x) and 1-hour writes p.cache_write_1h_per_mtok (2x).",
    )


@report.case("batch rows at the batch discount (every token class)")
def _batch_rows(fn) -> None:
    rows = [
        _row("summaries", MID, batch=True, input_tokens=2_600, output_tokens=300),
        _row("summaries", MID, batch=True, input_tokens=50, cache_creation_1h=5_000, cache_read_input_tokens=9_000),
        _row("chat", MID, batch=False, input_tokens=2_600, output_tokens=300),
    ]
    expected = _reference_report(rows)
    _compare_report(
        _run_report(fn, rows, "batch rows"),
        expected,
        "batch rows",
        "Message Batches bill every token class at p.batch_discount (0.5) of the standard price: multiply the "
        "whole row's cost when row['batch'] is true.",
    )


@report.case("200 random rows across models, cache classes and batch flags (seeded) match the reference")
def _random_rows(fn) -> None:
    rng = random.Random(61)
    models = [CHEAP, MID, "claude-opus-5-5", "claude-haiku-4-5", "claude-sonnet-4-6"]
    rows = []
    for _ in range(200):
        counts = {
            k: rng.choice([0, 0, rng.randint(1, 50_000)])
            for k in ("input_tokens", "cache_creation_5m", "cache_creation_1h", "cache_read_input_tokens")
        }
        counts["output_tokens"] = rng.randint(0, 4_000)
        rows.append(_row(rng.choice(["chat", "faq", "summaries"]), rng.choice(models), rng.random() < 0.3, **counts))
    _compare_report(
        _run_report(fn, rows, "random rows"),
        _reference_report(rows),
        "random rows",
        "Check each token class against its own rate on every model (read the rates from pricing.price(model); "
        "Opus 5.5 reads cost 0.05x input, not 0.1x), the long-prompt tier per row (each row is one request: "
        "never sum rows before the threshold test) and the batch discount on batch rows.",
    )


@report.case("the long-prompt tier: a Haiku 5.5 prompt over 100,000 tokens pays 5x on every token class")
def _long_prompt_rows(fn) -> None:
    threshold = pricing.price(CHEAP).long_prompt_threshold or 100_000
    rows = [
        _row("research", CHEAP, input_tokens=threshold + 1, output_tokens=2_000),  # just over: the tier
        _row("research", CHEAP, input_tokens=threshold, output_tokens=2_000),  # exactly at it: not over
        _row("digest", CHEAP, input_tokens=40_000, cache_read_input_tokens=70_000, output_tokens=500),  # reads count
        _row("digest", CHEAP, batch=True, cache_creation_1h=60_000, cache_creation_5m=50_000, output_tokens=100),
        _row("digest", MID, input_tokens=150_000, output_tokens=100),  # a model without the tier
    ]
    _compare_report(
        _run_report(fn, rows, "long prompts"),
        _reference_report(rows),
        "long prompts",
        "Above p.long_prompt_threshold prompt tokens (input + cache reads + both cache writes; strictly above) the "
        "whole request, output included, costs p.long_prompt_multiplier times more; models whose threshold is None "
        "have no such tier.",
    )


@report.case("an empty slice is an empty report")
def _empty(fn) -> None:
    got = _run_report(fn, [], "an empty slice")
    expect(
        got == {},
        "an empty slice gave a non-empty report",
        expected={},
        got=got,
        hint="No rows, no features: start from an empty dict and add only features that appear.",
    )


# =============================================================================================
# 6.2 cache_key(body, api_key) -> str
# =============================================================================================
key = Exercise(
    "6.2",
    "The exact-cache key",
    points=3,
    signature="cache_key(body, api_key) -> str",
    hints=[
        "Hash a canonical serialisation of the body: json.dumps(body, sort_keys=True, separators=(',', ':')), "
        "then hashlib.sha256(...).hexdigest(). Leave the api_key out.",
        "Every field that can change the answer goes in (model, system, messages, tools, sampling parameters, "
        "max_tokens); dict order must not matter, so never use str(dict).",
    ],
)

_BODY = {
    "model": CHEAP,
    "max_tokens": 300,
    "system": "You answer billing questions.",
    "messages": [{"role": "user", "content": "How do I get a refund?"}],
    "temperature": 0.2,
    "stop_sequences": ["###"],
    "tools": [{"name": "lookup_order", "description": "Find an order", "input_schema": {"type": "object"}}],
}


def _key(fn: Any, body: dict, api_key: str, what: str) -> str:
    given = copy.deepcopy(body)
    with forbid(fn, {"cost.cache_key": exact_cache.cache_key},
                task="build the key", hint="Write the key function yourself; {name} is the reference."):  # fmt: skip
        got = fn(given, api_key)
    if given != body:
        raise CaseFailed(
            f"{what}: your function changed the body",
            expected="the body as given",
            got="changed",
            hint="Build the key from a copy or a serialisation; never add, pop or reorder the caller's fields.",
        )
    if not isinstance(got, str) or not got:
        raise CaseFailed(
            f"{what}: the key is not a non-empty str",
            expected="a str such as a hex digest",
            got=got,
            hint="Return a string, e.g. hashlib.sha256(canonical.encode()).hexdigest().",
        )
    return got


@key.case("the same request gives the same key, whatever the dict order")
def _order(fn) -> None:
    a = _key(fn, _BODY, "sk-ant-1", "the body")
    shuffled = OrderedDict(reversed(list(_BODY.items())))
    shuffled["messages"] = [dict(reversed(list(m.items()))) for m in _BODY["messages"]]
    b = _key(fn, dict(shuffled), "sk-ant-1", "the same body in another key order")
    expect(
        a == b,
        "the same request with its fields in another order got another key",
        expected=a,
        got=b,
        hint="str(dict) and json.dumps(dict) follow insertion order; json.dumps(..., sort_keys=True) does not.",
    )


@key.case("the API key is not part of the key (nor in it)")
def _api_key(fn) -> None:
    a = _key(fn, _BODY, "sk-ant-api03-first", "the body with one API key")
    b = _key(fn, _BODY, "sk-ant-api03-rotated", "the same body with a rotated API key")
    expect(
        a == b and "sk-ant" not in a,
        "the key changes with the API key" if a != b else "the key contains the API key",
        expected=a,
        got=b if a != b else a,
        hint="Keys rotate and a secret must not be stored in a cache table: leave api_key out of the key "
        "(separate tenants with an explicit namespace instead).",
    )


@key.case("everything that changes the answer changes the key: model, max_tokens, system, messages, tools, sampling")
def _fields(fn) -> None:
    base = _key(fn, _BODY, "sk-ant-1", "the body")
    for field, value in [
        ("model", MID),
        ("max_tokens", 301),
        ("system", "You answer shipping questions."),
        ("messages", [{"role": "user", "content": "How do I get a refund for order 2?"}]),
        ("tools", []),
        ("temperature", 0.9),
        ("stop_sequences", ["END"]),
    ]:
        other = _key(fn, {**_BODY, field: value}, "sk-ant-1", f"the body with another {field}")
        expect(
            other != base,
            f"two requests that differ only in {field} got the same key",
            expected="different keys",
            got=f"both {base[:16]}...",
            hint=f"{field} changes the answer (another model, another length, another question), so it must be "
            "part of the key; otherwise the cache serves one request's answer to another.",
        )


@key.case("the order of a list matters (messages, tools); the order of nested dict keys does not")
def _lists_and_nesting(fn) -> None:
    two = {
        **_BODY,
        "messages": [
            {"role": "user", "content": "Refund order 1?"},
            {"role": "assistant", "content": "Done."},
            {"role": "user", "content": "And order 2?"},
        ],
    }
    swapped = {**two, "messages": [two["messages"][2], two["messages"][1], two["messages"][0]]}
    a = _key(fn, two, "k", "a three-turn conversation")
    b = _key(fn, swapped, "k", "the same turns in another order")
    expect(
        a != b,
        "the same messages in another order got the same key",
        expected="different keys",
        got=f"both {a[:16]}...",
        hint="A conversation's order changes the answer: serialise lists as they are (never sort them or turn "
        "them into sets); sort only the keys of dicts.",
    )
    earlier = {**two, "messages": [{"role": "user", "content": "Refund order 3?"}, *two["messages"][1:]]}
    e = _key(fn, earlier, "k", "the conversation with another first turn")
    expect(
        e != a,
        "two conversations that end with the same message but differ earlier got the same key",
        expected="different keys",
        got=f"both {a[:16]}...",
        hint="Every turn of the conversation changes the answer, not only the last one: key the whole messages list.",
    )
    schema = {"type": "object", "properties": {"order_id": {"type": "string", "description": "the order"}}}
    nested = {**_BODY, "tools": [{"name": "lookup_order", "description": "Find an order", "input_schema": schema}]}
    reordered_schema = {
        "properties": {"order_id": {"description": "the order", "type": "string"}},
        "type": "object",
    }
    renested = {
        **_BODY,
        "tools": [{"input_schema": reordered_schema, "description": "Find an order", "name": "lookup_order"}],
    }
    c = _key(fn, nested, "k", "a body with a nested tool schema")
    d = _key(fn, renested, "k", "the same body with the schema's keys in another order")
    expect(
        c == d,
        "the same tool schema with its nested keys in another order got another key",
        expected=c,
        got=d,
        hint="Sort the keys at every depth (json.dumps(body, sort_keys=True) does), not only the top level.",
    )


@key.case("more settings change the key: top_p, top_k, tool_choice, thinking")
def _more_fields(fn) -> None:
    base = _key(fn, _BODY, "k", "the body")
    for field, value in [
        ("top_p", 0.5),
        ("top_k", 20),
        ("tool_choice", {"type": "any"}),
        ("thinking", {"type": "enabled", "budget_tokens": 1024}),
    ]:
        other = _key(fn, {**_BODY, field: value}, "k", f"the body with {field}")
        expect(
            other != base,
            f"adding {field} did not change the key",
            expected="different keys",
            got=f"both {base[:16]}...",
            hint=f"{field} changes the answer; a key built from a fixed list of fields misses the ones you did not "
            "think of: serialise the whole body instead.",
        )


@key.case("a request without a field differs from one with it (no field silently dropped)")
def _absent(fn) -> None:
    bare = {k: v for k, v in _BODY.items() if k not in ("temperature", "tools", "stop_sequences")}
    a, b = _key(fn, bare, "k", "a body without sampling or tools"), _key(fn, _BODY, "k", "the full body")
    expect(
        a != b,
        "a body with tools and sampling got the same key as one without",
        expected="different keys",
        got=f"both {a[:16]}...",
        hint="Serialise the whole body: a field that is present must change the key even if its value looks "
        "like a default.",
    )


# =============================================================================================
# 6.3 compress(context, question, budget) -> str
# =============================================================================================
compress_ex = Exercise(
    "6.3",
    "Compress context into a token budget",
    points=4,
    signature="compress(context, question, budget) -> str",
    time_limit=60,
    hints=[
        "Split the context into sentences, drop repeats, score each by relevance to the question (bm25s: "
        "tokenize, BM25().index, get_scores), then add sentences best-first while count_text(result) <= budget.",
        "Truncating either end loses facts that sit at the other end or in the middle; select by relevance. "
        "Check the budget on the joined text with course_utils.tokens.count_text.",
    ],
)

_SUBJECTS = ["annual plans", "the Starter plan", "the Team plan", "the Pro plan", "enterprise accounts", "schools"]
_ATTRS = {
    "refund window": ("{n} days", [10, 20, 40, 75]),
    "storage limit": ("{n} GB", [20, 80, 200, 800]),
    "seat limit": ("{n} seats", [4, 8, 40, 400]),
    "cancellation fee": ("${n}", [3, 19, 39, 79]),
}
_CHATTER = [
    "Hello there!",
    "Thanks so much!",
    "I checked the settings page twice.",
    "My colleague asked the same thing last week.",
    "We migrated from another tool in spring.",
    "Could you look into this for me?",
    "The invoice layout changed recently.",
    "Kind regards, the operations team.",
]


@lru_cache(maxsize=1)
def _recall_items() -> tuple[dict, ...]:
    """Hidden fact-recall items (seed 606; the notebook's set uses seed 6): the fact at head, middle or tail."""
    rng = random.Random(606)
    items = []
    for n in range(12):
        attr = rng.choice(list(_ATTRS))
        unit, values = _ATTRS[attr]
        subject = rng.choice(_SUBJECTS)
        value = unit.format(n=rng.choice(values))
        others = [
            f"The {attr} for {s} is {unit.format(n=rng.choice([v for v in values if unit.format(n=v) != value]))}."
            for s in rng.sample([s for s in _SUBJECTS if s != subject], 3)
        ]
        filler = [rng.choice(_CHATTER) for _ in range(30)] + others + others
        rng.shuffle(filler)
        target = f"The {attr} for {subject} is {value}."
        where = ("head", "middle", "tail")[n % 3]
        at = {"head": 1, "middle": len(filler) // 2, "tail": len(filler)}[where]
        filler.insert(at, target)
        items.append(
            {
                "context": " ".join(filler),
                "question": f"What is the {attr} for {subject}?",
                "answer": value,
                "position": where,
            }
        )
    return tuple(items)


def _compressed(fn: Any, context: str, question: str, budget: int) -> str:
    with forbid(
        fn,
        {"cost.compress": compress_mod.compress, "cost.compress_report": compress_mod.compress_report},
        task="compress the context",
        hint="Write compress yourself (bm25s is fine); {name} is the reference.",
    ):
        got = fn(context, question, budget)
    if not isinstance(got, str):
        raise CaseFailed(
            "compress returned no str",
            expected="the compressed context (a str)",
            got=type(got).__name__,
            hint="Join the chosen sentences into one string (e.g. with newlines).",
        )
    return got


@compress_ex.case("never over the budget (course_utils.tokens.count_text), including a budget that fits exactly")
def _budget(fn) -> None:
    item = _recall_items()[0]
    exact = count_text(item["context"])
    for budget in (30, 60, 120, exact - 1):
        got = _compressed(fn, item["context"], item["question"], budget)
        used = count_text(got)
        expect(
            used <= budget,
            f"the compressed context is {used} tokens for a budget of {budget}",
            expected=f"<= {budget} tokens",
            got=f"{used} tokens",
            hint="Count the joined result with course_utils.tokens.count_text and stop adding before the budget.",
        )
    whole = _compressed(fn, item["context"], item["question"], exact + 100)
    expect(
        bool(whole.strip()),
        "a budget larger than the whole context gave an empty result",
        expected="the facts",
        got=repr(whole),
        hint="When everything fits, keep everything relevant: add sentences while count_text(result) <= budget.",
    )
    kept = [x for x in dict.fromkeys(re.split(r"(?<=[.!?])\s+", item["context"])) if x.strip() and x in whole]
    positions = [whole.find(x) for x in kept]
    expect(
        positions == sorted(positions),
        "the kept sentences are not in their order in the context",
        expected="context order",
        got=f"sentence starts at {positions[:8]} in your result",
        hint="Rank by relevance to choose, then put the chosen sentences back in the order they had in the context.",
    )


@compress_ex.case("an empty context gives '' (without raising)")
def _empty(fn) -> None:
    item = _recall_items()[0]
    try:
        got = _compressed(fn, "", item["question"], 50)
    except CaseFailed:
        raise
    except NotImplementedError:
        raise
    except Exception as exc:  # noqa: BLE001 - the crash is the fault this case names
        raise CaseFailed(
            f"compress raised {type(exc).__name__} on an empty context: {exc}",
            expected="''",
            got=type(exc).__name__,
            hint="Return '' before ranking when the context has no sentences (BM25 cannot index an empty corpus).",
        ) from None
    expect(
        got == "",
        "an empty context did not give ''",
        expected="''",
        got=got,
        hint="No sentences, nothing to keep: return the empty string.",
    )


@compress_ex.case("keeps the fact the question needs wherever it sits (the simulator answers from it; ledger)")
async def _keeps_facts(fn) -> None:
    p = probe(tier="unlimited", time_scale=0, tag="check06")
    client = p.async_client()
    missed = []
    async with p:
        for item in _recall_items():
            context = _compressed(fn, item["context"], item["question"], 40)
            reply = await client.messages.create(
                model=CHEAP,
                max_tokens=100,
                system="Answer from these notes.\n" + context,
                messages=[{"role": "user", "content": item["question"]}],
            )
            answer = "".join(b.text for b in reply.content if b.type == "text")
            if item["answer"] not in answer:
                missed.append(item["position"])
    expect(
        len(p.requests()) == len(_recall_items()),
        "not every question reached the simulator",
        expected=len(_recall_items()),
        got=len(p.requests()),
        hint="Ask every question once with your compressed context (the check sends them; compress must "
        "return for each).",
    )
    by_place = {w: missed.count(w) for w in ("head", "middle", "tail") if missed.count(w)}
    expect(
        len(missed) <= 1,
        f"at a 40-token budget the model could not answer {len(missed)} of {len(_recall_items())} questions "
        f"(facts lost at: {by_place})",
        expected="at most 1 miss",
        got=f"{len(missed)} misses",
        hint="A fact at the head is lost by keeping the tail, one at the tail by keeping the head: rank sentences "
        "by relevance to the question (BM25) and keep the best within the budget.",
    )


# =============================================================================================
# 6.4 route(client, text, labels) -> str
# =============================================================================================
router = Exercise(
    "6.4",
    "A router that meets the target at the lowest cost",
    points=5,
    signature="await route(client, text, labels) -> str",
    time_limit=180,
    hints=[
        "Ask claude-haiku-5-5 twice, with label_request(text, labels, model=..., phrasing=0) and phrasing=1 "
        "(concurrently, asyncio.gather); if both replies are the same valid label, return it; otherwise ask "
        "claude-sonnet-5-5 once.",
        "Validate with parse_label(message, labels): None (not one of the labels) must escalate too.",
    ],
)

N_ROUTED = 200


@lru_cache(maxsize=1)
def _hidden_items() -> pd.DataFrame:
    df = pd.read_csv(DATA_DIR / "lesson06_labelled.csv")
    return df[df["split"] == "hidden"].head(N_ROUTED).reset_index(drop=True)


_BASELINES: dict[tuple[str, ...], tuple[float, Decimal]] = {}


async def _baseline(labels: tuple[str, ...]) -> tuple[float, Decimal]:
    """Sonnet 5.5 alone on the hidden set: its accuracy and cost (a probe of its own).

    A function of the fixed items and the probe's seed only, so it is measured once per process.
    """
    if labels in _BASELINES:
        return _BASELINES[labels]
    p = probe(tier="unlimited", tag="check06-mid")
    async with p:
        client = p.async_client()
        result = await routing.evaluate(routing.SingleModel(MID, labels), client, _hidden_items())
    _BASELINES[labels] = (result["accuracy"], p.cost())
    return _BASELINES[labels]


@router.case("accuracy within 1 point of Sonnet 5.5 at <= 40% of its cost, on a hidden labelled set (ledger)")
async def _route(fn) -> None:
    items = _hidden_items()
    labels = ("billing", "bug", "account", "shipping")
    mid_accuracy, mid_cost = await _baseline(labels)
    p = probe(tier="unlimited", tag="check06-route")
    client = p.async_client()
    gate = asyncio.Semaphore(32)

    async def one(text: str) -> Any:
        async with gate:
            return await _await(fn(client, text, list(labels)), "route")

    async with p:
        with forbid(
            fn,
            {"cost.CascadeRouter.classify": routing.CascadeRouter.classify, "cost.evaluate": routing.evaluate},
            task="route",
            hint="Write the routing yourself (label_request and parse_label are fine); {name} is the reference.",
        ):
            answers = await asyncio.gather(*(one(t) for t in items["text"]))
    accuracy = sum(str(a).strip().lower() == t for a, t in zip(answers, items["label"])) / len(items)
    spent = p.cost()
    expect(
        accuracy >= mid_accuracy - 0.01,
        f"accuracy {accuracy:.1%} is below the target {mid_accuracy - 0.01:.1%} (Sonnet 5.5's {mid_accuracy:.1%} "
        "minus 1 point)",
        expected=f">= {mid_accuracy - 0.01:.1%}",
        got=f"{accuracy:.1%}",
        hint="The cheap model alone is wrong on the hard items: detect them (two phrasings that disagree, or an "
        "invalid label) and send only those to the stronger model.",
    )
    share = spent / mid_cost
    expect(
        share <= Decimal("0.40"),
        f"the router cost {pricing.format_usd(spent)}, {share:.0%} of Sonnet 5.5's {pricing.format_usd(mid_cost)} "
        "on the same items (ledger); the target is at most 40%",
        expected="<= 40%",
        got=f"{share:.0%}",
        hint="Answer most items with the cheap model (Haiku 5.5 costs 1/20 of Sonnet 5.5) and escalate only when "
        "it is unsure; escalating to Opus, or asking Sonnet every time, costs more than the target allows.",
    )


# =============================================================================================
# 6.5 SpendGuard(budget) with await guard.call(client, body)
# =============================================================================================
guard_ex = Exercise(
    "6.5",
    "A spend guard: reserve the worst case, settle to the actual",
    points=5,
    signature="SpendGuard(budget); await guard.call(client, body) -> Message",
    time_limit=90,
    reference={"cost.SpendGuard": spend_guard.SpendGuard},
    task="guard spend",
    hints=[
        "In call(): worst = worst_case_cost(body); check `spent + reserved + worst <= budget` and add worst to "
        "reserved in the same step, before any await; then await the request; then reserved -= worst and "
        "spent += pricing.cost(message.usage, body['model']).",
        "Refuse (raise) before sending when the worst case does not fit. On an error response "
        "(anthropic.APIStatusError) give the reservation back; on a lost answer (any other exception: a timeout, a "
        "dropped connection) keep the worst case as spent, since the provider may have billed it.",
    ],
)


def _long_body(n: int) -> dict:
    """A request whose answer runs to max_tokens: actual cost == worst case."""
    return {
        "model": CHEAP,
        "max_tokens": 120,
        "messages": [{"role": "user", "content": f"Write a 500-word essay on topic {n}."}],
    }


def _short_body(n: int) -> dict:
    """A request whose answer is far below max_tokens: actual cost << worst case."""
    return {
        "model": CHEAP,
        "max_tokens": 800,
        "messages": [{"role": "user", "content": f"Reply with one word: ok {n}"}],
    }


def _guard(fn: Any, budget: Decimal) -> Any:
    guard = fn(budget)
    if not callable(getattr(guard, "call", None)):
        raise CaseFailed(
            "SpendGuard has no call method",
            expected="await guard.call(client, body)",
            got=type(guard).__name__,
            hint="Define `async def call(self, client, body)` on the class.",
        )
    return guard


async def _calls(guard: Any, client: Any, bodies: list[dict]) -> list[Any]:
    async def one(body: dict) -> Any:
        try:
            return await _await(guard.call(client, body), "guard.call")
        except (CaseFailed, NotImplementedError):
            raise
        except Exception as exc:  # noqa: BLE001 - a refusal is any exception the guard raises
            return exc

    # The exercise's ``reference`` guard (forbid) runs around every case: the library's SpendGuard, a
    # subclass or a wrapper calling into it scores nothing.
    return await asyncio.gather(*(one(b) for b in bodies))


def _long_input_body(n: int) -> dict:
    """A request whose input is most of its worst case: a guard that reserves only the output overspends."""
    background = " ".join(f"Clause {i}: the warranty covers part {i} for {i % 5 + 1} years." for i in range(150))
    return {**_long_body(n), "system": f"Background for the essay. {background}"}


@guard_ex.case("50 concurrent requests never spend more than the budget (ledger)")
async def _concurrent(fn) -> None:
    for make in (_long_body, _long_input_body):
        await _concurrent_round(fn, make)


async def _concurrent_round(fn: Any, make: Any) -> None:
    worst = spend_guard.worst_case_cost(make(0))
    budget = worst * 10
    p = probe(tier="unlimited", tag="check06-guard")
    async with p:
        client = p.async_client()
        await _calls(_guard(fn, budget), client, [make(n) for n in range(50)])
    rows = p.requests()
    spent = p.cost()
    expect(
        spent <= budget,
        f"{len(rows)} requests were sent and cost {pricing.format_usd(spent, 6)}, over the "
        f"{pricing.format_usd(budget, 6)} budget",
        expected=f"<= {pricing.format_usd(budget, 6)}",
        got=pricing.format_usd(spent, 6),
        hint="Checking the budget and adding the cost after the reply races: all 50 requests pass the check "
        "before the first reply is charged. Reserve the worst case (input + max_tokens of output: "
        "worst_case_cost(body)) in the same step as the check, before the await.",
    )
    expect(
        len(rows) >= 10,
        f"only {len(rows)} of the 10 requests whose worst case fits the budget were sent",
        expected=">= 10 requests",
        got=f"{len(rows)} requests",
        hint="Reserve exactly the worst case (input + max_tokens of output at the model's prices), not more.",
    )


@guard_ex.case("settling frees the unused reservation: the budget is not locked up")
async def _settles(fn) -> None:
    worst = spend_guard.worst_case_cost(_short_body(0))
    budget = worst * 3
    p = probe(tier="unlimited", tag="check06-settle")
    client = p.async_client()
    guard = _guard(fn, budget)
    answered = 0
    async with p:
        for n in range(12):
            result = (await _calls(guard, client, [_short_body(n)]))[0]
            answered += not isinstance(result, Exception)
    spent = p.cost()
    expect(
        spent <= budget,
        f"12 one-at-a-time requests cost {pricing.format_usd(spent, 6)}, over the {pricing.format_usd(budget, 6)} "
        "budget",
        expected=f"<= {pricing.format_usd(budget, 6)}",
        got=pricing.format_usd(spent, 6),
        hint="Refuse a request whose worst case does not fit in budget - spent - reserved.",
    )
    expect(
        answered == 12,
        f"the guard answered {answered} of 12 one-at-a-time requests that together cost "
        f"{pricing.format_usd(spent, 6)} of a {pricing.format_usd(budget, 6)} budget",
        expected="12 answered",
        got=f"{answered} answered",
        hint="After the reply, replace the reservation by the actual cost from message.usage (settle); a "
        "reservation never released keeps the worst case locked up and the budget runs out early.",
    )


@guard_ex.case(
    "a refused request is not sent, one that fits exactly is, and an error response gives its reservation back"
)
async def _refusal(fn) -> None:
    p = probe(tier="unlimited", tag="check06-refuse")
    client = p.async_client()
    guard = _guard(fn, spend_guard.worst_case_cost(_short_body(0)) - Decimal("0.000000001"))
    async with p:
        refused = (await _calls(guard, client, [_short_body(0)]))[0]
        expect(
            isinstance(refused, Exception),
            "a request whose worst case exceeds the budget was answered",
            expected="an exception",
            got=type(refused).__name__,
            hint="Before sending, raise when spent + reserved + worst_case_cost(body) > budget.",
        )
        expect(
            len(p.requests()) == 0,
            "a refused request still reached the API",
            expected="0 requests",
            got=f"{len(p.requests())} requests",
            hint="Refuse before the await: a request that does not fit must never be sent.",
        )
        exact = _guard(fn, spend_guard.worst_case_cost(_short_body(3)))
        fits = (await _calls(exact, client, [_short_body(3)]))[0]
        expect(
            not isinstance(fits, Exception),
            f"a request whose worst case equals the whole budget was refused ({type(fits).__name__}: {fits})",
            expected="answered: it fits exactly",
            got="refused",
            hint="Refuse only when spent + reserved + worst would be *greater* than the budget; a worst case that "
            "fits exactly is allowed.",
        )
        roomy = _guard(fn, spend_guard.worst_case_cost(_short_body(0)) * Decimal("1.5"))
        bad = {**_short_body(1), "messages": []}  # the API answers 400
        failed = (await _calls(roomy, client, [bad]))[0]
        expect(
            isinstance(failed, Exception),
            "an invalid request did not raise",
            expected="the API's 400",
            got=failed,
            hint="Re-raise the API's error after giving the reservation back.",
        )
        after = (await _calls(roomy, client, [_short_body(2)]))[0]
    expect(
        not isinstance(after, Exception),
        f"after a 400 the guard refused a request that fits the budget ({type(after).__name__}: {after})",
        expected="answered",
        got="refused",
        hint="An error response carries no usage: release its reservation in an except branch, or it holds the "
        "budget forever.",
    )


@guard_ex.case("a lost answer (dropped connection after billing) keeps its worst case; the call raises")
async def _lost(fn) -> None:
    p = probe(tier="unlimited", tag="check06-lost")
    lossy = p.async_client(default_headers={"x-mock-fault": "lost_response"})
    client = p.async_client()
    worst = spend_guard.worst_case_cost(_short_body(0))
    guard = _guard(fn, worst * Decimal("1.5"))
    async with p:
        lost = (await _calls(guard, lossy, [_short_body(0)]))[0]
        expect(
            isinstance(lost, Exception),
            "a call whose connection dropped returned instead of raising",
            expected="the SDK's APIConnectionError, re-raised",
            got=type(lost).__name__,
            hint="Re-raise what the client raised: the caller must know the answer was lost.",
        )
        after = (await _calls(guard, client, [_short_body(1)]))[0]
    billed = p.cost()
    expect(
        isinstance(after, Exception),
        f"after an answer was lost (the provider billed {pricing.format_usd(billed, 6)} for it) the guard sent "
        "another request its worst case no longer covers",
        expected="refused: the lost call's worst case stays spent",
        got="answered",
        hint="A lost answer (APIConnectionError, a timeout, a cancelled call) may already be billed: keep its "
        "worst case as spent. Only an error response (anthropic.APIStatusError) gives the reservation back.",
    )


EXERCISES = [report, key, compress_ex, router, guard_ex]
