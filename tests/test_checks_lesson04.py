"""Lesson 04 checks: the solutions pass, plausible wrong answers are rejected, stubs are not attempted."""

from __future__ import annotations

import itertools
import re
import uuid

import pytest

import course_utils.checks as checks
from _checks import assert_rejected
from course_utils.batch import build_batches as ref_build
from course_utils.batch import chunk_requests, join_results, resubmit_retryable
from course_utils.checks.lesson04 import ID_COLUMN

LIMITS = {"max_requests": 100_000, "max_bytes": 256 * 1024 * 1024}


def _stub(exercise):
    def stub(*args, **kwargs):
        raise NotImplementedError(f"Exercise {exercise}")
    return stub


@pytest.mark.parametrize("exercise", ["4.1", "4.2", "4.3", "4.4"])
def test_stubs_are_not_attempted(exercise):
    result = checks.check(exercise, _stub(exercise))
    assert result.status == "not_attempted" and result.points == 0


def test_lesson04_exercises_are_listed():
    assert [(e.id, e.points) for e in checks.exercises(4)] == [("4.1", 3), ("4.2", 3), ("4.3", 3), ("4.4", 3)]


# ----- 4.1 ------------------------------------------------------------------------------------
def build_batches(df, make_params, *, max_requests=LIMITS["max_requests"], max_bytes=LIMITS["max_bytes"]):
    return ref_build(df, make_params, id_column=ID_COLUMN, max_requests=max_requests, max_bytes=max_bytes)


def _requests(df, make_params, cid):
    return [{"custom_id": cid(i, row), "params": make_params(row)} for i, row in enumerate(df.to_dict("records"))]


def by_position(df, make_params, **limits):
    return chunk_requests(_requests(df, make_params, lambda i, row: f"req-{i}"), **{**LIMITS, **limits})


def random_uuid(df, make_params, **limits):
    return chunk_requests(_requests(df, make_params, lambda i, row: uuid.uuid4().hex), **{**LIMITS, **limits})


def raw_review_id(df, make_params, **limits):
    return chunk_requests(_requests(df, make_params, lambda i, row: row[ID_COLUMN]), **{**LIMITS, **limits})


def sanitised_only(df, make_params, **limits):
    clean = lambda i, row: re.sub(r"[^a-zA-Z0-9_-]", "-", row[ID_COLUMN])[:64]
    return chunk_requests(_requests(df, make_params, clean), **{**LIMITS, **limits})


_counter = itertools.count()


def global_counter(df, make_params, **limits):
    return chunk_requests(_requests(df, make_params, lambda i, row: f"n{next(_counter)}"), **{**LIMITS, **limits})


def no_chunking(df, make_params, **limits):
    return [sum(build_batches(df, make_params), [])]


def count_only_chunking(df, make_params, *, max_requests=LIMITS["max_requests"], max_bytes=LIMITS["max_bytes"]):
    reqs = sum(build_batches(df, make_params), [])
    return [reqs[i:i + max_requests] for i in range(0, len(reqs), max_requests)]


def one_per_batch(df, make_params, **limits):
    return [[r] for r in sum(build_batches(df, make_params), [])]


def flat_list(df, make_params, **limits):
    return sum(build_batches(df, make_params, **limits), [])


def keeps_duplicates(df, make_params, **limits):
    df = df.drop_duplicates(subset=[ID_COLUMN])
    return build_batches(df, make_params, **limits)


def test_4_1_solution_passes():
    result = checks.check("4.1", build_batches)
    assert result.status == "passed", result.feedback


@pytest.mark.parametrize("answer, phrase", [
    (by_position, "depend on position"),
    (random_uuid, "different custom_ids on a second run"),
    (global_counter, "different custom_ids on a second run"),
    (raw_review_id, "does not match"),
    (sanitised_only, "mapped to the same custom_id"),
    (no_chunking, "a batch has"),
    (count_only_chunking, "bytes"),
    (one_per_batch, "suffice"),
    (flat_list, "list of batches"),
    (keeps_duplicates, "ValueError"),
])
def test_4_1_wrong_answers_are_rejected(answer, phrase):
    assert_rejected("4.1", answer, phrase)


# ----- 4.2 ------------------------------------------------------------------------------------
def poll_until_ended(client, batch_id, *, clock, deadline_s, on_progress=None):
    start = clock.monotonic()
    wait = 1.0
    while True:
        batch = client.messages.batches.retrieve(batch_id)
        if on_progress is not None:
            on_progress(batch)
        if batch.processing_status == "ended":
            return batch
        left = deadline_s - (clock.monotonic() - start)
        if left <= 0:
            raise TimeoutError(batch_id)
        clock.sleep_sync(min(wait, left))
        wait = min(wait * 2, 60)


