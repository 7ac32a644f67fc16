"""Batch results: stream the JSONL, join to the inputs by custom_id, triage every result type.

Results come back in no particular order, so position means nothing: the join key is
``custom_id``. Each result is triaged into what to do next:

=============  ========================================================  ==========================
outcome        result                                                    next step
=============  ========================================================  ==========================
succeeded      ``succeeded``                                             use it
retry          ``errored`` with a type on :data:`TRANSIENT_ERROR_TYPES`,  resubmit (bounded)
               or ``expired``
invalid        ``errored`` with any other type (``invalid_request_error``,  report; never resubmit
               permission, not found, billing, a type added later)
canceled       ``canceled``                                              someone decided; report
missing        no result line for an input, after downloading again      alert; resubmit only by
                                                                         decision
=============  ========================================================  ==========================

What is retried comes from an **allow-list** of transient types, not a deny-list of final ones: a
request refused for a reason nobody listed (a new error type, a permission the key lost) fails the
same way when sent again, and a deny-list would pay a batch slot for it every night. A result line
missing from a download is downloaded again (results stay available for 29 days, docs/api-notes.md
§7) rather than resubmitted: the request may well have succeeded and been billed, and resubmitting
pays for it twice.
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator, Mapping

import pandas as pd

from ..clients import SyncClient

__all__ = [
    "TRANSIENT_ERROR_TYPES",
    "RESULT_COLUMNS",
    "iter_results",
    "as_dict",
    "classify",
    "BatchResults",
    "join_results",
]

TRANSIENT_ERROR_TYPES = frozenset({"api_error", "overloaded_error", "rate_limit_error", "timeout_error"})
"""The allow-list: the server failed this time (500, 529, 429, 504 in docs/api-notes.md §2), so the same
request may well succeed later. Every other error type is final."""

RESULT_COLUMNS = [
    "custom_id",
    "result_type",
    "outcome",
    "error_type",
    "error_message",
    "text",
    "input_tokens",
    "output_tokens",
]


def as_dict(line: Any) -> dict[str, Any]:
    """One result line as a plain dict, from a dict, an SDK ``MessageBatchIndividualResponse`` or a JSON string."""
    if isinstance(line, Mapping):
        return dict(line)
    if isinstance(line, (str, bytes)):
        import json

        return json.loads(line)
    return line.model_dump()


def iter_results(client: SyncClient, batch_id: str) -> Iterator[dict[str, Any]]:
    """Stream an ended batch's results as dicts, one line at a time (never the whole file in memory)."""
    for line in client.messages.batches.results(batch_id):
        yield as_dict(line)


def classify(result: Mapping[str, Any]) -> tuple[str, str | None]:
    """``(outcome, error_type)`` for one line's ``result`` object (see the module table)."""
    kind = result.get("type")
    if kind == "succeeded":
        return "succeeded", None
    if kind == "expired":
        return "retry", "expired"
    if kind == "canceled":
        return "canceled", "canceled"
    if kind == "errored":
        error_type = ((result.get("error") or {}).get("error") or {}).get("type") or "unknown"
        return ("retry" if error_type in TRANSIENT_ERROR_TYPES else "invalid"), error_type
    raise ValueError(f"unknown batch result type {kind!r}")


def _row(line: Mapping[str, Any]) -> dict[str, Any]:
    result = line["result"]
    outcome, error_type = classify(result)
    row: dict[str, Any] = {
        "custom_id": line["custom_id"],
        "result_type": result["type"],
        "outcome": outcome,
        "error_type": error_type,
        "error_message": None,
        "text": None,
        "input_tokens": 0,
        "output_tokens": 0,
    }
    if result["type"] == "succeeded":
        message = result["message"]
        row["text"] = "".join(b.get("text", "") for b in message.get("content", []) if b.get("type") == "text")
        row["input_tokens"] = int(message["usage"]["input_tokens"])
        row["output_tokens"] = int(message["usage"]["output_tokens"])
    elif result["type"] == "errored":
        row["error_message"] = ((result.get("error") or {}).get("error") or {}).get("message")
    return row


class BatchResults:
    """A batch's result lines, triaged (the library's result-table convention, :mod:`course_utils.tables`).

    ``BatchResults(lines)`` takes lines as dicts, SDK objects or JSON strings;
    :meth:`fetch` streams an ended batch's results. :meth:`frame` has one row per line (columns
    ``RESULT_COLUMNS``: ``custom_id``, ``result_type``, ``outcome``, ``error_type``,
    ``error_message``, ``text``, ``input_tokens``, ``output_tokens``), :meth:`summary` the count per
    outcome, :meth:`join` the inputs with their results.
    """

    def __init__(self, lines: Iterable[Any]) -> None:
        self.lines = [as_dict(line) for line in lines]

    @classmethod
    def fetch(cls, client: SyncClient, batch_id: str) -> "BatchResults":
        """The results of the ended batch ``batch_id``."""
        return cls(iter_results(client, batch_id))

    def frame(self) -> pd.DataFrame:
        """One row per result line, in the file's order."""
        return pd.DataFrame([_row(line) for line in self.lines], columns=RESULT_COLUMNS)

    def summary(self) -> dict[str, int]:
        """How many results fall into each outcome (``succeeded``, ``invalid``, ``retry``, ``canceled``)."""
        tally: dict[str, int] = {}
        for line in self.lines:
            outcome = classify(line["result"])[0]
            tally[outcome] = tally.get(outcome, 0) + 1
        return tally

    def join(self, inputs: pd.DataFrame, *, on: str = "custom_id") -> pd.DataFrame:
        """:func:`join_results` of ``inputs`` with these results."""
        return join_results(inputs, self.lines, on=on)

    def __len__(self) -> int:
        return len(self.lines)


def join_results(inputs: pd.DataFrame, lines: Iterable[Any], *, on: str = "custom_id") -> pd.DataFrame:
    """``inputs`` (in their order, same index) with each row's result columns joined by ``on``.

    Result columns replace input columns of the same name (a review's own ``text`` gives way to
    the reply's). An input with no result line gets ``outcome == "missing"``; a result whose
    custom_id is not in ``inputs`` raises ``ValueError`` (it belongs to another job: a wiring bug
    worth stopping for). ``inputs`` itself is not changed.
    """
    results = lines.frame() if isinstance(lines, BatchResults) else BatchResults(lines).frame()
    if results[on].duplicated().any():
        raise ValueError("duplicate custom_id in the results")
    unknown = set(results[on]) - set(inputs[on])
    if unknown:
        raise ValueError(f"{len(unknown)} result(s) for custom_ids not in the inputs, e.g. {sorted(unknown)[:3]}")
    clash = [c for c in results.columns if c != on and c in inputs.columns]
    left = inputs.drop(columns=clash).reset_index()
    if left.empty or results.empty:  # an empty column has no dtype to agree on: compare keys as objects
        left[on] = left[on].astype(object)
        results[on] = results[on].astype(object)
    merged = left.merge(results, on=on, how="left", validate="one_to_one")
    merged = merged.set_index(merged.columns[0])
    merged.index.name = inputs.index.name
    merged["outcome"] = merged["outcome"].fillna("missing")
    merged["input_tokens"] = merged["input_tokens"].fillna(0).astype(int)
    merged["output_tokens"] = merged["output_tokens"].fillna(0).astype(int)
    return merged
