"""Crash and redelivery across processes: SIGKILL a worker process mid-message, on a REAL Redis.

The API side (this test) stores and publishes the message; worker process 1 (``python -m
course_utils.architecture --workers-only``) picks it up and starts streaming the answer from the
simulator (running in this process, so its ledger is ours to read); we kill it with SIGKILL as soon
as the first delta is on the bus. Worker process 2 starts, claims the unacknowledged event after
the idle timeout, tells the client to restart the answer, and answers it: one stored answer, one
complete charge, and the killed attempt's stream, billed for the tokens generated before the hang-up.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from course_utils import mock_server
from course_utils.architecture.bus import RedisStreamsBus
from course_utils.architecture.store import DeskStore
from course_utils.architecture.vectors import VectorIndex
from course_utils.architecture.workers import Pipeline, deltas_topic

ROOT = Path(__file__).resolve().parents[1]


def _worker(redis_url: str, sim_url: str, data_dir: Path, log: Path) -> subprocess.Popen:
    args = [sys.executable, "-m", "course_utils.architecture", "--workers-only", "--redis-url", redis_url]
    # 5 s, renewed every 5/3 s while a worker answers: with 1 s, a loaded machine (CI run 14, load 10)
    # delayed a renewal past the timeout, the event was claimed again mid-answer and billed twice.
    args += ["--sim-url", sim_url, "--data-dir", str(data_dir), "--idle-timeout", "5"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(args, cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)


def _wait(predicate, what: str, proc: subprocess.Popen, log: Path, seconds: float = 90.0) -> None:
    # A bounded wait for another process; nothing here measures or asserts a duration.
    deadline = time.monotonic() + seconds
    while not predicate():
        if proc.poll() is not None:
            pytest.fail(f"worker exited ({proc.returncode}) before {what}:\n{log.read_text()[-2000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}:\n{log.read_text()[-2000:]}")
        time.sleep(0.02)


def test_a_worker_killed_mid_stream_is_redelivered_and_the_message_answered_once(redis_url, redis_client, tmp_path):
    bus_key = "course:bus:" + deltas_topic("acme", "c1")
    # The first worker's answer streams at a tenth of the realistic speed (a stream fixes its pace
    # when it starts), so the kill lands mid-stream with seconds to spare however slowly a loaded
    # machine delivers it: at full speed the answer takes under a second and could finish first
    # (then it is billed twice, correctly, and the test would measure the machine, not redelivery).
    with mock_server(seed=0, time_scale=10.0, rate_limit_tier="unlimited") as sim:
        store = DeskStore(tmp_path / "conversations.db")
        api = Pipeline(RedisStreamsBus(redis_url), store, VectorIndex(), lambda t: None)
        first = _worker(redis_url, sim.base_url, tmp_path, tmp_path / "worker1.log")
        try:
            asyncio.run(api.submit("acme", "c1", "How do I export all my data?", message_id="m1"))
            _wait(lambda: redis_client.xlen(bus_key) > 0, "the first delta", first, tmp_path / "worker1.log")
            first.send_signal(signal.SIGKILL)  # mid-stream: no ack, no cleanup, no restart event
            first.wait(30)
        finally:
            if first.poll() is None:
                first.kill()
        sim.configure(time_scale=1.0, cap=False)  # the redelivered answer at full speed
        assert store.answer_for("acme", "m1") is None
        second = _worker(redis_url, sim.base_url, tmp_path, tmp_path / "worker2.log")
        try:
            _wait(
                lambda: redis_client.exists("course:bus:usage.recorded")
                and redis_client.xlen("course:bus:usage.recorded") > 0,
                "the answer",
                second,
                tmp_path / "worker2.log",
            )
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(60)  # a bounded wait for a clean shutdown (a loaded machine is slow), not a measurement
        ledger = sim.tenant("acme").ledger()

    messages = store.messages("acme", "c1")
    assert [m.role for m in messages] == ["user", "assistant"]  # one answer
    assert len(store.usage("acme")) == 1
    calls = ledger[ledger["endpoint"] == "/v1/messages"]
    complete = calls[(calls["status"] == 200) & ~calls["disconnected"]]
    killed = calls[calls["disconnected"]]
    assert len(complete) == 1  # one charge for the answer
    # The killed stream is billed for what was generated before the provider saw the hang-up (all or part).
    assert len(killed) == 1 and 1 <= int(killed["output_tokens"].iloc[0]) <= int(complete["output_tokens"].iloc[0])
    # The client was told to drop the killed attempt's text before the new one streamed.
    deltas = [fields for _, fields in redis_client.xrange(bus_key)]
    kinds = [json.loads(f["data"])["type"] for f in deltas]
    assert "restart" in kinds and kinds[-1] == "end"
    after = kinds[kinds.index("restart") + 1 :]
    assert set(after[:-1]) == {"delta"}
    assert redis_client.xpending("course:bus:context.ready", "model")["pending"] == 0
