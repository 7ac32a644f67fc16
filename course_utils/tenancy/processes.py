"""N service processes, one tenant: per-process limiters multiply the limit, a shared one does not.

:func:`run_processes` starts ``workers`` processes, as a service behind a load balancer would run.
Each admits the same tenant's requests through its own limiter (``backend="memory"``) or through
the one :class:`~.redis_backend.RedisLimiter` they all share (``backend="redis"``), then sends the
admitted requests to the provider with the official SDK over HTTP. The provider's ledger (e.g.
the simulator's) then shows what really went out: about ``workers`` times the tenant's limit with
per-process memory, the limit itself with Redis.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from ..concurrency import Demand
from .plans import Plan

__all__ = ["ProcessRun", "run_processes"]


@dataclass(frozen=True)
class ProcessRun:
    """What each worker process admitted and sent (the provider's ledger is the independent count)."""

    backend: str
    admitted: tuple[int, ...]
    sent: tuple[int, ...]

    @property
    def total_sent(self) -> int:
        return sum(self.sent)


def _worker(
    backend: str,
    base_url: str,
    api_key: str,
    redis_url: str | None,
    prefix: str,
    plan: Plan,
    tenant_id: str,
    attempts: int,
    body: dict[str, Any],
    burst_s: float,
    out: Any,
) -> None:
    import anthropic

    from .memory import MemoryLimiter
    from .redis_backend import RedisLimiter

    try:
        if backend == "redis":
            from ..redis_server import connect

            limiter: Any = RedisLimiter(connect(str(redis_url)), prefix=prefix, burst_s=burst_s)
        else:
            limiter = MemoryLimiter(burst_s=burst_s)
        # Decide first (a burst of requests arriving at this process), then send what was admitted.
        admitted = sum(limiter.try_acquire(tenant_id, plan, Demand(1, 0, 0)).allowed for _ in range(attempts))
        client = anthropic.Anthropic(base_url=base_url, api_key=api_key, max_retries=0)
        with ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(lambda _: _send(client, body), range(admitted)))
        out.put((admitted, sum(results), None))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which raises it
        out.put((0, 0, f"{type(exc).__name__}: {exc}"))


def _send(client: Any, body: dict[str, Any]) -> int:
    client.messages.create(**body)
    return 1


def run_processes(
    backend: str,
    *,
    base_url: str,
    api_key: str,
    plan: Plan,
    body: dict[str, Any],
    tenant_id: str = "acme",
    workers: int = 4,
    attempts: int = 60,
    redis_url: str | None = None,
    prefix: str = "tenancy-demo",
    burst_s: float = 60.0,
    timeout_s: float = 120.0,
) -> ProcessRun:
    """Start ``workers`` processes; each tries to admit ``attempts`` requests of ``tenant_id`` under
    ``plan`` and sends the admitted ``body`` to ``base_url`` with ``api_key``. Blocks until all are done.

    ``backend``: ``"memory"`` (a limiter per process) or ``"redis"`` (one shared limiter at
    ``redis_url``; its keys under ``prefix`` are deleted first, so the tenant starts with a full bucket).
    ``burst_s``: seconds of the plan's rate each bucket holds (60: a minute's worth).
    Raises ``RuntimeError`` with the first worker's error if any failed.
    """
    if backend not in ("memory", "redis"):
        raise ValueError(f"backend must be 'memory' or 'redis', not {backend!r}")
    if backend == "redis":
        if not redis_url:
            raise ValueError("the redis backend needs redis_url")
        from ..redis_server import connect
        from .redis_backend import RedisLimiter

        RedisLimiter(connect(redis_url), prefix=prefix).reset()
    # fork: children start with the modules already imported (spawn would re-import for seconds).
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    ctx = multiprocessing.get_context(method)
    out = ctx.Queue()
    args = (backend, base_url, api_key, redis_url, prefix, plan, tenant_id, attempts, body, burst_s, out)
    procs = [ctx.Process(target=_worker, args=args, daemon=True) for _ in range(workers)]
    for p in procs:
        p.start()
    results = [out.get(timeout=timeout_s) for _ in procs]
    for p in procs:
        p.join(timeout=timeout_s)
    errors = [e for _, _, e in results if e]
    if errors:
        raise RuntimeError(f"a worker process failed: {errors[0]}")
    return ProcessRun(backend, tuple(a for a, _, _ in results), tuple(s for _, s, _ in results))
