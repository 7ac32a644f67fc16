"""Idempotent resubmission of the retryable failures of a batch job.

"Retry everything that failed" resubmits invalid requests (they fail again, every night) and, if
run twice, submits the same retries twice. Here the job record decides: only items whose latest
outcome is retryable go out, and recording the new batch turns them ``pending`` in the same step,
so a second run finds nothing to do.
"""

from __future__ import annotations

from typing import Any, Mapping

from ..clients import SyncClient
from .jobstore import JobStore
from .requests import MAX_BATCH_BYTES, MAX_BATCH_REQUESTS, chunk_requests

__all__ = ["resubmit_retryable"]


def resubmit_retryable(
    client: SyncClient,
    store: JobStore,
    job_id: str,
    params_by_id: Mapping[str, Mapping[str, Any]],
    *,
    include_canceled: bool = False,
    include_missing: bool = False,
    max_attempts: int = 3,
    max_requests: int = MAX_BATCH_REQUESTS,
    max_bytes: int = MAX_BATCH_BYTES,
) -> list[str]:
    """Submit the job's retryable items again, under their original custom_ids; return the new batch ids.

    Items that already had ``max_attempts`` submissions stay as they are (report them rather than
    paying for them forever). ``missing`` items (no result line even after downloading again) go
    out only with ``include_missing``: they may have been billed already. Returns ``[]`` when there is
    nothing to resubmit, which is what a second call right after the first returns.
    """
    todo = store.retryable(
        job_id, include_canceled=include_canceled, include_missing=include_missing, max_attempts=max_attempts
    )
    if not todo:
        return []
    requests = [{"custom_id": cid, "params": dict(params_by_id[cid])} for cid in todo]
    new_ids = []
    for chunk in chunk_requests(requests, max_requests=max_requests, max_bytes=max_bytes):
        batch = client.messages.batches.create(requests=chunk)
        # Recorded before anything else can fail: a crash after this line leaves a resumable job.
        store.record_batch(job_id, batch.id, [r["custom_id"] for r in chunk])
        new_ids.append(batch.id)
    return new_ids
