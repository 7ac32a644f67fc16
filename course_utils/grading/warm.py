"""Warm kernels: every submission still gets a fresh kernel process, forked from a pre-imported one.

Starting a lesson's kernel costs seconds of CPU before the first exercise runs (ipykernel, the
SDK, pandas, matplotlib, the course's modules); with 100 submissions that is most of the
grading time. A *zygote* process imports all of that once and never runs any notebook code; each
kernel is a ``fork()`` of it, so it starts with the modules imported and nothing else.

Isolation is that of separate processes, as before: a kernel is a copy of the pristine zygote,
so nothing one submission does (patching a module, filling a cache, exhausting memory) exists in
another's kernel, and the zygote never executes submitted code.

How jupyter_client sees it: the kernel spec's argv runs this file's ``kernel`` command, a tiny
stand-in process (the "launcher"). It asks the zygote for a kernel, passing its stdio, its
environment and working directory, then lives exactly as long as that kernel: signals sent to the
launcher (interrupts) are relayed to the kernel's process group; when the kernel exits, the
launcher exits; when the launcher is killed, the kernel kills itself. If the zygote cannot be
reached, the launcher simply ``exec``\\ s an ordinary ipykernel: slower, never different.

Commands (run as a script, so the launcher imports nothing heavy)::

    python warm.py serve SOCKET [MODULE ...] # the zygote (started by :class:`WarmKernels`)
    python warm.py kernel SOCKET -f CONN ... # the launcher (from the kernel spec)
"""

from __future__ import annotations

import array
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

__all__ = ["WarmKernels", "KERNEL_NAME", "PRELOAD", "BASE_PRELOAD", "preload_for"]

KERNEL_NAME = "course-grader-warm"
SCRIPT = Path(__file__).resolve()
PRELOAD = (
    "ipykernel.kernelapp",
    "ipykernel.ipkernel",
    "IPython",
    "anthropic",
    "httpx",
    "pandas",
    "numpy",
    "matplotlib",
    "matplotlib.pyplot",
    "matplotlib_inline.backend_inline",
    "course_utils",
    "course_utils.checks",
    "course_utils.provider",
    "course_utils.mock_provider.server",
    "course_utils.concurrency",
    "course_utils.context",
    "course_utils.streaming",
    "course_utils.batch",
    "course_utils.pricing",
    "course_utils.tokens",
    "uvicorn",
    "fastapi",
)
"""Modules the zygote may import: what lesson kernels import anyway (missing ones are skipped)."""
BASE_PRELOAD = ("ipykernel.kernelapp", "ipykernel.ipkernel", "IPython", "course_utils", "course_utils.checks")
"""What every graded kernel imports (the kernel itself and the grader's setup cell): always preloaded."""
_PACKAGE = "course_utils"
_COMPANIONS = {"matplotlib_inline.backend_inline": "matplotlib"}  # ipykernel's plots: wanted with matplotlib
_FDS = 5  # stdin, stdout, stderr, the "launcher died" pipe (read end), the "kernel alive" pipe (write end)


# --- the zygote --------------------------------------------------------------------------------


