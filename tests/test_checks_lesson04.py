"""Lesson 04 checks: the solutions and correct alternatives pass, plausible wrong answers are rejected.

Wrong answers are written as a student would, from each exercise's contract (the notebook's
markdown and docstring); each is rejected with the phrase that names what it got wrong. The
framework's strict mode (on under pytest) turns a failure message that names no difference into
a check bug, so every rejection here also proves its message shows the difference. Each exercise
also has a correct alternative written differently from the reference solution.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import re
import time
import uuid

import pandas as pd
import pytest

import course_utils.checks as checks
from _checks import assert_rejected
from course_utils.batch import build_batches as ref_build
from course_utils.batch import batch_size_bytes, chunk_requests, custom_id_for, join_results, resubmit_retryable
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
    return [reqs[i : i + max_requests] for i in range(0, len(reqs), max_requests)]


def one_per_batch(df, make_params, **limits):
    return [[r] for r in sum(build_batches(df, make_params), [])]


def flat_list(df, make_params, **limits):
    return sum(build_batches(df, make_params, **limits), [])


def keeps_duplicates(df, make_params, **limits):
    df = df.drop_duplicates(subset=[ID_COLUMN])
    return build_batches(df, make_params, **limits)


def hash_ids(df, make_params, **limits):
    # "A hash of the review id": Python's hash() is salted per process.
    return chunk_requests(
        _requests(df, make_params, lambda i, row: f"r{abs(hash(row[ID_COLUMN]))}"), **{**LIMITS, **limits}
    )


def slug_and_builtin_hash(df, make_params, **limits):
    def cid(i, row):
        slug = re.sub(r"[^a-zA-Z0-9_-]", "-", row[ID_COLUMN])[:40]
        return f"{slug}_{hash(row[ID_COLUMN]) % 10**12}"

    return chunk_requests(_requests(df, make_params, cid), **{**LIMITS, **limits})


def empty_gives_an_empty_batch(df, make_params, **limits):
    return build_batches(df, make_params, **limits) or [[]]


def adds_a_column_to_df(df, make_params, **limits):
    df["custom_id"] = [custom_id_for(rid) for rid in df[ID_COLUMN]]  # handy for the join later...
    return chunk_requests(
        [{"custom_id": c, "params": make_params(row)} for c, row in zip(df["custom_id"], df.to_dict("records"))],
        **{**LIMITS, **limits},
    )


def digest_of_position(df, make_params, **limits):
    ids = lambda i, row: hashlib.sha256(str(i).encode()).hexdigest()[:32]
    return chunk_requests(_requests(df, make_params, ids), **{**LIMITS, **limits})


def digest_of_the_slug(df, make_params, **limits):
    # Sanitises first, then hashes the sanitised text: "B01/R1" and "B01-R1" get the same id.
    def cid(i, row):
        slug = re.sub(r"[^a-zA-Z0-9_-]", "-", row[ID_COLUMN])
        return f"{slug[:40]}_{hashlib.sha256(slug.encode()).hexdigest()[:16]}"

    return chunk_requests(_requests(df, make_params, cid), **{**LIMITS, **limits})


def bytes_only_chunking(df, make_params, *, max_requests=LIMITS["max_requests"], max_bytes=LIMITS["max_bytes"]):
    return chunk_requests(
        sum(build_batches(df, make_params), []), max_requests=LIMITS["max_requests"], max_bytes=max_bytes
    )


def skips_empty_reviews(df, make_params, **limits):
    return build_batches(df[df["text"].astype(str).str.strip() != ""], make_params, **limits)


def sorted_by_review_id(df, make_params, **limits):
    return build_batches(df.sort_values(ID_COLUMN), make_params, **limits)


def uuid5_and_running_size(df, make_params, *, max_requests=LIMITS["max_requests"], max_bytes=LIMITS["max_bytes"]):
    """A correct alternative: uuid5 ids (stable everywhere), sizes added up as it goes (not re-measured)."""
    if df[ID_COLUMN].nunique() != len(df):
        raise ValueError("duplicate review_id")
    import json

    def size(request):
        return len(json.dumps(request, separators=(",", ":")).encode("utf-8"))

    empty = len(b'{"requests":[]}')
    batches, current, used = [], [], empty
    for row in df.to_dict("records"):
        request = {
            "custom_id": "rv-" + uuid.uuid5(uuid.NAMESPACE_URL, str(row[ID_COLUMN])).hex,
            "params": make_params(row),
        }
        extra = size(request) + (1 if current else 0)
        if current and (len(current) == max_requests or used + extra > max_bytes):
            batches.append(current)
            current, used, extra = [], empty, size(request)
        current.append(request)
        used += extra
    return batches + ([current] if current else [])


def word_character_slug(df, make_params, **limits):
    # \w is "letters, digits, underscore" in Unicode: ü and 漢 stay, and the API rejects them.
    def cid(i, row):
        key = str(row[ID_COLUMN])
        return re.sub(r"\W+", "-", key)[:40] + "_" + hashlib.sha256(key.encode()).hexdigest()[:16]

    return chunk_requests(_requests(df, make_params, cid), **{**LIMITS, **limits})


def greater_or_equal_bytes(df, make_params, *, max_requests=LIMITS["max_requests"], max_bytes=LIMITS["max_bytes"]):
    batches, current = [], []
    for request in sum(build_batches(df, make_params), []):
        if current and (len(current) >= max_requests or batch_size_bytes(current + [request]) >= max_bytes):
            batches.append(current)
            current = []
        current.append(request)
    return batches + ([current] if current else [])


def items_without_the_wrapper(df, make_params, *, max_requests=LIMITS["max_requests"], max_bytes=LIMITS["max_bytes"]):
    import json

    batches, current, used = [], [], 0
    for request in sum(build_batches(df, make_params), []):
        size = len(json.dumps(request, separators=(",", ":")))  # the request alone
        if current and (len(current) >= max_requests or used + size > max_bytes):
            batches.append(current)
            current, used = [], 0
        current.append(request)
        used += size
    return batches + ([current] if current else [])


def test_4_1_solution_passes():
    for answer in (build_batches, uuid5_and_running_size):
        result = checks.check("4.1", answer)
        assert result.status == "passed", result.feedback


@pytest.mark.parametrize(
    "answer, phrase",
    [
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
        (hash_ids, "another process"),
        (slug_and_builtin_hash, "another process"),
        (empty_gives_an_empty_batch, "empty DataFrame"),
        (adds_a_column_to_df, "changed the caller's DataFrame"),
        (digest_of_position, "depend on position"),
        (digest_of_the_slug, "mapped to the same custom_id"),
        (bytes_only_chunking, "a batch has"),
        (skips_empty_reviews, "wrong number of requests"),
        (sorted_by_review_id, "not in row order"),
        (word_character_slug, "invalid for review ids with other characters"),
        (greater_or_equal_bytes, "the first batch has 4 requests"),
        (items_without_the_wrapper, "a batch is"),
    ],
)
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
    return poll_batch(
        client,
        batch_id,
        clock=clock,
        deadline_s=deadline_s,
        on_progress=progress,
        schedule=PollSchedule(initial=2, factor=1.5, max_interval=120),
    )


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


def uncapped_doubling(client, batch_id, *, clock, deadline_s, on_progress=None):
    start, wait = clock.monotonic(), 1.0
    while True:
        batch = client.messages.batches.retrieve(batch_id)
        if on_progress:
            on_progress(batch)
        if batch.processing_status == "ended":
            return batch
        left = deadline_s - (clock.monotonic() - start)
        if left <= 0:
            raise TimeoutError(batch_id)
        clock.sleep_sync(min(wait, left))
        wait *= 2


def sleeps_before_polling(client, batch_id, *, clock, deadline_s, on_progress=None):
    start, wait = clock.monotonic(), 2.0
    while clock.monotonic() - start < deadline_s:
        clock.sleep_sync(min(wait, deadline_s - (clock.monotonic() - start)))  # give it time first
        wait = min(wait * 1.5, 120)
        batch = client.messages.batches.retrieve(batch_id)
        if on_progress:
            on_progress(batch)
        if batch.processing_status == "ended":
            return batch
    raise TimeoutError(batch_id)


def polls_again_for_final_counts(client, batch_id, *, clock, deadline_s, on_progress=None):
    poll_until_ended(client, batch_id, clock=clock, deadline_s=deadline_s, on_progress=on_progress)
    batch = client.messages.batches.retrieve(batch_id)  # "to be sure the counts are final"
    if on_progress:
        on_progress(batch)
    return batch


def deadline_on_the_wall_clock(client, batch_id, *, clock, deadline_s, on_progress=None):
    start, wait = time.monotonic(), 1.0
    while True:
        batch = client.messages.batches.retrieve(batch_id)
        if on_progress:
            on_progress(batch)
        if batch.processing_status == "ended":
            return batch
        if time.monotonic() - start > deadline_s:
            raise TimeoutError(batch_id)
        clock.sleep_sync(wait)
        wait = min(wait * 2, 60)


def unclipped_last_sleep(client, batch_id, *, clock, deadline_s, on_progress=None):
    start, wait = clock.monotonic(), 100.0
    while True:
        batch = client.messages.batches.retrieve(batch_id)
        if on_progress:
            on_progress(batch)
        if batch.processing_status == "ended":
            return batch
        if clock.monotonic() - start >= deadline_s:
            raise TimeoutError(batch_id)
        clock.sleep_sync(wait)  # may sleep far past the deadline
        wait = min(wait * 2, 600)


def progress_only_at_the_end(client, batch_id, *, clock, deadline_s, on_progress=None):
    batch = poll_until_ended(client, batch_id, clock=clock, deadline_s=deadline_s)
    if on_progress:
        on_progress(batch)
    return batch


def none_at_the_deadline(client, batch_id, *, clock, deadline_s, on_progress=None):
    try:
        return poll_until_ended(client, batch_id, clock=clock, deadline_s=deadline_s, on_progress=on_progress)
    except TimeoutError:
        return None


def shrinking_waits(client, batch_id, *, clock, deadline_s, on_progress=None):
    start, wait = clock.monotonic(), 30.0
    while True:
        batch = client.messages.batches.retrieve(batch_id)
        if on_progress:
            on_progress(batch)
        if batch.processing_status == "ended":
            return batch
        left = deadline_s - (clock.monotonic() - start)
        if left <= 0:
            raise TimeoutError(batch_id)
        clock.sleep_sync(min(wait, left))
        wait = max(1.0, wait / 2)  # "poll more often as it gets closer to done"


def schedule_from_a_table(client, batch_id, *, clock, deadline_s, on_progress=None):
    """A correct alternative: waits from a fixed table (5 s ... 5 min, then 5 min), an absolute end time."""
    end = clock.monotonic() + deadline_s
    waits = itertools.chain([5, 10, 20, 40, 80, 160], itertools.repeat(300))
    for wait in waits:
        batch = client.messages.batches.retrieve(batch_id)
        if on_progress is not None:
            on_progress(batch)
        if batch.processing_status == "ended":
            return batch
        now = clock.monotonic()
        if now >= end:
            raise TimeoutError(f"{batch_id}: {batch.processing_status} at the deadline")
        clock.sleep_sync(min(wait, end - now))


def test_4_2_solution_passes():
    for answer in (poll_until_ended, reference_poller, schedule_from_a_table):
        result = checks.check("4.2", answer)
        assert result.status == "passed", result.feedback


@pytest.mark.parametrize(
    "answer, phrase",
    [
        (fixed_interval, "evenly spaced"),
        (no_deadline, "no deadline"),
        (returns_at_deadline, "instead of raising TimeoutError"),
        (no_sleep, "before the batch ended"),
        (no_progress, "on_progress was not called"),
        (uncapped_doubling, "between two polls"),
        (sleeps_before_polling, "had already ended"),
        (polls_again_for_final_counts, "had already ended"),
        (deadline_on_the_wall_clock, "still polling"),
        (unclipped_last_sleep, "kept polling until"),
        (progress_only_at_the_end, "on_progress was not called"),
        (none_at_the_deadline, "instead of raising TimeoutError"),
        (shrinking_waits, "polls in the first"),
    ],
)
def test_4_2_wrong_answers_are_rejected(answer, phrase):
    assert_rejected("4.2", answer, phrase)


# ----- 4.3 ------------------------------------------------------------------------------------
def join_and_triage(inputs, results):
    return join_results(inputs, results)


def _text(result):
    if result["type"] != "succeeded":
        return None
    return "".join(b["text"] for b in result["message"]["content"] if b["type"] == "text")


TRANSIENT = ("api_error", "overloaded_error", "rate_limit_error", "timeout_error")


def _outcome(result, transient=TRANSIENT):
    kind = result["type"]
    if kind == "errored":
        return "retry" if result["error"]["error"]["type"] in transient else "invalid"
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


def plain_merge(inputs, results):
    rows = [
        {"custom_id": r["custom_id"], "outcome": _outcome(r["result"]), "text": _text(r["result"])} for r in results
    ]
    table = pd.DataFrame(rows, columns=["custom_id", "outcome", "text"])
    out = inputs.merge(table, on="custom_id", how="left")
    out["outcome"] = out["outcome"].fillna("missing")
    return out


def adds_columns_in_place(inputs, results):
    table = {r["custom_id"]: r["result"] for r in results}
    inputs["outcome"] = [_outcome(table[c]) if c in table else "missing" for c in inputs["custom_id"]]
    inputs["text"] = [_text(table[c]) if c in table else None for c in inputs["custom_id"]]
    return inputs


def first_block_text(inputs, results):
    def text(result):
        return result["message"]["content"][0].get("text") if result["type"] == "succeeded" else None

    table = {r["custom_id"]: r["result"] for r in results}
    return inputs.assign(
        outcome=[_outcome(table[c]) if c in table else "missing" for c in inputs["custom_id"]],
        text=[text(table[c]) if c in table else None for c in inputs["custom_id"]],
    )


def empty_string_text(inputs, results):
    out = _by_id(inputs, results, _outcome)
    out["text"] = out["text"].fillna("")
    return out


def outer_error_type(inputs, results):
    # Reads result["error"]["type"], which is always "error": no errored result looks transient.
    return _by_id(
        inputs,
        results,
        lambda r: ("retry" if r["error"]["type"] in TRANSIENT else "invalid")
        if r["type"] == "errored"
        else _outcome(r),
    )


def deny_list(inputs, results):
    # The old rule: only invalid_request_error is final, every other error type is retried.
    return _by_id(
        inputs,
        results,
        lambda r: ("invalid" if r["error"]["error"]["type"] == "invalid_request_error" else "retry")
        if r["type"] == "errored"
        else _outcome(r),
    )


def fourxx_deny_list(inputs, results):
    # A longer deny-list of the documented 4xx types: an error type nobody listed is still retried.
    final = {"invalid_request_error", "authentication_error", "permission_error", "not_found_error",
             "request_too_large", "billing_error"}  # fmt: skip
    return _by_id(
        inputs,
        results,
        lambda r: ("invalid" if r["error"]["error"]["type"] in final else "retry")
        if r["type"] == "errored"
        else _outcome(r),
    )


def server_errors_only(inputs, results):
    # Retries 5xx types but forgets rate_limit_error (429) and timeout_error.
    return _by_id(inputs, results, lambda r: _outcome(r, transient=("api_error", "overloaded_error")))


def missing_is_retry(inputs, results):
    out = _by_id(inputs, results, _outcome)
    out.loc[~out["custom_id"].isin([r["custom_id"] for r in results]), "outcome"] = "retry"
    return out


def canceled_is_retry(inputs, results):
    return _by_id(inputs, results, lambda r: "retry" if r["type"] == "canceled" else _outcome(r))


def pops_the_results(inputs, results):
    table = {}
    for line in results:
        table[line.pop("custom_id")] = line["result"]  # "consume" the lines
    return inputs.assign(
        outcome=[_outcome(table[c]) if c in table else "missing" for c in inputs["custom_id"]],
        text=[_text(table[c]) if c in table else None for c in inputs["custom_id"]],
    )


def merge_with_a_lookup_table(inputs, results):
    """A correct alternative: a results DataFrame merged in, after dropping the inputs' own text."""

    def text_of_blocks(message):
        return "".join(block["text"] for block in message["content"] if block["type"] == "text")

    def row(line):
        result = line["result"]
        if result["type"] == "succeeded":
            return line["custom_id"], "succeeded", text_of_blocks(result["message"])
        if result["type"] == "errored":
            kind = result["error"]["error"]["type"]
            retry = kind in {"api_error", "overloaded_error", "rate_limit_error", "timeout_error"}
            return line["custom_id"], "retry" if retry else "invalid", None
        return line["custom_id"], {"expired": "retry", "canceled": "canceled"}[result["type"]], None

    table = pd.DataFrame([row(line) for line in results], columns=["custom_id", "outcome", "text"])
    base = inputs.drop(columns=[c for c in ("outcome", "text") if c in inputs.columns])
    merged = base.merge(table.astype(object), on="custom_id", how="left")
    merged["outcome"] = merged["outcome"].fillna("missing")
    merged["text"] = merged["text"].astype(object).where(merged["text"].notna(), None)
    merged.index = inputs.index
    return merged


