"""Subprocess entry point: execute one restored notebook with papermill and describe the run.

``python path/to/course_utils/grading/worker.py JOB.json`` — run by
:mod:`course_utils.grading.execute` in its own process group, so the parent can kill it (and its
kernel) when the wall limit passes without anything else in the batch noticing.

It is started as a *script*, not with ``-m``: one worker starts per submission, and importing the
``course_utils`` package (the SDK, the simulator, pandas) would cost a second of CPU each time
for nothing, since the worker only drives the kernel. It needs papermill and :mod:`.engine`, which
it loads from the file beside it. ``python -m course_utils.grading.worker`` works too.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import time
import traceback
from pathlib import Path
from types import ModuleType
from typing import Any

__all__ = ["run_job", "main", "SCRIPT", "lean_imports"]

SCRIPT = Path(__file__).resolve()
"""What :mod:`.execute` runs: ``[sys.executable, SCRIPT, JOB.json]``."""


def lean_imports() -> None:
    """Skip the optional IRI checker jsonschema loads for nbformat: it compiles a grammar at import
    (about 2.5 s of CPU per process) and notebooks have no IRI fields to check. A ``None`` entry
    in ``sys.modules`` makes ``import rfc3987_syntax`` raise ImportError, which jsonschema handles."""
    sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]


def _engine() -> ModuleType:
    """:mod:`course_utils.grading.engine`, or the same file loaded on its own when run as a script."""
    if __package__:
        from . import engine

        return engine
    name = "course_grader_engine"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, SCRIPT.with_name("engine.py"))
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def _drop_error_markers(path: str) -> None:
    # Papermill's red "execution stopped here" banners are wrong here: with allow_errors it did not stop.
    import nbformat

    try:
        nb = nbformat.read(path, as_version=4)
    except Exception:
        return
    nb.cells = [c for c in nb.cells if "papermill-error-cell-tag" not in (c.metadata.get("tags") or [])]
    nbformat.write(nb, path)


def _die_with_parent(pid_file: str | None) -> None:
    """End this run, kernel included, when the process that started it is gone.

    The worker runs in its own session so the grader can kill it as a group; the price is that
    nothing kills it when the grader itself dies (a Dask worker killed or out of memory, a node
    lost). Dask then grades the submission again elsewhere, so this run must not linger: when the
    parent changes, kill the kernel (its pid, from the setup cell, or jupyter_client's process)
    and exit.
    """
    import os
    import signal
    import threading

    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        pids: list[int] = []
        try:
            pids.append(int(Path(pid_file or "").read_text().strip()))
        except (OSError, ValueError):
            pass
        client = _engine().last_client()
        process = getattr(getattr(getattr(client, "km", None), "provisioner", None), "process", None)
        if process is not None:
            pids.append(process.pid)
        for pid in pids:
            for kill in (os.killpg, os.kill):  # kernels lead their own process group
                try:
                    kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        os._exit(3)

    threading.Thread(target=watch, name="die-with-parent", daemon=True).start()


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """Execute ``job["input"]`` to ``job["output"]``; return the outcome (also written to ``job["run"]``)."""
    lean_imports()
    _die_with_parent(job.get("pid_file"))
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    engine = _engine()
    ENGINE_NAME, last_client = engine.ENGINE_NAME, engine.last_client
    engine.register()
    started = time.monotonic()
    outcome, message = "completed", ""
    try:
        pm.execute_notebook(
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
            error_on_timeout=engine.timeout_reply(job["cell_timeout"]),
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
    if outcome != "completed" and (client is None or client.current_index is None):
        # Nothing of the notebook ran: the kernel never started (or died before its first cell).
        # No student code can cause that, so it is the grader's failure, and worth another try.
        outcome = "no_kernel"
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
    if not __package__:
        # Run as a script, Python put this folder first on sys.path; its modules (report, execute,
        # ...) must not shadow top-level modules of the same name.
        sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != SCRIPT.parent]
    sys.exit(main())
