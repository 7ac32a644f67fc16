"""Checks for exercise 1.4 ``place_breakpoints(body)``: a six-turn chat whose system prompt ends with a
block that changes every turn is sent with the answer's breakpoints; the ledger shows cache reads
from the second turn on and a lower bill than without caching."""

from __future__ import annotations

import copy
from typing import Any

import anthropic

from ... import pricing
from ..framework import CaseFailed, Exercise, call, expect
from ..sim import probe
from .common import CONVERSATION, MAX_TOKENS, MODEL, STATE_TEMPLATE, SYSTEM, expect_body_unmodified

# ---------------------------------------------------------------------------------------------
# 1.4 place_breakpoints(body) -> dict
# ---------------------------------------------------------------------------------------------
breakpoints = Exercise(
    "1.4",
    "Cache breakpoints on the stable prefix",
    points=2,
    signature="place_breakpoints(body) -> dict",
    hints=[
        "The cache key is the exact prefix up to a breakpoint. Which system block is the same on every turn, "
        "and which one changes?",
        "Copy the body and put 'cache_control': {'type': 'ephemeral'} on system[0] (the long, stable policy), "
        "never on the block that changes every turn.",
    ],
)

CACHE_TURNS = 6
_RATES = pricing.price(MODEL)
_WRITE_X = float(_RATES.cache_write_5m_per_mtok / _RATES.input_per_mtok)
_READ_X = float(_RATES.cache_read_per_mtok / _RATES.input_per_mtok)


def _strip_cache_control(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_cache_control(v) for k, v in value.items() if k != "cache_control"}
    if isinstance(value, list):
        return [_strip_cache_control(v) for v in value]
    return value


def _cache_bodies() -> list[dict[str, Any]]:
    """The requests of a 6-turn chat whose system prompt ends with a block that changes every turn."""
    bodies, history = [], []
    for i, t in enumerate(CONVERSATION.turns[12 : 12 + CACHE_TURNS]):
        history.append({"role": "user", "content": t.user})
        state = STATE_TEMPLATE.format(turn=i + 1, queue=7 - i, shift=("A", "B")[i % 2])
        bodies.append(
            {
                "model": MODEL,
                "max_tokens": MAX_TOKENS,
                "messages": copy.deepcopy(history),
                "system": [{"type": "text", "text": SYSTEM}, {"type": "text", "text": state}],
            }
        )
        history.append({"role": "assistant", "content": f"Understood, step {i + 1}: restart it from the app."})
    return bodies


def _run_cached(fn: Any | None) -> tuple[Any, list[dict[str, Any]]]:
    p = probe(tier="unlimited")
    client = p.client()
    sent = []
    for body in _cache_bodies():
        laid_out = call(fn, copy.deepcopy(body)) if fn else body
        if not isinstance(laid_out, dict):
            raise CaseFailed(
                "not a request body",
                expected="a dict",
                got=laid_out,
                hint="Return the body (a dict) with cache_control added.",
            )
        try:
            client.messages.create(**laid_out)
        except anthropic.BadRequestError as exc:
            raise CaseFailed(
                f"the API rejects your request: {exc.message}",
                hint="At most 4 blocks may carry cache_control, each {'type': 'ephemeral'}.",
            ) from None
        sent.append(laid_out)
    return p, sent


@breakpoints.case("keeps the request's content (adds only cache_control)")
def _cache_content(fn: Any) -> None:
    for body in _cache_bodies():
        given = copy.deepcopy(body)
        got = call(fn, given)
        expect_body_unmodified(given, body, "the body given to place_breakpoints")
        expect(
            isinstance(got, dict) and _strip_cache_control(got) == _strip_cache_control(body),
            "the request changed beyond cache_control markers",
            hint="Only add cache_control to blocks; keep the text, order and messages as they are.",
        )


@breakpoints.case("reads the system prompt from the cache from the second turn on")
def _cache_reads(fn: Any) -> None:
    p, _ = _run_cached(fn)
    reads = [int(x) for x in p.requests()["cache_read_input_tokens"]]
    expect(
        all(n > 0 for n in reads[1:]),
        f"cache reads per turn: {reads}",
        expected="> 0 on every turn after the first",
        got=reads,
        hint="A breakpoint caches the exact prefix up to it: put it on the stable policy block, not on the "
        "block that changes every turn, or each turn writes a new entry that is never read.",
    )


@breakpoints.case("costs less than the same conversation without caching")
def _cache_cost(fn: Any) -> None:
    p, _ = _run_cached(fn)
    with_cache = p.cost()
    q, _ = _run_cached(None)
    without = q.cost()
    mine, plain = pricing.format_usd(with_cache, places=6), pricing.format_usd(without, places=6)
    expect(
        with_cache < without,
        f"{CACHE_TURNS} turns cost {mine} with your breakpoints, {plain} without",
        expected=f"less than {plain}",
        got=mine,
        hint=f"Cache writes cost {_WRITE_X:g}x input; only reads ({_READ_X:g}x) save money, and only a stable "
        "prefix is read back.",
    )
