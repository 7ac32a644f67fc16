"""A batch job end to end: submit (recorded first), wait (resumable), collect the triaged results.

Every step reads and writes the :class:`~.jobstore.JobStore`, so each can be re-run after a
crash: ``submit_job`` skips chunks already submitted, ``wait_and_collect`` collects each batch as
soon as it ends and polls only what the record says is still open, and collecting a batch twice
changes nothing.
"""

from __future__ import annotations

from typing import Any, Iterator, Sequence

import anthropic
import httpx2

from ..clients import SyncClient
from ..clock import SYSTEM_CLOCK, Clock
from ..progress import ProgressCallback, ProgressEvent
from .jobstore import JobStore
from .poll import PollSchedule, PollTimeout, counts_of, poll_batches
from .results import classify, iter_results

__all__ = ["submit_job", "collect_batch", "wait_and_collect", "latest_results"]


def submit_job(
    client: SyncClient, store: JobStore, job_id: str, chunks: Sequence[Sequence[dict[str, Any]]]
) -> list[str]:
    """Create the job's batches (one per chunk) and record each id as soon as it exists.

    Re-running it for the same job submits only requests that were never submitted, so a crash
    between two chunks costs nothing twice. Returns the ids of the batches created by this call.
    """
    store.create_job(job_id, [r["custom_id"] for chunk in chunks for r in chunk])
    items = store.items(job_id)
    submitted = set(items.loc[items["batch_id"].notna(), "custom_id"])
    created = []
    for chunk in chunks:
        todo = [r for r in chunk if r["custom_id"] not in submitted]
        if not todo:
            continue
        batch = client.messages.batches.create(requests=todo)
        store.record_batch(job_id, batch.id, [r["custom_id"] for r in todo])
        created.append(batch.id)
    return created


DOWNLOADS = 3
"""Downloads of one batch's results before an item without a line is recorded ``missing``."""


def collect_batch(
    client: SyncClient, store: JobStore, job_id: str, batch_id: str, *, downloads: int = DOWNLOADS
) -> dict[str, int]:
    """Stream an ended batch's results into the job record; returns the count per outcome.

    An item of the batch with no result line (a download cut short) is downloaded again, up to
    ``downloads`` downloads in all: results stay available for 29 days, and a lost line may belong
    to a request that succeeded and was billed. Only what is still absent after that is ``missing``.
    """
    if downloads < 1:
        raise ValueError("downloads must be >= 1")
    items = store.items(job_id)
    expected = set(items.loc[items["batch_id"] == batch_id, "custom_id"])
    outcomes: dict[str, tuple[str, str | None]] = {}
    for attempt in range(1, downloads + 1):
        try:
            for line in iter_results(client, batch_id):
                outcomes[line["custom_id"]] = classify(line["result"])
        except (anthropic.APIConnectionError, httpx2.TransportError):
            # The stream broke mid-file: keep the lines that arrived, download again.
            if attempt == downloads:
                raise
            continue
        if expected <= outcomes.keys():
            break
    for cid in expected:
        outcomes.setdefault(cid, ("missing", None))  # still no line: report it, never lose the item
    store.record_outcomes(batch_id, outcomes)
    store.mark_batch(batch_id, "collected")
    tally: dict[str, int] = {}
    for outcome, _ in outcomes.values():
        tally[outcome] = tally.get(outcome, 0) + 1
    return tally


def wait_and_collect(
    client: SyncClient,
    store: JobStore,
    job_id: str,
    *,
    deadline_s: float,
    clock: Clock = SYSTEM_CLOCK,
    schedule: PollSchedule = PollSchedule(),
    on_progress: ProgressCallback | None = None,
) -> dict[str, int]:
    """Poll the job's open batches (from the record, so it works in a fresh process) and collect them.

    Each batch is collected the moment a poll sees it ended, before ``on_progress`` hears of it:
    a poller that dies later has already banked those results, and a restart polls only the
    batches still open. Returns :meth:`JobStore.summary`. On :class:`~.poll.PollTimeout` the rest
    stay open for the next run.

    ``on_progress`` gets the poller's :class:`~course_utils.progress.ProgressEvent` (``done`` of
    ``total`` open batches ended, ``latest`` the ``MessageBatch`` just polled; see
    :func:`~.poll.poll_batches`).
    """
    open_ids = store.open_batches(job_id)
    collected: set[str] = set()

    def collect_on_end(event: ProgressEvent) -> None:
        batch = event.latest
        if batch.processing_status == "ended" and batch.id not in collected:
            _collect(client, store, job_id, batch)
            collected.add(batch.id)
        if on_progress is not None:
            on_progress(event)

    if open_ids:
        try:
            ended = poll_batches(
                client, open_ids, deadline_s=deadline_s, clock=clock, schedule=schedule, on_progress=collect_on_end
            )
        except PollTimeout as exc:
            _collect_ended(client, store, job_id, exc.batches, skip=collected)
            raise
        _collect_ended(client, store, job_id, ended, skip=collected)
    return store.summary(job_id)


def _collect(client: SyncClient, store: JobStore, job_id: str, batch: Any) -> None:
    store.mark_batch(batch.id, "ended", counts_of(batch))
    collect_batch(client, store, job_id, batch.id)


def _collect_ended(
    client: SyncClient, store: JobStore, job_id: str, batches: dict[str, Any], *, skip: set[str]
) -> None:
    for bid, batch in batches.items():
        if batch.processing_status == "ended" and bid not in skip:
            _collect(client, store, job_id, batch)


def latest_results(client: SyncClient, store: JobStore, job_id: str) -> Iterator[dict[str, Any]]:
    """Stream the result line that counts for each item: the one from its latest batch.

    A resubmitted item has a line in every batch it went through (``expired`` first, then
    ``succeeded``); only the latest one is its answer.
    """
    items = store.items(job_id)
    latest = dict(zip(items["custom_id"], items["batch_id"]))
    for bid in store.batches(job_id)["batch_id"]:
        for line in iter_results(client, bid):
            if latest.get(line["custom_id"]) == bid:
                yield line
