"""Checks for exercise 4.3 ``join_and_triage``: results joined by custom_id, every result type triaged against the transient allow-list."""

from __future__ import annotations

import copy
import random
from typing import Any

import pandas as pd

from ..framework import CaseFailed, Exercise, call, expect, expect_equal
from ..sim import probe

from .common import MODEL, sample_reviews, expect_frame_unchanged, wait_until_ended, make_params


# =============================================================================================
# 4.3 join_and_triage(inputs, results) -> DataFrame
# =============================================================================================
triage = Exercise(
    "4.3",
    "Join results by custom_id and triage them",
    points=3,
    signature="join_and_triage(inputs, results) -> DataFrame",
    hints=[
        "Results come back in any order: build a table keyed by custom_id and merge it into the inputs "
        "(a left join, so inputs without a result stay). Then map each result type to an outcome.",
        "outcome: succeeded -> 'succeeded'; errored with error.error.type in the transient allow-list (api_error, "
        "overloaded_error, rate_limit_error, timeout_error), or expired -> 'retry'; errored with any other type -> "
        "'invalid'; canceled -> 'canceled'; no result -> 'missing'. text = the message's text for succeeded "
        "results, else None.",
    ],
)


def _line(
    cid: str, kind: str, error_type: str | None = None, text: str = "ok", blocks: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    if kind == "succeeded":
        result: dict[str, Any] = {
            "type": "succeeded",
            "message": {
                "id": "msg_x",
                "type": "message",
                "role": "assistant",
                "model": MODEL,
                "stop_reason": "end_turn",
                "content": blocks if blocks is not None else [{"type": "text", "text": text}],
                "usage": {"input_tokens": 9, "output_tokens": 1},
            },
        }
    elif kind == "errored":
        result = {
            "type": "errored",
            "error": {"type": "error", "error": {"type": error_type, "message": "m"}, "request_id": None},
        }
    else:
        result = {"type": kind}
    return {"custom_id": cid, "result": result}


def _check_frame(got: Any, inputs: pd.DataFrame) -> pd.DataFrame:
    expect(
        isinstance(got, pd.DataFrame),
        "join_and_triage must return a DataFrame",
        got=type(got).__name__,
        hint="Return the inputs with 'outcome' and 'text' columns added.",
    )
    for col in ("custom_id", "outcome", "text"):
        collided = [c for c in got.columns if str(c).startswith(f"{col}_")]
        if col not in got.columns and collided:
            raise CaseFailed(
                f"the result has {collided} where the {col!r} column should be: a merge collided with "
                f"the input's own {col!r} column",
                expected=f"one {col!r} column",
                got=list(got.columns),
                hint=f"inputs already has a {col!r} column (the review's own); the contract replaces it. "
                f"Drop it before merging (inputs.drop(columns=[{col!r}])) or assign the new column "
                "(inputs.assign(...)).",
            )
        expect(
            col in got.columns,
            f"the result has no {col!r} column",
            got=list(got.columns),
            hint="Keep the input columns and add 'outcome' and 'text'.",
        )
    lost = [c for c in inputs.columns if c not in ("outcome", "text") and c not in got.columns]
    expect(
        not lost,
        f"the result lost the input column(s) {lost}",
        expected=list(inputs.columns),
        got=list(got.columns),
        hint="Return the inputs with the two columns added: the caller's other columns (review, rating, ...) stay.",
    )
    expect_equal(
        len(got),
        len(inputs),
        "the result does not have one row per input",
        hint="A left join on custom_id keeps every input row, once; an input with no result gets outcome "
        "'missing' rather than disappearing, and no result adds a row.",
    )
    order = list(got["custom_id"])
    moved = next((i for i, (a, b) in enumerate(zip(order, inputs["custom_id"])) if a != b), None)
    expect(
        moved is None,
        f"row {moved} of the result is not row {moved} of the inputs (the input order is lost)",
        expected=inputs["custom_id"].iloc[moved] if moved is not None else None,
        got=order[moved] if moved is not None else None,
        hint="Return the inputs in their own order (a left merge keeps it; sorting or a merge with the results "
        "on the left does not).",
    )
    return got


def _same_lines(lines: list[dict[str, Any]], before: list[dict[str, Any]]) -> None:
    changed = next((i for i, (a, b) in enumerate(zip(lines, before)) if a != b), None)
    expect(
        changed is None and len(lines) == len(before),
        "join_and_triage changed the result lines it was given",
        expected=before[changed] if changed is not None else f"{len(before)} lines",
        got=lines[changed] if changed is not None else f"{len(lines)} lines",
        hint="Read the results; do not pop from them or edit them (they may be used again, e.g. for a report).",
    )


@triage.case("joins a real batch's results by custom_id (they come back in any order)")
def _joins(fn) -> None:
    p = probe(time_scale=0.0)  # batches end at once
    _joins_body(fn, p)


def _is_null(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def _joins_body(fn: Any, p: Any) -> None:
    # Input order is neither the results file's order nor sorted custom_id order (a fixed shuffle),
    # and one input gets no result line: neither "paste by position" nor "sort, then paste" lines up.
    order = [(i * 7) % 17 for i in range(16)]
    inputs = sample_reviews(16).assign(custom_id=[f"rev-{k:03d}" for k in order])
    unsent = inputs["custom_id"].iloc[5]
    labels = {}
    for i, (cid, t) in enumerate(zip(inputs["custom_id"], inputs["text"])):
        p.script(t, f"label-{i:03d}")
        labels[cid] = None if cid == unsent else f"label-{i:03d}"
    client = p.client()
    batch = client.messages.batches.create(
        requests=[
            {"custom_id": c, "params": make_params({"text": t})}
            for c, t in zip(inputs["custom_id"], inputs["text"])
            if c != unsent
        ]
    )
    wait_until_ended(p, client, [batch.id])
    lines = [line.model_dump() for line in client.messages.batches.results(batch.id)]
    got = _check_frame(call(fn, inputs.copy(), lines), inputs)
    wrong = [(c, t) for c, t in zip(got["custom_id"], got["text"]) if labels[c] is not None and t != labels[c]]
    expect(
        not wrong,
        f"{len(wrong)} of {len(inputs) - 1} reviews with a result got another review's reply",
        got=wrong[:3],
        hint="Never join by position (the results file is in no particular order, and sorting it "
        "does not line it up with the inputs either). Merge on custom_id.",
    )
    unsent_text = got.loc[got["custom_id"] == unsent, "text"].iloc[0]
    expect(
        _is_null(unsent_text),
        "an input with no result line has a text",
        expected=None,
        got=unsent_text,
        hint="Without a result there is no reply: text is None (the input's own text is replaced, not kept).",
    )
    outcomes = dict(zip(got["custom_id"], map(str, got["outcome"])))
    expect_equal(
        outcomes[unsent],
        "missing",
        "an input with no result line was not marked 'missing'",
        hint="Inputs without a result line keep their row, with outcome 'missing'.",
    )
    expect(
        {o for c, o in outcomes.items() if c != unsent} == {"succeeded"},
        "succeeded results not marked 'succeeded'",
        got=sorted(set(outcomes.values())),
        hint="result.type 'succeeded' -> outcome 'succeeded'.",
    )


_THINKING = {"type": "thinking", "thinking": "The review says it works.", "signature": "sig"}


@triage.case("triages every result type; text on every succeeded row, None elsewhere; inputs unchanged")
def _types(fn) -> None:
    inputs = pd.DataFrame({"custom_id": list("abcdefghijklmn"), "review": list("ABCDEFGHIJKLMN")})
    lines = [
        _line("g", "canceled"),
        _line("c", "errored", "api_error"),
        _line("a", "succeeded", text="positive"),
        _line("e", "expired"),
        _line("b", "errored", "invalid_request_error"),
        _line("h", "succeeded", blocks=[_THINKING, {"type": "text", "text": "neg"}, {"type": "text", "text": "ative"}]),
        _line("d", "errored", "overloaded_error"),
        _line("i", "succeeded", text="neutral"),
        _line("j", "errored", "permission_error"),
        _line("k", "errored", "timeout_error"),
        _line("l", "errored", "billing_error"),
        _line("m", "errored", "rate_limit_error"),
        _line("n", "errored", "a_type_added_next_year"),
    ]
    before_inputs, before_lines = inputs.copy(), copy.deepcopy(lines)
    got = _check_frame(call(fn, inputs, lines), inputs)
    expect_frame_unchanged(inputs, before_inputs, "join_and_triage")
    _same_lines(lines, before_lines)
    want = {
        "a": "succeeded",
        "b": "invalid",
        "c": "retry",
        "d": "retry",
        "e": "retry",
        "g": "canceled",
        "f": "missing",
        "h": "succeeded",
        "i": "succeeded",
        "j": "invalid",
        "k": "retry",
        "l": "invalid",
        "m": "retry",
        "n": "invalid",
    }
    outcomes = dict(zip(got["custom_id"], got["outcome"]))
    for cid, expected in want.items():
        what = {
            "a": "succeeded",
            "b": "errored with invalid_request_error",
            "c": "errored with api_error",
            "d": "errored with overloaded_error",
            "e": "expired",
            "f": "(no result line)",
            "g": "canceled",
            "h": "succeeded",
            "i": "succeeded",
            "j": "errored with permission_error",
            "k": "errored with timeout_error",
            "l": "errored with billing_error",
            "m": "errored with rate_limit_error",
            "n": "errored with a type not in the documentation",
        }[cid]
        hint = {
            "invalid": "Retry from the allow-list of transient types only (api_error, overloaded_error, "
            "rate_limit_error, timeout_error): any other error type, including one you have never seen, fails "
            "the same way when sent again, so report it as 'invalid'.",
            "retry": "The transient error types (api_error, overloaded_error, rate_limit_error, timeout_error) and "
            "expired requests may succeed next time: 'retry'.",
            "missing": "An input without a result must not vanish: mark it 'missing' so it is downloaded again and "
            "alerted on.",
        }.get(expected, "Map each result type to its outcome as the statement says.")
        expect_equal(str(outcomes.get(cid)), expected, f"a result {what} was triaged wrong", hint=hint)
    texts = dict(zip(got["custom_id"], got["text"]))
    for cid, text in {"a": "positive", "h": "negative", "i": "neutral"}.items():
        expect_equal(
            texts[cid],
            text,
            f"the text of succeeded result {cid!r} is wrong",
            hint="text is the concatenation of the message's text blocks, in order; other blocks "
            "(thinking, tool_use) carry no text: read blocks by type, never content[0].",
        )
    filled = {cid: texts[cid] for cid in "bcdefgjklmn" if not _is_null(texts[cid])}
    expect(
        not filled,
        "rows that did not succeed have a text",
        expected="None for every row that did not succeed",
        got=filled,
        hint="Only a succeeded result has a reply: text is None for errored, expired, canceled and "
        "missing rows (an empty string reads as an empty reply).",
    )


@triage.case("empty inputs, or no result lines at all")
def _empty_triage(fn) -> None:
    empty = pd.DataFrame({"custom_id": pd.Series([], dtype=object), "review": pd.Series([], dtype=object)})
    got = _check_frame(call(fn, empty.copy(), []), empty)
    expect_equal(len(got), 0, "empty inputs gave rows", hint="No inputs, no rows.")
    inputs = pd.DataFrame({"custom_id": ["x", "y"], "review": ["X", "Y"]})
    got = _check_frame(call(fn, inputs.copy(), []), inputs)
    outcomes = [str(o) for o in got["outcome"]]
    expect(
        outcomes == ["missing", "missing"],
        "inputs with no result lines are not all 'missing'",
        expected=["missing", "missing"],
        got=outcomes,
        hint="A batch whose results never came back must not lose its inputs: every one is 'missing'.",
    )


TRANSIENT = ("api_error", "overloaded_error", "rate_limit_error", "timeout_error")  # the statement's allow-list


def _contract_outcome(result: dict[str, Any] | None) -> str:
    if result is None:
        return "missing"
    if result["type"] == "errored":
        return "retry" if result["error"]["error"]["type"] in TRANSIENT else "invalid"
    return {"succeeded": "succeeded", "expired": "retry", "canceled": "canceled"}[result["type"]]


@triage.case("any mix of results, in any order (40 seeded random batches)")
def _random_batches(fn) -> None:
    rng = random.Random(404)
    kinds = ["succeeded", "succeeded", "expired", "canceled", "errored", None]
    errors = [
        "invalid_request_error",
        "overloaded_error",
        "api_error",
        "timeout_error",
        "rate_limit_error",
        "permission_error",
        "not_found_error",
        "billing_error",
    ]
    for trial in range(40):
        n = rng.randint(1, 9)
        ids = [f"rv-{rng.randrange(10**6):06d}-{i}" for i in range(n)]
        inputs = pd.DataFrame({"custom_id": ids, "text": [f"review {i}" for i in range(n)]})  # the reviews' own text
        lines, truth = [], {}
        for cid in ids:
            kind = rng.choice(kinds)
            if kind is None:
                truth[cid] = (None, None)
                continue
            line = _line(cid, kind, rng.choice(errors), text=f"label {cid}")
            lines.append(line)
            truth[cid] = (line["result"], f"label {cid}" if kind == "succeeded" else None)
        rng.shuffle(lines)
        got = _check_frame(call(fn, inputs.copy(), lines), inputs)
        for cid, outcome, text in zip(got["custom_id"], got["outcome"], got["text"]):
            result, want_text = truth[cid]
            want = _contract_outcome(result)
            what = (
                "no result line"
                if result is None
                else result["type"] + (f" ({result['error']['error']['type']})" if result["type"] == "errored" else "")
            )
            expect(
                str(outcome) == want,
                f"batch {trial + 1} of 40: {what} triaged as {outcome!r}",
                expected=want,
                got=str(outcome),
                hint="Map each result type to its outcome as the docstring says.",
            )
            ok = text == want_text or (want_text is None and _is_null(text))
            expect(
                ok,
                f"batch {trial + 1} of 40: the text of a row with {what} is wrong",
                expected=want_text,
                got=text,
                hint="text is the reply of a succeeded result, None otherwise, replacing the input's own text.",
            )
