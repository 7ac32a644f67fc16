"""Checks for exercise 3.4 ``dispatch(client, bodies, rpm)``: 100 requests on a key limited to 600 RPM,
enforced over about a second (``burst_s=1``): no 429, every body once, at least 90% of the allowed
rate (ledger); the message of each body in input order; an empty input sends nothing."""

from __future__ import annotations

import copy
from typing import Any

from ...content import text_of
from ...concurrency.workload import classify_body
from ...mock_provider import use_reply_scenario
from ...mock_provider.ratelimit import RateLimits
from ..framework import CaseFailed, Exercise, expect, expect_unchanged
from ..sim import Probe, probe
from .common import await_answer, on_empty, sample_tickets

BIG = 10**9


# ---------------------------------------------------------------------------------------------
# 3.4 dispatch(client, bodies, rpm) -> list of messages
# ---------------------------------------------------------------------------------------------
DISPATCH_RPM = 600
DISPATCH_N = 100
"""The check's workload: 100 requests on a key limited to 600 RPM, enforced over one second (a burst
of at most 10, then 10 per second), so pacing them takes about 10 s (virtual). At 10 requests a
second with about 0.3 s of latency each, requests must overlap: one at a time reaches a third of it."""
MIN_EFFICIENCY = 0.9
"""The least share of the allowed rate a dispatcher must reach: ``(n - 1) / (rpm / 60)`` seconds is
what pacing at exactly the limit takes from the first request to the last."""

dispatcher = Exercise(
    "3.4",
    "A dispatcher that paces at the limit, never over it",
    points=4,
    signature="await dispatch(client, bodies, rpm) -> list",
    time_limit=60,
    hints=[
        "Don't count on a burst: the provider may enforce `rpm` over about a second. Keep a client-side "
        "token bucket that holds one request and refills a little below rpm/60 per second (headroom), take "
        "a token before each request, and keep several requests in flight. If a 429 still comes, wait its "
        "retry-after plus a random jitter (course_utils.retries.retry_delay) and send that request again.",
        "bucket = TokenBucket(1, 0.95 * rpm / 60); async def send(body): while True: await bucket.acquire(1); "
        "try: return await client.messages.create(**body) except anthropic.RateLimitError as exc: await "
        "asyncio.sleep(retry_delay(1, retry_after_s(exc))); then return await "
        "bounded_gather(send, bodies, limit=32) (results in input order).",
    ],
)


def _rate_probe(rpm: int) -> Probe:
    # Short-interval enforcement, stated here so the check does not depend on the simulator's default.
    return probe(tier=RateLimits(rpm, BIG, BIG, burst_s=1.0))


def _tagged_bodies(p: Probe, n: int) -> tuple[list[dict[str, Any]], list[str]]:
    """``n`` classification bodies whose replies name their ticket, so order and content can be checked."""
    bodies, replies = [], []
    for i, text in enumerate(sample_tickets(n)):
        tag = f"[ticket {i:03d}]"
        p.script(tag, f"reply {i:03d}")
        bodies.append(classify_body(f"{tag} {text}"))
        replies.append(f"reply {i:03d}")
    return bodies, replies


def _result_text(result: Any) -> Any:
    try:
        return text_of(result).strip()
    except Exception:  # noqa: BLE001 - anything that is not a Message
        return repr(result)[:60]


async def _run_dispatch(fn: Any, p: Probe, bodies: list[dict[str, Any]]) -> Any:
    """Run the answer on ``p``'s key; failures name what the ledger shows."""
    import anthropic

    client = p.async_client()
    async with p:
        try:
            # Virtual seconds cost nothing: a slow answer finishes and is told how slow, rather than cut off.
            return await await_answer(fn, client, bodies, DISPATCH_RPM, limit=600.0, what="dispatch")
        except anthropic.RateLimitError:
            rows = p.requests()
            raise CaseFailed(
                f"dispatch raised RateLimitError; the ledger shows {int((rows['status'] == 429).sum())} x 429",
                expected="0 x 429",
                got=f"{int((rows['status'] == 429).sum())} x 429",
                hint="The SDK's own retries don't know the limit: they retry into the same wall. Take a "
                "token from a client-side bucket before each request instead.",
            ) from None
        except CaseFailed as failed:
            rows = p.requests()
            raise CaseFailed(
                f"{failed.message}; the ledger shows {int((rows['status'] == 429).sum())} x 429 and "
                f"{int((rows['status'] == 200).sum())} of {len(bodies)} done",
                hint="Send as soon as the bucket has a token, several requests in flight; a fixed pause "
                "after a 429 (or one request at a time) is too slow.",
            ) from None


