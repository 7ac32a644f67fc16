"""Checks for exercise 4.1 ``build_batches``: one valid request per row, deterministic custom_ids, batches within the limits."""

from __future__ import annotations

import random
from typing import Any

import pandas as pd

from ...batch.requests import CUSTOM_ID_PATTERN, batch_size_bytes, chunk_requests
from ..another_process import another_process
from ..framework import CaseFailed, Exercise, call, expect, expect_equal
from ..sim import probe

from .common import ID_COLUMN, sample_reviews, expect_frame_unchanged, make_params


# =============================================================================================
# 4.1 build_batches(df, make_params, *, max_requests, max_bytes) -> list[list[dict]]
# =============================================================================================
build = Exercise(
    "4.1",
    "Batch requests with stable custom_ids, chunked to the limits",
    points=3,
    signature="build_batches(df, make_params, *, max_requests=..., max_bytes=...) -> list[list[dict]]",
    hints=[
        "Derive each custom_id from the row's review_id (never its position or a random uuid), make it match "
        "^[a-zA-Z0-9_-]{1,64}$, then cut the list into batches that respect BOTH limits.",
        "custom_id = custom_id_for(row['review_id']) (a slug plus a hash of the exact key); walk the requests "
        "in order and start a new batch when adding the next one would exceed max_requests or make "
        "batch_size_bytes(batch) exceed max_bytes.",
    ],
)


def _flatten(batches: Any) -> list[dict[str, Any]]:
    if not isinstance(batches, list) or not all(isinstance(b, list) for b in batches):
        raise CaseFailed(
            "build_batches must return a list of batches (lists of request dicts)",
            expected="list[list[dict]]",
            got=type(batches).__name__,
            hint="Return [[{'custom_id': ..., 'params': ...}, ...], ...], even when one batch suffices.",
        )
    return [r for b in batches for r in b]


def _ids_by_review(fn: Any, df: pd.DataFrame, **limits: Any) -> dict[str, str]:
    reqs = _flatten(call(fn, df, make_params, **limits))
    expect_equal(
        len(reqs),
        len(df),
        "every review must become exactly one request",
        hint="One request per row, none dropped or repeated.",
    )
    by_text: dict[str, str] = {}
    for req in reqs:
        # Params identify the row: the text is unique in these test frames.
        by_text[req["params"]["messages"][0]["content"]] = req["custom_id"]
    return {rid: by_text[str(t).strip()] for rid, t in zip(df[ID_COLUMN], df["text"])}


@build.case("one valid request per row, in row order, accepted by the API; df unchanged")
def _valid(fn) -> None:
    df = sample_reviews(12, empty=(4,))  # real data has empty reviews: they become requests too (the API reports them)
    before = df.copy()
    reqs = _flatten(call(fn, df, make_params))
    expect_frame_unchanged(df, before)
    expect_equal(
        len(reqs),
        12,
        "wrong number of requests for 12 rows (one has an empty text)",
        hint="One request per row, whatever its text: an empty review is reported by the API, not dropped here.",
    )
    for req in reqs:
        expect(
            isinstance(req, dict) and set(req) >= {"custom_id", "params"},
            "a request lacks custom_id or params",
            got=req,
            hint="Each request is {'custom_id': ..., 'params': make_params(row)}.",
        )
        expect(
            isinstance(req["custom_id"], str) and CUSTOM_ID_PATTERN.match(req["custom_id"]) is not None,
            "a custom_id does not match ^[a-zA-Z0-9_-]{1,64}$",
            got=req["custom_id"],
            hint="review_id contains '/', which the API rejects: sanitise it (and add a hash so it stays unique).",
        )
    want = [make_params(row) for row in df.to_dict(orient="records")]
    wrong = next((i for i, req in enumerate(reqs) if req["params"] != want[i]), None)
    expect(
        wrong is None,
        f"request {wrong} is not make_params(row {wrong}): the requests are not in row order",
        expected=want[wrong]["messages"] if wrong is not None else None,
        got=_describe_params(reqs[wrong]["params"]) if wrong is not None else None,
        hint="Walk the rows in order and call make_params(row) once for each; do not sort, filter or reorder.",
    )
    expect_equal(
        len({r["custom_id"] for r in reqs}),
        12,
        "custom_ids are not unique",
        hint="Two requests with the same custom_id could never be told apart in the results.",
    )
    p = probe()
    try:
        p.client().messages.batches.create(requests=reqs)
    except Exception as exc:  # the API's own verdict, quoted
        raise CaseFailed(
            "the Message Batches API rejected the batch",
            got=str(exc)[:300],
            hint="Every request needs a valid custom_id and a params dict.",
        ) from None


