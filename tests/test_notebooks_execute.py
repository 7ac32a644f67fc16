"""nbval the solutions: every solution re-executed at the CI time scale reproduces its stored outputs.

nbval fails on an error output or on any output that differs from the stored one. Student
notebooks need no run of their own here: ``test_repository_notebooks_are_up_to_date`` pins them
to what authoring generates from the solutions, the grading tests run their stubs and check
cells (every exercise "not attempted", no problem), and CI's browser test presses Run All on each
one in JupyterLab. How long a lesson takes is measured by ``benchmarks/notebook_wait_times.py``
(figures in the README), not asserted here: a test's verdict must not depend on machine load.

Slow by nature; marked ``notebooks`` (select or skip with ``-m``). Skips cleanly when no lesson
notebooks exist yet.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from _notebooks import ROOT, SOLUTIONS, output_text, params, read
from course_utils.mock_provider.config import FORCE_TIME_SCALE_ENV
from course_utils.mock_provider.skills.thinking import REPLY_SCENARIO_ENV

pytestmark = pytest.mark.notebooks

CI_PARAMETERS = {"provider": "simulator", "seed": 0, "time_scale": 0.02}
CELL_TIMEOUT = 120


def test_solutions_reproduce_their_outputs_nbval():
    """Stored solution outputs match a fresh run (nbval, sanitised with tests/nbval_sanitize.cfg)."""
    if not SOLUTIONS:
        pytest.skip("no solution notebooks yet")
    pytest.importorskip("nbval")
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
    # The kernels inherit the forced CI time scale, as when the outputs were stored.
    env = {**os.environ, FORCE_TIME_SCALE_ENV: str(CI_PARAMETERS["time_scale"])}
    run = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60 * 30, env=env)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]


@pytest.mark.parametrize("path", params(SOLUTIONS))
def test_solution_runs_when_replies_think_refuse_and_pause(path, tmp_path):
    """Every lesson survives what the current models return (issue 13 item 3): under the ``hostile``
    reply scenario every reply starts with a ``thinking`` block and a quarter end in ``refusal`` or
    ``pause_turn``. Code that reads ``content[0].text`` raises here; code that reads blocks by type
    does not. No error output may appear, and every check cell still passes (checks pin plain
    replies, so the student's grade does not depend on the scenario)."""
    nbclient = pytest.importorskip("nbclient")
    nb = read(path)
    env_before = {k: os.environ.get(k) for k in (REPLY_SCENARIO_ENV, FORCE_TIME_SCALE_ENV)}
    os.environ[REPLY_SCENARIO_ENV] = "hostile"
    os.environ[FORCE_TIME_SCALE_ENV] = str(CI_PARAMETERS["time_scale"])
    try:
        client = nbclient.NotebookClient(
            nb, timeout=CELL_TIMEOUT, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
        )
        client.execute()  # raises CellExecutionError on the first error output
    finally:
        for key, value in env_before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    check_outputs = [
        output_text(o) for c in nb.cells if c.cell_type == "code" and "check(" in c.source for o in c.get("outputs", [])
    ]
    assert check_outputs, "the lesson has check cells"
    failing = [t for t in check_outputs if "✗" in t or "⏱" in t]
    assert not failing, failing[:3]
