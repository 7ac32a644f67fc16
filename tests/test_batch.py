"""Unit tests of course_utils.batch: requests, poller (virtual time), job record, triage, resubmission, costs."""

from __future__ import annotations

import json
import random
import time
from types import SimpleNamespace

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from course_utils import mock_server
from course_utils.batch import (
    CUSTOM_ID_PATTERN,
    BatchResults,
    CountsProgress,
    VirtualSimulator,
    JobStore,
    PollSchedule,
    PollTimeout,
    batch_size_bytes,
    billed_twice,
    build_batches,
    build_requests,
    chunk_requests,
    classify,
    collect_batch,
    custom_id_for,
    join_results,
    poll_batch,
    poll_batches,
    resubmit_retryable,
    submit_job,
    sync_vs_batch,
    wait_and_collect,
)
from course_utils.clock import VirtualClock
from course_utils.batch.results import RESULT_COLUMNS
from course_utils.progress import ProgressEvent
from course_utils.tables import Tabular

MODEL = "claude-haiku-5-5"


def params_for(row):
    return {"model": MODEL, "max_tokens": 16, "messages": [{"role": "user", "content": row["text"]}]}


def reviews(n=12, empty=()):
    return pd.DataFrame(
        {
            "review_id": [f"B0X{i:03d}/R{i:05d}" for i in range(n)],
            "text": ["" if i in empty else f"Review {i}: the kettle works fine." for i in range(n)],
        }
    )


# ----- requests -------------------------------------------------------------------------------
def test_custom_ids_are_valid_stable_and_independent_of_position():
    df = reviews(20)
    first = build_requests(df, params_for, id_column="review_id")
    shuffled = build_requests(df.sample(frac=1, random_state=1), params_for, id_column="review_id")
    by_review = dict(zip(df["review_id"], (r["custom_id"] for r in first)))
    assert all(CUSTOM_ID_PATTERN.match(r["custom_id"]) for r in first)
    assert len({r["custom_id"] for r in first}) == 20
    for req, rid in zip(shuffled, df.sample(frac=1, random_state=1)["review_id"]):
        assert req["custom_id"] == by_review[rid]


def test_lookalike_and_long_keys_stay_distinct():
    keys = ["a/b", "a-b", "a b", "x" * 80 + "1", "x" * 80 + "2", "", "ü"]
    ids = [custom_id_for(k) for k in keys]
    assert len(set(ids)) == len(keys)
    assert all(CUSTOM_ID_PATTERN.match(i) for i in ids)


def test_duplicate_keys_are_rejected():
    df = pd.DataFrame({"review_id": ["a", "b", "a"], "text": ["x", "y", "z"]})
    with pytest.raises(ValueError, match="unique"):
        build_requests(df, params_for, id_column="review_id")


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(min_value=0, max_value=300), min_size=0, max_size=40),
    max_requests=st.integers(min_value=1, max_value=9),
    max_bytes=st.integers(min_value=420, max_value=3000),
)
def test_chunks_respect_both_limits_keep_order_and_are_greedy(sizes, max_requests, max_bytes):
    requests = [{"custom_id": f"r{i}", "params": {"pad": "x" * n}} for i, n in enumerate(sizes)]
    chunks = chunk_requests(requests, max_requests=max_requests, max_bytes=max_bytes)
    assert [r for c in chunks for r in c] == requests
    for i, chunk in enumerate(chunks):
        assert 1 <= len(chunk) <= max_requests
        assert batch_size_bytes(chunk) <= max_bytes
        if i + 1 < len(chunks):  # greedy: the next request would not have fitted
            bigger = chunk + [chunks[i + 1][0]]
            assert len(bigger) > max_requests or batch_size_bytes(bigger) > max_bytes


def test_a_request_larger_than_a_batch_is_an_error():
    with pytest.raises(ValueError, match="alone"):
        chunk_requests([{"custom_id": "a", "params": {"pad": "x" * 500}}], max_bytes=200)


