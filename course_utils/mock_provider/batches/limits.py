"""The Message Batches API's limits and shapes: request and byte caps, the 24 h expiry, the
``custom_id`` pattern, timestamps, and the create-time validation of a batch."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Awaitable, Callable

from ...api_facts import CUSTOM_ID_PATTERN
from ..errors import InvalidRequest, RequestTooLarge

__all__ = [
    "MAX_BATCH_REQUESTS",
    "MAX_BATCH_BYTES",
    "BATCH_EXPIRY_SECONDS",
    "CANCEL_GRACE_SECONDS",
    "CUSTOM_ID_PATTERN",
    "ProcessFn",
    "OnResultFn",
    "BatchOptions",
    "batch_timestamp",
    "validate_requests",
]

MAX_BATCH_REQUESTS = 100_000
MAX_BATCH_BYTES = 256 * 1024 * 1024
BATCH_EXPIRY_SECONDS = 24 * 3600.0
CANCEL_GRACE_SECONDS = 2.0
"""How long (at time_scale=1) a canceling batch takes to finish in-flight requests."""
_CUSTOM_ID_RE = CUSTOM_ID_PATTERN

ProcessFn = Callable[[dict[str, Any], str, str], Awaitable[dict[str, Any]]]
"""``process(params, custom_id, batch_id)`` -> the JSONL ``result`` object (succeeded or errored)."""
OnResultFn = Callable[[str, str, dict[str, Any], dict[str, Any], str], Any]
"""``on_result(api_key, custom_id, params, result, batch_id)``; may be sync or async."""


@dataclass(frozen=True)
class BatchOptions:
    """Scenario knobs for one batch (or the store's default).

    ``processing_seconds``: the window over which requests complete, at ``time_scale=1``
    (None: 30 s plus 3 s a request, capped at 300 s). ``slow_factor`` stretches it (a window
    pushed past ``expires_at`` makes the late requests expire). ``expire_fraction`` of the
    requests are never processed and come back ``expired`` when the window ends.
    """

    processing_seconds: float | None = None
    slow_factor: float = 1.0
    expire_fraction: float = 0.0

    def window(self, n_requests: int, time_scale: float) -> float:
        """Simulated seconds from creation to the last request's completion."""
        base = self.processing_seconds
        if base is None:
            base = min(300.0, 30.0 + 3.0 * n_requests)
        return max(0.0, base * max(0.0, self.slow_factor) * max(0.0, time_scale))


def batch_timestamp(ts: float | None) -> str | None:
    """An epoch timestamp as the API writes it (``2024-08-20T18:37:24.100435Z``)."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def validate_requests(requests: Any, body_bytes: int | None) -> None:
    """Refuse a batch the API would refuse: not a non-empty list, too many requests or bytes, a
    malformed or duplicate ``custom_id``, ``params`` not an object (invalid params are not refused
    here: they come back as ``errored`` results)."""
    if not isinstance(requests, list):
        raise InvalidRequest("requests: Input should be a valid list")
    if not requests:
        raise InvalidRequest("requests: List should have at least 1 item after validation, not 0")
    if len(requests) > MAX_BATCH_REQUESTS:
        raise InvalidRequest(
            f"requests: List should have at most {MAX_BATCH_REQUESTS} items after validation, not {len(requests)}"
        )
    size = body_bytes if body_bytes is not None else len(json.dumps(requests, separators=(",", ":")).encode())
    if size > MAX_BATCH_BYTES:
        raise RequestTooLarge(
            f"Request exceeds the maximum allowed number of bytes: a Message Batch is limited to "
            f"{MAX_BATCH_BYTES} bytes (256 MB), got {size}."
        )
    seen: set[str] = set()
    for i, item in enumerate(requests):
        if not isinstance(item, dict):
            raise InvalidRequest(f"requests.{i}: Input should be a valid dictionary")
        if "custom_id" not in item:
            raise InvalidRequest(f"requests.{i}.custom_id: Field required")
        cid = item["custom_id"]
        if not isinstance(cid, str):
            raise InvalidRequest(f"requests.{i}.custom_id: Input should be a valid string")
        if not _CUSTOM_ID_RE.match(cid):
            raise InvalidRequest(f"requests.{i}.custom_id: String should match pattern '{CUSTOM_ID_PATTERN.pattern}'")
        if "params" not in item:
            raise InvalidRequest(f"requests.{i}.params: Field required")
        if not isinstance(item["params"], dict):
            raise InvalidRequest(f"requests.{i}.params: Input should be a valid dictionary")
        if cid in seen:
            raise InvalidRequest(
                f"requests.{i}.custom_id: Duplicate custom_id '{cid}'. Each request in a Message Batch "
                "must have a unique custom_id."
            )
        seen.add(cid)
