"""Checks for exercise 5.4 ``idempotent_call``: one Idempotency-Key, one model call (replays, concurrent
duplicates, a reused key, a failed attempt), graded through the ledger."""

from __future__ import annotations

import asyncio
from typing import Any

import anthropic

from ... import resilience
from ..framework import CaseFailed, Exercise, expect, expect_equal
from ..sim import Probe, probe

from .common import awaited, report_body


# =============================================================================================
# 5.4 idempotent_call(cache, key, body, generate)
# =============================================================================================
idempotent = Exercise(
    "5.4",
    "One Idempotency-Key, one model call",
    points=4,
    signature="await idempotent_call(cache, key, body, generate)",
    reference={
        "resilience.Idempotent": resilience.Idempotent,
        "resilience.IdempotencyStore": resilience.IdempotencyStore,
    },
    task="make a call idempotent",
    hints=[
        "Claim the key *before* the first await: store an asyncio.Task (or Future) for it in cache at once, so a "
        "duplicate that arrives while the model is working awaits the same task instead of calling again.",
        "entry = cache.get(key); if entry: check the body's fingerprint (else raise ValueError) and return await "
        "asyncio.shield(entry[1]). Else task = asyncio.ensure_future(generate(body)); cache[key] = (fp, task); "
        "try: return await asyncio.shield(task) except Exception: cache.pop(key, None); raise.",
    ],
)


async def _idem(fn: Any, cache: dict, key: str, body: dict, generate: Any) -> Any:
    return await awaited(fn(cache, key, body, generate), "idempotent_call")


def _generator(p: Probe) -> tuple[Any, Any]:
    client = p.async_client()

    async def generate(body: dict) -> Any:
        return await client.messages.create(**body)

    return client, generate


@idempotent.case("a replay returns the stored answer without calling the model (ledger)")
async def _replay(fn) -> None:
    p = probe(tier="unlimited", tag="check05")
    client, generate = _generator(p)
    cache: dict = {}
    body = report_body(1)
    reordered = dict(reversed(list(report_body(1).items())))  # the same body, as another client serialises it
    async with p:
        try:
            first = await _idem(fn, cache, "report-1", body, generate)
            again = [await _idem(fn, cache, "report-1", b, generate) for b in (report_body(1), reordered, body)]
            other = await _idem(fn, cache, "report-2", report_body(1), generate)
        except ValueError as exc:
            raise CaseFailed(
                f"a replay of the same body with its keys in another order was refused ({exc})",
                expected="the stored answer",
                got="ValueError",
                hint="Fingerprint the body canonically (json.dumps(body, sort_keys=True)): equal bodies must match "
                "whatever the order of their keys.",
            ) from None
    expect(
        body == report_body(1),
        "idempotent_call changed the body it was given",
        expected=report_body(1),
        got=body,
        hint="Fingerprint a serialisation of the body; never add to, pop from or normalise the caller's dict.",
    )
    n = len(p.requests())
    expect(
        n == 2,
        f"the ledger shows {n} model calls for two keys (one called 4 times)",
        expected=2,
        got=n,
        hint="Key the stored answer by the Idempotency-Key: a replay is free; a different key is a new operation, "
        "even with the same body.",
    )
    expect(
        all(getattr(m, "id", None) == first.id for m in again),
        "a replay returned a different answer",
        expected=first.id,
        got=[getattr(m, "id", m) for m in again],
        hint="Return exactly what the first call returned.",
    )
    expect(
        getattr(other, "id", None) != first.id,
        "a different key got the first key's answer",
        hint="Two keys are two operations: don't deduplicate by body.",
    )


@idempotent.case("concurrent duplicates make one model call and all get its answer (ledger)")
async def _concurrent(fn) -> None:
    p = probe(tier="unlimited", tag="check05")
    client, generate = _generator(p)
    cache: dict = {}
    async with p:
        got = await asyncio.gather(*(_idem(fn, cache, "report-7", report_body(7), generate) for _ in range(8)))
    n = len(p.requests())
    expect(
        n == 1,
        f"8 concurrent requests with the same key made {n} model calls",
        expected=1,
        got=n,
        hint="Check-then-act race: every duplicate checks the cache before the first call has stored anything "
        "(the await in between lets them all in). Claim the key synchronously before awaiting: store a "
        "task for it, and make duplicates await that task.",
    )
    ids = {getattr(m, "id", None) for m in got}
    expect(
        len(ids) == 1 and None not in ids,
        "the duplicates did not all get the same answer",
        got=ids,
        hint="Every caller of the key returns the one call's answer.",
    )


@idempotent.case("the same key with a different body is an error, and the model is not called")
async def _reused(fn) -> None:
    p = probe(tier="unlimited", tag="check05")
    client, generate = _generator(p)
    cache: dict = {}
    async with p:
        await _idem(fn, cache, "report-3", report_body(3), generate)
        try:
            await _idem(fn, cache, "report-3", report_body(4), generate)
        except (CaseFailed, NotImplementedError):
            raise
        except Exception:  # noqa: BLE001 - any clear error is right (the IETF draft answers 422)
            pass
        else:
            raise CaseFailed(
                "reusing a key with a different body returned an answer",
                expected="an exception (the draft's 422)",
                got="an answer",
                hint="Store a fingerprint of the body with the key (e.g. a hash of json.dumps(body, "
                "sort_keys=True)) and raise ValueError when a key comes back with another body: "
                "replaying report 3's answer for report 4 is wrong, and so is silently running it.",
            )
    n = len(p.requests())
    expect(
        n == 1,
        f"the ledger shows {n} model calls",
        expected=1,
        got=n,
        hint="Refuse the reused key before calling the model.",
    )


@idempotent.case("a failed attempt is not stored as the final answer (ledger)")
async def _failure(fn) -> None:
    p = probe(tier="unlimited", tag="check05")
    client = p.async_client()
    faults = iter(["overloaded"])

    async def generate(body: dict) -> Any:
        fault = next(faults, None)
        return await client.messages.create(**body, extra_headers={"x-mock-fault": fault} if fault else None)

    cache: dict = {}
    async with p:
        try:
            await _idem(fn, cache, "report-9", report_body(9), generate)
        except anthropic.InternalServerError:
            pass
        except (CaseFailed, NotImplementedError):
            raise
        else:
            raise CaseFailed(
                "the model call failed with 529 but idempotent_call returned normally",
                hint="Let the failure propagate to the caller (who may retry).",
            )
        try:
            second = await _idem(fn, cache, "report-9", report_body(9), generate)
        except anthropic.APIStatusError:
            raise CaseFailed(
                "a retry with the same key got the stored 529 again instead of a new attempt",
                expected="a new model call that succeeds",
                got="the first attempt's error",
                hint="Never keep a failure as the key's final answer: remove the key's entry when the "
                "call fails, so the client's retry does the work.",
            ) from None
    rows = p.requests()
    expect_equal(
        list(rows["status"]),
        [529, 200],
        "the ledger's model calls for the key",
        hint="One failed call, then one successful call on the retry.",
    )
    expect(
        getattr(second, "id", None) is not None,
        "the retry did not return the Message",
        got=second,
        hint="Return what generate(body) returned.",
    )