def test_build_batches_uses_the_api_limits_by_default():
    batches = build_batches(reviews(30), params_for, id_column="review_id")
    assert len(batches) == 1 and len(batches[0]) == 30


# ----- poller on virtual time -----------------------------------------------------------------
class FakeBatches:
    """retrieve() says in_progress until ``ends_at`` seconds of the clock have passed; logs poll times."""

    def __init__(self, clock, ends_at, fail_at=()):
        self.clock, self.ends_at, self.polls, self.fail_at = clock, ends_at, [], set(fail_at)

    def retrieve(self, batch_id):
        import anthropic
        import httpx

        now = self.clock.monotonic()
        self.polls.append(now)
        if len(self.polls) in self.fail_at:
            raise anthropic.APIConnectionError(request=httpx.Request("GET", "http://x"))
        ended = now >= self.ends_at.get(batch_id, 0) if isinstance(self.ends_at, dict) else now >= self.ends_at
        counts = {
            "processing": 0 if ended else 10,
            "succeeded": 10 if ended else 0,
            "errored": 0,
            "canceled": 0,
            "expired": 0,
        }
        return SimpleNamespace(
            id=batch_id,
            processing_status="ended" if ended else "in_progress",
            request_counts=SimpleNamespace(model_dump=lambda c=counts: c),
        )


def fake_client(batches):
    return SimpleNamespace(messages=SimpleNamespace(batches=batches))


def test_poll_intervals_grow_to_the_cap():
    clock = VirtualClock()
    fake = FakeBatches(clock, ends_at=2_000)
    schedule = PollSchedule(initial=5, factor=2, max_interval=60)
    batch = poll_batch(fake_client(fake), "b1", deadline_s=3_600, clock=clock, schedule=schedule)
    assert batch.processing_status == "ended"
    gaps = [b - a for a, b in zip(fake.polls, fake.polls[1:])]
    assert gaps[:5] == [5, 10, 20, 40, 60]
    assert set(gaps[4:]) == {60}
    assert fake.polls[-1] >= 2_000 and fake.polls[-1] - 2_000 <= 60  # noticed within one interval


def test_poll_deadline_raises_with_the_last_state_and_the_last_poll_on_the_deadline():
    clock = VirtualClock()
    fake = FakeBatches(clock, ends_at=10**9)
    with pytest.raises(PollTimeout) as info:
        poll_batch(
            fake_client(fake),
            "b1",
            deadline_s=1_000,
            clock=clock,
            schedule=PollSchedule(initial=10, factor=2, max_interval=300),
        )
    assert isinstance(info.value, TimeoutError)
    assert fake.polls[-1] == 1_000 and clock.monotonic() == 1_000
    assert info.value.batches["b1"].processing_status == "in_progress"
    assert len(fake.polls) <= 10


def test_poll_survives_a_transient_error_and_reports_progress():
    clock = VirtualClock()
    fake = FakeBatches(clock, ends_at=30, fail_at={2})
    seen = []
    poll_batch(
        fake_client(fake),
        "b1",
        deadline_s=600,
        clock=clock,
        schedule=PollSchedule(initial=5, factor=1.5),
        on_progress=seen.append,
    )
    assert len(seen) == len(fake.polls) - 1  # the failed poll reported nothing
    assert all(isinstance(e, ProgressEvent) and e.total == 1 for e in seen)
    assert seen[-1].latest.processing_status == "ended" and seen[-1].done == 1
    assert [e.done for e in seen[:-1]] == [0] * (len(seen) - 1)
    assert seen[-1].elapsed_s == fake.polls[-1]  # on the poller's clock


def test_poll_batches_stops_polling_a_batch_once_it_ended():
    clock = VirtualClock()
    fake = FakeBatches(clock, ends_at={"a": 10, "b": 100})
    calls = []
    fake_retrieve = fake.retrieve
    fake.retrieve = lambda bid: (calls.append(bid), fake_retrieve(bid))[1]
    done = poll_batches(
        fake_client(fake), ["a", "b"], deadline_s=600, clock=clock, schedule=PollSchedule(initial=5, factor=1)
    )
    assert set(done) == {"a", "b"}
    last_a = max(i for i, bid in enumerate(calls) if bid == "a")
    assert all(bid == "b" for bid in calls[last_a + 1 :])


