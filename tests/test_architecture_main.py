"""``python -m course_utils.architecture`` serves the support desk on its own: POST, stream, stop.

It runs with lesson 07's controls (issue 29 item 6) and keeps API keys off stdout: they go to a file
only its user can read (item 7).
"""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import httpx

from _wait import wait_until

from course_utils.architecture.workers import message_id_for

ROOT = Path(__file__).resolve().parents[1]


@contextmanager
def _service(tmp_path: Path, *extra: str) -> Iterator[tuple[subprocess.Popen, str, Path]]:
    """The service in a subprocess, its stdout and stderr in ``service.log``: (process, base URL, log)."""
    log = tmp_path / "service.log"
    args = [sys.executable, "-m", "course_utils.architecture", "--port", "0", "--time-scale", "0"]
    args += ["--data-dir", str(tmp_path), *extra]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    env.pop("REDIS_URL", None)
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    try:

        def url_in_log() -> str | None:
            assert proc.poll() is None, f"the service exited during startup:\n{log.read_text()}"
            found = re.search(r"support desk on (http://127\.0\.0\.1:\d+)", log.read_text())
            return found.group(1) if found else None

        # Startup loads a model and indexes the help centre: a bounded wait, not a measurement.
        url = wait_until(url_in_log, timeout=120, every=0.1, what="the service to print its URL", detail=log.read_text)
        yield proc, url, log
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _keys(path: Path) -> dict[str, str]:
    return dict(line.split(" ", 1) for line in path.read_text().splitlines() if line and not line.startswith("#"))


def _ask(url: str, key: str, text: str = "I forgot my password") -> dict:
    """POST a message and read its answer's stream; returns the end event's data."""
    auth = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=url, timeout=30) as http:
        accepted = http.post(
            "/conversations/c1/messages", json={"text": text}, headers={**auth, "Idempotency-Key": "k1"}
        )
        assert accepted.status_code == 202, accepted.text
        assert accepted.json()["message_id"] == message_id_for("acme", "k1")
        with http.stream("GET", accepted.headers["location"], headers=auth) as stream:
            body = "".join(stream.iter_text())
    assert "event: end" in body, body[-500:]
    ends = [json.loads(line[5:]) for line in body.splitlines() if line.startswith("data:") and "usage" in line]
    return ends[-1]


def test_the_service_runs_on_its_own_and_stops_on_sigterm(tmp_path):
    with _service(tmp_path) as (proc, url, log):
        keys_file = tmp_path / "api-keys"
        assert f"API keys: {keys_file}" in log.read_text()
        end = _ask(url, _keys(keys_file)["acme"])
        assert end["usage"]["output_tokens"] > 0
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, log.read_text()
    assert (tmp_path / "conversations.db").exists() and (tmp_path / "vectors.db").exists()


def test_keys_never_reach_stdout_and_their_file_is_readable_by_its_user_only(tmp_path):
    keys_file = tmp_path / "api-keys"
    keys_file.write_text("stale\n")
    keys_file.chmod(0o644)  # an earlier run's file, left readable: the service must tighten it
    with _service(tmp_path, "--tenants", "acme,globex,initech") as (_, url, log):
        keys = _keys(keys_file)
        assert set(keys) == {"acme", "globex", "initech", "@operator"}
        assert stat.S_IMODE(keys_file.stat().st_mode) == 0o600
        _ask(url, keys["acme"])
        printed = log.read_text()
        assert not any(key in printed for key in keys.values()), printed
        assert not re.search(r"\b(tk|op)_[A-Za-z0-9_-]{8,}", printed), printed
        with httpx.Client(base_url=url, timeout=30) as http:  # the keys in the file are the live ones
            operator = http.get("/stats", headers={"Authorization": f"Bearer {keys['@operator']}"}).json()
            assert operator["scope"] == "all"
            assert http.get("/stats", headers={"Authorization": f"Bearer {keys['globex']}"}).status_code == 200


def test_the_service_on_its_own_enforces_the_tenants_plan(tmp_path):
    """Lesson 07's controls are on: the free plan includes Haiku only, so Haiku answers, never Sonnet."""
    with _service(tmp_path, "--plan", "free") as (_, url, log):
        assert "tenants on the free plan" in log.read_text()
        key = _keys(tmp_path / "api-keys")["acme"]
        end = _ask(url, key)
        assert end["usage"]["model"] == "claude-haiku-5-5"
        with httpx.Client(base_url=url, timeout=30) as http:

            def traced() -> dict | None:  # the observer records the trace just after the end event
                stats = http.get("/stats", headers={"Authorization": f"Bearer {key}"}).json()
                return stats if stats["slo"]["requests"] else None

            stats = wait_until(traced, timeout=60, what="/stats to show the answered request")
        assert stats["answered_by"] == {"claude-haiku-5-5": 1}
