"""Subprocess entry point: execute one restored notebook with papermill and describe the run.

``python -m course_utils.grading.worker JOB.json`` — run by :mod:`course_utils.grading.execute`
in its own process group, so the parent can kill it (and its kernel) when the wall limit passes
without anything else in the batch noticing.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any

__all__ = ["run_job", "main"]


def _drop_error_markers(path: str) -> None:
    # Papermill's red "execution stopped here" banners are wrong here: with allow_errors it did not stop.
    import nbformat

    try:
        nb = nbformat.read(path, as_version=4)
    except Exception:
        return
    nb.cells = [c for c in nb.cells if "papermill-error-cell-tag" not in (c.metadata.get("tags") or [])]
    nbformat.write(nb, path)


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """Execute ``job["input"]`` to ``job["output"]``; return the outcome (also written to ``job["run"]``)."""
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    from .engine import ENGINE_NAME, last_client, register

    register()
    started = time.monotonic()
    outcome, message = "completed", ""
    nb = None
    try:
        nb = pm.execute_notebook(
            job["input"],
            job["output"],
            parameters=job.get("parameters") or {},
            engine_name=ENGINE_NAME,
            kernel_name=job.get("kernel", "python3"),
            progress_bar=False,
            log_output=False,
            cwd=job.get("cwd"),
            start_timeout=job.get("start_timeout", 120),
            execution_timeout=job["cell_timeout"],
            allow_errors=True,  # one broken exercise must not stop the others
            interrupt_on_timeout=True,  # a looping cell is interrupted, the kernel lives on
            error_on_timeout={
                "ename": "CellTimeoutError",
                "evalue": f"cell did not finish within {job['cell_timeout']:g} s",
                "traceback": [],
            },
            max_output_bytes=job.get("max_output_bytes", 100_000),
            record_timing=True,
        )
    except PapermillExecutionError:
        # Expected with allow_errors: papermill still reports error outputs at the end.
        _drop_error_markers(job["output"])
    except Exception as exc:  # DeadKernelError, kernel start failure, ...
        name = type(exc).__name__
        outcome = "dead_kernel" if name == "DeadKernelError" else "grader_error"
        message = f"{name}: {exc}" if outcome == "dead_kernel" else traceback.format_exc(limit=6)
    client = last_client()
    result = {
        "outcome": outcome,
        "message": message[-4000:],
        "cell_index": client.current_index if client and outcome != "completed" else None,
        "timed_out": list(client.timed_out) if client else [],
        "seconds": round(time.monotonic() - started, 3),
    }
    Path(job["run"]).write_text(json.dumps(result))
    return result


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    job = json.loads(Path(argv[0]).read_text())
    run_job(job)
    return 0


if __name__ == "__main__":
    sys.exit(main())