def test_schedule_validates_and_jitters_within_bounds():
    with pytest.raises(ValueError):
        PollSchedule(initial=0)
    waits = PollSchedule(initial=10, factor=1, max_interval=10, jitter=0.2).intervals(random.Random(3))
    sample = [next(waits) for _ in range(50)]
    assert all(8 <= w <= 12 for w in sample) and len(set(sample)) > 1


# ----- triage ---------------------------------------------------------------------------------
def _line(cid, kind, error_type=None, text="ok"):
    if kind == "succeeded":
        result = {
            "type": "succeeded",
            "message": {"content": [{"type": "text", "text": text}], "usage": {"input_tokens": 5, "output_tokens": 2}},
        }
    elif kind == "errored":
        result = {"type": "errored", "error": {"type": "error", "error": {"type": error_type, "message": "m"}}}
    else:
        result = {"type": kind}
    return {"custom_id": cid, "result": result}


@pytest.mark.parametrize(
    "line, outcome",
    [
        (_line("a", "succeeded"), "succeeded"),
        (_line("a", "errored", "invalid_request_error"), "invalid"),
        (_line("a", "errored", "not_found_error"), "invalid"),
        (_line("a", "errored", "permission_error"), "invalid"),
        (_line("a", "errored", "billing_error"), "invalid"),
        (_line("a", "errored", "authentication_error"), "invalid"),
        (_line("a", "errored", "a_type_added_next_year"), "invalid"),  # an allow-list: unknown is final
        (_line("a", "errored", "api_error"), "retry"),
        (_line("a", "errored", "overloaded_error"), "retry"),
        (_line("a", "errored", "rate_limit_error"), "retry"),
        (_line("a", "errored", "timeout_error"), "retry"),
        (_line("a", "expired"), "retry"),
        (_line("a", "canceled"), "canceled"),
    ],
)
def test_classify(line, outcome):
    assert classify(line["result"])[0] == outcome


def test_join_is_by_custom_id_keeps_input_order_and_marks_missing():
    inputs = pd.DataFrame({"custom_id": ["a", "b", "c", "d"], "x": [1, 2, 3, 4]}, index=[10, 11, 12, 13])
    lines = [json.dumps(_line("c", "succeeded", text="C")), _line("a", "succeeded", text="A"), _line("b", "expired")]
    out = join_results(inputs, lines)
    assert list(out.index) == [10, 11, 12, 13]
    assert list(out["text"].fillna("-")) == ["A", "-", "C", "-"]
    assert list(out["outcome"]) == ["succeeded", "retry", "succeeded", "missing"]
    with pytest.raises(ValueError, match="not in the inputs"):
        join_results(inputs, [_line("zz", "expired")])


# ----- job record, crash and resume, resubmission (simulator at time_scale=0) ------------------
def _wait_ended(client, batch_ids):
    for _ in range(500):
        if all(client.messages.batches.retrieve(b).processing_status == "ended" for b in batch_ids):
            return
        time.sleep(0.01)
    raise AssertionError("batches did not end")


def test_submit_is_resumable_and_records_before_polling(sim, client, tmp_path):
    df = reviews(10)
    chunks = build_batches(df, params_for, id_column="review_id", max_requests=4)
    store = JobStore(tmp_path / "jobs.sqlite3")
    first = submit_job(client, store, "nightly", chunks[:2])  # "crash" after two chunks
    assert len(first) == 2
    store.close()
    store = JobStore(tmp_path / "jobs.sqlite3")
    again = submit_job(client, store, "nightly", chunks)
    assert len(again) == 1  # only the chunk never submitted
    assert len(store.open_batches("nightly")) == 3
    posts = sim.ledger().query("endpoint == '/v1/messages/batches' and method == 'POST'")
    assert len(posts) == 3


