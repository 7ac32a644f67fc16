"""Backpressure on real sockets: concurrent stalled readers of a long reply, per policy.

    .venv/bin/python benchmarks/lesson02_backpressure.py [--streams 50] [--deltas 4000] [--stall 4.0]

One real uvicorn server on 127.0.0.1 per policy relays ``--deltas`` text deltas (the upstream yields
them as fast as it can) through ``course_utils.streaming.backpressure.relay_deltas`` to ``--streams``
concurrent readers that read the response headers, read nothing for ``--stall`` seconds (a phone
in a tunnel), then drain (``course_utils.streaming.loopback.stall_runs``). The server's socket send
buffer is pinned to 16 KiB and each reader's receive buffer to 4 KiB (Linux doubles both), so
loopback's autotuning (which grows send buffers to megabytes there) does not hide the effect.

Printed per policy: the relay queues' peak per stream, the peak of bytes ``send`` accepted that the
reader had not read (uvicorn's transport buffer + kernel socket buffers) per stream, and how much
the process's peak resident memory grew during the run (queues, transport buffers and everything
else the server allocated; kernel socket buffers are not in it). Each policy runs in a fresh
process, so one policy's peak does not hide the next one's.
"""

from __future__ import annotations

import argparse
import multiprocessing
import platform
import resource
import time
from typing import Any

from course_utils.streaming.backpressure import POLICIES
from course_utils.streaming.loopback import stall_runs


def one_policy(policy: str, streams: int, deltas: int, stall: float, maxsize: int) -> dict[str, Any]:
    texts = [f" word{i % 97}" for i in range(deltas)]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    started = time.perf_counter()
    runs = stall_runs(texts, streams=streams, policy=policy, maxsize=maxsize, stall_s=stall)
    elapsed = time.perf_counter() - started
    grew = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    return {
        "seconds": elapsed,
        "wire_kib": max(r.wire_bytes for r in runs) / 1024,
        "queue_kib": max(r.queue_peak_bytes for r in runs) / 1024,
        "queue_deltas": max(r.queue_peak_depth for r in runs),
        "below_kib": max(r.below_app_peak_bytes for r in runs) / 1024,
        "rss_grew_mib": grew / 1024,
        "complete": sum(r.received_bytes == r.wire_bytes for r in runs),
        "streams": len(runs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=50)
    parser.add_argument("--deltas", type=int, default=4000, help="deltas per reply (about one token each)")
    parser.add_argument("--stall", type=float, default=4.0, help="seconds each reader reads nothing")
    parser.add_argument("--maxsize", type=int, default=16)
    args = parser.parse_args()
    print(
        f"{args.streams} concurrent stalled readers x {args.deltas} deltas, stall {args.stall} s, maxsize {args.maxsize}; "
        f"real uvicorn on loopback, SO_SNDBUF 16 KiB / SO_RCVBUF 4 KiB; {platform.platform()}"
    )
    print(
        f"{'policy':>10} {'seconds':>8} {'wire KiB':>9} {'queue KiB/stream':>17} {'queue deltas':>13} "
        f"{'below-app KiB/stream':>21} {'RSS grew MiB':>13} {'complete':>9}"
    )
    ctx = multiprocessing.get_context("spawn")
    for policy in POLICIES:
        with ctx.Pool(1) as pool:
            r = pool.apply(one_policy, (policy, args.streams, args.deltas, args.stall, args.maxsize))
        print(
            f"{policy:>10} {r['seconds']:8.2f} {r['wire_kib']:9.1f} {r['queue_kib']:17.1f} {r['queue_deltas']:13d} "
            f"{r['below_kib']:21.1f} {r['rss_grew_mib']:13.1f} {r['complete']:>5}/{r['streams']}"
        )


if __name__ == "__main__":
    main()
