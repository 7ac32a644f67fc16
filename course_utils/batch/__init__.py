"""Message Batches done properly: requests with stable custom_ids, a polling loop with a deadline,
a resumable job record, results joined by custom_id and triaged, idempotent resubmission, costs.

Modules, one job each: :mod:`.requests`, :mod:`.poll`, :mod:`.jobstore`, :mod:`.results`,
:mod:`.resubmit`, :mod:`.job` (the steps together), :mod:`.costs`, :mod:`.progress` (showing
``request_counts``), :mod:`.virtual` (batches on virtual time, for the lesson and its checks).

The library's conventions hold here: functions take the SDK's ``anthropic.Anthropic`` client,
pollers report through ``on_progress(ProgressEvent)`` (:mod:`course_utils.progress`), and result
objects (:class:`BatchResults`, :class:`CostComparison`) have ``.frame()`` and ``.summary()``.
"""

from .costs import CostComparison, billed_twice, sync_vs_batch
from .errors import BatchError
from .job import collect_batch, latest_results, submit_job, wait_and_collect
from .jobstore import OUTCOMES, RETRYABLE_OUTCOMES, JobStore
from .poll import POLL_CAP_S, PollSchedule, PollTimeout, counts_of, format_counts, poll_batch, poll_batches
from .progress import CountsProgress
from .requests import (
    CUSTOM_ID_PATTERN,
    MAX_BATCH_BYTES,
    MAX_BATCH_REQUESTS,
    batch_size_bytes,
    build_batches,
    build_requests,
    chunk_requests,
    custom_id_for,
)
from .results import BatchResults, classify, iter_results, join_results
from .resubmit import resubmit_retryable
from .virtual import SimulatorClock, VirtualSimulator

__all__ = [
    "POLL_CAP_S",
    "JobStore",
    "OUTCOMES",
    "RETRYABLE_OUTCOMES",
    "PollSchedule",
    "BatchError",
    "PollTimeout",
    "poll_batch",
    "poll_batches",
    "counts_of",
    "format_counts",
    "CountsProgress",
    "CUSTOM_ID_PATTERN",
    "MAX_BATCH_BYTES",
    "MAX_BATCH_REQUESTS",
    "custom_id_for",
    "build_requests",
    "chunk_requests",
    "build_batches",
    "batch_size_bytes",
    "classify",
    "iter_results",
    "BatchResults",
    "join_results",
    "resubmit_retryable",
    "submit_job",
    "collect_batch",
    "wait_and_collect",
    "latest_results",
    "sync_vs_batch",
    "CostComparison",
    "billed_twice",
    "VirtualSimulator",
    "SimulatorClock",
]