def test_a_crashed_poller_resumes_from_the_record(tmp_path):
    state = tmp_path / "sim"
    jobs = tmp_path / "jobs.sqlite3"
    df = reviews(8, empty={3})
    chunks = build_batches(df, params_for, id_column="review_id")
    with mock_server(seed=0, time_scale=0.0, state_dir=state) as server:
        client = server.client(max_retries=0)
        store = JobStore(jobs)
        submit_job(client, store, "job", chunks)
        store.close()  # the poller dies before polling anything
        ledger_before = server.ledger()
    with mock_server(seed=0, time_scale=0.0, state_dir=state) as server:  # and the simulator restarts too
        client = server.client(max_retries=0)
        store = JobStore(jobs)
        _wait_ended(client, store.open_batches("job"))
        summary = wait_and_collect(client, store, "job", deadline_s=60, schedule=PollSchedule(initial=0.01))
        assert summary == {"succeeded": 7, "invalid": 1}
        assert store.open_batches("job") == []
        ledger = pd.concat([ledger_before, server.ledger()])
    assert billed_twice(ledger) == []


def test_timeout_keeps_the_batch_open_for_the_next_run():
    clock = VirtualClock()
    store = JobStore(clock=clock)
    store.create_job("j", ["a"])
    store.record_batch("j", "b1", ["a"])
    fake = FakeBatches(clock, ends_at=500)
    with pytest.raises(PollTimeout):
        wait_and_collect(fake_client(fake), store, "j", deadline_s=100, clock=clock)
    assert store.open_batches("j") == ["b1"]
    assert store.summary("j") == {"pending": 1}


class FakeBatchesWithResults(FakeBatches):
    """:class:`FakeBatches` whose batches have results (every item succeeded); logs polls and downloads by id."""

    def __init__(self, clock, ends_at, items):
        super().__init__(clock, ends_at)
        self.items, self.polled, self.downloads = items, [], []

    def retrieve(self, batch_id):
        self.polled.append(batch_id)
        return super().retrieve(batch_id)

    def results(self, batch_id):
        self.downloads.append(batch_id)
        return [_line(cid, "succeeded", text=cid) for cid in self.items[batch_id]]


class PollerKilled(Exception):
    """Stands in for the poller process dying."""


def test_an_interrupted_wait_resumes_polling_only_the_open_batches(tmp_path):
    path = tmp_path / "jobs.sqlite3"
    items = {"b1": ["a", "b"], "b2": ["c"], "b3": ["d", "e"]}
    ends_at = {"b1": 10, "b2": 40, "b3": 300}
    schedule = PollSchedule(initial=5, factor=2, max_interval=60)
    clock = VirtualClock()
    store = JobStore(path, clock=clock)
    store.create_job("j", [cid for ids in items.values() for cid in ids])
    for bid, ids in items.items():
        store.record_batch("j", bid, ids)

    def killed_once_b2_ended(event):
        if event.latest.id == "b2" and event.latest.processing_status == "ended":
            raise PollerKilled(event.elapsed_s)

    first = FakeBatchesWithResults(clock, ends_at, items)
    with pytest.raises(PollerKilled):
        wait_and_collect(
            fake_client(first),
            store,
            "j",
            deadline_s=3_600,
            clock=clock,
            schedule=schedule,
            on_progress=killed_once_b2_ended,
        )
    assert sorted(first.downloads) == ["b1", "b2"]  # collected as each ended, before the crash
    store.close()

    store = JobStore(path, clock=clock)  # a new process: only the file is left
    assert store.open_batches("j") == ["b3"]
    assert store.summary("j") == {"succeeded": 3, "pending": 2}
    states = store.batches("j").set_index("batch_id")
    assert states["state"].to_dict() == {"b1": "collected", "b2": "collected", "b3": "in_progress"}
    assert states.loc["b3", "counts"] is None and states.loc["b1", "counts"]["succeeded"] == 10
    second = FakeBatchesWithResults(clock, ends_at, items)
    summary = wait_and_collect(fake_client(second), store, "j", deadline_s=3_600, clock=clock, schedule=schedule)
    assert set(second.polled) == {"b3"} and second.downloads == ["b3"]  # no batch polled or collected twice
    assert summary == {"succeeded": 5}
    assert set(store.batches("j")["state"]) == {"collected"} and store.open_batches("j") == []
    store.close()


