"""Checks for lesson 00 (Orientation): 0.1 ``first_request`` and 0.2 ``request_cost``."""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

from .. import pricing, tokens
from .forbid import forbid
from .framework import CaseFailed, Exercise, expect, expect_equal
from .sim import probe

MODEL = "claude-haiku-5-5"
MAX_TOKENS = 300
"""The contract of exercise 0.1 (stated in its docstring in the notebook)."""

# ---------------------------------------------------------------------------------------------
# 0.1 first_request(client, question) -> str
# ---------------------------------------------------------------------------------------------
first_request = Exercise(
    "0.1",
    "Your first request",
    points=2,
    signature="first_request(client, question) -> str",
    hints=[
        "Call client.messages.create(...) once, with model, max_tokens and a single user message, "
        "then return the text of the reply.",
        "message = client.messages.create(model=MODEL, max_tokens=MAX_TOKENS, "
        'messages=[{"role": "user", "content": question}]); the text is in its text blocks: course_utils.text_of(message) (read blocks by type, never by position).',
    ],
)

# Scripted replies make the expected text known to the check, so a hard-coded answer cannot pass.
QUESTIONS = {
    "In one sentence: what does HTTP status 429 mean?": "429 means the client sent too many requests; slow down and retry later.",
    "Name one reason to stream a long response.": "Streaming shows the first words in well under a second instead of after the whole reply.",
    "What is a token, roughly?": "A token is a few characters of text; English averages about four characters per token.",
}


def _describe_return(value: Any) -> str | None:
    """A hint for the common wrong return types."""
    kind = type(value).__name__
    if kind == "Message":
        return "You returned the whole Message object; return its text (a str): course_utils.text_of(message) joins the text blocks."
    if isinstance(value, list):
        return (
            "You returned message.content, a list of content blocks; return the reply's text: "
            "course_utils.text_of(message) joins its text blocks."
        )
    if kind == "TextBlock":
        return "You returned a TextBlock; return its .text (or course_utils.text_of(message))."
    return None


@first_request.case("returns the reply's text for several questions")
def _returns_text(fn) -> None:
    p = probe(tier="unlimited")  # rate limits are not this exercise's topic (lessons 03, 05)
    for question, reply in QUESTIONS.items():
        p.script(question, reply)
    client = p.client()
    for question, reply in QUESTIONS.items():
        got = fn(client, question)
        if not isinstance(got, str):
            raise CaseFailed(
                f"for {question!r}: not a str",
                expected=reply,
                got=got,
                hint=_describe_return(got) or "Return the reply text as a str.",
            )
        expect_equal(
            got.strip(),
            reply,
            f"for {question!r}: not the model's reply",
            hint="Return the text the API sent back for this question, not a fixed string.",
        )


@first_request.case("makes exactly one request per call")
def _one_request(fn) -> None:
    p = probe(tier="unlimited")  # rate limits are not this exercise's topic (lessons 03, 05)
    client = p.client()
    for n, question in enumerate(QUESTIONS, start=1):
        fn(client, question)
        rows = p.requests(endpoint=None)  # every endpoint: a count_tokens call is a request too
        made = len(rows)
        if made != n:
            endpoints = ", ".join(f"{k} x{v}" for k, v in rows["endpoint"].value_counts().items()) if made else "none"
            raise CaseFailed(
                f"after {n} call(s) the ledger shows {made} request(s) ({endpoints})",
                expected=f"{n} request(s)",
                got=f"{made} request(s)",
                hint="Each call costs money: send one messages.create per question and reuse its result."
                if made > n
                else "Send the question with the client passed in as the first argument.",
            )
    again = next(iter(QUESTIONS))
    fn(client, again)  # the same question again is a new call: it sends a new request
    made = len(p.requests(endpoint=None))
    if made != len(QUESTIONS) + 1:
        raise CaseFailed(
            f"asked {again!r} a second time: the ledger shows {made - len(QUESTIONS)} new request(s)",
            expected="1 new request",
            got=f"{made - len(QUESTIONS)} new request(s)",
            hint="Every call sends its own request, even for a question seen before: don't cache replies "
            "inside first_request (the model's answer may differ, and the contract counts requests)."
            if made <= len(QUESTIONS)
            else "Send one messages.create per call.",
        )


def _alone(question: str) -> int:
    """Input tokens of the request the contract describes: the question as the only user message."""
    return tokens.count_request({"model": MODEL, "messages": [{"role": "user", "content": question}]})


