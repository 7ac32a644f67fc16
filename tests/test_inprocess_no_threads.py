"""In-process SDK clients start no worker thread: a virtual loop cannot wait for one.

While a thread runs, looptime moves virtual time in step with real time, so a request that waits for
a thread lands later on a busy machine than on an idle one, and the figures measured from it move
(``test_architecture_loadtest``'s load figures did, under a saturated test suite).
"""

from __future__ import annotations

import asyncio

import anthropic

from course_utils.clock import run_virtual

HAIKU = "claude-haiku-5-5"
ASK = [{"role": "user", "content": "Say something short."}]


def test_an_in_process_client_and_its_copies_make_requests_without_a_worker_thread(make_server, monkeypatch):
    server = make_server(seed=0, time_scale=0, rate_limit_tier="unlimited")
    executor_calls = []
    original = asyncio.BaseEventLoop.run_in_executor

    def recorded(loop, executor, func, *args):
        executor_calls.append(func)
        return original(loop, executor, func, *args)

    monkeypatch.setattr(asyncio.BaseEventLoop, "run_in_executor", recorded)

    async def main() -> None:
        client = server.async_client()
        # The SDK's copies are new clients whose platform headers the SDK would resolve in a thread.
        copies = [client.with_options(max_retries=0), client.copy(timeout=30.0), client.with_options().with_options()]
        for c in [client, *copies]:
            assert isinstance(c, anthropic.AsyncAnthropic)
            await c.messages.create(model=HAIKU, max_tokens=5, messages=ASK)
        await client.close()  # the copies share its connection pool

    run_virtual(main(), limit=600)
    assert executor_calls == []