def test_resubmission_sends_only_retryable_items_once(sim, client):
    df = reviews(12, empty={0, 5})
    requests = build_requests(df, params_for, id_column="review_id")
    params_by_id = {r["custom_id"]: r["params"] for r in requests}
    store = JobStore()
    sim.set_scenario({"name": "expiring", "batch_expire_fraction": 0.3})
    try:
        [batch_id] = submit_job(client, store, "j", [requests])
        _wait_ended(client, [batch_id])
    finally:
        sim.set_scenario("calm")
    tally = collect_batch(client, store, "j", batch_id)
    assert tally.get("invalid", 0) >= 1 and tally.get("retry", 0) >= 1
    retry = set(store.retryable("j"))
    items = store.items("j")
    invalid = set(items.loc[items["outcome"] == "invalid", "custom_id"])
    new = resubmit_retryable(client, store, "j", params_by_id)
    assert len(new) == 1
    assert resubmit_retryable(client, store, "j", params_by_id) == []  # idempotent
    _wait_ended(client, new)
    collect_batch(client, store, "j", new[0])
    assert store.summary("j") == {"succeeded": 10, "invalid": 2}
    batch_rows = sim.ledger().query("batch")
    per_id = batch_rows.groupby("custom_id").size()
    assert all(per_id[cid] == 1 for cid in invalid)  # invalid: never resubmitted
    assert set(per_id[per_id == 2].index) == retry
    assert billed_twice(sim.ledger()) == []


def test_results_of_an_older_attempt_do_not_overwrite_a_newer_one():
    store = JobStore()
    store.create_job("j", ["a"])
    store.record_batch("j", "b1", ["a"])
    store.record_outcomes("b1", {"a": ("retry", "expired")})
    store.record_batch("j", "b2", ["a"])
    assert store.record_outcomes("b1", {"a": ("retry", "expired")}) == 0
    assert store.items("j").iloc[0].to_dict() | {} == {
        "custom_id": "a",
        "batch_id": "b2",
        "attempts": 2,
        "outcome": "pending",
        "error_type": None,
    }


def test_max_attempts_stops_resubmitting():
    store = JobStore()
    store.create_job("j", ["a"])
    for n in range(3):
        store.record_batch("j", f"b{n}", ["a"])
        store.record_outcomes(f"b{n}", {"a": ("retry", "api_error")})
    assert resubmit_retryable(None, store, "j", {"a": {}}, max_attempts=3) == []


# ----- costs ----------------------------------------------------------------------------------
def test_sync_vs_batch_from_the_ledger(sim, client):
    df = reviews(6)
    for row in df.to_dict(orient="records"):
        client.messages.create(**params_for(row))
    requests = build_requests(df, params_for, id_column="review_id")
    batch = client.messages.batches.create(requests=requests)
    _wait_ended(client, [batch.id])
    comparison = sync_vs_batch(sim.ledger(), sim.ledger())
    table = comparison.frame()
    assert list(table.index) == ["sync", "batch"]
    assert table.loc["sync", "billed_requests"] == table.loc["batch", "billed_requests"] == 6
    assert table.loc["batch", "input_tokens"] == table.loc["sync", "input_tokens"]
    # Same tokens; the batch is billed at half price (up to rounding of each row to the micro-cent).
    assert abs(table.loc["batch", "cost_usd"] * 2 - table.loc["sync", "cost_usd"]) < 1e-6
    summary = comparison.summary()
    assert summary["sync_billed_requests"] == summary["batch_billed_requests"] == 6
    assert abs(summary["saving"] - 0.5) < 0.01


