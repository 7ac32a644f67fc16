"""The course's kernel and JupyterLab overrides: installed once, atomically, and safely by many at once."""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from course_utils.jupyter_env import DISPLAY_NAME, install


def _kernel(prefix: Path) -> dict:
    return json.loads((prefix / "share/jupyter/kernels/python3/kernel.json").read_text())


def test_install_writes_kernel_and_overrides_then_nothing(tmp_path: Path):
    first = install(tmp_path)
    assert len(first) == 2
    spec = _kernel(tmp_path)
    assert spec["display_name"] == DISPLAY_NAME and spec["argv"][0] == sys.executable
    overrides = json.loads((tmp_path / "share/jupyter/lab/settings/overrides.json").read_text())
    assert overrides["@jupyterlab/apputils-extension:notification"] == {"fetchNews": "false", "checkForUpdates": False}
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "share").rglob("*") if p.is_file()}
    assert install(tmp_path) == []  # nothing differs: nothing is written
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "share").rglob("*") if p.is_file()} == before


def test_install_keeps_other_overrides_and_repairs_a_broken_kernel(tmp_path: Path):
    settings = tmp_path / "share/jupyter/lab/settings"
    settings.mkdir(parents=True)
    (settings / "overrides.json").write_text(json.dumps({"@jupyterlab/apputils-extension:themes": {"theme": "x"}}))
    kernel = tmp_path / "share/jupyter/kernels/python3"
    kernel.mkdir(parents=True)
    (kernel / "kernel.json").write_text("{ truncated")
    install(tmp_path)
    overrides = json.loads((settings / "overrides.json").read_text())
    assert overrides["@jupyterlab/apputils-extension:themes"] == {"theme": "x"}
    assert overrides["@jupyterlab/apputils-extension:notification"]["fetchNews"] == "false"
    assert _kernel(tmp_path)["display_name"] == DISPLAY_NAME


def test_many_installs_at_once_never_fail_and_leave_one_kernel(tmp_path: Path):
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: install(tmp_path), range(16)))
    assert sum(1 for written in results if written) == 1  # the first wrote; the rest found it in place
    assert [p.name for p in (tmp_path / "share/jupyter/kernels").iterdir()] == ["python3"]
    assert _kernel(tmp_path)["display_name"] == DISPLAY_NAME


def test_processes_racing_against_a_stale_kernel(tmp_path: Path):
    """Separate processes, as separate `make` runs are, replacing a kernelspec that differs."""
    kernel = tmp_path / "share/jupyter/kernels/python3"
    kernel.mkdir(parents=True)
    (kernel / "kernel.json").write_text(json.dumps({"argv": ["python"], "display_name": "old"}))
    command = [sys.executable, "-m", "course_utils.jupyter_env", "--prefix", str(tmp_path)]
    procs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(4)]
    outputs = [proc.communicate(timeout=120) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0, 0, 0], outputs
    assert sum("installed kernel" in out for out, _ in outputs) == 1
    assert _kernel(tmp_path)["display_name"] == DISPLAY_NAME
