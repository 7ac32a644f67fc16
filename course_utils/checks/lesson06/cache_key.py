"""Checks for exercise 6.2 ``cache_key``: the exact-cache key (dict order ignored, the API key left out,
every field that changes the answer in it)."""

from __future__ import annotations

import copy
from collections import OrderedDict
from typing import Any

from ...cost import exact_cache
from ..forbid import forbid
from ..framework import CaseFailed, Exercise, expect

from .common import CHEAP, MID


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