# ----- result objects and progress (the library's conventions) ---------------------------------
def test_batch_results_frame_and_summary():
    lines = [
        _line("a", "succeeded", text="A"),
        json.dumps(_line("b", "errored", "overloaded_error")),
        _line("c", "errored", "invalid_request_error"),
        _line("d", "expired"),
        _line("e", "canceled"),
    ]
    results = BatchResults(lines)
    frame = results.frame()
    assert list(frame.columns) == RESULT_COLUMNS and list(frame["custom_id"]) == list("abcde")
    assert list(frame["outcome"]) == ["succeeded", "retry", "invalid", "retry", "canceled"]
    assert frame.loc[0, "text"] == "A" and frame["text"].iloc[1:].isna().all()
    assert results.summary() == {"succeeded": 1, "retry": 2, "invalid": 1, "canceled": 1}
    assert isinstance(results, Tabular) and len(results) == 5
    inputs = pd.DataFrame({"custom_id": list("edcba"), "text": list("vwxyz")})
    joined = results.join(inputs)
    assert list(joined["custom_id"]) == list("edcba") and joined.loc[4, "text"] == "A"
    assert list(inputs["text"]) == list("vwxyz")  # the inputs are not changed
    assert BatchResults([]).summary() == {} and BatchResults([]).frame().empty


def test_counts_progress_reads_events_and_prints_each_change_once_per_batch(capsys):
    show = CountsProgress(20, widget=False, label="job")

    def batch(bid, status, processing, succeeded):
        counts = {"processing": processing, "succeeded": succeeded, "errored": 0, "canceled": 0, "expired": 0}
        return SimpleNamespace(
            id=bid, processing_status=status, request_counts=SimpleNamespace(model_dump=lambda: counts)
        )

    show(ProgressEvent(0, 2, 0.0, batch("batch_aaaaaa", "in_progress", 10, 0)))
    show(ProgressEvent(0, 2, 0.0, batch("batch_bbbbbb", "in_progress", 10, 0)))
    show(ProgressEvent(0, 2, 5.0, batch("batch_aaaaaa", "in_progress", 10, 0)))  # no change: no line
    show(ProgressEvent(1, 2, 9.0, batch("batch_aaaaaa", "ended", 0, 10)))
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and lines[-1].startswith("job aaaaaa after 9.0 s: ended")
    assert show.finished == 10 and len(show.history) == 4


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["succeeded", "expired", "canceled", "errored", None]),
            st.sampled_from(["invalid_request_error", "overloaded_error", "api_error", "billing_error"]),
        ),
        min_size=0,
        max_size=12,
    ),
    st.randoms(use_true_random=False),
)
def test_join_matches_a_plain_lookup_for_any_results_in_any_order(kinds, rnd):
    """For any mix of result types (None: no result line), in any order, the join equals a dict lookup."""
    ids = [f"id-{i}" for i in range(len(kinds))]
    lines = [_line(cid, kind, error, text=f"reply {cid}") for cid, (kind, error) in zip(ids, kinds) if kind]
    rnd.shuffle(lines)
    inputs = pd.DataFrame({"custom_id": ids, "text": ["review"] * len(ids)})
    joined = join_results(inputs, lines)
    by_id = {line["custom_id"]: line["result"] for line in lines}
    assert list(joined["custom_id"]) == ids
    for cid, outcome, text in zip(joined["custom_id"], joined["outcome"], joined["text"]):
        if cid not in by_id:
            assert outcome == "missing" and pd.isna(text)
            continue
        assert outcome == classify(by_id[cid])[0]
        assert text == (f"reply {cid}" if by_id[cid]["type"] == "succeeded" else None) or (
            by_id[cid]["type"] != "succeeded" and pd.isna(text)
        )