@first_request.case("sends the question as it is, as the only message (no system prompt, no extra turns)")
def _only_the_question(fn) -> None:
    p = probe(tier="unlimited")  # rate limits are not this exercise's topic (lessons 03, 05)
    client = p.client()
    # An edge input: spaces, a newline and non-ASCII text must reach the API untouched.
    for question in (*QUESTIONS, "  Qu'est-ce qu'un jeton ?\nAnswer in English, briefly.  "):
        seen = len(p.requests())
        fn(client, question)
        rows = p.requests()
        rows = rows.iloc[seen:]  # the rows this call added (the ledger is in arrival order)
        want = _alone(question)
        for sent in rows["input_tokens"]:
            if int(sent) != want:
                raise CaseFailed(
                    f"for {question!r}: the request carried {int(sent)} input tokens; the question alone, "
                    f"as one user message, is {want}",
                    expected=f"{want} input tokens",
                    got=f"{int(sent)} input tokens",
                    hint="Send exactly messages=[{'role': 'user', 'content': question}]: no system prompt, "
                    "no earlier or primed turns, nothing added to (or stripped from) the question."
                    if int(sent) > want
                    else "Send the question exactly as given: don't strip, shorten or rewrite it.",
                )


@first_request.case(f"uses model {MODEL} and max_tokens={MAX_TOKENS}")
def _model_and_budget(fn) -> None:
    p = probe(tier="unlimited")  # rate limits are not this exercise's topic (lessons 03, 05)
    fn(p.client(), "What is a token, roughly?")
    rows = p.requests()
    expect(
        len(rows) >= 1,
        "no request reached the API",
        expected="1 request",
        got="0 requests",
        hint="Use the client passed in as the first argument.",
    )
    for _, row in rows.iterrows():  # every request the answer made, not only the last one
        expect_equal(
            row["model"], MODEL, "wrong model in the request", hint=f"Use model={MODEL!r}, as the docstring says."
        )
        expect_equal(
            int(row["max_tokens"]),
            MAX_TOKENS,
            "wrong max_tokens in the request",
            hint=f"Pass max_tokens={MAX_TOKENS}: it caps the reply's length, and so its cost.",
        )


# ---------------------------------------------------------------------------------------------
# 0.2 request_cost(usage, model) -> Decimal
# ---------------------------------------------------------------------------------------------
request_cost = Exercise(
    "0.2",
    "What did that request cost?",
    points=2,
    signature="request_cost(usage, model) -> Decimal",
    hints=[
        "Each token class has its own rate in pricing.price(model): input, cache writes, cache reads "
        "and output. Multiply each count by its rate and divide by one million.",
        "cost = (input_tokens * input_per_mtok + cache_creation_input_tokens * cache_write_5m_per_mtok "
        "+ cache_read_input_tokens * cache_read_per_mtok + output_tokens * output_per_mtok) / 1_000_000, "
        "all as Decimal; treat a missing (None) cache field as 0.",
    ],
)


def _usage(input_tokens: int, output_tokens: int, cache_write: int | None = None, cache_read: int | None = None) -> Any:
    from anthropic.types import Usage

    return Usage(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_creation_input_tokens=cache_write,
        cache_read_input_tokens=cache_read,
    )


# The exercise is to do the arithmetic: while the answer runs, the ready-made functions refuse.
_SHORTCUTS = {"pricing.cost": pricing.cost, "pricing.cost_breakdown": pricing.cost_breakdown}
_SHORTCUT_HINT = (
    "This exercise asks you to price each token class yourself with pricing.price(model); "
    "{name} does that arithmetic for you, and is what the check compares your answer with."
)


_SIX_PLACES = Decimal("0.000001")


def _arithmetic_hint(got: Decimal, expected: Decimal) -> str | None:
    """The cause of a near miss, when the difference shows it (rounding, or float arithmetic)."""
    if got == expected.quantize(_SIX_PLACES) or got == expected.quantize(Decimal("0.00000001")):
        return (
            "Your cost is rounded; return it exactly, unrounded (round only when you display it, "
            "e.g. pricing.format_usd)."
        )
    if abs(got - expected) <= abs(expected) * Decimal("1e-12") + Decimal("1e-18"):
        return (
            "Your cost is off in its last digits: some step went through a float (e.g. float(rate), "
            "/ 1e6, or Decimal(a_float)). Keep every step in Decimal: the rates are Decimal, the counts int, "
            "and divide by Decimal(1_000_000)."
        )
    return None


def _no_shortcuts(fn):
    """The guard the answer runs under: the ready-made pricing functions refuse (see ``forbid``)."""
    return forbid(fn, _SHORTCUTS, task="work out the cost", hint=_SHORTCUT_HINT)


def _expect_cost(fn, usage: Any, model: str, what: str, hint: str) -> None:
    expected = pricing.cost(usage, model)
    before = usage.model_dump()
    with _no_shortcuts(fn):
        got = fn(usage, model)
    _judge(got, expected, usage, before, what, hint)


