"""Run a student's answer as another process would: ``hash()`` of a str salted differently.

Python salts str hashes per process (``PYTHONHASHSEED``), so ids built from ``hash()`` differ
between yesterday's run and today's resume, while within one process the salt is fixed. Lessons 04
(custom_ids) and 07 (tenant tags) grade "the same in another process" with :func:`another_process`.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

from .forbid import reachable

__all__ = ["another_process"]

_ABSENT = object()
_REAL_HASH = hash


@contextmanager
def another_process(fn: Any) -> Iterator[None]:
    """Run the answer as another process would: ``hash()`` of a str salted differently.

    Python salts str hashes per process (``PYTHONHASHSEED``), so ids built from ``hash()`` differ
    between yesterday's run and today's resume. Within one process the salt is fixed; here ``hash``
    is shadowed, in the namespaces of the answer and the helpers it calls, by a differently salted one.
    """
    namespaces = {id(f.__globals__): f.__globals__ for f in reachable(fn)[0]}
    # Only where ``hash`` means the builtin: a student's own global named ``hash`` is theirs.
    saved = [(ns, ns.get("hash", _ABSENT)) for ns in namespaces.values() if ns.get("hash", _REAL_HASH) is _REAL_HASH]
    for ns, _ in saved:
        ns["hash"] = lambda obj: _REAL_HASH(("another process", obj))
    try:
        yield
    finally:
        for ns, value in saved:
            if value is _ABSENT:
                ns.pop("hash", None)
            else:
                ns["hash"] = value