def only_the_new_columns(inputs, results):
    return _by_id(inputs, results, _outcome)[["custom_id", "outcome", "text"]]


def test_4_3_solution_passes():
    for answer in (join_and_triage, merge_with_a_lookup_table):
        result = checks.check("4.3", answer)
        assert result.status == "passed", result.feedback


@pytest.mark.parametrize(
    "answer, phrase",
    [
        (by_position_join, "another review's reply"),
        (sorted_position, "another review's reply"),
        (all_errors_invalid, "errored with api_error"),
        (all_errors_retry, "errored with invalid_request_error"),
        (deny_list, "errored with permission_error"),
        (fourxx_deny_list, "errored with a type not in the documentation"),
        (server_errors_only, "errored with timeout_error"),
        (expired_is_final, "expired"),
        (inner_join, "one row per input"),
        (plain_merge, "collided with the input's own 'text' column"),
        (adds_columns_in_place, "changed the caller's DataFrame"),
        (first_block_text, "text of succeeded result 'h'"),
        (empty_string_text, "did not succeed have a text"),
        (outer_error_type, "errored with api_error"),
        (missing_is_retry, "(no result line)"),
        (canceled_is_retry, "canceled"),
        (pops_the_results, "changed the result lines"),
        (only_the_new_columns, "lost the input column"),
    ],
)
def test_4_3_wrong_answers_are_rejected(answer, phrase):
    assert_rejected("4.3", answer, phrase)


