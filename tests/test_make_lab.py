"""``make lab`` as a newcomer meets it: twice at once, the README's remote commands, and as a normal user.

The two-at-once test runs on a scratch checkout whose venv has **not had its kernel installed yet**
(only the kernelspec that ipykernel's wheel ships), so both ``make lab`` processes reach the kernel
install together, which is where CI's two browser workers used to
collide (``ipykernel install`` deleted the kernelspec folder under the other's feet, issue 25). The
scratch venv borrows the course venv's packages through a ``.pth`` file, so it costs no install, but
its own ``share/jupyter/kernels`` and JupyterLab settings start empty.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from ipykernel.kernelspec import write_kernel_spec

from course_utils.jupyter_env import DISPLAY_NAME

REPO = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 180.0  # a safety net for a machine under load; nothing is measured against it


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scratch checkout for ``make lab``: the Makefile, notebooks, data, and a kernel-less venv."""
    root = tmp_path_factory.mktemp("checkout")
    for name in ("Makefile", "requirements.txt", "pyproject.toml", ".gitignore"):
        shutil.copy2(REPO / name, root / name)
    shutil.copytree(REPO / "notebooks", root / "notebooks")
    (root / "data").symlink_to(REPO / "data", target_is_directory=True)

    venv = root / ".venv"
    subprocess.run([sys._base_executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = Path(sysconfig.get_path("purelib", vars={"base": str(venv), "platbase": str(venv)}))
    course_site = sysconfig.get_path("purelib")
    (site / "course-venv.pth").write_text(f"import site; site.addsitedir({course_site!r})\n")
    # JupyterLab's static files and extensions come from the course venv; kernels and settings do not.
    shared, ours = Path(sys.prefix) / "share" / "jupyter", venv / "share" / "jupyter"
    (ours / "lab").mkdir(parents=True)
    for entry in shared.iterdir():
        if entry.name not in ("kernels", "lab") and not entry.name.startswith("."):
            (ours / entry.name).symlink_to(entry)
    for entry in (shared / "lab").iterdir():
        if entry.name != "settings":
            (ours / "lab" / entry.name).symlink_to(entry)
    # As after `pip install ipykernel`: the wheel's own kernelspec, which runs whatever `python` is on PATH.
    write_kernel_spec(
        ours / "kernels" / "python3",
        overrides={
            "argv": ["python", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "Python 3 (ipykernel)",
        },
    )
    (venv / ".installed").touch()  # newer than requirements.txt: make installs nothing
    return root


def _env() -> dict[str, str]:
    env = dict(os.environ)
    for inherited in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL"):  # a fresh make, as typed in a terminal
        env.pop(inherited, None)
    return env


class Lab:
    """One ``make lab ...`` in its own process group, its output captured to a file."""

    def __init__(self, cwd: Path, args: list[str], log: Path) -> None:
        self.log = log
        self.out = log.open("w")
        self.process = subprocess.Popen(
            ["make", "--no-print-directory", *args],
            cwd=cwd,
            env=_env(),
            stdout=self.out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, pattern: str) -> re.Match[str]:
        """Wait until the output matches ``pattern``; fail with the output if make exits first."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            found = re.search(pattern, self.text())
            if found:
                return found
            if self.process.poll() is not None:
                break
            time.sleep(0.2)
        self.stop()
        pytest.fail(f"`make lab` did not come up (exit {self.process.returncode}); output:\n{self.text()[-3000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.out.close()


def _get(url: str) -> tuple[int, str]:
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(url, timeout=30) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, ""


def test_two_make_lab_at_the_same_instant_both_come_up(checkout: Path, tmp_path: Path):
    kernels = checkout / ".venv" / "share" / "jupyter" / "kernels"
    # The race is on the first install, which replaces the kernelspec that ipykernel's wheel ships.
    assert json.loads((kernels / "python3" / "kernel.json").read_text())["argv"][0] == "python"
    ports, token = [_free_port(), _free_port()], "two-labs"
    labs: list[Lab] = []
    barrier = threading.Barrier(2)

    def start(port: int) -> None:
        args = f"--no-browser --port {port} --ServerApp.ip=127.0.0.1 --IdentityProvider.token={token}"
        barrier.wait()
        labs.append(Lab(checkout, ["lab", f"LAB_ARGS={args}"], tmp_path / f"lab-{port}.log"))

    threads = [threading.Thread(target=start, args=(port,)) for port in ports]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        for lab in labs:
            lab.wait_for(r"http://127\.0\.0\.1:\d+/lab")
        for port in ports:
            status, body = _get(f"http://127.0.0.1:{port}/api/kernelspecs?token={token}")
            assert status == 200
            specs = json.loads(body)["kernelspecs"]
            assert specs["python3"]["spec"]["display_name"] == DISPLAY_NAME
        for lab in labs:
            assert lab.process.poll() is None, lab.text()
            assert "Traceback" not in lab.text(), lab.text()
    finally:
        for lab in labs:
            lab.stop()

    spec = json.loads((kernels / "python3" / "kernel.json").read_text())
    assert spec["argv"][0] == str(checkout / ".venv" / "bin" / "python")
    assert sorted(p.name for p in kernels.iterdir()) == ["python3"]  # no scratch folders left behind
    overrides = checkout / ".venv" / "share" / "jupyter" / "lab" / "settings" / "overrides.json"
    assert json.loads(overrides.read_text())["@jupyterlab/apputils-extension:notification"]["fetchNews"] == "false"
    # Both filled one workspace: each lesson once, byte for byte the official notebook.
    lessons = sorted(p.name for p in (checkout / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert sorted(p.name for p in (checkout / "my-work").glob("*.ipynb")) == lessons
    for name in lessons:
        assert (checkout / "my-work" / name).read_bytes() == (checkout / "notebooks" / name).read_bytes()


def _readme_lab_commands() -> list[str]:
    """The README's ``make lab LAB_ARGS=...`` lines for a remote machine (those that listen on 0.0.0.0)."""
    lines = [line.split("#")[0].strip() for line in (REPO / "README.md").read_text().splitlines()]
    return [line for line in lines if line.startswith("make lab LAB_ARGS=") and "--ip 0.0.0.0" in line]


def test_the_readme_has_remote_commands():
    commands = _readme_lab_commands()
    assert len(commands) == 2, commands
    assert not [c for c in commands if "ServerApp.token" in c]  # deprecated in favour of IdentityProvider.token


@pytest.mark.parametrize("command", _readme_lab_commands())
def test_readme_remote_command_prints_a_url_that_opens_the_lab(checkout: Path, tmp_path: Path, command: str):
    port = _free_port()
    args = shlex.split(command.replace("8899", str(port)))[1:]  # drop "make"
    lab = Lab(checkout, args, tmp_path / "lab.log")
    try:
        printed = lab.wait_for(rf"(http://127\.0\.0\.1:{port}/lab\?token=(\S+))")
        url, token = printed.group(1), printed.group(2)
        if token == "...":  # a token the user chose is masked; the README says what to open instead
            chosen = re.search(r'--IdentityProvider\.token=([^\s"]+)', command).group(1)
            readme = (REPO / "README.md").read_text()
            assert f":8899/lab?token={chosen}" in readme
            url = f"http://127.0.0.1:{port}/lab?token={chosen}"
        try:
            status, body = _get(url)
        except OSError as exc:  # it printed its URL, then nobody answered: say whether it still runs, and what it said
            pytest.fail(f"{url} refused ({exc}); make exit code {lab.process.poll()}; output:\n{lab.text()[-3000:]}")
        assert status == 200 and "JupyterLab" in body, (status, body[:300])
        assert _get(f"http://127.0.0.1:{port}/lab")[0] in (302, 303)  # and without the token it asks for one
        assert not re.search(r"deprecat", lab.text(), re.IGNORECASE), lab.text()
    finally:
        lab.stop()


@pytest.mark.parametrize(("target", "variable", "message"), [
    ("redis-deps", "REDIS_SERVER", "sudo apt-get install -y redis-server"),
    ("browser-deps", "CHROMIUM", "sudo apt-get install -y chromium chromium-driver"),
])  # fmt: skip
def test_a_normal_user_is_told_what_to_install(target: str, variable: str, message: str):
    """As root, make installs a missing Redis or Chromium itself (CI does); anyone else is told the command."""
    folder = Path(tempfile.mkdtemp())
    try:
        folder.chmod(0o755)
        shutil.copy(REPO / "Makefile", folder / "Makefile")
        (folder / "Makefile").chmod(0o644)
        command = ["make", "--no-print-directory", target, f"{variable}=/nonexistent/{variable.lower()}"]
        if os.geteuid() == 0:
            command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command]
        env = {key: value for key, value in _env().items() if key != "REDIS_URL"}
        done = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=60)
    finally:
        shutil.rmtree(folder)
    assert done.returncode != 0
    assert message in done.stderr, done.stderr
