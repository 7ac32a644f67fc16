"""nbval the solutions: every solution re-executed at the CI time scale reproduces its stored outputs.

nbval fails on an error output or on any output that differs from the stored one. Student
notebooks need no run of their own here: ``test_repository_notebooks_are_up_to_date`` pins them
to what authoring generates from the solutions, the grading tests run their stubs and check
cells (every exercise "not attempted", no problem), and CI's browser test presses Run All on each
one in JupyterLab under the ``hostile`` reply scenario (thinking blocks, refusals and
``pause_turn`` in every lesson's demos, issue 13 item 3). How long a lesson takes is measured by
``benchmarks/notebook_wait_times.py`` (figures in the README), not asserted here: a test's verdict must not depend on machine load.

Slow by nature; marked ``notebooks`` (``make test-fast`` leaves it out). With no solution notebooks
it fails: a skip could never go red.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from _notebooks import ROOT, SOLUTIONS
from course_utils.grading.warm import WarmKernels
from course_utils.mock_provider.config import FORCE_TIME_SCALE_ENV

pytestmark = pytest.mark.notebooks

CI_PARAMETERS = {"provider": "simulator", "seed": 0, "time_scale": 0.02}

CELL_TIMEOUT = 120


def test_solutions_reproduce_their_outputs_nbval():
    """Stored solution outputs match a fresh run (nbval, sanitised with tests/nbval_sanitize.cfg)."""
    assert SOLUTIONS, "no solution notebooks: nothing to reproduce"  # a failure, never a skip (issue 30)
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "--nbval",
        "-p",
        "no:cacheprovider",
        "-q",
        "--nbval-sanitize-with",
        str(ROOT / "tests" / "nbval_sanitize.cfg"),
        "--nbval-kernel-name",
        "python3",
        "--nbval-cell-timeout",
        str(CELL_TIMEOUT),
        "-o",
        "addopts=",
        "-o",
        "testpaths=",
        *[str(p.relative_to(ROOT)) for p in SOLUTIONS],
    ]
    # The kernels inherit the forced CI time scale, as when the outputs were stored. PYTEST_ADDOPTS is
    # for the suite, not for this inner run: with ``-n 3`` in it, xdist spread one notebook's cells over
    # three kernels and every cell after the first worker's failed with a NameError.
    env = {**os.environ, FORCE_TIME_SCALE_ENV: str(CI_PARAMETERS["time_scale"])}
    env.pop("PYTEST_ADDOPTS", None)
    # The grader's warm kernels: each notebook still gets a fresh kernel process, forked from a zygote
    # that imported the kernel, the SDK, pandas and matplotlib once, not nine times (and prints as a
    # cold kernel: tests/test_grading.py::test_a_warm_kernel_prints_what_a_cold_one_prints).
    with WarmKernels(env) as warm:
        cmd[cmd.index("python3")] = warm.kernel_name
        env["JUPYTER_PATH"] = os.pathsep.join(p for p in (warm.jupyter_path, env.get("JUPYTER_PATH")) if p)
        run = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60 * 30, env=env)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
