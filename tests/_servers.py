"""In-process simulators for tests: a context manager that closes the server, however the test ends.

``InProcessServer`` releases its private loop and batch processors in ``close()``; a test that drops
the server leaves that to the garbage collector. Use the ``make_server`` fixture (``tests/conftest.py``)
in a test, or :func:`in_process_server` where a fixture does not reach (a helper, a loop of servers).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

from course_utils.mock_provider.inprocess import InProcessServer

__all__ = ["in_process_server"]


@contextmanager
def in_process_server(**kwargs: Any) -> Iterator[InProcessServer]:
    """``InProcessServer(**kwargs)``, closed on exit (its ledger stays readable)."""
    server = InProcessServer(**kwargs)
    try:
        yield server
    finally:
        server.close()