def _judge(got: Any, expected: Decimal, usage: Any, before: dict[str, Any], what: str, hint: str) -> None:
    """``got`` is exactly ``expected``, a Decimal, and the answer left ``usage`` as it was (``before``)."""
    if usage.model_dump() != before:
        changed = sorted(k for k, v in usage.model_dump().items() if before.get(k) != v)
        raise CaseFailed(
            f"{what}: your function changed the usage it was given ({', '.join(changed)})",
            expected="the usage left as it was",
            got=f"changed {', '.join(changed)}",
            hint="usage is the reply's record: read its counts into local variables "
            "(count = usage.cache_read_input_tokens or 0) instead of writing to it.",
        )
    if not isinstance(got, Decimal):
        raise CaseFailed(
            f"{what}: not a Decimal",
            expected=expected,
            got=got,
            hint="Money is Decimal in this course: floats drift when you add many small costs. "
            "Use the Decimal rates from pricing.price(model) and keep the arithmetic in Decimal.",
        )
    if got != expected:
        raise CaseFailed(
            f"{what}: wrong cost, off by {got - expected:+}",
            expected=expected,
            got=got,
            hint=_arithmetic_hint(got, expected) or hint,
        )


@request_cost.case("input and output tokens on claude-haiku-5-5")
def _plain(fn) -> None:
    _expect_cost(
        fn,
        _usage(1_200, 300),
        "claude-haiku-5-5",
        "1,200 in / 300 out",
        "Input and output tokens have different rates; output costs several times more.",
    )


@request_cost.case("output is priced at the output rate")
def _output_only(fn) -> None:
    _expect_cost(
        fn,
        _usage(0, 2_000),
        "claude-sonnet-5-5",
        "0 in / 2,000 out on claude-sonnet-5-5",
        "Use the model's output_per_mtok for output_tokens.",
    )


@request_cost.case("cache writes and cache reads are billed at their own rates")
def _cache(fn) -> None:
    _expect_cost(
        fn,
        _usage(50, 200, cache_write=6_000),
        "claude-haiku-5-5",
        "a request that writes the cache",
        "cache_creation_input_tokens are billed at the cache-write rate (1.25x input for the 5-minute TTL).",
    )
    _expect_cost(
        fn,
        _usage(50, 200, cache_read=6_000),
        "claude-haiku-5-5",
        "a request that reads the cache",
        "cache_read_input_tokens are billed at the cache-read rate (for this model a tenth of the input rate).",
    )


@request_cost.case("uses the price of the model asked for")
def _models(fn) -> None:
    for model in ("claude-opus-5-5", "claude-sonnet-4-6", "claude-haiku-4-5"):
        _expect_cost(
            fn,
            _usage(3_000, 700, cache_write=1_000, cache_read=2_000),
            model,
            model,
            "Look the rates up with pricing.price(model) rather than typing one model's prices in.",
        )


@request_cost.case("an empty usage (every count 0 or None) costs exactly 0")
def _empty(fn) -> None:
    _expect_cost(
        fn,
        _usage(0, 0),
        "claude-haiku-5-5",
        "0 in / 0 out, cache fields None",
        "Treat a None cache field as 0 tokens: nothing used, nothing to pay.",
    )
    _expect_cost(
        fn,
        _usage(0, 0, cache_write=0, cache_read=0),
        "claude-opus-5-5",
        "0 tokens of every class",
        "Nothing used, nothing to pay.",
    )


PRICED_MODELS = ("claude-opus-5-5", "claude-sonnet-5-5", "claude-haiku-5-5", "claude-sonnet-4-6", "claude-haiku-4-5")


def random_usages(n: int = 300, seed: int = 14) -> list[tuple[Any, str]]:
    """``n`` seeded (usage, model) pairs of realistic sizes, cache fields None, 0 or a count; every
    prompt stays within the standard price tier (<= 100,000 tokens). About one in seven of them
    comes out wrong through float arithmetic, and half of them through rounding to 6 places."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):

        def cached() -> int | None:
            return rng.choice([None, 0, rng.randint(1, 30_000)])

        out.append(
            (_usage(rng.randint(0, 40_000), rng.randint(0, 8_000), cached(), cached()), rng.choice(PRICED_MODELS))
        )
    return out


@request_cost.case("exact on 300 random usages of every model (no float, no rounding)")
def _random(fn) -> None:
    # One guard around the loop, not one per usage: entering ``forbid`` walks every loaded
    # course_utils module, which 300 times over took seconds. The verdicts are the same: a refused
    # call fails the case (at once, or when the guard ends if the answer swallowed the refusal), and
    # a wrong cost raises inside the guard as it did after it. The expected costs are worked out
    # before the guard: pricing.cost calls pricing.cost_breakdown, which refuses inside it.
    cases = [
        (
            usage,
            model,
            pricing.cost(usage, model),
            usage.model_dump(),
            f"random usage #{i} on {model} ({usage.input_tokens:,} in / "  # the usage as given
            f"{usage.output_tokens:,} out / {usage.cache_creation_input_tokens} written / "
            f"{usage.cache_read_input_tokens} read)",
        )
        for i, (usage, model) in enumerate(random_usages())
    ]
    with _no_shortcuts(fn):
        for usage, model, expected, before, what in cases:
            got = fn(usage, model)
            _judge(
                got,
                expected,
                usage,
                before,
                what,
                "Price every class at its own rate, in Decimal, and return the exact sum.",
            )


EXERCISES = [first_request, request_cost]
