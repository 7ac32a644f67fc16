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

__all__ = ["run_job", "main", "SCRIPT"]

SCRIPT = Path(__file__).resolve()
"""What :mod:`.execute` runs: ``[sys.executable, SCRIPT, JOB.json]``."""


def _lean_imports() -> None:
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


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """Execute ``job["input"]`` to ``job["output"]``; return the outcome (also written to ``job["run"]``)."""
    _lean_imports()
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
