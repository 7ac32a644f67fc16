"""Load: N concurrent streaming requests against one simulator, checking errors, tasks and memory.

Runs the simulator in a child process (so its memory is measured alone) and drives it with
``AsyncAnthropic`` from this one. Two rounds: memory after the second round must not have grown
much over the first (bounded, no per-request leak). Usage::

    .venv/bin/python benchmarks/load_streams.py [--concurrency 1000] [--time-scale 0.01]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

import anthropic
import httpx2

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class LoadResult:
    """What one load run measured."""

    concurrency: int
    completed: int
    errors: int
    seconds_round1: float
    seconds_round2: float
    tokens_received: int
    server_rss_mb_start: float
    server_rss_mb_round1: float
    server_rss_mb_round2: float
    server_tasks_after: int
    server_tasks_idle: int


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _health(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/mock/health", timeout=5) as r:
        return json.loads(r.read())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _round(base_url: str, n: int) -> tuple[int, int, int]:
    limits = httpx2.Limits(max_connections=n, max_keepalive_connections=n)
    client = anthropic.AsyncAnthropic(
        base_url=base_url,
        api_key="load",
        max_retries=0,
        timeout=120,
        http_client=anthropic.DefaultAsyncHttpxClient(limits=limits),
    )
    tokens = 0

    async def one(i: int) -> None:
        nonlocal tokens
        async with client.messages.stream(
            model="claude-haiku-5-5",
            max_tokens=64,
            messages=[{"role": "user", "content": f"Describe queue number {i}."}],
        ) as s:
            async for _ in s.text_stream:
                tokens += 1

    results = await asyncio.gather(*(one(i) for i in range(n)), return_exceptions=True)
    await client.close()
    errors = [r for r in results if isinstance(r, BaseException)]
    return n - len(errors), len(errors), tokens


def run_load(concurrency: int = 1000, time_scale: float = 0.01) -> LoadResult:
    """Start a simulator process, run two rounds of ``concurrency`` concurrent streams, measure."""
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "course_utils.mock_provider",
            "--port",
            str(port),
            "--time-scale",
            str(time_scale),
            "--log-level",
            "warning",
            "--rate-limit-tier",
            "unlimited",
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                idle_tasks = _health(port)["tasks"]
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("simulator did not start")
                time.sleep(0.1)
        rss0 = _rss_mb(proc.pid)
        url = f"http://127.0.0.1:{port}"
        t0 = time.perf_counter()
        ok1, err1, tok1 = asyncio.run(_round(url, concurrency))
        t1 = time.perf_counter()
        rss1 = _rss_mb(proc.pid)
        ok2, err2, tok2 = asyncio.run(_round(url, concurrency))
        t2 = time.perf_counter()
        rss2 = _rss_mb(proc.pid)
        time.sleep(0.5)  # let closed connections' tasks finish
        tasks_after = _health(port)["tasks"]
        return LoadResult(
            concurrency,
            ok1 + ok2,
            err1 + err2,
            t1 - t0,
            t2 - t1,
            tok1 + tok2,
            rss0,
            rss1,
            rss2,
            tasks_after,
            idle_tasks,
        )
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--concurrency", type=int, default=1000)
    ap.add_argument("--time-scale", type=float, default=0.01)
    args = ap.parse_args()
    print(json.dumps(asdict(run_load(args.concurrency, args.time_scale)), indent=2))


if __name__ == "__main__":
    main()