def test_custom_ids_are_the_same_in_another_process():
    """``custom_id_for`` must not depend on Python's per-process string hashing (PYTHONHASHSEED)."""
    import os
    import subprocess
    import sys

    keys = ["B01/R1", "a-b", "x" * 90, "ü/ß"]
    code = (
        "import json, sys; from course_utils.batch import custom_id_for; "
        "print(json.dumps([custom_id_for(k) for k in json.loads(sys.argv[1])]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, json.dumps(keys)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "12345"},
    )
    assert json.loads(out.stdout) == [custom_id_for(k) for k in keys]


# ----- batches on virtual time (the lesson's simulator) -----------------------------------------
def test_virtual_simulator_runs_a_batch_window_from_inside_a_running_loop():
    """As in a notebook cell (the kernel's loop is running): a 105 s window passes on the simulator's clock."""
    import asyncio

    sim = VirtualSimulator(seed=0, time_scale=1.0, rate_limit_tier="unlimited")
    try:
        client = sim.client(api_key="k", max_retries=0)
        requests = build_requests(reviews(25), params_for, id_column="review_id")

        async def in_a_cell():
            batch = client.messages.batches.create(requests=requests)
            events = []
            ended = poll_batch(
                client,
                batch.id,
                deadline_s=3_600,
                clock=sim.clock,
                schedule=PollSchedule(initial=2, factor=1.5, max_interval=30),
                on_progress=events.append,
            )
            return ended, events

        started = sim.clock.monotonic()
        ended, events = asyncio.run(in_a_cell())
        virtual_s = sim.clock.monotonic() - started
        assert ended.processing_status == "ended" and ended.request_counts.succeeded == 25
        assert 105 <= virtual_s <= 105 + 30 + 5  # the window, noticed within one capped interval
        assert events[-1].done == events[-1].total == 1 and events[0].done == 0
        polls = sim.ledger().query("method == 'GET' and endpoint == '/v1/messages/batches/{id}'")
        assert len(polls) == len(events)
        assert sim.clock.time() >= 1_800_000_000 + virtual_s  # the epoch time the simulator stamps batches with
    finally:
        sim.close()


def test_virtual_simulator_runs_async_fan_out_on_the_same_clock():
    import asyncio

    sim = VirtualSimulator(seed=0, time_scale=1.0, rate_limit_tier="unlimited")
    try:

        async def fan_out():
            aclient = sim.async_client(api_key="k", max_retries=0)
            return await asyncio.gather(
                *(aclient.messages.create(**params_for({"text": f"review {i}"})) for i in range(8))
            )

        before = sim.clock.monotonic()
        replies = sim.run(fan_out())
        assert len(replies) == 8 and sim.clock.monotonic() > before  # latency passed on virtual time
        assert len(sim.ledger()) == 8
    finally:
        sim.close()


def _scripted_client(outcomes):
    """A client whose batches.retrieve raises or returns the next scripted outcome."""
    from types import SimpleNamespace

    calls = iter(outcomes)

    def retrieve(batch_id):
        outcome = next(calls)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    return SimpleNamespace(messages=SimpleNamespace(batches=SimpleNamespace(retrieve=retrieve)))


def test_poll_skips_transient_failures_and_raises_the_rest():
    """The poll loop is its own retry: what is transient is lesson 05's is_retryable (one classification)."""
    from types import SimpleNamespace

    from course_utils.batch import poll_batch
    from course_utils.clock import VirtualClock
    from course_utils.resilience.fakes import connection_error, status_error

    ended = SimpleNamespace(
        id="b",
        processing_status="ended",
        request_counts=SimpleNamespace(processing=0, succeeded=1, errored=0, canceled=0, expired=0),
    )
    client = _scripted_client([status_error(529), connection_error(), status_error(500), ended])
    assert poll_batch(client, "b", deadline_s=600, clock=VirtualClock()) is ended
    for fatal in (status_error(404), status_error(401)):
        with pytest.raises(type(fatal)):
            poll_batch(_scripted_client([fatal]), "b", deadline_s=600, clock=VirtualClock())


