"""Load: 500 concurrent streaming requests, two rounds, with no errors, no leaked tasks and bounded memory.

The benchmark (benchmarks/load_streams.py) runs 1,000 and its figures are in the README; the test
asserts the same properties at half the size, to keep `make test` within its time budget.
"""

from __future__ import annotations

import runpy
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


def _run_cli(monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    """``python -m course_utils.mock_provider ARGS`` in this process: runpy executes the package's
    ``__main__`` as the interpreter would (the ``if __name__ == "__main__"`` line included), without
    paying for a new interpreter and its imports; ``test_concurrent_streams_two_rounds`` starts the
    same entry point as a real process. Returns the exit code."""
    monkeypatch.setattr(sys, "argv", ["python -m course_utils.mock_provider", *args])
    with pytest.raises(SystemExit) as exit_:
        runpy.run_module("course_utils.mock_provider", run_name="__main__", alter_sys=True)
    return exit_.value.code


def test_cli_help_and_bad_arguments(monkeypatch, capsys):
    assert _run_cli(monkeypatch, "--help") == 0
    out = capsys.readouterr()
    assert "--time-scale" in out.out and "--seed" in out.out
    assert _run_cli(monkeypatch, "--scenario", "nope") == 2
    assert "calm" in capsys.readouterr().err
