"""Building Message Batch requests from a DataFrame: stable custom_ids, chunked to the limits.

A ``custom_id`` is the only link between a request and its result (results come back in any
order), so it must be unique within a batch, match ``^[a-zA-Z0-9_-]{1,64}$`` and, for resubmission
and resume to work, be the same for the same row on every run: it is derived from the row's key,
never from its position.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any, Callable, Iterable, Mapping

import pandas as pd

from ..api_facts import CUSTOM_ID_PATTERN

__all__ = [
    "MAX_BATCH_REQUESTS",
    "MAX_BATCH_BYTES",
    "CUSTOM_ID_PATTERN",
    "custom_id_for",
    "build_requests",
    "batch_size_bytes",
    "chunk_requests",
    "build_batches",
]

MAX_BATCH_REQUESTS = 100_000
"""At most this many requests in one Message Batch."""
MAX_BATCH_BYTES = 256 * 1024 * 1024
"""At most this many bytes of request body in one Message Batch (256 MB)."""

_UNSAFE = re.compile(r"[^a-zA-Z0-9_-]+")


def custom_id_for(key: Any, prefix: str = "r") -> str:
    """A deterministic, API-valid ``custom_id`` for a row key (any value with a stable ``str``).

    A readable slug of the key plus a hash of the exact key: sanitising alone would map
    ``"a/b"`` and ``"a-b"`` to the same id, and truncating to 64 characters could too.
    """
    text = str(key)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
    slug = _UNSAFE.sub("-", text).strip("-")[:40]
    return f"{prefix}_{slug}_{digest}" if slug else f"{prefix}_{digest}"


def build_requests(
    df: pd.DataFrame,
    make_params: Callable[[Mapping[str, Any]], dict[str, Any]],
    *,
    id_column: str,
) -> list[dict[str, Any]]:
    """One ``{"custom_id", "params"}`` request per row, in row order.

    ``custom_id`` comes from ``id_column`` (see :func:`custom_id_for`); ``make_params(row)`` returns
    the Messages ``create`` body for that row. Raises ``ValueError`` on duplicate keys, because two
    rows sharing an id could never be told apart in the results.
    """
    keys = df[id_column]
    dupes = keys[keys.duplicated()].unique().tolist()
    if dupes:
        raise ValueError(f"{id_column} must be unique; duplicated: {dupes[:5]}")
    out = []
    for row in df.to_dict(orient="records"):
        cid = custom_id_for(row[id_column])
        out.append({"custom_id": cid, "params": make_params(row)})
    ids = [r["custom_id"] for r in out]
    if len(set(ids)) != len(ids):  # a hash collision: astronomically unlikely, but never silent
        raise ValueError("custom_id collision; use a longer digest")
    return out


def batch_size_bytes(requests: Iterable[Mapping[str, Any]]) -> int:
    """Bytes of the ``{"requests": [...]}`` body for these requests (compact JSON, UTF-8)."""
    return len(json.dumps({"requests": list(requests)}, separators=(",", ":")).encode("utf-8"))


def chunk_requests(
    requests: list[dict[str, Any]],
    *,
    max_requests: int = MAX_BATCH_REQUESTS,
    max_bytes: int = MAX_BATCH_BYTES,
) -> list[list[dict[str, Any]]]:
    """Split ``requests`` greedily, in order, into batches within both limits.

    Sizes are added up incrementally (one ``json.dumps`` per request, not per candidate batch), so
    this is linear in the workload. A single request too large for ``max_bytes`` raises ``ValueError``.
    """
    if max_requests < 1:
        raise ValueError("max_requests must be >= 1")
    overhead = batch_size_bytes([])  # '{"requests":[]}'
    chunks: list[list[dict[str, Any]]] = []
    current: list[dict[str, Any]] = []
    size = overhead
    for req in requests:
        item = len(json.dumps(req, separators=(",", ":")).encode("utf-8"))
        if overhead + item > max_bytes:
            raise ValueError(f"request {req.get('custom_id')!r} alone is {item} bytes, over max_bytes={max_bytes}")
        extra = item + (1 if current else 0)  # the comma between items
        if current and (len(current) >= max_requests or size + extra > max_bytes):
            chunks.append(current)
            current, size, extra = [], overhead, item
        current.append(req)
        size += extra
    if current:
        chunks.append(current)
    return chunks


def build_batches(
    df: pd.DataFrame,
    make_params: Callable[[Mapping[str, Any]], dict[str, Any]],
    *,
    id_column: str,
    max_requests: int = MAX_BATCH_REQUESTS,
    max_bytes: int = MAX_BATCH_BYTES,
) -> list[list[dict[str, Any]]]:
    """:func:`build_requests` then :func:`chunk_requests`: the batches to submit for ``df``."""
    return chunk_requests(
        build_requests(df, make_params, id_column=id_column), max_requests=max_requests, max_bytes=max_bytes
    )