# ----- 4.4 ------------------------------------------------------------------------------------
def resubmit_failures(client, store, job_id, params_by_id):
    items = store.items(job_id)
    todo = list(items.loc[items["outcome"] == "retry", "custom_id"])
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
            requests=[{"custom_id": c + suffix, "params": params_by_id[c]} for c in todo]
        )
        if record:
            store.record_batch(job_id, batch.id, todo)
        return [batch.id]

    return answer


every_failure = _resubmit(["invalid", "retry", "missing", "canceled"])
everything = _resubmit(["succeeded", "invalid", "retry", "missing", "canceled"])
not_recorded = _resubmit(["retry"], record=False)
with_missing = _resubmit(["retry", "missing"])  # the old rule: a lost result line is resubmitted (billed twice)
with_canceled = _resubmit(["retry", "canceled"])
new_custom_ids = _resubmit(["retry"], suffix="-retry")


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
    todo = items[items["outcome"].isin(["retry"])]
    if todo.empty:
        return []
    bodies = list(params_by_id.values())
    batch = client.messages.batches.create(
        requests=[{"custom_id": c, "params": bodies[i]} for i, c in zip(todo.index, todo["custom_id"])]
    )
    store.record_batch(job_id, batch.id, list(todo["custom_id"]))
    return [batch.id]


