"""``python -m course_utils.architecture``: run the support desk on 127.0.0.1 in the foreground.

By default it talks to a private simulator (started here) and keeps everything in process except
the conversations, which go to a SQLite file. ``--redis-url`` (or ``REDIS_URL``) puts the event
bus on Redis Streams; ``--workers-only`` / ``--api-only`` split the API and the workers into
separate processes that share the bus and the files. ``COURSE_PROVIDER=anthropic`` with
``ANTHROPIC_API_KEY`` calls the real API instead of the simulator.

It runs with lesson 07's controls, as the notebook's desk does: each tenant's plan limits its models,
its rate (``TenantLimiter``) and its monthly budget (``BudgetGuard``), shared through Redis when the
bus is (every API and worker process counts against the same limits), in memory otherwise.

The tenants' API keys and the operator key are written to ``<data-dir>/api-keys``, readable only by
the user who started the service; only that file's path is printed: keys never go to stdout or a log.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shlex
import signal
import tempfile
import time
from pathlib import Path
from typing import Mapping

from ..serving import HOST


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and serve until interrupted."""
    parser = argparse.ArgumentParser(
        prog="python -m course_utils.architecture",
        description="Serve lesson 08's event-driven support desk on 127.0.0.1.",
    )
    parser.add_argument("--port", type=int, default=8808, help="port on 127.0.0.1 (default 8808)")
    parser.add_argument("--data-dir", type=Path, default=None, help="folder for the SQLite files (default: a temp dir)")
    parser.add_argument(
        "--redis-url", default=os.environ.get("REDIS_URL"), help="Redis Streams bus (default: in process)"
    )
    parser.add_argument(
        "--idle-timeout", type=float, default=30.0, help="seconds before an unacked event is redelivered"
    )
    parser.add_argument("--sim-port", type=int, default=0, help="simulator port (default: a free one)")
    parser.add_argument("--sim-url", default=None, help="use a simulator already running at this URL")
    parser.add_argument("--time-scale", type=float, default=1.0, help="simulator latency scale (1 = realistic)")
    parser.add_argument("--scenario", default="calm", help="simulator fault scenario (default: calm)")
    parser.add_argument(
        "--tenants",
        default="acme,globex",
        help="tenants to register (comma-separated); their API keys go to <data-dir>/api-keys",
    )
    parser.add_argument("--plan", default="pro", help="the tenants' plan (lesson 07: free, pro, enterprise)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--api-only", action="store_true", help="serve the HTTP API; workers run elsewhere")
    mode.add_argument("--workers-only", action="store_true", help="run the workers only (needs --redis-url)")
    args = parser.parse_args(argv)
    if args.workers_only and not args.redis_url:
        parser.error("--workers-only needs --redis-url: in-process events cannot reach another process")
    if args.api_only and not args.redis_url:
        parser.error("--api-only needs --redis-url: in-process events cannot reach another process")

    from .. import provider
    from ..resilience import IdempotencyStore
    from ..tenancy import TenantRegistry, get_plan
    from .bus import InMemoryBus, RedisStreamsBus
    from .help_centre import load_help_centre
    from .service import SupportDesk, SupportDeskServer
    from .store import DeskStore
    from .vectors import VectorIndex
    from .workers import Pipeline

    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="support-desk-"))
    data_dir.mkdir(parents=True, exist_ok=True)
    sim = None
    if provider.current_provider() == provider.ANTHROPIC:
        clients = lambda tenant: provider.async_client()  # noqa: E731 - one real key for every tenant
        model_at = "the real API"
    elif args.sim_url:
        import anthropic

        from ..mock_provider.tenants import tenant_key

        def clients(tenant: str) -> anthropic.AsyncAnthropic:  # each tenant its own key on the simulator
            return anthropic.AsyncAnthropic(base_url=args.sim_url, api_key=tenant_key(tenant))

        model_at = f"the simulator at {args.sim_url}"
    else:
        from ..mock_provider.server import mock_server

        sim = mock_server(port=args.sim_port, time_scale=args.time_scale, scenario=args.scenario).start()
        clients = lambda tenant: sim.tenant(tenant).async_client()  # noqa: E731 - each tenant its own key
        model_at = f"the simulator at {sim.base_url}"
    # The in-process log keeps about 10,000 events a topic (never one a worker has still to process).
    # Redis' MAXLEN would trim unprocessed ones too: there, retention is the Redis operator's choice.
    bus = (
        RedisStreamsBus(args.redis_url, idle_timeout_s=args.idle_timeout)
        if args.redis_url
        else InMemoryBus(idle_timeout_s=args.idle_timeout, maxlen=10_000)
    )
    index = VectorIndex(data_dir / "vectors.db")
    if index.count("acme") == 0:
        load_help_centre(index)
    # Callers are tenants with API keys (lesson 07): the key, not a header they choose, says who they
    # are. Every process registers the tenants (the workers need their plans); the API's keys are new
    # at each start and live in this process only.
    registry = TenantRegistry()
    plan = get_plan(args.plan)
    tenants = [t for t in (t.strip() for t in args.tenants.split(",")) if t]
    keys = {t: registry.register(t, plan) for t in tenants}
    pipeline = Pipeline(
        bus, DeskStore(data_dir / "conversations.db"), index, clients, controls=_controls(registry, args.redis_url)
    )
    print(f"bus: {bus.name}; data: {data_dir}; model: {model_at}; tenants on the {plan.name} plan", flush=True)
    try:
        if args.workers_only:
            asyncio.run(_run_workers(pipeline))
            return 0
        operator_key = "op_" + secrets.token_urlsafe(24)
        desk = SupportDesk(
            pipeline,
            registry=registry,
            idempotency=IdempotencyStore(data_dir / "idempotency.db"),
            run_workers=not args.api_only,
            operator_key=operator_key,
        )
        with SupportDeskServer(desk, port=args.port) as server:
            url = f"http://{HOST}:{server.port}"
            keys_file = write_keys(data_dir / "api-keys", keys, operator_key, url)
            print(f"API keys: {keys_file} (readable only by you: one 'tenant key' a line; never log them)", flush=True)
            print(f"support desk on {url}  (Ctrl-C to stop)", flush=True)
            first = next(iter(keys), "acme")
            print(f"  KEY=$(awk '$1 == \"{first}\" {{print $2}}' {shlex.quote(str(keys_file))})")
            auth = '-H "Authorization: Bearer $KEY"'
            print(
                f"  curl -X POST {url}/conversations/c1/messages {auth} "
                "-H 'Idempotency-Key: k1' -H 'Content-Type: application/json' -d '{\"text\": \"I forgot my password\"}'"
            )
            print(f"  curl -N {auth} '{url}/conversations/c1/stream'", flush=True)
            signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops it as cleanly as Ctrl-C
            try:
                while server.running:
                    time.sleep(0.5)
            except KeyboardInterrupt:
                pass
    finally:
        if sim is not None:
            sim.stop()
    return 0


