"""Benchmark: the simulator vs a bare Starlette ceiling, through AsyncAnthropic at concurrency 64.

Both servers run in their own process (uvicorn, latency off) so the client and the server each
have a core; the same client code drives both in one run. Reports medians over repeated rounds and
the ratio simulator / ceiling. Usage::

    .venv/bin/python benchmarks/bench_simulator.py [--requests 2000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import anthropic
import httpx2

ROOT = Path(__file__).resolve().parent.parent
PROMPT = [{"role": "user", "content": "Explain rate limits briefly."}]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(cmd: list[str], port: int, env: dict[str, str] | None = None) -> subprocess.Popen:
    proc = subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, **(env or {})}
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"server did not start: {cmd}")


async def _run(base_url: str, n: int, concurrency: int, stream: bool) -> tuple[float, int]:
    """Returns (seconds, output tokens received) for n requests at the given concurrency."""
    limits = httpx2.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    client = anthropic.AsyncAnthropic(
        base_url=base_url, api_key="bench", max_retries=0, http_client=anthropic.DefaultAsyncHttpxClient(limits=limits)
    )
    sem = asyncio.Semaphore(concurrency)
    tokens = 0

    async def one() -> None:
        nonlocal tokens
        async with sem:
            if stream:
                async with client.messages.stream(model="claude-haiku-5-5", max_tokens=96, messages=PROMPT) as s:
                    async for _ in s.text_stream:
                        tokens += 1
            else:
                m = await client.messages.create(model="claude-haiku-5-5", max_tokens=96, messages=PROMPT)
                tokens += m.usage.output_tokens

    await asyncio.gather(*(one() for _ in range(min(n, 64))))  # warm-up: connections, tokenizer
    tokens = 0
    t0 = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(n)))
    elapsed = time.perf_counter() - t0
    await client.close()
    return elapsed, tokens


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=1500)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--concurrency", type=int, default=64)
    args = ap.parse_args()

    sim_port, bare_port = _free_port(), _free_port()
    py = sys.executable
    sim = _start(
        [
            py,
            "-m",
            "course_utils.mock_provider",
            "--port",
            str(sim_port),
            "--time-scale",
            "0",
            "--rate-limit-tier",
            "unlimited",
            "--log-level",
            "warning",
        ],
        sim_port,
    )
    probe = anthropic.Anthropic(base_url=f"http://127.0.0.1:{sim_port}", api_key="bench", max_retries=0)
    reply_tokens = probe.messages.create(model="claude-haiku-5-5", max_tokens=96, messages=PROMPT).usage.output_tokens
    bare = _start(
        [
            py,
            "-m",
            "uvicorn",
            "benchmarks.bare_app:app",
            "--port",
            str(bare_port),
            "--host",
            "127.0.0.1",
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        bare_port,
        env={"BARE_TOKENS": str(reply_tokens)},
    )
    try:
        results: dict[tuple[str, str], list[float]] = {}
        for _ in range(args.rounds):
            # Interleave the two servers so machine noise hits both alike.
            for name, port in (("bare", bare_port), ("simulator", sim_port)):
                url = f"http://127.0.0.1:{port}"
                secs, _ = asyncio.run(_run(url, args.requests, args.concurrency, stream=False))
                results.setdefault((name, "req/s"), []).append(args.requests / secs)
                secs, toks = asyncio.run(_run(url, args.requests // 2, args.concurrency, stream=True))
                results.setdefault((name, "stream tok/s"), []).append(toks / secs)
    finally:
        sim.terminate()
        bare.terminate()

    print(
        f"concurrency {args.concurrency}, {args.requests} requests/round, {args.rounds} rounds, "
        f"{reply_tokens}-token replies from both servers, medians:"
    )
    print(f"{'metric':<16}{'bare ceiling':>14}{'simulator':>12}{'ratio':>8}")
    for metric in ("req/s", "stream tok/s"):
        b = statistics.median(results[("bare", metric)])
        s = statistics.median(results[("simulator", metric)])
        print(f"{metric:<16}{b:>14.0f}{s:>12.0f}{s / b:>8.0%}")


if __name__ == "__main__":
    main()
