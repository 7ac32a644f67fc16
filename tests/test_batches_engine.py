"""The Message Batches engine on a virtual clock: lifecycle, validation, cancel, expiry, persistence."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from pathlib import Path

import pytest

from course_utils.clock import SYSTEM_CLOCK, VirtualClock, run_virtual
from course_utils.mock_provider.config import SimulatorConfig
from course_utils.mock_provider.batches import (
    BATCH_EXPIRY_SECONDS,
    MAX_BATCH_REQUESTS,
    BatchOptions,
    BatchStore,
    batch_timestamp,
)
from course_utils.mock_provider.errors import APIError, InvalidRequest, NotFound, RequestTooLarge
from course_utils.mock_provider.request import parse_messages_request

KEY = "sk-test-batches"
PARAMS = {"model": "claude-haiku-5-5", "max_tokens": 50, "messages": [{"role": "user", "content": "Hi"}]}


async def fake_process(params: dict, custom_id: str, batch_id: str = "") -> dict:
    """A stand-in for the simulator: validate like /v1/messages, answer with a tiny message."""
    try:
        req = parse_messages_request(params)
    except APIError as exc:
        return {"type": "errored", "error": {"type": "error", "error": {"type": exc.type, "message": exc.message}}}
    return {
        "type": "succeeded",
        "message": {
            "id": f"msg_{custom_id}",
            "type": "message",
            "role": "assistant",
            "model": req.model,
            "content": [{"type": "text", "text": "Hello"}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": 5, "output_tokens": 1},
        },
    }


def reqs(n: int, prefix: str = "req") -> list[dict]:
    return [{"custom_id": f"{prefix}-{i}", "params": PARAMS} for i in range(n)]


def make_store(clock, state_dir=None, **kw) -> BatchStore:
    kw.setdefault("process", fake_process)
    settings = SimulatorConfig(seed=kw.pop("seed", 0), time_scale=kw.pop("time_scale", 1.0), state_dir=state_dir)
    return BatchStore(clock, settings, kw.pop("process"), **kw)


async def drain(store: BatchStore, clock: VirtualClock, limit: int = 10_000) -> None:
    """Tick until nothing is pending, jumping the clock to each next event."""
    for _ in range(limit):
        nxt = await store.tick()
        if nxt is None:
            return
        clock.advance_sync(max(0.0, nxt - clock.time()))
    raise AssertionError("batch processing did not settle")


def run(coro):
    return asyncio.run(coro)


def parse_ts(s: str) -> float:
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


def test_lifecycle_in_progress_to_ended(clock: VirtualClock) -> None:
    results_seen: list[tuple] = []
    store = make_store(clock, on_result=lambda k, cid, p, r, bid: results_seen.append((k, cid, r["type"])))
    batch = store.create(KEY, reqs(10))
    assert batch["id"].startswith("msgbatch_") and batch["type"] == "message_batch"
    assert batch["processing_status"] == "in_progress"
    assert batch["request_counts"] == {"processing": 10, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
    assert batch["results_url"] is None and batch["ended_at"] is None
    assert batch["archived_at"] is None and batch["cancel_initiated_at"] is None
    assert parse_ts(batch["expires_at"]) - parse_ts(batch["created_at"]) == pytest.approx(BATCH_EXPIRY_SECONDS)

    async def go():
        await store.tick()
        clock.advance_sync(20)  # part-way through the window: counts stay "processing"
        await store.tick()
        mid = store.retrieve(batch["id"])
        assert mid["processing_status"] == "in_progress" and mid["request_counts"]["processing"] == 10
        assert 0 < len(results_seen) < 10
        await drain(store, clock)

    run(go())
    done = store.retrieve(batch["id"], api_key=KEY)
    assert done["processing_status"] == "ended"
    assert done["request_counts"]["succeeded"] == 10 and sum(done["request_counts"].values()) == 10
    assert done["results_url"] == f"https://api.anthropic.com/v1/messages/batches/{batch['id']}/results"
    assert parse_ts(done["ended_at"]) - parse_ts(done["created_at"]) <= 300
    assert sorted(cid for _, cid, _ in results_seen) == sorted(r["custom_id"] for r in reqs(10))
    assert {k for k, _, _ in results_seen} == {KEY}


def test_timestamps_are_rfc3339() -> None:
    assert batch_timestamp(1724179044.100435) == "2024-08-20T18:37:24.100435Z"
    assert batch_timestamp(None) is None


def test_results_contain_every_custom_id_once_in_non_positional_order(clock: VirtualClock) -> None:
    store = make_store(clock)
    batch = store.create(KEY, reqs(25))
    run(drain(store, clock))
    lines = list(store.results(batch["id"]))
    parsed = [json.loads(line) for line in lines]
    ids = [p["custom_id"] for p in parsed]
    assert sorted(ids) == sorted(f"req-{i}" for i in range(25)) and len(set(ids)) == 25
    assert ids != [f"req-{i}" for i in range(25)]
    assert all(p["result"]["type"] == "succeeded" and p["result"]["message"]["type"] == "message" for p in parsed)
    assert list(store.results(batch["id"])) == lines  # deterministic


def test_results_before_end_are_refused(clock: VirtualClock) -> None:
    store = make_store(clock)
    batch = store.create(KEY, reqs(3))
    with pytest.raises(InvalidRequest):
        store.results(batch["id"])


def test_invalid_params_become_errored_results(clock: VirtualClock) -> None:
    store = make_store(clock)
    bad = {"custom_id": "bad", "params": {"model": "claude-haiku-5-5", "messages": []}}
    batch = store.create(KEY, reqs(2) + [bad])
    run(drain(store, clock))
    counts = store.retrieve(batch["id"])["request_counts"]
    assert counts["succeeded"] == 2 and counts["errored"] == 1
    by_id = {json.loads(line)["custom_id"]: json.loads(line)["result"] for line in store.results(batch["id"])}
    err = by_id["bad"]
    assert err["type"] == "errored" and err["error"]["type"] == "error"
    assert err["error"]["error"]["type"] == "invalid_request_error" and err["error"]["error"]["message"]


def test_process_exceptions_become_errored(clock: VirtualClock) -> None:
    async def boom(params, custom_id, batch_id):
        if custom_id == "req-1":
            raise InvalidRequest("max_tokens: Field required")
        if custom_id == "req-2":
            raise RuntimeError("bug")
        return await fake_process(params, custom_id)

    store = make_store(clock, process=boom)
    batch = store.create(KEY, reqs(3))
    run(drain(store, clock))
    by_id = {json.loads(line)["custom_id"]: json.loads(line)["result"] for line in store.results(batch["id"])}
    assert by_id["req-1"]["error"]["error"] == {
        "type": "invalid_request_error",
        "message": "max_tokens: Field required",
    }
    assert by_id["req-2"]["error"]["error"]["type"] == "api_error"
    assert by_id["req-0"]["type"] == "succeeded"


@pytest.mark.parametrize(
    ("requests", "match"),
    [
        ([], "at least 1"),
        ([{"params": PARAMS}], "custom_id: Field required"),
        ([{"custom_id": "a b", "params": PARAMS}], "pattern"),
        ([{"custom_id": "x" * 65, "params": PARAMS}], "pattern"),
        ([{"custom_id": "ok"}], "params: Field required"),
        ([{"custom_id": "ok", "params": "nope"}], "valid dictionary"),
        ([{"custom_id": "dup", "params": PARAMS}, {"custom_id": "dup", "params": PARAMS}], "dup"),
    ],
)
def test_create_validation(clock: VirtualClock, requests, match: str) -> None:
    store = make_store(clock)
    with pytest.raises(InvalidRequest, match=match):
        store.create(KEY, requests)
    assert store.list(KEY)["data"] == []


def test_custom_id_limits_accepted(clock: VirtualClock) -> None:
    store = make_store(clock)
    store.create(KEY, [{"custom_id": "A_z-9" + "x" * 59, "params": PARAMS}])


def test_oversize_batches_rejected(clock: VirtualClock) -> None:
    store = make_store(clock)
    with pytest.raises(RequestTooLarge) as err:
        store.create(KEY, reqs(2), body_bytes=256 * 1024 * 1024 + 1)
    assert err.value.status == 413 and err.value.type == "request_too_large"
    tiny = {"custom_id": "x", "params": {}}
    with pytest.raises(InvalidRequest, match="at most 100000"):
        store.create(KEY, [tiny] * (MAX_BATCH_REQUESTS + 1))


def test_cancel_midway(clock: VirtualClock) -> None:
    seen: list[str] = []
    store = make_store(clock, on_result=lambda k, cid, p, r, bid: seen.append(r["type"]))
    batch = store.create(KEY, reqs(20), options=BatchOptions(processing_seconds=100))

    async def go():
        await store.tick()
        clock.advance_sync(40)
        await store.tick()
        canceling = store.cancel(batch["id"])
        assert canceling["processing_status"] == "canceling"
        assert canceling["cancel_initiated_at"] == batch_timestamp(clock.time())
        assert canceling["request_counts"]["processing"] == 20
        await drain(store, clock)

    run(go())
    done = store.retrieve(batch["id"])
    c = done["request_counts"]
    assert done["processing_status"] == "ended" and sum(c.values()) == 20
    assert c["canceled"] > 0 and c["succeeded"] > 0 and c["processing"] == 0
    assert parse_ts(done["ended_at"]) - parse_ts(done["created_at"]) < 100
    assert sorted(seen) == sorted(json.loads(x)["result"]["type"] for x in store.results(batch["id"]))
    # Cancelling an ended batch changes nothing.
    assert store.cancel(batch["id"]) == done


def test_expire_fraction(clock: VirtualClock) -> None:
    store = make_store(clock)
    batch = store.create(KEY, reqs(10), options=BatchOptions(expire_fraction=0.3))
    run(drain(store, clock))
    c = store.retrieve(batch["id"])["request_counts"]
    assert c["expired"] == 3 and c["succeeded"] == 7
    expired = [json.loads(x) for x in store.results(batch["id"]) if '"expired"' in x]
    assert all(e["result"] == {"type": "expired"} for e in expired) and len(expired) == 3


def test_slow_batch_expires_after_24h(clock: VirtualClock) -> None:
    store = make_store(clock)
    # A 300 s window stretched 600x is 50 hours: about half the requests miss the 24 h deadline.
    batch = store.create(KEY, reqs(40), options=BatchOptions(processing_seconds=300, slow_factor=600))
    run(drain(store, clock))
    done = store.retrieve(batch["id"])
    c = done["request_counts"]
    assert c["expired"] > 0 and c["succeeded"] > 0 and sum(c.values()) == 40
    assert done["ended_at"] == done["expires_at"]


def test_time_scale_zero_finishes_on_first_tick(clock: VirtualClock) -> None:
    store = make_store(clock, time_scale=0.0)
    batch = store.create(KEY, reqs(5))
    assert run(store.tick()) is None
    assert store.retrieve(batch["id"])["processing_status"] == "ended"


def test_delete_rules(clock: VirtualClock) -> None:
    store = make_store(clock)
    batch = store.create(KEY, reqs(2))
    with pytest.raises(InvalidRequest, match="cancel"):
        store.delete(batch["id"])
    store.cancel(batch["id"])
    with pytest.raises(InvalidRequest):
        store.delete(batch["id"])  # canceling is not ended yet
    run(drain(store, clock))
    with pytest.raises(NotFound):
        store.delete(batch["id"], api_key="sk-other")
    assert store.delete(batch["id"]) == {"id": batch["id"], "type": "message_batch_deleted"}
    with pytest.raises(NotFound):
        store.retrieve(batch["id"])
    assert store.list(KEY)["data"] == []


def test_list_pagination_newest_first(clock: VirtualClock) -> None:
    store = make_store(clock)
    ids = []
    for i in range(5):
        ids.append(store.create(KEY, reqs(1))["id"])
        clock.advance_sync(1)
    store.create("sk-other", reqs(1))
    newest_first = ids[::-1]
    assert len(set(ids)) == 5
    page = store.list(KEY, limit=2)
    assert [b["id"] for b in page["data"]] == newest_first[:2]
    assert page["has_more"] and page["first_id"] == newest_first[0] and page["last_id"] == newest_first[1]
    page2 = store.list(KEY, limit=2, after_id=page["last_id"])
    assert [b["id"] for b in page2["data"]] == newest_first[2:4] and page2["has_more"]
    page3 = store.list(KEY, limit=2, after_id=page2["last_id"])
    assert [b["id"] for b in page3["data"]] == newest_first[4:] and not page3["has_more"]
    back = store.list(KEY, limit=2, before_id=page3["first_id"])
    assert [b["id"] for b in back["data"]] == newest_first[2:4] and back["has_more"]
    assert store.list(KEY, limit=20)["has_more"] is False
    empty = store.list("sk-nobody")
    assert empty == {"data": [], "has_more": False, "first_id": None, "last_id": None}
    with pytest.raises(InvalidRequest):
        store.list(KEY, limit=0)
    with pytest.raises(InvalidRequest):
        store.list(KEY, limit=1001)


def test_isolation_between_keys(clock: VirtualClock) -> None:
    store = make_store(clock)
    batch = store.create(KEY, reqs(1))
    with pytest.raises(NotFound):
        store.retrieve(batch["id"], api_key="sk-other")
    with pytest.raises(NotFound):
        store.cancel(batch["id"], api_key="sk-other")


def test_restart_resumes_and_finishes(tmp_path: Path, clock: VirtualClock) -> None:
    first = make_store(clock, tmp_path, seed=7)
    batch = first.create(KEY, reqs(12))

    async def part():
        await first.tick()
        clock.advance_sync(30)
        await first.tick()

    run(part())
    partial = first.retrieve(batch["id"])
    first.close()
    assert (tmp_path / "batches.sqlite3").exists()

    second = make_store(clock, tmp_path, seed=7)
    assert second.retrieve(batch["id"]) == partial  # the batch survived the restart
    clock.advance_sync(3600)  # the simulator was down for an hour: overdue requests run at once
    run(drain(second, clock))
    done = second.retrieve(batch["id"])
    assert done["processing_status"] == "ended" and done["request_counts"]["succeeded"] == 12
    assert len(list(second.results(batch["id"]))) == 12
    # A new batch after the restart gets a fresh id.
    assert second.create(KEY, reqs(1))["id"] != batch["id"]
    second.close()
    third = make_store(clock, tmp_path, seed=7)
    assert len(third.list(KEY)["data"]) == 2
    third.close()


def test_run_task_on_a_virtual_loop() -> None:
    async def go():
        clock = SYSTEM_CLOCK  # run_virtual's loop: sleeps jump virtual time
        store = make_store(clock)
        stop = asyncio.Event()
        task = asyncio.create_task(store.run(stop=stop))
        batch = store.create(KEY, reqs(8))
        for _ in range(200):
            if store.retrieve(batch["id"])["processing_status"] == "ended":
                break
            await clock.sleep(10)
        assert store.retrieve(batch["id"])["request_counts"]["succeeded"] == 8
        # A batch created while run() is idle wakes it up.
        later = store.create(KEY, reqs(3))
        for _ in range(200):
            if store.retrieve(later["id"])["processing_status"] == "ended":
                break
            await clock.sleep(10)
        assert store.retrieve(later["id"])["processing_status"] == "ended"
        stop.set()
        await asyncio.wait_for(task, 5)

    run_virtual(go())


def test_async_on_result_and_concurrency(clock: VirtualClock) -> None:
    active = 0
    peak = 0
    billed: list[str] = []

    async def slow(params, custom_id, batch_id):
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0)
        active -= 1
        return await fake_process(params, custom_id)

    async def bill(api_key, custom_id, params, result, batch_id):
        if result["type"] == "succeeded":
            billed.append(custom_id)

    store = make_store(clock, process=slow, on_result=bill, max_concurrency=4, time_scale=0.0)
    store.create(KEY, reqs(20))
    run(drain(store, clock))
    assert 1 < peak <= 4 and len(billed) == 20


def test_failing_on_result_does_not_stall_processing(clock: VirtualClock) -> None:
    def broken(*_):
        raise RuntimeError("ledger down")

    store = make_store(clock, on_result=broken)
    batch = store.create(KEY, reqs(3))
    run(drain(store, clock))
    assert store.retrieve(batch["id"])["request_counts"]["succeeded"] == 3