# ----- a download cut short, a missing line, a 429 while polling -------------------------------
class FlakyResults:
    """``results()`` loses the last ``lose`` lines of each of the first ``bad`` downloads, or breaks mid-file."""

    def __init__(self, lines, *, bad=1, lose=1, breaks=False):
        self.lines, self.bad, self.lose, self.breaks, self.downloads = lines, bad, lose, breaks, 0

    def results(self, batch_id):
        import anthropic
        import httpx

        self.downloads += 1
        if self.downloads > self.bad:
            yield from self.lines
            return
        yield from self.lines[: len(self.lines) - self.lose]
        if self.breaks:
            raise anthropic.APIConnectionError(request=httpx.Request("GET", "http://x/results"))


def _store_with(ids):
    store = JobStore()
    store.create_job("j", ids)
    store.record_batch("j", "b1", ids)
    return store


@pytest.mark.parametrize("breaks", [False, True], ids=["short file", "stream broke"])
def test_a_result_line_lost_in_a_download_is_downloaded_again_not_resubmitted(breaks):
    lines = [_line(c, "succeeded") for c in ("a", "b", "c")]
    store, fake = _store_with(["a", "b", "c"]), FlakyResults(lines, breaks=breaks)
    assert collect_batch(fake_client(fake), store, "j", "b1") == {"succeeded": 3}
    assert fake.downloads == 2
    assert store.summary("j") == {"succeeded": 3}


def test_a_line_still_missing_after_three_downloads_is_reported_and_resubmitted_only_by_decision(sim, client):
    lines = [_line(c, "succeeded") for c in ("a", "b")] + [_line("c", "expired")]
    store, fake = _store_with(["a", "b", "c", "d"]), FlakyResults(lines, bad=10, lose=0)
    assert collect_batch(fake_client(fake), store, "j", "b1") == {"succeeded": 2, "retry": 1, "missing": 1}
    assert fake.downloads == 3  # DOWNLOADS: results stay for 29 days, so downloading again is the cheap fix
    assert store.retryable("j") == ["c"]
    assert store.retryable("j", include_missing=True) == ["c", "d"]
    params = {cid: {"model": "claude-haiku-5-5", "max_tokens": 16, "messages": [{"role": "user", "content": cid}]}
              for cid in "abcd"}  # fmt: skip
    [new] = resubmit_retryable(client, store, "j", params)
    sent = set(store.items("j").query("batch_id == @new")["custom_id"])
    assert sent == {"c"}  # the missing one may have been billed already: not resubmitted by default


class RateLimitedBatches(FakeBatches):
    """Every second poll is refused with 429 and a retry-after far above the schedule's next wait."""

    def __init__(self, clock, ends_at, retry_after_s):
        super().__init__(clock, ends_at)
        self.retry_after_s, self.calls = retry_after_s, 0

    def retrieve(self, batch_id):
        import anthropic
        import httpx

        self.calls += 1
        if self.calls % 2 == 0:
            self.polls.append(self.clock.monotonic())
            request = httpx.Request("GET", "http://x")
            response = httpx.Response(429, request=request, headers={"retry-after": str(self.retry_after_s)})
            raise anthropic.RateLimitError("rate limited", response=response, body=None)
        return super().retrieve(batch_id)


def test_a_poll_refused_with_429_waits_at_least_retry_after():
    clock = VirtualClock()
    fake = RateLimitedBatches(clock, ends_at=10**6, retry_after_s=45)
    schedule = PollSchedule(initial=2, factor=1.0, max_interval=2)
    with pytest.raises(PollTimeout):
        poll_batch(fake_client(fake), "b1", deadline_s=400, clock=clock, schedule=schedule)
    gaps = [b - a for a, b in zip(fake.polls, fake.polls[1:])][:-1]  # the last wait is clipped to the deadline
    # After each refused poll (every second one) the next comes retry-after later, not 2 s later.
    assert len(gaps) >= 6 and all(gap >= 45 for gap in gaps[1::2]), gaps
    assert all(gap == 2 for gap in gaps[0::2]), gaps