def one_batch_per_item(client, store, job_id, params_by_id):
    items = store.items(job_id)
    new = []
    for c in items.loc[items["outcome"].isin(["retry"]), "custom_id"]:
        batch = client.messages.batches.create(requests=[{"custom_id": c, "params": params_by_id[c]}])
        store.record_batch(job_id, batch.id, [c])
        new.append(batch.id)
    return new


def not_finished_yet(client, store, job_id, params_by_id):
    # "Everything that has not finished well": pending items (still running) go out again too.
    items = store.items(job_id)
    todo = list(items.loc[~items["outcome"].isin(["succeeded", "invalid", "canceled", "missing"]), "custom_id"])
    if not todo:
        return []
    batch = client.messages.batches.create(requests=[{"custom_id": c, "params": params_by_id[c]} for c in todo])
    store.record_batch(job_id, batch.id, todo)
    return [batch.id]


def pops_the_params(client, store, job_id, params_by_id):
    items = store.items(job_id)
    todo = list(items.loc[items["outcome"].isin(["retry"]), "custom_id"])
    if not todo:
        return []
    batch = client.messages.batches.create(requests=[{"custom_id": c, "params": params_by_id.pop(c)} for c in todo])
    store.record_batch(job_id, batch.id, todo)
    return [batch.id]