def reference_poller(client, batch_id, *, clock, deadline_s, on_progress=None):
    from course_utils.batch import PollSchedule, poll_batch

    progress = (lambda event: on_progress(event.latest)) if on_progress else None
    return poll_batch(client, batch_id, clock=clock, deadline_s=deadline_s, on_progress=progress,
                      schedule=PollSchedule(initial=2, factor=1.5, max_interval=120))


def fixed_interval(client, batch_id, *, clock, deadline_s, on_progress=None):
    start = clock.monotonic()
    while True:
        batch = client.messages.batches.retrieve(batch_id)
        if on_progress is not None:
            on_progress(batch)
        if batch.processing_status == "ended":
            return batch
        if clock.monotonic() - start > deadline_s:
            raise TimeoutError(batch_id)
        clock.sleep_sync(5)


def no_deadline(client, batch_id, *, clock, deadline_s, on_progress=None):
    wait = 1.0
    while True:
        batch = client.messages.batches.retrieve(batch_id)
        if on_progress is not None:
            on_progress(batch)
        if batch.processing_status == "ended":
            return batch
        clock.sleep_sync(wait)
        wait = min(wait * 2, 60)


def returns_at_deadline(client, batch_id, *, clock, deadline_s, on_progress=None):
    try:
        return poll_until_ended(client, batch_id, clock=clock, deadline_s=deadline_s, on_progress=on_progress)
    except TimeoutError:
        return client.messages.batches.retrieve(batch_id)


def no_sleep(client, batch_id, *, clock, deadline_s, on_progress=None):
    start = clock.monotonic()
    for _ in range(200):
        batch = client.messages.batches.retrieve(batch_id)
        if batch.processing_status == "ended":
            return batch
        if clock.monotonic() - start > deadline_s:
            raise TimeoutError(batch_id)
    raise TimeoutError(batch_id)


def no_progress(client, batch_id, *, clock, deadline_s, on_progress=None):
    return poll_until_ended(client, batch_id, clock=clock, deadline_s=deadline_s)


def test_4_2_solution_passes():
    for answer in (poll_until_ended, reference_poller):
        result = checks.check("4.2", answer)
        assert result.status == "passed", result.feedback


@pytest.mark.parametrize("answer, phrase", [
    (fixed_interval, "evenly spaced"),
    (no_deadline, "no deadline"),
    (returns_at_deadline, "instead of raising TimeoutError"),
    (no_sleep, "before the batch ended"),
    (no_progress, "on_progress was not called"),
])
def test_4_2_wrong_answers_are_rejected(answer, phrase):
    assert_rejected("4.2", answer, phrase)


# ----- 4.3 ------------------------------------------------------------------------------------
def join_and_triage(inputs, results):
    return join_results(inputs, results)


def _text(result):
    if result["type"] != "succeeded":
        return None
    return "".join(b["text"] for b in result["message"]["content"] if b["type"] == "text")


def _outcome(result, invalid=("invalid_request_error",)):
    kind = result["type"]
    if kind == "errored":
        return "invalid" if result["error"]["error"]["type"] in invalid else "retry"
    return {"succeeded": "succeeded", "expired": "retry", "canceled": "canceled"}[kind]


def by_position_join(inputs, results):
    results = list(results)
    out = inputs.copy()
    out["outcome"] = [_outcome(r["result"]) for r in results] + ["missing"] * (len(out) - len(results))
    out["text"] = [_text(r["result"]) for r in results] + [None] * (len(out) - len(results))
    return out


def _by_id(inputs, results, outcome):
    table = {r["custom_id"]: r["result"] for r in results}
    out = inputs.copy()
    out["outcome"] = [outcome(table[c]) if c in table else "missing" for c in out["custom_id"]]
    out["text"] = [_text(table[c]) if c in table else None for c in out["custom_id"]]
    return out


def all_errors_invalid(inputs, results):
    return _by_id(inputs, results, lambda r: "invalid" if r["type"] == "errored" else _outcome(r))


def all_errors_retry(inputs, results):
    return _by_id(inputs, results, lambda r: "retry" if r["type"] == "errored" else _outcome(r))


def expired_is_final(inputs, results):
    return _by_id(inputs, results, lambda r: "canceled" if r["type"] == "expired" else _outcome(r))


def sorted_position(inputs, results):
    # Sorts the results by custom_id and pastes them by position: right only if the inputs happen to be sorted.
    return by_position_join(inputs, sorted(results, key=lambda r: r["custom_id"]))


def inner_join(inputs, results):
    out = join_results(inputs, results)
    return out[out["outcome"] != "missing"]


def test_4_3_solution_passes():
    result = checks.check("4.3", join_and_triage)
    assert result.status == "passed", result.feedback


