"""Every time read in the library goes through ``course_utils.clock`` (its docstring tells the story).

A module that calls ``time.time()`` or ``time.monotonic()`` itself reads the machine's clock even on a
virtual loop or under an injected clock: a figure then depends on how busy the machine is. The
modules below measure something that is real by nature, and say so here; any other module must take
a ``Clock`` (default ``SYSTEM_CLOCK``, which follows the running loop).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "course_utils"

# path (relative to course_utils/) -> why it reads the machine's clock directly
ALLOWED = {
    # the one clock itself
    "clock.py": "SystemClock and the virtualised time module read the real clock outside a virtual loop",
    # real I/O: bytes over a real socket, threads and processes starting, never on virtual time
    "streaming/wire.py": "times the arrival of bytes on a real socket (lesson 02's chunking on the wire)",
    "streaming/loopback.py": "waits for a real server thread to listen",
    "serving.py": "waits for a real uvicorn thread to start",
    "redis_server.py": "waits for a real redis-server process to accept connections",
    # progress a student sits through: wall seconds while the virtual-time runs compute
    "concurrency/simulate.py": "progress events report the wall seconds spent computing the virtual runs (run_each)",
    # grading runs real kernels: its timeouts and reported durations are wall time
    "grading/worker.py": "reports the wall seconds a real grading job took",
    "grading/execute.py": "a real kernel's notebook timeout is wall time",
    "grading/grade.py": "reports the wall seconds a real grading run took",
    "grading/folder.py": "reports the wall seconds a real grading run took",
    "grading/ledger.py": "stamps a grade record with the real time it was graded",
    "grading/warm.py": "waits for a real warm kernel process to open its socket",
}

READS = {"time", "monotonic"}


def direct_reads(source: str, filename: str = "<src>") -> list[int]:
    """Line numbers where ``source`` calls ``time.time()``/``time.monotonic()`` (under any alias) or
    imports them from ``time``."""
    tree = ast.parse(source, filename=filename)
    modules = {"time"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules |= {a.asname or a.name for a in node.names if a.name == "time"}
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "time" and not node.level:
            lines += [node.lineno for a in node.names if a.name in READS]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in READS
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id in modules
        ):
            lines.append(node.lineno)
    return sorted(lines)


def test_the_scanner_sees_each_way_of_reading_the_clock():
    assert direct_reads("import time\nx = time.time()\ny = time.monotonic()\n") == [2, 3]
    assert direct_reads("import time as t\nx = t.monotonic()\n") == [2]
    assert direct_reads("from time import monotonic\n") == [1]
    assert direct_reads("import time\nclock.time()\nclock.monotonic()\ntime.perf_counter()\n") == []


def test_no_library_module_reads_the_machines_clock_outside_the_allow_list():
    offenders = {}
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel in ALLOWED:
            continue
        lines = direct_reads(path.read_text(), str(path))
        if lines:
            offenders[rel] = lines
    assert not offenders, f"read the injected clock (course_utils.clock) instead: {offenders}"


def test_the_allow_list_names_only_modules_that_need_it():
    """An entry whose module no longer reads the clock directly is stale: remove it."""
    stale = [rel for rel in ALLOWED if not direct_reads((ROOT / rel).read_text())]
    assert not stale