def always_creates_a_batch(client, store, job_id, params_by_id):
    items = store.items(job_id)
    todo = list(items.loc[items["outcome"].isin(["retry"]), "custom_id"])
    requests = [{"custom_id": c, "params": params_by_id[c]} for c in todo]
    if not requests:  # "the batch needs at least one request": send the first item again
        first = items["custom_id"].iloc[0]
        requests, todo = [{"custom_id": first, "params": params_by_id[first]}], [first]
    batch = client.messages.batches.create(requests=requests)
    store.record_batch(job_id, batch.id, todo)
    return [batch.id]


def by_error_type(client, store, job_id, params_by_id):
    items = store.items(job_id)
    todo = list(items.loc[items["error_type"].notna() & (items["error_type"] != "invalid_request_error"), "custom_id"])
    # (a canceled item has error_type "canceled": it goes out too)
    if not todo:
        return []
    batch = client.messages.batches.create(requests=[{"custom_id": c, "params": params_by_id[c]} for c in todo])
    store.record_batch(job_id, batch.id, todo)
    return [batch.id]


def records_every_item(client, store, job_id, params_by_id):
    items = store.items(job_id)
    todo = list(items.loc[items["outcome"].isin(["retry"]), "custom_id"])
    if not todo:
        return []
    batch = client.messages.batches.create(requests=[{"custom_id": c, "params": params_by_id[c]} for c in todo])
    store.record_batch(job_id, batch.id, list(items["custom_id"]))  # the whole job "moves" to the new batch
    return [batch.id]


