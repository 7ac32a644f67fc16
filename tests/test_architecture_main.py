"""``python -m course_utils.architecture`` serves the support desk on its own: POST, stream, stop."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from course_utils.architecture.workers import message_id_for

ROOT = Path(__file__).resolve().parents[1]


def test_the_service_runs_on_its_own_and_stops_on_sigterm(tmp_path):
    log = tmp_path / "service.log"
    args = [sys.executable, "-m", "course_utils.architecture", "--port", "0", "--time-scale", "0"]
    args += ["--data-dir", str(tmp_path)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    env.pop("REDIS_URL", None)
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120  # a bounded wait for startup (model load, indexing), not a measurement
        url = None
        while url is None:
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            found = re.search(r"support desk on (http://127\.0\.0\.1:\d+)", log.read_text())
            url = found.group(1) if found else None
            time.sleep(0.1)
        key = re.search(r"API key for acme: (tk_\S+)", log.read_text()).group(1)
        auth = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=url, timeout=30) as http:
            headers = {**auth, "Idempotency-Key": "k1"}
            accepted = http.post("/conversations/c1/messages", json={"text": "I forgot my password"}, headers=headers)
            assert accepted.status_code == 202
            assert accepted.json()["message_id"] == message_id_for("acme", "k1")
            with http.stream("GET", accepted.headers["location"], headers=auth) as stream:
                body = "".join(stream.iter_text())
            assert "event: end" in body
            ends = [json.loads(line[5:]) for line in body.splitlines() if line.startswith("data:") and "usage" in line]
            assert ends and ends[-1]["usage"]["output_tokens"] > 0
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert (tmp_path / "conversations.db").exists() and (tmp_path / "vectors.db").exists()