@pytest.mark.parametrize("answer, phrase", [
    (by_position_join, "another review's reply"),
    (sorted_position, "another review's reply"),
    (all_errors_invalid, "errored with api_error"),
    (all_errors_retry, "errored with invalid_request_error"),
    (expired_is_final, "expired"),
    (inner_join, "once each, in their order"),
])
def test_4_3_wrong_answers_are_rejected(answer, phrase):
    assert_rejected("4.3", answer, phrase)


# ----- 4.4 ------------------------------------------------------------------------------------
def resubmit_failures(client, store, job_id, params_by_id):
    items = store.items(job_id)
    todo = list(items.loc[items["outcome"].isin(["retry", "missing"]), "custom_id"])
    if not todo:
        return []
    batch = client.messages.batches.create(requests=[{"custom_id": c, "params": params_by_id[c]} for c in todo])
    store.record_batch(job_id, batch.id, todo)
    return [batch.id]


def reference_resubmit(client, store, job_id, params_by_id):
    return resubmit_retryable(client, store, job_id, params_by_id)


def _resubmit(outcomes, record=True, suffix=""):
    def answer(client, store, job_id, params_by_id):
        items = store.items(job_id)
        todo = list(items.loc[items["outcome"].isin(outcomes), "custom_id"])
        if not todo:
            return []
        batch = client.messages.batches.create(
            requests=[{"custom_id": c + suffix, "params": params_by_id[c]} for c in todo])
        if record:
            store.record_batch(job_id, batch.id, todo)
        return [batch.id]
    return answer


every_failure = _resubmit(["invalid", "retry", "missing", "canceled"])
everything = _resubmit(["succeeded", "invalid", "retry", "missing", "canceled"])
not_recorded = _resubmit(["retry", "missing"], record=False)
forgets_missing = _resubmit(["retry"])
with_canceled = _resubmit(["retry", "missing", "canceled"])
new_custom_ids = _resubmit(["retry", "missing"], suffix="-retry")


def expired_only(client, store, job_id, params_by_id):
    items = store.items(job_id)
    todo = list(items.loc[items["error_type"] == "expired", "custom_id"])
    if not todo:
        return []
    batch = client.messages.batches.create(requests=[{"custom_id": c, "params": params_by_id[c]} for c in todo])
    store.record_batch(job_id, batch.id, todo)
    return [batch.id]


def params_by_position(client, store, job_id, params_by_id):
    # Takes each item's params from its row number in the job, as if params_by_id were in the same order.
    items = store.items(job_id)
    todo = items[items["outcome"].isin(["retry", "missing"])]
    if todo.empty:
        return []
    bodies = list(params_by_id.values())
    batch = client.messages.batches.create(
        requests=[{"custom_id": c, "params": bodies[i]} for i, c in zip(todo.index, todo["custom_id"])])
    store.record_batch(job_id, batch.id, list(todo["custom_id"]))
    return [batch.id]


def one_batch_per_item(client, store, job_id, params_by_id):
    items = store.items(job_id)
    new = []
    for c in items.loc[items["outcome"].isin(["retry", "missing"]), "custom_id"]:
        batch = client.messages.batches.create(requests=[{"custom_id": c, "params": params_by_id[c]}])
        store.record_batch(job_id, batch.id, [c])
        new.append(batch.id)
    return new


def test_4_4_ledger_case_runs_into_expirations_and_transient_errors():
    from course_utils.checks import lesson04

    seen = {}

    def spy(client, store, job_id, params_by_id):
        seen.update(store.items(job_id).groupby("error_type").size().to_dict())
        return resubmit_failures(client, store, job_id, params_by_id)

    lesson04._ledger_body(spy, lesson04.probe(time_scale=0.0))
    assert seen.get("expired", 0) >= 1 and seen.get("overloaded_error", 0) >= 1, seen
    assert seen.get("invalid_request_error", 0) >= 1, seen


def test_4_4_solution_passes():
    for answer in (resubmit_failures, reference_resubmit):
        result = checks.check("4.4", answer)
        assert result.status == "passed", result.feedback


@pytest.mark.parametrize("answer, phrase", [
    (every_failure, "an invalid request was resubmitted"),
    (everything, "billed twice"),
    (not_recorded, "the second run submitted another batch"),
    (forgets_missing, "not exactly the retryable ones"),
    (with_canceled, "a canceled request was resubmitted"),
    (new_custom_ids, "not exactly the retryable ones"),
    (expired_only, "not exactly the retryable ones"),
    (params_by_position, "another review's params"),
    (one_batch_per_item, "not one new batch"),
])
def test_4_4_wrong_answers_are_rejected(answer, phrase):
    assert_rejected("4.4", answer, phrase)