def returns_the_id_alone(client, store, job_id, params_by_id):
    new = resubmit_failures(client, store, job_id, params_by_id)
    return new[0] if new else []


def set_of_rows(client, store, job_id, params_by_id):
    """A correct alternative: itertuples into a set test, requests built in a loop, deep-copied params."""
    retryable = {"retry"}
    chosen = [row.custom_id for row in store.items(job_id).itertuples() if row.outcome in retryable]
    if len(chosen) == 0:
        return []
    requests = []
    for custom_id in chosen:
        requests.append({"custom_id": custom_id, "params": copy.deepcopy(params_by_id[custom_id])})
    created = client.messages.batches.create(requests=requests)
    store.record_batch(job_id, created.id, chosen)
    return [created.id]


def test_4_4_ledger_case_runs_into_expirations_and_transient_errors():
    from course_utils.checks.lesson04 import resubmit_failures as resubmit_checks
    from course_utils.checks.sim import probe

    seen = {}

    def spy(client, store, job_id, params_by_id):
        seen.update(store.items(job_id).groupby("error_type").size().to_dict())
        return resubmit_failures(client, store, job_id, params_by_id)

    resubmit_checks._ledger_body(spy, probe(time_scale=0.0))
    assert seen.get("expired", 0) >= 1 and seen.get("overloaded_error", 0) >= 1, seen
    assert seen.get("invalid_request_error", 0) >= 1, seen


def test_4_4_solution_passes():
    for answer in (resubmit_failures, reference_resubmit, set_of_rows):
        result = checks.check("4.4", answer)
        assert result.status == "passed", result.feedback


@pytest.mark.parametrize(
    "answer, phrase",
    [
        (every_failure, "an invalid request was resubmitted"),
        (everything, "billed twice"),
        (not_recorded, "the second run submitted another batch"),
        (with_missing, "a 'missing' item was resubmitted"),
        (with_canceled, "a canceled request was resubmitted"),
        (new_custom_ids, "not exactly the retryable ones"),
        (expired_only, "not exactly the retryable ones"),
        (params_by_position, "another review's params"),
        (one_batch_per_item, "not one new batch"),
        (not_finished_yet, "still pending in a running batch"),
        (pops_the_params, "changed params_by_id"),
        (always_creates_a_batch, "nothing retryable still submitted"),
        (by_error_type, "a canceled request was resubmitted"),
        (records_every_item, "not every review is enriched"),
        (returns_the_id_alone, "must return a list"),
    ],
)
def test_4_4_wrong_answers_are_rejected(answer, phrase):
    assert_rejected("4.4", answer, phrase)


def test_4_1_another_process_is_simulated_in_the_answers_namespace_only_and_undone():
    """The salted ``hash`` shadows the builtin only while the answer runs, and never a student's own ``hash``."""
    from course_utils.checks.another_process import another_process as _another_process

    namespace = {"__name__": "student"}
    exec("def ids(keys):\n    return [hash(k) for k in keys]\n", namespace)
    plain = namespace["ids"](["a/1", "b/2"])
    with _another_process(namespace["ids"]):
        salted = namespace["ids"](["a/1", "b/2"])
    assert salted != plain and "hash" not in namespace
    assert namespace["ids"](["a/1", "b/2"]) == plain
    namespace["hash"] = lambda key: 7  # the student's own hash(): left alone
    with _another_process(namespace["ids"]):
        assert namespace["ids"](["x"]) == [7]
    assert namespace["hash"]("y") == 7