@build.case("an empty DataFrame gives no batches")
def _empty(fn) -> None:
    got = call(fn, sample_reviews(0), make_params)
    expect(
        isinstance(got, list) and len(got) == 0,
        "an empty DataFrame did not give an empty list of batches",
        expected=[],
        got=got,
        hint="No rows, no requests, no batches: return [] (an empty batch is refused by the API, and polling it "
        "wastes a job slot).",
    )


def _describe_params(params: Any) -> Any:
    return params.get("messages", params) if isinstance(params, dict) else params


@build.case("custom_ids are deterministic: the same in another process and in any row order")
def _stable(fn) -> None:
    df = sample_reviews(15)
    first = _ids_by_review(fn, df)
    again = _ids_by_review(fn, df)
    expect(
        first == again,
        "the same rows got different custom_ids on a second run",
        hint="A rerun (or a resubmission) must produce the same custom_id for the same review: no uuid4, "
        "no counters that persist between calls.",
    )
    with another_process(fn):
        elsewhere = _ids_by_review(fn, df)
    moved = [rid for rid in first if elsewhere[rid] != first[rid]]
    expect(
        not moved,
        "custom_ids change from one process to the next (they depend on Python's hash())",
        got=f"{len(moved)} of {len(first)} reviews got another id in another process",
        hint="hash() of a str is salted per process (PYTHONHASHSEED): tomorrow's resume, or another machine, "
        "computes other ids. Use hashlib (e.g. sha256 of the review_id) for a stable digest.",
    )
    shuffled = _ids_by_review(fn, df.sample(frac=1, random_state=7))
    moved = [rid for rid in first if shuffled[rid] != first[rid]]
    expect(
        not moved,
        "custom_ids changed when the rows were reordered (they depend on position)",
        got=f"{len(moved)} of {len(first)} reviews changed id",
        hint="Derive the custom_id from the review_id column, not from the row number: results come back "
        "in any order and the input may be sorted differently tomorrow.",
    )


@build.case("look-alike and very long review ids stay distinct")
def _distinct(fn) -> None:
    long = "B0" + "X" * 70
    df = pd.DataFrame(
        {ID_COLUMN: ["B01/R1", "B01-R1", "B01 R1", long + "/R1", long + "/R2"], "text": [f"text {i}" for i in range(5)]}
    )
    reqs = _flatten(call(fn, df, make_params))
    ids = [r["custom_id"] for r in reqs]
    expect(
        len(set(ids)) == len(ids),
        "two different review ids were mapped to the same custom_id",
        got=ids,
        hint="Replacing invalid characters or cutting at 64 characters can merge different ids; "
        "add a hash of the exact review_id.",
    )
    expect(
        all(CUSTOM_ID_PATTERN.match(i) for i in ids),
        "a custom_id is invalid (too long or bad characters)",
        got=ids,
        hint="At most 64 characters of [a-zA-Z0-9_-].",
    )


