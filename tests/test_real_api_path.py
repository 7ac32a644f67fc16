"""The "Against the real API" path is never dead code (issue 11, item 8).

Every notebook ends with a section that runs against the real API when ``provider="anthropic"``
and ``ANTHROPIC_API_KEY`` are set, and only prints "Skipped" otherwise. CI has no real key, so
here a simulator stands in for the real API: the kernels get ``provider="anthropic"``, a dummy
key and ``ANTHROPIC_BASE_URL`` pointing at it, and ``course_utils.client("anthropic")`` must
honour that variable exactly as the SDK does.

To stay cheap the notebook test runs only what the real-API section needs: the parameters and
setup cells and the exercise cells (which define names such as ``MODEL``). Demo cells (tagged
``demo``, nothing depends on them) and check cells are left out; other tests run those.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterator

import anthropic
import nbformat
import pytest

import course_utils
from _notebooks import SOLUTIONS, output_text, params, read
from course_utils import MockServer, mock_server
from course_utils.grading.restore import DEMO_TAG
from course_utils.grading.warm import WarmKernels
from course_utils.mock_provider.config import FORCE_TIME_SCALE_ENV
from course_utils.mock_provider.simulator import mask_key  # how the ledger shows sk-ant- keys

DUMMY_KEY = "sk-ant-dummy-ci"
CI_TIME_SCALE = 0.02
CELL_TIMEOUT = 120
REAL_API_HEADING = re.compile(r"^##\s+Against the real API\b")
ANY_HEADING = re.compile(r"^#{1,2}\s")
CHECK_CALL = re.compile(r"^check\(", re.M)
PROVIDER_BRANCH = re.compile(r"\bprovider\s*==\s*[\"']anthropic[\"']")
SKIPPED = "Skipped"


# --- course_utils.client("anthropic") and ANTHROPIC_BASE_URL -------------------------------------


@pytest.fixture()
def real_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """A dummy key, no base URL in the environment, provider left to each call."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", DUMMY_KEY)
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    monkeypatch.delenv("COURSE_PROVIDER", raising=False)
    return monkeypatch


@pytest.mark.parametrize("env_url", [None, "http://127.0.0.1:9/", "http://gateway.example:8080/anthropic"])
@pytest.mark.parametrize("kwarg_url", [None, "http://127.0.0.1:7/"])
def test_client_base_url_is_the_sdks(real_env: pytest.MonkeyPatch, env_url: str | None, kwarg_url: str | None) -> None:
    """Whatever the SDK would pick (argument, else ANTHROPIC_BASE_URL, else api.anthropic.com), we pick."""
    if env_url is not None:
        real_env.setenv("ANTHROPIC_BASE_URL", env_url)
    kwargs = {"base_url": kwarg_url} if kwarg_url else {}
    pairs = [
        (course_utils.client("anthropic", **kwargs), anthropic.Anthropic(api_key=DUMMY_KEY, **kwargs)),
        (course_utils.async_client("anthropic", **kwargs), anthropic.AsyncAnthropic(api_key=DUMMY_KEY, **kwargs)),
    ]
    for ours, sdks in pairs:
        assert str(ours.base_url) == str(sdks.base_url)
    expected = kwarg_url or env_url or "https://api.anthropic.com"
    assert str(pairs[0][0].base_url).rstrip("/") == expected.rstrip("/")


def test_simulator_provider_ignores_anthropic_base_url(real_env: pytest.MonkeyPatch) -> None:
    real_env.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9/")
    sim_client = course_utils.client("simulator")
    assert str(sim_client.base_url).rstrip("/") == course_utils.shared_server().base_url


def test_real_client_reaches_the_stand_in(real_env: pytest.MonkeyPatch, sim: MockServer) -> None:
    """A request from ``client("anthropic")`` lands on whatever ANTHROPIC_BASE_URL names."""
    real_env.setenv("ANTHROPIC_BASE_URL", sim.base_url)
    reply = course_utils.client("anthropic", max_retries=0).messages.create(
        model="claude-haiku-5-5", max_tokens=20, messages=[{"role": "user", "content": "Say hello."}]
    )
    assert reply.content[0].text
    assert list(sim.ledger()["api_key"]) == [mask_key(DUMMY_KEY)]


# --- every notebook's real-API section, executed against a stand-in simulator --------------------


