"""The course's Jupyter set-up inside the venv: its kernel and JupyterLab's settings overrides.

``make lab``, ``make lab-solutions``, ``make test`` and ``make test-browser`` all run
``python -m course_utils.jupyter_env`` before they start, so any two of them may run it at the same
moment in one checkout. ``ipykernel install`` deletes the kernelspec folder and writes it again,
and a second install racing with the first died with ``FileNotFoundError: kernel.json`` (issue 25).
Here the work is done under an exclusive file lock (``filelock``), and only when something differs: the kernelspec is
built in a scratch folder beside its target and swapped in with two renames, and the overrides file
is replaced with one atomic rename. A run that finds everything in place writes nothing, so a
JupyterLab or a kernel that is starting meanwhile never sees a half-written file.

Both go to ``sys.prefix`` (the venv), never to the user's own Jupyter folders:

- the ``python3`` kernelspec, running this venv's Python by its absolute path (the one that
  ipykernel's wheel ships says ``python``, which is whatever ``python`` is first on ``PATH``);
- ``share/jupyter/lab/settings/overrides.json``: JupyterLab's defaults for this environment. It turns
  off the "Would you like to get Jupyter news?" pop-up and the update check, which cover the first
  notebook a student opens. A user's own settings still win over these defaults.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from filelock import FileLock

__all__ = ["KERNEL_NAME", "DISPLAY_NAME", "LAB_OVERRIDES", "install", "main"]

KERNEL_NAME = "python3"
DISPLAY_NAME = "Python 3 (Production AI Patterns)"
# Plugin id -> setting: the defaults JupyterLab reads from ``<app dir>/settings/overrides.json``.
LAB_OVERRIDES: dict[str, dict[str, object]] = {
    "@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": False},
}


def _same_tree(a: Path, b: Path) -> bool:
    """True when folders ``a`` and ``b`` hold the same file names with the same bytes."""
    if not b.is_dir():
        return False
    names = sorted(p.name for p in a.iterdir())
    if names != sorted(p.name for p in b.iterdir()):
        return False
    return all(filecmp.cmp(a / name, b / name, shallow=False) for name in names)


def _install_kernelspec(kernels: Path) -> bool:
    """Make ``kernels/python3`` this venv's kernel; return True if anything was written."""
    from ipykernel.kernelspec import write_kernel_spec

    target = kernels / KERNEL_NAME
    kernels.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".new-", dir=kernels))
    try:
        # write_kernel_spec wants a folder that does not exist yet; it writes kernel.json and logos.
        built = Path(write_kernel_spec(scratch / KERNEL_NAME, overrides={"display_name": DISPLAY_NAME}))
        if _same_tree(built, target):
            return False
        retired = kernels / f".old-{os.getpid()}-{KERNEL_NAME}"
        if target.exists():
            target.rename(retired)
        built.rename(target)  # the gap between the two renames is under the lock, and microseconds
        shutil.rmtree(retired, ignore_errors=True)
        return True
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _install_overrides(settings: Path) -> bool:
    """Write ``settings/overrides.json`` (merged over any existing keys); return True if it changed."""
    target = settings / "overrides.json"
    try:
        current = json.loads(target.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        current = {}
    wanted = {**current, **{plugin: {**current.get(plugin, {}), **values} for plugin, values in LAB_OVERRIDES.items()}}
    if wanted == current:
        return False
    settings.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".overrides-", suffix=".json", dir=settings)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(wanted, out, indent=2, sort_keys=True)
        out.write("\n")
    os.replace(tmp, target)
    return True


def install(prefix: Path | str = sys.prefix) -> list[str]:
    """Install the kernelspec and the JupyterLab overrides under ``prefix``; safe to run concurrently.

    Returns what was written (empty when everything was already in place).
    """
    jupyter = Path(prefix) / "share" / "jupyter"
    written = []
    with FileLock(jupyter / ".course-setup.lock"):
        if _install_kernelspec(jupyter / "kernels"):
            written.append(f"kernel {KERNEL_NAME!r} ({DISPLAY_NAME})")
        if _install_overrides(jupyter / "lab" / "settings"):
            written.append("JupyterLab settings overrides (no news pop-up)")
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_utils.jupyter_env", description=__doc__.splitlines()[0])
    parser.add_argument("--prefix", default=sys.prefix, help="the environment to set up (default: this venv)")
    args = parser.parse_args(argv)
    for item in install(args.prefix):
        print(f"installed {item}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