def preload_for(sources: list[str]) -> list[str]:
    """The part of :data:`PRELOAD` that code importing what ``sources`` import needs.

    ``sources`` are the Python sources the kernels will run: the official notebooks' code cells
    and their check modules. A module of :data:`PRELOAD` is kept when a source imports it or one of
    its submodules (``matplotlib.pyplot`` keeps ``matplotlib``), or it is in :data:`BASE_PRELOAD`. A
    name the package imports on first use (``course_utils.client()``, ``from course_utils import
    configure``: :data:`course_utils.LAZY_SUBMODULES`) counts as importing its submodule.
    Preloading a module no kernel imports costs every run its import for nothing (pandas and
    matplotlib: about a CPU-second for the fixture lesson, which imports neither); a kernel that
    does import something not preloaded imports it itself, as a cold kernel would.
    """
    import ast

    imported: set[str] = set()
    for source in sources:
        # IPython magics and shell escapes are not Python; their lines import nothing.
        code = "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())
        try:
            tree = ast.parse(code)
        except SyntaxError:
            return list(PRELOAD)  # cannot tell: everything, as before
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                imported.add(node.module)
                imported.update(f"{node.module}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == _PACKAGE:
                imported.add(f"{_PACKAGE}.{node.attr}")
    # ``course_utils.client`` is not a module: the package imports it from ``course_utils.provider``
    # (the SDK, about a CPU-second) on first use, in every kernel unless the zygote did.
    from course_utils import LAZY_SUBMODULES

    prefix = _PACKAGE + "."
    for name in list(imported):
        attribute = name.removeprefix(prefix)
        if name.startswith(prefix) and attribute in LAZY_SUBMODULES:
            imported.add(_PACKAGE + LAZY_SUBMODULES[attribute])

    def wanted(name: str) -> bool:
        return any(i == name or i.startswith(name + ".") for i in imported)

    return [m for m in PRELOAD if m in BASE_PRELOAD or wanted(m) or wanted(_COMPANIONS.get(m, m))]


INLINE_BACKEND = "module://matplotlib_inline.backend_inline"
"""The matplotlib backend ipykernel chooses when ``MPLBACKEND`` is not set."""


class _KernelShell:
    """What pandas looks for in ``get_ipython()`` to tell a Jupyter kernel from a terminal."""

    kernel = True


def _preload(modules: list[str] | tuple[str, ...] = PRELOAD) -> None:
    """Import ``modules`` as a kernel would, so that what the kernels forked from the zygote print is
    what a cold kernel prints.

    Two libraries fix a setting when imported: matplotlib its backend (``MPLBACKEND``, which
    ipykernel sets to the inline backend when it is unset) and pandas ``display.max_columns`` (0,
    fit to the terminal, when no IPython shell with a kernel is found; 20 in a kernel). Imported
    in the bare zygote, tables came out cut to the terminal's width and figures without their text.
    """
    import builtins
    import importlib

    if not os.environ.get("MPLBACKEND"):
        os.environ["MPLBACKEND"] = INLINE_BACKEND  # as ipykernel does before a kernel runs code
    shim = not hasattr(builtins, "get_ipython")  # a real shell's is left alone
    if shim:
        builtins.get_ipython = _KernelShell  # type: ignore[attr-defined]  # pandas calls it; only during the imports
    try:
        for name in modules:
            try:
                importlib.import_module(name)
            except Exception:  # an optional module: the kernel imports it itself if it needs it
                pass
    finally:
        if shim:
            del builtins.get_ipython  # type: ignore[attr-defined]


def _watch_launcher(fd: int) -> None:
    """In the kernel: die with the launcher (jupyter_client kills the launcher to kill the kernel)."""
    try:
        os.read(fd, 1)  # returns (EOF) only when the launcher is gone
    finally:
        os.killpg(os.getpid(), signal.SIGKILL)


def _become_kernel(fds: list[int], request: dict[str, Any]) -> None:
    """In the forked child: take the launcher's stdio, environment and folder, and run ipykernel."""
    os.setsid()  # its own process group, so the launcher can interrupt the kernel and its children
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the zygote ignores it; a kernel must not
    for fd in fds[3:]:
        os.set_inheritable(fd, False)  # the pipes are this process's alone, not its subprocesses'
    for target, fd in enumerate(fds[:3]):
        os.dup2(fd, target)
    for fd in fds[:3]:
        os.close(fd)
    os.environ.clear()
    os.environ.update(request["env"])
    os.chdir(request["cwd"])
    threading.Thread(target=_watch_launcher, args=(fds[3],), daemon=True).start()
    # fds[4] (the "alive" pipe) stays open, never inherited by subprocesses, until this process ends.
    sys.argv = [sys.executable, *request["argv"]]
    from ipykernel.kernelapp import IPKernelApp

    IPKernelApp.launch_instance(argv=request["argv"])


def serve(path: str, modules: list[str] | None = None) -> None:
    """Pre-import ``modules`` (default :data:`PRELOAD`), then fork one kernel per request on the
    Unix socket ``path``, forever."""
    _preload(modules or PRELOAD)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # kernels are reaped automatically
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(16)
    # A zygote outlives nothing: when the process that started it (a Dask worker, the grader) is
    # gone, killed or not, it exits; kernels already forked end with their own launchers.
    parent = os.getppid()
    listener.settimeout(1.0)
    while True:
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            if os.getppid() != parent:
                os._exit(0)
            continue
        conn.settimeout(None)
        with conn:
            try:
                data, ancdata, _, _ = conn.recvmsg(1 << 20, socket.CMSG_SPACE(_FDS * array.array("i").itemsize))
                fds = array.array("i")
                for level, kind, payload in ancdata:
                    if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                        fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
                request = json.loads(data)
            except (OSError, ValueError):
                continue
            if len(fds) != _FDS:
                for fd in fds:
                    os.close(fd)
                continue
            pid = os.fork()
            if pid == 0:
                try:
                    listener.close()
                    conn.close()
                    _become_kernel(list(fds), request)
                finally:
                    os._exit(0)
            for fd in fds:  # the kernel has them; later kernels must not inherit them
                os.close(fd)
            try:
                conn.sendall(str(pid).encode())
            except OSError:
                pass


# --- the launcher --------------------------------------------------------------------------------


def _cold(argv: list[str]) -> None:
    """No zygote: become an ordinary kernel (what the plain ``python3`` kernel spec runs)."""
    os.execv(sys.executable, [sys.executable, "-m", "ipykernel_launcher", *argv])


def launch(path: str, argv: list[str]) -> int:
    """Ask the zygote at ``path`` for a kernel with ``argv``; relay signals; exit when it exits."""
    died_r, died_w = os.pipe()  # we keep the write end: its EOF tells the kernel we are gone
    alive_r, alive_w = os.pipe()  # the kernel keeps the write end: its EOF tells us it ended
    request = json.dumps({"argv": argv, "env": dict(os.environ), "cwd": os.getcwd()}).encode()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.connect(path)
            fds = array.array("i", [0, 1, 2, died_r, alive_w])
            conn.sendmsg([request], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])
            conn.shutdown(socket.SHUT_WR)
            kernel = int(conn.recv(64) or b"0")
    except (OSError, ValueError):
        kernel = 0
    os.close(died_r)
    os.close(alive_w)
    if kernel <= 0:
        _cold(argv)

    def relay(signum: int, _frame: Any) -> None:
        try:
            os.killpg(kernel, signum)
        except OSError:
            pass

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(signum, relay)
    while os.read(alive_r, 1):  # b"" (EOF) once the kernel process is gone
        pass
    return 0