@build.case("any review id (unicode, spaces, punctuation, 100 characters): valid and distinct ids")
def _random_ids(fn) -> None:
    rng = random.Random(41)
    alphabet = "abcXYZ019/-_ .:#äöüßé漢字😀\t"
    ids = {"".join(rng.choice(alphabet) for _ in range(rng.randint(1, 100))) for _ in range(120)}
    df = pd.DataFrame({ID_COLUMN: sorted(ids), "text": [f"review {i}" for i in range(len(ids))]})
    reqs = _flatten(call(fn, df, make_params))
    got = [r["custom_id"] for r in reqs]
    bad = [i for i in got if not (isinstance(i, str) and CUSTOM_ID_PATTERN.match(i))]
    expect(
        not bad,
        f"{len(bad)} of {len(got)} custom_ids are invalid for review ids with other characters",
        got=bad[:3],
        hint="Keep only [a-zA-Z0-9_-] (\\w also matches letters such as ü or 漢, which the API "
        "rejects) and at most 64 characters in all.",
    )
    expect(
        len(set(got)) == len(got),
        f"{len(got) - len(set(got))} custom_ids are shared by different review ids",
        got=[i for i in got if got.count(i) > 1][:3],
        hint="Add a digest of the exact review_id.",
    )


@build.case("duplicate review ids are refused with ValueError")
def _duplicates(fn) -> None:
    df = pd.DataFrame({ID_COLUMN: ["a/1", "b/2", "a/1"], "text": ["x", "y", "z"]})
    try:
        call(fn, df, make_params)
    except ValueError:
        return
    raise CaseFailed(
        "two rows with the same review_id were accepted",
        expected="ValueError",
        hint="Duplicate keys would give two requests the same custom_id: raise ValueError instead.",
    )


@build.case("batches respect max_requests and max_bytes, and are no more than needed")
def _chunked(fn) -> None:
    df = sample_reviews(30)
    for limits in ({"max_requests": 7}, {"max_bytes": 1500}, {"max_requests": 4, "max_bytes": 1200}):
        full = {"max_requests": 100_000, "max_bytes": 256 * 1024 * 1024, **limits}
        batches = call(fn, df, make_params, **full)
        reqs = _flatten(batches)
        expect_equal(
            len(reqs),
            30,
            f"with {limits}: requests lost or repeated while chunking",
            hint="Every request goes into exactly one batch.",
        )
        for b in batches:
            expect(
                1 <= len(b) <= full["max_requests"],
                f"with {limits}: a batch has {len(b)} requests",
                expected=f"1..{full['max_requests']}",
                got=len(b),
                hint="Start a new batch when the current one holds max_requests requests.",
            )
            expect(
                batch_size_bytes(b) <= full["max_bytes"],
                f"with {limits}: a batch is {batch_size_bytes(b)} bytes",
                expected=f"<= {full['max_bytes']}",
                got=batch_size_bytes(b),
                hint="Measure with batch_size_bytes(batch) and start a new batch before it exceeds max_bytes.",
            )
        needed = len(chunk_requests(reqs, max_requests=full["max_requests"], max_bytes=full["max_bytes"]))
        expect(
            len(batches) <= needed,
            f"with {limits}: {len(batches)} batches where {needed} suffice",
            expected=needed,
            got=len(batches),
            hint="Fill each batch as far as the limits allow: every extra batch is another job to poll.",
        )


@build.case("a batch that fits max_bytes exactly is not cut short, one byte less is")
def _exact_fit(fn) -> None:
    df = sample_reviews(12)
    reqs = _flatten(call(fn, df, make_params))  # the answer's own requests: its ids set the sizes
    fit = batch_size_bytes(reqs[:5])
    for max_bytes, first in ((fit, 5), (fit - 1, 4)):
        batches = call(fn, df, make_params, max_requests=100_000, max_bytes=max_bytes)
        _flatten(batches)
        sizes = [batch_size_bytes(b) for b in batches]
        expect(
            max(sizes) <= max_bytes,
            f"with max_bytes={max_bytes}: a batch is {max(sizes)} bytes",
            expected=f"<= {max_bytes}",
            got=max(sizes),
            hint='Count the whole body, batch_size_bytes(batch): the {"requests": [...]} wrapper and the commas '
            "between requests count too.",
        )
        expect(
            len(batches[0]) == first,
            f"with max_bytes={max_bytes} (the first 5 requests take {fit} bytes): "
            f"the first batch has {len(batches[0])} requests",
            expected=first,
            got=len(batches[0]),
            hint="A batch may be exactly max_bytes long: start a new one only when adding the next request would "
            "make it larger (>, not >=).",
        )
