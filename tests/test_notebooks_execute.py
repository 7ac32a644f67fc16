"""Execute every student notebook end to end at the CI time scale (papermill), and nbval the solutions.

nbval re-executes every solution and fails on an error output or on any output that differs from
the stored one, so solutions are executed once, there. How long a lesson takes is measured by
``benchmarks/notebook_wait_times.py`` (figures in the README), not asserted here: a test's verdict
must not depend on how busy the machine is.

Slow by nature; marked ``notebooks`` (select or skip with ``-m``). Skips cleanly when no lesson
notebooks exist yet.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from _notebooks import ROOT, SOLUTIONS, STUDENTS, params, read
from course_utils.mock_provider.config import FORCE_TIME_SCALE_ENV

pytestmark = pytest.mark.notebooks

CI_PARAMETERS = {"provider": "simulator", "seed": 0, "time_scale": 0.02}
CELL_TIMEOUT = 120


def _execute(path, tmp_path):
    papermill = pytest.importorskip("papermill")
    out = tmp_path / path.name
    started = time.perf_counter()
    try:
        papermill.execute_notebook(
            str(path),
            str(out),
            parameters=CI_PARAMETERS,
            kernel_name="python3",
            execution_timeout=CELL_TIMEOUT,
            cwd=str(path.parent),
            progress_bar=False,
            log_output=False,
        )
    except papermill.PapermillExecutionError as exc:
        pytest.fail(f"{path.parent.name}/{path.name} failed in cell {exc.exec_count}: {exc.ename}: {exc.evalue}")
    return read(out), time.perf_counter() - started


def _report(capsys, path, seconds):
    with capsys.disabled():
        print(f"\n  executed {path.parent.name}/{path.name} in {seconds:.1f} s", end="")


@pytest.mark.parametrize("path", params(STUDENTS))
def test_student_notebook_executes(path, tmp_path, capsys):
    # Stubs raise NotImplementedError only inside functions; check() turns that into a verdict,
    # so Run All on a fresh student notebook must reach the end.
    nb, seconds = _execute(path, tmp_path)
    _report(capsys, path, seconds)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors, f"{errors[0].ename}: {errors[0].evalue}"


def test_solutions_reproduce_their_outputs_nbval():
    """Stored solution outputs match a fresh run (nbval, sanitised with tests/nbval_sanitize.cfg)."""
    if not SOLUTIONS:
        pytest.skip("no solution notebooks yet")
    pytest.importorskip("nbval")
    cmd = [
        sys.executable, "-m", "pytest", "--nbval", "-p", "no:cacheprovider", "-q",
        "--nbval-sanitize-with", str(ROOT / "tests" / "nbval_sanitize.cfg"),
        "--nbval-kernel-name", "python3", "--nbval-cell-timeout", str(CELL_TIMEOUT),
        "-o", "addopts=", "-o", "testpaths=",
        *[str(p.relative_to(ROOT)) for p in SOLUTIONS],
    ]
    # The kernels inherit the forced CI time scale, as when the outputs were stored.
    env = {**os.environ, FORCE_TIME_SCALE_ENV: str(CI_PARAMETERS["time_scale"])}
    run = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60 * 30, env=env)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
