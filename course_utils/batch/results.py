"""Batch results: stream the JSONL, join to the inputs by custom_id, triage every result type.

Results come back in no particular order, so position means nothing: the join key is
``custom_id``. Each result is triaged into what to do next:

=============  ===================================================  ====================
outcome        result                                               next step
=============  ===================================================  ====================
succeeded      ``succeeded``                                        use it
invalid        ``errored`` with a client error (400-class)          report; never resubmit
retry          ``errored`` with a server error, or ``expired``      resubmit
canceled       ``canceled``                                         someone decided; report
missing        no result line for an input                          resubmit (and alert)
=============  ===================================================  ====================
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator, Mapping

import pandas as pd

__all__ = [
    "INVALID_ERROR_TYPES",
    "TRANSIENT_ERROR_TYPES",
    "iter_results",
    "as_dict",
    "classify",
    "results_frame",
    "join_results",
]

INVALID_ERROR_TYPES = frozenset({
    "invalid_request_error", "authentication_error", "permission_error", "not_found_error",
    "request_too_large", "billing_error",
})
"""The request itself is wrong: sending it again fails again (and a batch slot is wasted)."""
TRANSIENT_ERROR_TYPES = frozenset({"api_error", "overloaded_error", "rate_limit_error", "timeout_error"})
"""The server failed this time; the same request may well succeed later."""

RESULT_COLUMNS = ["custom_id", "result_type", "outcome", "error_type", "error_message", "text",
                  "input_tokens", "output_tokens"]


def as_dict(line: Any) -> dict[str, Any]:
    """One result line as a plain dict, from a dict, an SDK ``MessageBatchIndividualResponse`` or a JSON string."""
    if isinstance(line, Mapping):
        return dict(line)
    if isinstance(line, (str, bytes)):
        import json

        return json.loads(line)
    return line.model_dump()


def iter_results(client: Any, batch_id: str) -> Iterator[dict[str, Any]]:
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
        # Unknown error types are retried: a bounded number of retries of a new server error is
        # cheaper than silently dropping a review that would have succeeded.
        return ("invalid" if error_type in INVALID_ERROR_TYPES else "retry"), error_type
    raise ValueError(f"unknown batch result type {kind!r}")


def _row(line: Mapping[str, Any]) -> dict[str, Any]:
    result = line["result"]
    outcome, error_type = classify(result)
    row: dict[str, Any] = {"custom_id": line["custom_id"], "result_type": result["type"], "outcome": outcome,
                           "error_type": error_type, "error_message": None, "text": None,
                           "input_tokens": 0, "output_tokens": 0}
    if result["type"] == "succeeded":
        message = result["message"]
        row["text"] = "".join(b.get("text", "") for b in message.get("content", []) if b.get("type") == "text")
        row["input_tokens"] = int(message["usage"]["input_tokens"])
        row["output_tokens"] = int(message["usage"]["output_tokens"])
    elif result["type"] == "errored":
        row["error_message"] = ((result.get("error") or {}).get("error") or {}).get("message")
    return row


def results_frame(lines: Iterable[Any]) -> pd.DataFrame:
    """The results as a DataFrame, one row per line (columns in ``RESULT_COLUMNS``)."""
    return pd.DataFrame([_row(as_dict(line)) for line in lines], columns=RESULT_COLUMNS)


def join_results(inputs: pd.DataFrame, lines: Iterable[Any], *, on: str = "custom_id") -> pd.DataFrame:
    """``inputs`` (in their order, same index) with each row's result columns joined by ``on``.

    An input with no result line gets ``outcome == "missing"``; a result whose custom_id is not
    in ``inputs`` raises ``ValueError`` (it belongs to another job: a wiring bug worth stopping for).
    """
    results = results_frame(lines)
    if results[on].duplicated().any():
        raise ValueError("duplicate custom_id in the results")
    unknown = set(results[on]) - set(inputs[on])
    if unknown:
        raise ValueError(f"{len(unknown)} result(s) for custom_ids not in the inputs, e.g. {sorted(unknown)[:3]}")
    clash = [c for c in results.columns if c != on and c in inputs.columns]
    merged = inputs.drop(columns=clash).reset_index().merge(results, on=on, how="left", validate="one_to_one")
    merged = merged.set_index(merged.columns[0])
    merged.index.name = inputs.index.name
    merged["outcome"] = merged["outcome"].fillna("missing")
    merged["input_tokens"] = merged["input_tokens"].fillna(0).astype(int)
    merged["output_tokens"] = merged["output_tokens"].fillna(0).astype(int)
    return merged
