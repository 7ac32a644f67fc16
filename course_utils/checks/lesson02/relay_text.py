"""Checks for exercise 2.4 ``relay_text(client, request)``: the whole reply relayed to a client that reads
to the end; a client that closes the stream or whose task is cancelled stops the upstream, graded from
the simulator's ledger (output tokens billed, the request marked disconnected)."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

from ..framework import CaseFailed, Exercise, case_now, expect, run_awaitable
from ..sim import Probe, probe
from .common import MODEL


# ---------------------------------------------------------------------------------------------
# 2.4 relay_text(client, request) -> async iterator of str (cancel upstream on disconnect)
# ---------------------------------------------------------------------------------------------
cancellation = Exercise(
    "2.4",
    "Cancel the upstream when the client disconnects",
    points=3,
    signature="relay_text(client, request) -> async iterator of text",
    hints=[
        "When the browser leaves, the server closes your generator (or cancels the task iterating it). "
        "Whatever you do then must close the upstream HTTP response at once, not read it to the end.",
        "async with client.messages.stream(**request) as stream: async for text in stream.text_stream: yield text. "
        "Leaving the `async with` (on aclose or cancellation too) closes the response, and the provider stops "
        "generating.",
    ],
    time_limit=40.0,
)

_LONG_PROMPT = "Lesson 02 check: write the long relay essay."
_LONG_REPLY = " ".join(
    f"Paragraph {i}: a relay forwards each delta as it arrives, and a client that leaves must stop the model."
    for i in range(1, 13)
)


def _latency_probe() -> Probe:
    """A probe whose simulator paces output at the model's real speed (on virtual time), with the
    long reply this check streams scripted, so a client that stops early shows in the bill."""
    p = probe(tier="unlimited", tag="check02")
    p.script(_LONG_PROMPT, _LONG_REPLY)
    return p


def _request() -> dict[str, Any]:
    return {"model": MODEL, "max_tokens": 1024, "messages": [{"role": "user", "content": _LONG_PROMPT}]}


def _full_tokens() -> int:
    from ...tokens import count_text

    return count_text(_LONG_REPLY)


async def _ledger_row(p: Probe, timeout: float = 30.0) -> Any:
    """The probe's finished request; the simulator records a stream when it ends (or is cut off).

    Polled while the event loop keeps running, as a server's would after a client leaves: a
    background task or an unclosed response would go on reading in the meantime.
    """
    deadline = case_now() + timeout
    while case_now() < deadline:
        # Polled on the ledger's rows; the DataFrame only once the streamed row is there (a frame per
        # poll, every 0.02 s for up to 30 s, was most of this check's CPU time).
        if any(r.stream for r in p.rows()):
            rows = p.requests()
            streams = rows[rows["stream"].astype(bool)]
            # The row is selected by what it is (the streamed /v1/messages request), never by position.
            expect(
                len(rows) == 1,
                f"the relay made {len(rows)} requests to /v1/messages "
                f"({len(streams)} streamed, {len(rows) - len(streams)} not)",
                expected="1 streaming request",
                got=f"{len(rows)} requests",
                hint="Make exactly one request, client.messages.stream(**request), and relay it: a second request "
                "(a warm-up, a non-streamed copy for logging) is billed too.",
            )
            return streams.iloc[0]
        await asyncio.sleep(0.02)
    if p.rows():
        raise CaseFailed(
            "the relay made no streaming request",
            expected="client.messages.stream(**request)",
            got=f"{len(p.rows())} non-streamed request(s)",
            hint="Stream the reply (client.messages.stream), so each delta can be forwarded as it arrives "
            "and the request can be cancelled when the client leaves.",
        )
    raise CaseFailed(
        f"the upstream request was still open {timeout:g} s after the client left",
        expected="the request closed right away",
        got=f"still streaming after {timeout:g} s",
        hint="Close the stream when the generator is closed: use `async with client.messages.stream(...)` "
        "(or call `await stream.close()` in a finally).",
    )


async def _expect_cancelled(p: Probe, received: int, how: str) -> None:
    row = await _ledger_row(p)
    full = _full_tokens()
    billed = int(row["output_tokens"])
    limit = max(60, full // 4)
    expect(
        billed <= limit,
        f"after the client {how} the model generated {billed} of {full} output tokens",
        expected=f"at most {limit} (the client read {received} deltas)",
        got=f"{billed} billed",
        hint="Don't read the rest of the reply after the client has gone (not even to log it): every token "
        "generated for nobody is billed. Leave the stream's `async with` so the request is cancelled.",
    )
    expect(
        bool(row["disconnected"]),
        "the ledger does not show the upstream request as disconnected",
        expected="disconnected=True",
        got=f"disconnected={bool(row['disconnected'])}",
        hint="Close the upstream response before it completes.",
    )


async def _open(fn: Any, client: Any, request: dict[str, Any] | None = None) -> Any:
    gen = fn(client, _request() if request is None else request)
    if inspect.iscoroutine(gen):
        # An `async def` without `yield` (e.g. the unedited stub): run it so NotImplementedError shows.
        await gen
        raise CaseFailed(
            "relay_text must be an async generator",
            expected="an async iterator",
            got="a coroutine",
            hint="`yield` each text delta inside the `async def`.",
        )
    expect(
        hasattr(gen, "__anext__"),
        "relay_text must be an async generator",
        expected="an async iterator",
        got=type(gen).__name__,
        hint="Define it with `async def` and `yield` each text delta.",
    )
    return gen


@cancellation.case("relays the whole reply when the client reads to the end")
def _complete(fn) -> None:
    p = _latency_probe()

    request = _request()

    async def go() -> str:
        parts = []
        async with p.async_client() as client:
            async for text in await _open(fn, client, request):
                if not isinstance(text, str):
                    raise CaseFailed(
                        f"relay_text yielded a {type(text).__name__}, not a str",
                        expected="each text delta as a str",
                        got=repr(text)[:120],
                        hint="Yield the text only (stream.text_stream yields exactly the text deltas), not "
                        "the events that carry it.",
                    )
                parts.append(text)
        return "".join(parts)

    text = run_awaitable(go())
    row = run_awaitable(_ledger_row(p))
    if request != _request():
        changed = sorted(k for k in set(request) | set(_request()) if request.get(k) != _request().get(k))
        raise CaseFailed(
            f"relay_text modified the request it was given (changed: {', '.join(changed)})",
            expected="the caller's request left as it was",
            got=f"changed {', '.join(changed)}",
            hint="The request belongs to the caller (it may be logged or retried): pass it as "
            "client.messages.stream(**request) and put anything extra in the call, not in the dict.",
        )
    if text.strip() != _LONG_REPLY:
        at = next(
            (i for i, (a, b) in enumerate(zip(text.strip(), _LONG_REPLY)) if a != b),
            min(len(text.strip()), len(_LONG_REPLY)),
        )
        raise CaseFailed(
            f"the relayed text is not the model's reply: {len(text.strip())} characters against "
            f"{len(_LONG_REPLY)}, first difference at character {at}",
            expected=_LONG_REPLY[max(0, at - 20) : at + 20],
            got=text.strip()[max(0, at - 20) : at + 20],
            hint="Yield every text delta once, in order (stream.text_stream yields exactly those).",
        )
    billed, cut = int(row["output_tokens"]), bool(row["disconnected"])
    expect(
        billed == _full_tokens() and not cut,
        "a client that read everything should see a complete, normal request",
        expected=f"{_full_tokens()} output tokens, not disconnected",
        got=f"{billed} output tokens, {'disconnected' if cut else 'not disconnected'}",
        hint="Make exactly one streaming request and read it to the end.",
    )


@cancellation.case("the client closes the stream early: the upstream stops (read from the ledger)")
def _aclose(fn) -> None:
    p = _latency_probe()

    async def go() -> None:
        async with p.async_client() as client:
            gen = await _open(fn, client)
            n = 0
            async for _ in gen:
                n += 1
                if n == 10:
                    break
            await gen.aclose()
            await _expect_cancelled(p, n, "closed the stream")

    run_awaitable(go())


@cancellation.case("the client's task is cancelled (a browser tab closed): the upstream stops")
def _cancelled(fn) -> None:
    p = _latency_probe()

    async def go() -> None:
        got = 0
        ten = asyncio.Event()

        client = p.async_client()

        async def client_task() -> None:
            nonlocal got
            async for _ in await _open(fn, client):
                got += 1
                if got == 10:
                    ten.set()

        task = asyncio.create_task(client_task())
        waiter = asyncio.create_task(ten.wait())
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        task.cancel()
        waiter.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        async with p:
            await _expect_cancelled(p, got, "disconnected")

    run_awaitable(go())