@dispatcher.case(
    f"{DISPATCH_N} requests at {DISPATCH_RPM} RPM enforced per second: no 429, every body once, "
    "at least 90% of the allowed rate (ledger)"
)
async def _full_rate(fn) -> None:
    p = _rate_probe(DISPATCH_RPM)
    n = DISPATCH_N
    bodies = [classify_body(t) for t in sample_tickets(n)]
    await _run_dispatch(fn, p, bodies)
    rows = p.requests()
    refused = int((rows["status"] == 429).sum())
    expect(
        refused == 0,
        f"the provider answered {refused} request(s) with 429",
        expected="0 x 429",
        got=refused,
        hint="The provider enforces the limit over about a second: a burst bigger than rpm/60 is refused even "
        "under the per-minute limit. Pace from the first request: a bucket of one request, refilled a "
        "little below rpm/60 per second.",
    )
    ok = rows[rows["status"] == 200]
    expect(
        len(ok) == n,
        f"{len(ok)} requests succeeded for {n} bodies",
        expected=n,
        got=len(ok),
        hint="Every body must be sent and succeed once.",
    )
    # Pacing at exactly the limit takes (n - 1) / rate from the first arrival to the last.
    ideal = (n - 1) / (DISPATCH_RPM / 60)
    span = float(ok["arrival"].max() - ok["arrival"].min())
    efficiency = ideal / span if span > 0 else 1.0
    expect(
        efficiency >= MIN_EFFICIENCY,
        f"the last request went out after {span:.1f} s; pacing at the limit takes {ideal:.1f} s "
        f"({efficiency:.0%} of the allowed rate)",
        expected=f"at least {MIN_EFFICIENCY:.0%} of the allowed rate",
        got=f"{efficiency:.0%}",
        hint="Keep several requests in flight and send each as soon as the bucket has a token; keep the "
        "headroom small (about 5%), and don't add pauses the bucket does not ask for.",
    )


@dispatcher.case("the message of each body, in input order; the bodies are left unchanged")
async def _order_and_content(fn) -> None:
    p = _rate_probe(DISPATCH_RPM)
    n = 30
    bodies, replies = _tagged_bodies(p, n)
    original = copy.deepcopy(bodies)
    # The verdict compares reply texts: replies are plain here whatever reply scenario
    # (thinking blocks, refusals) the environment asks the simulator for.
    with use_reply_scenario("plain"):
        got = await _run_dispatch(fn, p, bodies)
    expect(
        isinstance(got, list) and len(got) == n,
        f"expected a list of {n} messages",
        expected=n,
        got=len(got) if isinstance(got, list) else type(got).__name__,
        hint="Return one message per body.",
    )
    texts = [_result_text(r) for r in got]
    if sorted(texts) == sorted(replies) and texts != replies:
        first = next(i for i, (a, b) in enumerate(zip(texts, replies)) if a != b)
        raise CaseFailed(
            f"the messages are not in input order: result {first} answers another body",
            expected=replies[first],
            got=texts[first],
            hint="Collect the messages by index (gather / bounded_gather keep the order), not as they finish.",
        )
    wrong = [i for i, (a, b) in enumerate(zip(texts, replies)) if a != b]
    expect(
        not wrong,
        f"{len(wrong)} of {n} results are not the message for their body",
        expected=replies[wrong[0]] if wrong else None,
        got=texts[wrong[0]] if wrong else None,
        hint="Return the Message objects client.messages.create gave, one per body, in input order.",
    )
    expect_unchanged(original, bodies, "bodies", "dispatch")


@dispatcher.case("an empty list of bodies: [] and no request")
async def _empty(fn) -> None:
    p = _rate_probe(DISPATCH_RPM)
    async with p:
        client = p.async_client()
        got = await on_empty(fn, client, [], DISPATCH_RPM, what="dispatch")
    expect(
        got == [] and isinstance(got, list),
        "dispatch of no bodies should return []",
        expected=[],
        got=got,
        hint="Nothing to send: return an empty list (and don't index bodies[0]).",
    )
    sent = len(p.requests())
    expect(sent == 0, f"dispatch sent {sent} request(s) for no bodies", expected=0, got=sent)
