"""Shared fixtures: one simulator per test module, with no latency unless a test asks for it."""

from __future__ import annotations

from collections import Counter
from contextlib import ExitStack
from typing import Callable, Iterator

import anthropic
import pytest

from _http import TLS
from course_utils import MockServer, mock_server
from course_utils.clock import VirtualClock
from course_utils.mock_provider.inprocess import InProcessServer


@pytest.fixture()
def make_server() -> Iterator[Callable[..., InProcessServer]]:
    """A factory of in-process simulators: ``make_server(**kwargs)`` is ``InProcessServer(**kwargs)``,
    closed after the test (a context manager; outside a test, use ``with InProcessServer(...) as server:``)."""
    with ExitStack() as stack:
        yield lambda **kwargs: stack.enter_context(InProcessServer(**kwargs))


@pytest.fixture()
def clock() -> VirtualClock:
    """A manual clock (see ``course_utils.clock``): moves only when the test advances it."""
    return VirtualClock()


@pytest.fixture(scope="module")
def server() -> Iterator[MockServer]:
    """A private simulator for this module (seed 0, latency off, no rate limits: tests of limits make their own)."""
    with mock_server(seed=0, time_scale=0.0, rate_limit_tier="unlimited") as srv:
        yield srv


@pytest.fixture()
def sim(server: MockServer) -> MockServer:
    """The module's simulator, with a clean ledger for this test."""
    server.reset()
    return server


@pytest.fixture()
def client(sim: MockServer):
    """A strict sync SDK client: response validation on, no SDK retries (tests see every error)."""
    http = anthropic.DefaultHttpxClient(verify=TLS)
    return sim.client(max_retries=0, _strict_response_validation=True, http_client=http)


@pytest.fixture()
def aclient(sim: MockServer):
    """A strict async SDK client."""
    http = anthropic.DefaultAsyncHttpxClient(verify=TLS)
    return sim.async_client(max_retries=0, _strict_response_validation=True, http_client=http)


@pytest.fixture(autouse=True)
def _fresh_check_registry():
    """Every test starts and ends with an empty check registry (hints escalate with failures)."""
    import course_utils.checks as checks

    checks.reset()
    yield
    checks.reset()


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A real Redis server for this test process: ``REDIS_URL`` if set, else a private one we start.

    Never skipped: lessons 07 and 08 promise a real server, and `make test` installs it.
    """
    from course_utils.redis_server import RedisServer, redis_url as env_url

    url = env_url()
    if url:
        yield url
        return
    with RedisServer() as srv:
        yield srv.url


@pytest.fixture()
def redis_client(redis_url: str):
    """A client on a freshly flushed database (tests in one process share the server, not state)."""
    from course_utils.redis_server import connect

    client = connect(redis_url)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.hookimpl(optionalhook=True)  # pytest -p no:xdist still runs (one process, no such hook)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto`` (the suite's default): one worker per core, plus one.

    The suite waits as well as computes (kernels and servers starting, subprocesses, the grader's
    cluster): with one worker per core, /proc/stat showed the 2-core machine 10% idle over the run and
    about 45% idle for a minute at a stretch (CI run 29). A third worker fills those gaps: make test's
    pytest took 388 s with three workers against 437 s with two (one run each, 2026-12-07)."""
    import os

    return (os.cpu_count() or 1) + 1


# The long units first. `make test` hands whole files to the workers (`--dist loadfile`). xdist's
# default queues files by their number of tests, so the one-test nbval file (three minutes, one
# kernel) started last and ran alone: CI run 25 spent its last three minutes with one core idle.
# Started first, it runs beside everything else. The files whose one or two tests take 15-45 s each
# (a Dask cluster, a worker killed mid-stream, 500 streams, a loaded grading batch) came last by the
# same rule and made the tail: CI run 30 ended with about 50 s at 40% idle. They follow the nbval file;
# the rest keep xdist's order (most tests first; `--no-loadscope-reorder` keeps this order as given).
_FIRST_FILES = (
    "tests/test_notebooks_execute.py",
    "tests/test_grading_dask.py",
    "tests/test_architecture_crash.py",
    "tests/test_load.py",
    "tests/test_grading_load.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Order the session: the long units, then the files with the most tests (stable within a file)."""
    per_file = Counter(item.nodeid.split("::")[0] for item in items)

    def key(item: pytest.Item) -> tuple[int, int]:
        path = item.nodeid.split("::")[0]
        rank = _FIRST_FILES.index(path) if path in _FIRST_FILES else len(_FIRST_FILES)
        return rank, -per_file[path]

    items.sort(key=key)
