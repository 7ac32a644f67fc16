"""The Message Batches engine: validation, simulated-time processing, cancel, results, persistence.

Independent of HTTP (the adapter is :mod:`..handlers.batches`): :mod:`.store` keeps the batches,
:mod:`.processing` runs them (:meth:`BatchStore.run`, one asyncio task), :mod:`.limits` holds the
API's limits. Behaviour follows
https://platform.claude.com/docs/en/build-with-claude/batch-processing and the API reference
(https://platform.claude.com/docs/en/api/messages/batches):

* at most 100,000 requests or 256 MB per batch; ``custom_id`` matches ``^[a-zA-Z0-9_-]{1,64}$``
  and is unique within the batch; invalid ``params`` are not a create error but an ``errored``
  result;
* ``processing_status`` is ``in_progress`` -> (``canceling``) -> ``ended``; ``expires_at`` is
  created + 24 h, and requests not processed by then are ``expired``;
* ``request_counts``: requests count as ``processing`` until processing of the *whole* batch
  ends, then move to succeeded/errored/canceled/expired; the values always sum to the total;
* ``results_url`` is null until the batch ends; results come in no particular order;
* only ended batches can be deleted; listing returns the most recently created first.

Time is simulated on a :class:`~course_utils.clock.Clock`: each request has a due time spread
over the batch's processing window (30-300 s at ``time_scale=1``), so tests drive hours of
batch life on a :class:`~course_utils.clock.VirtualClock` without sleeping.
"""

from .limits import (
    BATCH_EXPIRY_SECONDS,
    CUSTOM_ID_PATTERN,
    MAX_BATCH_BYTES,
    MAX_BATCH_REQUESTS,
    BatchOptions,
    OnResultFn,
    ProcessFn,
    batch_timestamp,
)
from .store import BatchStore

__all__ = [
    "BatchOptions",
    "BatchStore",
    "ProcessFn",
    "OnResultFn",
    "MAX_BATCH_REQUESTS",
    "MAX_BATCH_BYTES",
    "CUSTOM_ID_PATTERN",
    "BATCH_EXPIRY_SECONDS",
    "batch_timestamp",
]
