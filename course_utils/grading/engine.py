"""A papermill engine for grading: errors don't stop the run, timeouts interrupt, outputs are capped.

Registered with papermill as ``course-grader`` by :func:`register`. It behaves like papermill's
default nbclient engine except that

* the notebook client keeps a per-cell output budget, so a student printing gigabytes costs the
  grader a few kilobytes (the kernel still produces it, but nothing accumulates in memory);
* it remembers which cell was running and which cells hit the per-cell timeout, so the caller can
  name the culprit when the kernel dies or hangs.
"""

from __future__ import annotations

import copy
import inspect
from typing import Any, Callable

from papermill.clientwrap import PapermillNotebookClient
from papermill.engines import NBClientEngine, papermill_engines
from papermill.utils import merge_kwargs, remove_args
from traitlets import Int

__all__ = [
    "GraderClient",
    "GraderEngine",
    "register",
    "ENGINE_NAME",
    "IOPUB_TIMEOUT_S",
    "TIMEOUT_ENAME",
    "timeout_reply",
    "last_client",
    "is_papermill_cell",
]

PAPERMILL_TAGS = {"injected-parameters", "papermill-error-cell-tag"}


def is_papermill_cell(cell: Any) -> bool:
    """Cells papermill adds (injected parameters, error markers); the grader's indices skip them."""
    return bool(PAPERMILL_TAGS & set(cell.get("metadata", {}).get("tags") or []))


ENGINE_NAME = "course-grader"
IOPUB_TIMEOUT_S = 120
"""How long the grader waits for a cell's outputs after the kernel's reply (nbclient's default is 4 s)."""
TIMEOUT_ENAME = "CellTimeoutError"
"""The ``ename`` of the reply nbclient makes for a timed-out cell (``error_on_timeout``); see :func:`timeout_reply`."""
_LAST: list["GraderClient"] = []


def last_client() -> "GraderClient | None":
    """The client of the most recent run in this process (for post-mortem after an exception)."""
    return _LAST[-1] if _LAST else None


def timeout_reply(seconds: float) -> dict[str, Any]:
    """The ``error_on_timeout`` content to give nbclient, so a timed-out cell is recognised."""
    return {"ename": TIMEOUT_ENAME, "evalue": f"cell did not finish within {seconds:g} s", "traceback": []}


def _chain(first: Any, second: Callable[..., Any]) -> Callable[..., Any]:
    """A hook that runs ``first`` (if set; awaited when it returns an awaitable), then ``second``."""
    if first is None:
        return second

    async def both(**kwargs: Any) -> None:
        result = first(**kwargs)
        if inspect.isawaitable(result):
            await result
        second(**kwargs)

    return both


def _payload_size(content: dict[str, Any]) -> int:
    size = len(content.get("text", "") or "")
    for value in (content.get("data") or {}).values():
        size += len(value) if isinstance(value, str) else len(str(value))
    size += sum(len(line) for line in content.get("traceback", []) or [])
    return size


class GraderClient(PapermillNotebookClient):
    """Papermill's client plus an output budget and a record of the running / timed-out cells
    (``current_index`` and ``timed_out`` count cells of the notebook given to papermill)."""

    max_output_bytes = Int(100_000, help="Output kept per cell; the rest is dropped with a notice.").tag(config=True)
    # After a cell's reply nbclient waits ``iopub_timeout`` for the outputs still in flight, and
    # papermill makes running past it an error. nbclient's 4 s default was too short on a busy
    # machine: in CI run 24 a check cell's outputs arrived later, and two correct notebooks were
    # graded "could not execute". The outputs are on their way; waiting costs nothing when they are prompt.
    iopub_timeout = Int(IOPUB_TIMEOUT_S, help="Seconds to wait for a cell's outputs after its reply.").tag(config=True)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.current_index: int | None = None
        self.timed_out: list[int] = []
        self._used: dict[int, int] = {}
        # nbclient's documented cell hooks (on_cell_start, on_cell_executed), chained after any the
        # caller set, so an nbclient upgrade cannot silently bypass what a private override did.
        self.on_cell_start = _chain(self.on_cell_start, self._note_running)
        self.on_cell_executed = _chain(self.on_cell_executed, self._note_reply)
        _LAST.append(self)

    def _note_running(self, cell: Any, cell_index: int, **_: Any) -> None:
        # Indices in the notebook the grader wrote (papermill's own cells don't count), taken now
        # because papermill may insert error-marker cells at the top after the run.
        self.current_index = cell_index - sum(1 for c in self.nb.cells[:cell_index] if is_papermill_cell(c))

    def _note_reply(self, cell: Any, cell_index: int, execute_reply: Any = None, **_: Any) -> None:
        # With interrupt_on_timeout, nbclient replies with the error_on_timeout content we gave it.
        content = (execute_reply or {}).get("content") or {}
        if content.get("ename") == TIMEOUT_ENAME and self.current_index not in self.timed_out:
            self.timed_out.append(self.current_index)

    def output(self, outs, msg, display_id, cell_index):  # type: ignore[override]
        content = msg.get("content", {})
        size = _payload_size(content)
        used = self._used.get(cell_index, 0)
        budget = self.max_output_bytes
        if msg.get("msg_type") == "error":
            # Errors are what the feedback quotes: always keep them, but bounded.
            if size > budget:
                msg = copy.deepcopy(msg)
                tb = msg["content"].get("traceback", [])
                msg["content"]["traceback"] = tb[:3] + ["... (traceback truncated by the grader) ..."] + tb[-3:]
            return super().output(outs, msg, display_id, cell_index)
        if used >= budget:
            return None
        self._used[cell_index] = used + size
        if used + size <= budget:
            return super().output(outs, msg, display_id, cell_index)
        self._used[cell_index] = budget
        room = budget - used
        out = None
        if msg.get("msg_type") == "stream":
            msg = copy.deepcopy(msg)
            msg["content"]["text"] = msg["content"].get("text", "")[:room]
            out = super().output(outs, msg, display_id, cell_index)
        notice = copy.deepcopy(msg)
        notice["msg_type"] = "stream"
        notice["content"] = {
            "name": "stderr",
            "text": f"\n[grader] output of this cell truncated after {budget:,} characters\n",
        }
        super().output(outs, notice, None, cell_index)
        return out


class GraderEngine(NBClientEngine):
    """NBClientEngine using :class:`GraderClient`."""

    @classmethod
    def execute_managed_notebook(  # type: ignore[override]
        cls,
        nb_man,
        kernel_name,
        log_output=False,
        stdout_file=None,
        stderr_file=None,
        start_timeout=60,
        execution_timeout=None,
        **kwargs,
    ):
        # Same argument handling as papermill's NBClientEngine; only the client class differs.
        kwargs = remove_args(["input_path"], **kwargs)
        safe_kwargs = remove_args(["timeout", "startup_timeout"], **kwargs)
        final_kwargs = merge_kwargs(
            safe_kwargs,
            timeout=execution_timeout if execution_timeout else kwargs.get("timeout"),
            startup_timeout=start_timeout,
            kernel_name=kernel_name,
            log_output=log_output,
            stdout_file=stdout_file,
            stderr_file=stderr_file,
        )
        return GraderClient(nb_man, **final_kwargs).execute()


def register() -> None:
    """Make the engine available to ``papermill.execute_notebook(engine_name="course-grader")``."""
    papermill_engines.register(ENGINE_NAME, GraderEngine)