# --- the grader's side ---------------------------------------------------------------------------


class WarmKernels:
    """A running zygote and the kernel spec that reaches it, for one grading batch.

    ``env`` is the kernels' environment at import time (the same as the workers give them).
    Use as a context manager; :attr:`kernel_name` and :attr:`jupyter_path` go to the workers.
    """

    kernel_name = KERNEL_NAME

    def __init__(self, env: dict[str, str], start_timeout: float = 120.0, preload: list[str] | None = None) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="grader-warm-"))
        self.socket_path = str(self._dir / "zygote.sock")
        self.jupyter_path = str(self._dir / "jupyter")
        spec_dir = Path(self.jupyter_path) / "kernels" / KERNEL_NAME
        spec_dir.mkdir(parents=True)
        spec = {
            "argv": [sys.executable, str(SCRIPT), "kernel", self.socket_path, "-f", "{connection_file}"],
            "display_name": "Python 3 (grader, warm)",
            "language": "python",
            "interrupt_mode": "signal",
        }
        (spec_dir / "kernel.json").write_text(json.dumps(spec))
        self._env = env
        self._timeout = start_timeout
        self._preload = list(preload) if preload else []  # empty: all of PRELOAD
        self._proc: subprocess.Popen | None = None

    def __enter__(self) -> "WarmKernels":
        self._proc = subprocess.Popen(
            [sys.executable, str(SCRIPT), "serve", self.socket_path, *self._preload],
            env=self._env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + self._timeout
        # Workers may start before the zygote listens: their launchers then start cold kernels.
        while not os.path.exists(self.socket_path) and self._proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None:
            try:
                os.killpg(self._proc.pid, signal.SIGKILL)
            except OSError:
                pass
            self._proc.wait()
        import shutil

        shutil.rmtree(self._dir, ignore_errors=True)


def main(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[0] == "serve":
        serve(argv[1], argv[2:])
        return 0
    if len(argv) >= 2 and argv[0] == "kernel":
        return launch(argv[1], argv[2:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    # As a script, this folder is first on sys.path: its modules must not shadow top-level ones.
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != SCRIPT.parent]
    sys.exit(main(sys.argv[1:]))