def real_api_cells(nb: nbformat.NotebookNode) -> list[int]:
    """Indices of the code cells in the "Against the real API" section that branch on the provider
    (a clean-up cell there, closing what a demo opened, is not part of the real-API path)."""
    found, inside = [], False
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown" and ANY_HEADING.match(cell.source):
            inside = bool(REAL_API_HEADING.match(cell.source))
        elif inside and cell.cell_type == "code" and PROVIDER_BRANCH.search(cell.source):
            found.append(i)
    return found


def real_api_notebook(nb: nbformat.NotebookNode) -> tuple[nbformat.NotebookNode, list[int]]:
    """``nb`` reduced to what its real-API section needs; also the section's indices in the result."""
    real = set(real_api_cells(nb))
    out = nbformat.v4.new_notebook(metadata=nb.metadata)
    indices: list[int] = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        tags = cell.metadata.get("tags") or []
        if i not in real and (DEMO_TAG in tags or CHECK_CALL.search(cell.source)):
            continue
        if i in real:
            indices.append(len(out.cells))
        out.cells.append(cell)
    return out, indices


@pytest.fixture(scope="module")
def stand_in() -> Iterator[MockServer]:
    """The simulator standing in for api.anthropic.com, with the limits of the lowest current usage tier
    ("start", docs/api-notes.md §13), as a real organisation has at least."""
    with mock_server(seed=0, time_scale=CI_TIME_SCALE, rate_limit_tier="start") as server:
        yield server


@pytest.fixture(scope="module")
def warm_kernels() -> Iterator[WarmKernels]:
    """The grader's warm kernels, for the nine notebooks: each still a fresh kernel process, with the
    launcher's environment (this test's key and base URL), forked from a zygote that imported the
    kernel, the SDK, pandas and matplotlib once."""
    with WarmKernels(dict(os.environ)) as warm:
        yield warm


@pytest.mark.notebooks
@pytest.mark.parametrize("path", params(SOLUTIONS))
def test_real_api_section_runs_against_a_stand_in(
    path: Path, tmp_path: Path, stand_in: MockServer, warm_kernels: WarmKernels, monkeypatch: pytest.MonkeyPatch
) -> None:
    papermill = pytest.importorskip("papermill")
    monkeypatch.setenv(
        "JUPYTER_PATH", os.pathsep.join(filter(None, (warm_kernels.jupyter_path, os.environ.get("JUPYTER_PATH"))))
    )
    nb, section = real_api_notebook(read(path))
    assert section, f"{path.name} has no code cell under '## Against the real API'"
    key = f"{DUMMY_KEY}-l{path.stem[:2]}"  # one key per lesson (the ledger keeps its last 4 characters)
    # The kernel inherits these: what a student with a key (and a proxy in ANTHROPIC_BASE_URL) has.
    monkeypatch.setenv("ANTHROPIC_API_KEY", key)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", stand_in.base_url)
    monkeypatch.setenv(FORCE_TIME_SCALE_ENV, str(CI_TIME_SCALE))
    monkeypatch.delenv("COURSE_PROVIDER", raising=False)
    source = tmp_path / path.name
    nbformat.write(nb, str(source))
    try:
        papermill.execute_notebook(
            str(source),
            str(tmp_path / f"out-{path.name}"),
            parameters={"provider": "anthropic", "seed": 0, "time_scale": CI_TIME_SCALE},
            kernel_name=warm_kernels.kernel_name,
            execution_timeout=CELL_TIMEOUT,
            cwd=str(path.parent),
            progress_bar=False,
            log_output=False,
        )
    except papermill.PapermillExecutionError as exc:
        pytest.fail(f"{path.name} failed in cell {exc.exec_count}: {exc.ename}: {exc.evalue}")
    executed = read(tmp_path / f"out-{path.name}")
    # papermill inserts its parameters cell right after the one tagged `parameters`.
    shift = sum(1 for c in executed.cells if "injected-parameters" in (c.metadata.get("tags") or []))
    offset = next(i for i, c in enumerate(nb.cells) if "parameters" in (c.metadata.get("tags") or []))
    ran = [executed.cells[i + shift if i > offset else i] for i in section]
    text = "\n".join(output_text(o) for cell in ran for o in cell.outputs)
    assert text.strip(), "the real-API cells printed nothing"
    assert SKIPPED not in text, f"the real-API section was skipped:\n{text[:2000]}"
    errors = [o for c in executed.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors, f"{errors[0].ename}: {errors[0].evalue}"
    served = stand_in.ledger()
    mine = served[served["api_key"] == mask_key(key)]
    assert len(mine) > 0, "the stand-in saw no request from the real-API section"
    assert (mine["status"] < 500).all(), mine[["endpoint", "status"]].to_string()
