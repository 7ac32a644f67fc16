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
from typing import Any

from nbclient.util import run_sync
from papermill.clientwrap import PapermillNotebookClient
from papermill.engines import NBClientEngine, papermill_engines
from papermill.utils import merge_kwargs, remove_args
from traitlets import Int

__all__ = ["GraderClient", "GraderEngine", "register", "ENGINE_NAME", "last_client", "is_papermill_cell"]

PAPERMILL_TAGS = {"injected-parameters", "papermill-error-cell-tag"}


def is_papermill_cell(cell: Any) -> bool:
    """Cells papermill adds (injected parameters, error markers); the grader's indices skip them."""
    return bool(PAPERMILL_TAGS & set(cell.get("metadata", {}).get("tags") or []))

ENGINE_NAME = "course-grader"
_LAST: list["GraderClient"] = []


def last_client() -> "GraderClient | None":
    """The client of the most recent run in this process (for post-mortem after an exception)."""
    return _LAST[-1] if _LAST else None


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

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.current_index: int | None = None
        self.timed_out: list[int] = []
        self._used: dict[int, int] = {}
        _LAST.append(self)

    async def async_execute_cell(self, cell, cell_index, execution_count=None, store_history=True):  # type: ignore[override]
        # Indices in the notebook the grader wrote (papermill's own cells don't count), taken now
        # because papermill may insert error-marker cells at the top after the run.
        self.current_index = cell_index - sum(1 for c in self.nb.cells[:cell_index] if is_papermill_cell(c))
        return await super().async_execute_cell(cell, cell_index, execution_count, store_history)

    # nbclient binds the sync wrapper to its own coroutine at class creation; rebind to ours.
    execute_cell = run_sync(async_execute_cell)

    async def _async_handle_timeout(self, timeout, cell=None):  # type: ignore[override]
        if self.current_index is not None and self.current_index not in self.timed_out:
            self.timed_out.append(self.current_index)
        return await super()._async_handle_timeout(timeout, cell)

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
