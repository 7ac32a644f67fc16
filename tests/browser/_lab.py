"""A JupyterLab server for the browser test, started the way a student starts it: ``make lab``.

``make lab`` fills a student workspace from ``notebooks/`` and serves it. Here the workspace is a
scratch folder (``WORK=<root>/my-work``, beside a link to ``data/`` as ``my-work/`` is in a checkout),
so Run All and saving never touch the checkout. The server gets its own user settings (no autosave,
every cell in the DOM; the news pop-up is left to the venv's overrides, which the test checks) and
kernels that inherit ``COURSE_FORCE_TIME_SCALE`` so lessons run at the CI time scale.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

__all__ = ["LabServer", "prepare_root", "start_lab"]

# User settings a fresh JupyterLab reads from JUPYTERLAB_SETTINGS_DIR (plugin id -> settings).
SETTINGS = {
    # The test saves explicitly; autosave mid-run would race with it.
    "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
    # Every cell stays in the DOM, so the test sees outputs of cells scrolled out of view.
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
}


@dataclass
class LabServer:
    """A running ``make lab``: its base URL, token, served folder (the workspace) and log file."""

    url: str
    token: str
    root: Path
    log: Path
    process: subprocess.Popen

    def page_url(self, relpath: str, workspace: str) -> str:
        """The URL opening ``relpath`` in a fresh workspace (``reset``: no tabs from earlier tests)."""
        return f"{self.url}/lab/workspaces/{workspace}/tree/{relpath}?reset&token={self.token}"

    def stop(self) -> None:
        """Stop make, JupyterLab and its kernels (one process group, started by :func:`start_lab`)."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


def prepare_root(repo: Path, root: Path) -> Path:
    """Lay out ``root`` as a checkout is laid out for ``make lab``; return the workspace folder to serve.

    The workspace (``root/my-work``) does not exist yet: ``make lab`` creates and fills it. Lessons
    read their data sets relative to the notebook (``../data``), so ``root/data`` links to the
    repository's.
    """
    root.mkdir(parents=True, exist_ok=True)
    (root / "data").symlink_to(repo / "data", target_is_directory=True)
    return root / "my-work"


def _write_settings(settings_dir: Path) -> None:
    for plugin, values in SETTINGS.items():
        package, name = plugin.rsplit("/", 1)
        target = settings_dir / package / f"{name}.jupyterlab-settings"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(values), encoding="utf-8")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_lab(repo: Path, root: Path, state: Path, env: dict[str, str], timeout: float = 180.0) -> LabServer:
    """Run ``make lab WORK=root`` in ``repo`` (it fills and serves ``root``); return once the server answers.

    ``state`` holds the log, user settings and workspaces; ``env`` is added to the server's (and so
    the kernels') environment. Raises ``RuntimeError`` with the log's tail if it does not come up.
    """
    port, token = _free_port(), secrets.token_hex(16)
    settings, workspaces = state / "settings", state / "workspaces"
    _write_settings(settings)
    shutil.rmtree(workspaces, ignore_errors=True)
    workspaces.mkdir(parents=True)
    lab_args = f"--no-browser --port {port} --ServerApp.ip=127.0.0.1 --IdentityProvider.token={token}"
    full_env = {
        **os.environ,
        "JUPYTERLAB_SETTINGS_DIR": str(settings),
        "JUPYTERLAB_WORKSPACES_DIR": str(workspaces),
        **env,
    }
    for inherited in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL"):  # a fresh make, as a student types it
        full_env.pop(inherited, None)
    log = state / "lab.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            ["make", "--no-print-directory", "lab", f"WORK={root}", f"LAB_ARGS={lab_args}"],
            cwd=repo,
            env=full_env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so stop() ends exactly what we started
        )
    server = LabServer(f"http://127.0.0.1:{port}", token, root, log, process)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            with urllib.request.urlopen(f"{server.url}/api/status?token={token}", timeout=2) as response:
                if response.status == 200:
                    return server
        except OSError:
            time.sleep(0.5)
    server.stop()
    tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
    raise RuntimeError(f"`make lab` did not start (exit {process.returncode}); its log ends with:\n{tail}")
