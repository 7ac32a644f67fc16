"""Load: 500 concurrent streaming requests, two rounds, with no errors, no leaked tasks and bounded memory.

The benchmark (benchmarks/load_streams.py) runs 1,000 and its figures are in the README; the test
asserts the same properties at half the size, to keep `make test` within its time budget.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from load_streams import run_load


@pytest.mark.load
def test_concurrent_streams_two_rounds():
    r = run_load(concurrency=500, time_scale=0.01)
    assert r.errors == 0 and r.completed == 1000
    assert r.tokens_received > 1000 * 10
    assert r.server_tasks_after == r.server_tasks_idle, "every per-request task finished"
    # The second round reuses what the first allocated: memory is bounded, not growing per request.
    assert (
        r.server_rss_mb_round2 - r.server_rss_mb_round1 < 0.25 * (r.server_rss_mb_round1 - r.server_rss_mb_start) + 20
    )


def test_cli_help_and_bad_arguments():
    import subprocess

    out = subprocess.run([sys.executable, "-m", "course_utils.mock_provider", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "--time-scale" in out.stdout and "--seed" in out.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "course_utils.mock_provider", "--scenario", "nope"], capture_output=True, text=True
    )
    assert bad.returncode == 2 and "calm" in bad.stderr