def write_keys(path: Path, keys: Mapping[str, str], operator_key: str, url: str) -> Path:
    """Write the API keys to ``path``, readable and writable by the user only (mode 600); returns ``path``.

    One ``tenant key`` a line, then ``@operator <key>`` (not a valid tenant id, so it cannot clash).
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags, 0o600)
    try:
        os.fchmod(fd, 0o600)  # a file left by an earlier run keeps its mode otherwise
        lines = [f"# API keys of the support desk on {url}: keep them private, never log them"]
        lines += [f"{tenant} {key}" for tenant, key in keys.items()]
        lines.append(f"@operator {operator_key}")
        os.write(fd, ("\n".join(lines) + "\n").encode())
    finally:
        os.close(fd)
    return path


def _controls(registry, redis_url: str | None):
    """Lesson 07's per-tenant controls: shared through Redis when the bus is, else in this process."""
    from ..tenancy import BudgetGuard, MemoryBudgetStore, MemoryLimiter, RedisBudgetStore, RedisLimiter
    from .controls import TenantControls

    if redis_url:
        from ..redis_server import connect

        client = connect(redis_url)
        return TenantControls(
            registry, RedisLimiter(client, prefix="desk"), BudgetGuard(RedisBudgetStore(client, prefix="desk"))
        )
    return TenantControls(registry, MemoryLimiter(), BudgetGuard(MemoryBudgetStore()))


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


async def _run_workers(pipeline) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print("workers running (Ctrl-C to stop)", flush=True)
    try:
        await pipeline.run(stop)
    finally:
        await pipeline.aclose()
        await pipeline.bus.close()


if __name__ == "__main__":
    raise SystemExit(main())
