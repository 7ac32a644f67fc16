"""Checks for lesson 04 (Batch processing).

4.1 ``build_batches``, 4.2 ``poll_until_ended``, 4.3 ``join_and_triage``, 4.4 ``resubmit_failures``.
4.2 runs the student's poller against a private simulator that shares a virtual clock with it, so
the ledger's arrival times of ``GET /v1/messages/batches/{id}`` are the poller's own schedule
(hours of batch life in a fraction of a second).

Every sentence of each contract has a case that fails an answer breaking it (issue 14): 4.1 row
order, empty reviews, an empty frame, ids stable in another process (``hash`` salted differently
in the answer's namespace), the caller's frame unchanged; 4.2 a cap on the waits and a batch that
has already ended; 4.3 text on every succeeded row (several blocks, a thinking block first) and
None elsewhere, every documented error type and an undocumented one against the transient allow-list,
a merge colliding with the inputs' own ``text``, empty inputs, inputs and lines unchanged, and 40
seeded random batches against the contract; 4.4 pending and missing items, an empty job and
``params_by_id`` unchanged.
"""

from __future__ import annotations

import copy
import random
from contextlib import contextmanager
from typing import Any, Iterator

import pandas as pd

from ..batch.jobstore import JobStore
from ..batch.job import collect_batch
from ..batch.requests import CUSTOM_ID_PATTERN, batch_size_bytes, chunk_requests
from ..batch.virtual import SimulatorClock
from .forbid import reachable
from .framework import CaseFailed, Exercise, call, expect, expect_equal
from ..concurrency.workload import LABEL_MAX_TOKENS
from ..content import text_of
from ..mock_provider.inprocess import InProcessServer
from .sim import probe

MODEL = "claude-haiku-5-5"
ID_COLUMN = "review_id"


def make_params(row: Any) -> dict[str, Any]:
    """The Messages body for one review (the notebook's enrichment prompt, short)."""
    return {
        "model": MODEL,
        "max_tokens": LABEL_MAX_TOKENS,  # room for thinking: it counts toward max_tokens
        "system": "Classify the sentiment of the product review as one of: positive, negative, neutral. "
        "Answer with the label only.",
        "messages": [{"role": "user", "content": str(row["text"]).strip()}],
    }


def _reviews(n: int, *, empty: tuple[int, ...] = ()) -> pd.DataFrame:
    return pd.DataFrame(
        {
            ID_COLUMN: [f"B0C{i % 7}K{i:03d}/R{i:05d}" for i in range(n)],
            "text": [
                "" if i in empty else f"Review {i}: the kettle {'works' if i % 2 else 'leaks'}." for i in range(n)
            ],
        }
    )


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
    df = _reviews(12, empty=(4,))  # real data has empty reviews: they become requests too (the API reports them)
    before = df.copy()
    reqs = _flatten(call(fn, df, make_params))
    _unchanged(df, before)
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
    got = call(fn, _reviews(0), make_params)
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


def _frame_change(df: pd.DataFrame, before: pd.DataFrame) -> str | None:
    """What changed in ``df`` since ``before`` (a copy), or None."""
    if list(df.columns) != list(before.columns):
        added = [c for c in df.columns if c not in before.columns]
        gone = [c for c in before.columns if c not in df.columns]
        return f"columns added {added}, removed {gone}" if added or gone else f"columns reordered: {list(df.columns)}"
    if len(df) != len(before) or not df.index.equals(before.index):
        return f"rows changed: {len(before)} before, {len(df)} after"
    for col in df.columns:
        if not df[col].equals(before[col]):
            return f"column {col!r} changed"
    return None


def _unchanged(df: pd.DataFrame, before: pd.DataFrame, what: str = "build_batches") -> None:
    change = _frame_change(df, before)
    expect(
        change is None,
        f"{what} changed the caller's DataFrame ({change})",
        hint="Work on the rows you read (df.to_dict('records')) or on a copy (df.assign(...), df.copy()): the "
        "caller's frame is theirs.",
    )


@build.case("custom_ids are deterministic: the same in another process and in any row order")
def _stable(fn) -> None:
    df = _reviews(15)
    first = _ids_by_review(fn, df)
    again = _ids_by_review(fn, df)
    expect(
        first == again,
        "the same rows got different custom_ids on a second run",
        hint="A rerun (or a resubmission) must produce the same custom_id for the same review: no uuid4, "
        "no counters that persist between calls.",
    )
    with _another_process(fn):
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


_REAL_HASH = hash


@contextmanager
def _another_process(fn: Any) -> Iterator[None]:
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


_ABSENT = object()


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
    df = _reviews(30)
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
    df = _reviews(12)
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


# =============================================================================================
# 4.2 poll_until_ended(client, batch_id, *, clock, deadline_s, on_progress=None) -> MessageBatch
# =============================================================================================
poll = Exercise(
    "4.2",
    "Poll with growing intervals and a deadline",
    points=3,
    signature="poll_until_ended(client, batch_id, *, clock, deadline_s, on_progress=None) -> MessageBatch",
    hints=[
        "Loop: retrieve, report, return if ended; otherwise check the deadline and sleep with clock.sleep_sync, "
        "making each wait longer than the last (up to a cap).",
        "start = clock.monotonic(); wait = 1.0; loop: batch = client.messages.batches.retrieve(batch_id); "
        "on_progress(batch) if given; if ended return it; left = deadline_s - (clock.monotonic() - start); "
        "if left <= 0: raise TimeoutError; clock.sleep_sync(min(wait, left)); wait = min(wait * 2, 60).",
    ],
    time_limit=60,
)


class _RanAway(BaseException):
    """Raised inside the student's sleep when it polls far past its deadline (BaseException: not swallowed)."""


class _TooManyPolls(BaseException):
    """Raised inside the student's sleep after more polls than any schedule the contract allows needs."""


class LockstepClock(SimulatorClock):
    """The poller's clock is the private simulator's own virtual-time loop.

    ``sleep_sync`` (the poller's) runs the simulator for exactly that long, so batch processing
    due meanwhile happens before the next retrieve, and polling costs no wall time. A sleep that
    would carry the poller past ``limit_s`` stops it (it has no working deadline).
    """

    def __init__(self, server: InProcessServer, *, limit_s: float | None = None, max_sleeps: int | None = None) -> None:
        super().__init__(server)
        self.limit_s = limit_s
        self.max_sleeps = max_sleeps
        self.sleeps: list[float] = []

    def sleep_sync(self, seconds: float) -> None:
        self.sleeps.append(float(seconds))
        if self.max_sleeps is not None and len(self.sleeps) > self.max_sleeps:
            raise _TooManyPolls(len(self.sleeps), self.monotonic())
        if self.limit_s is not None and self.monotonic() + max(0.0, float(seconds)) > self.limit_s:
            raise _RanAway(self.monotonic() + max(0.0, float(seconds)))
        super().sleep_sync(seconds)


def _lockstep(
    limit_s: float | None = None, scenario: dict[str, Any] | None = None, max_sleeps: int | None = None
) -> tuple[Any, LockstepClock, str]:
    # Batch processing at its real schedule (time_scale 1): the schedule is part of what is graded.
    server = InProcessServer(seed=0, time_scale=1.0, rate_limit_tier="unlimited")
    if scenario:
        server.set_scenario(scenario)
    return server, LockstepClock(server, limit_s=limit_s, max_sleeps=max_sleeps), "sim-key-check-poll"


def _submit(server: Any, key: str, n: int) -> str:
    reqs = [{"custom_id": f"r{i}", "params": make_params({"text": f"review {i}"})} for i in range(n)]
    return server.client(api_key=key, max_retries=0).messages.batches.create(requests=reqs).id


def _poll_times(server: Any, key: str) -> list[float]:
    df = server.ledger()
    rows = df[(df["api_key"] == key) & (df["endpoint"] == "/v1/messages/batches/{id}") & (df["method"] == "GET")]
    return sorted(float(t) for t in rows["arrival"])


def _run_poller(
    fn: Any,
    server: Any,
    clock: LockstepClock,
    key: str,
    batch_id: str,
    deadline_s: float,
    on_progress: Any = None,
    *,
    should_end: bool = True,
) -> Any:
    client = server.client(api_key=key, max_retries=0)
    kwargs: dict[str, Any] = {"clock": clock, "deadline_s": deadline_s}
    if on_progress is not None:
        kwargs["on_progress"] = on_progress
    try:
        return call(fn, client, batch_id, **kwargs)
    except TimeoutError:
        if not should_end:
            raise
        raise CaseFailed(
            f"raised TimeoutError after {clock.monotonic():,.0f} s of the clock, before the batch "
            f"ended (deadline_s={deadline_s:g}; it needs a few minutes)",
            expected="the ended batch",
            got="TimeoutError",
            hint="Sleep between polls with clock.sleep_sync(seconds): the check's clock only moves when "
            "you sleep on it, and the deadline is measured with clock.monotonic().",
        ) from None
    except _TooManyPolls as stop:
        raise CaseFailed(
            f"{stop.args[0]:,} polls in the first {stop.args[1]:,.0f} s of a batch",
            expected="waits that grow to a cap of one to ten minutes",
            got=f"{stop.args[0]:,} polls",
            hint="Every poll is a request against your rate limit: let the waits grow by a factor "
            "up to a cap of one to ten minutes, instead of polling every few seconds.",
        ) from None
    except _RanAway as stop:
        raise CaseFailed(
            f"still polling {stop.args[0]:,.0f} s after the start, with deadline_s={deadline_s:g}",
            expected=f"TimeoutError by {deadline_s:g} s",
            got="no deadline",
            hint="Keep track of the time since the start (clock.monotonic()) and raise TimeoutError "
            "once deadline_s has passed: a poller without a deadline hides a stuck job.",
        ) from None


@poll.case("returns the batch once it has ended")
def _returns_ended(fn) -> None:
    server, clock, key = _lockstep(limit_s=20_000, max_sleeps=60)
    try:
        batch_id = _submit(server, key, 10)
        batch = _run_poller(fn, server, clock, key, batch_id, deadline_s=3_600)
        status = getattr(batch, "processing_status", None)
        expect(
            status == "ended",
            "did not return the ended batch",
            expected="a MessageBatch with status ended",
            got=status if status else type(batch).__name__,
            hint="Return the MessageBatch from the retrieve that showed processing_status == 'ended'.",
        )
        expect_equal(batch.id, batch_id, "returned another batch", hint="Retrieve the batch_id you were given.")
        polls = _poll_times(server, key)
        expect(
            len(polls) >= 2,
            "the ledger shows fewer than two polls of an in-progress batch",
            got=len(polls),
            hint="Retrieve, and while it is not ended sleep (clock.sleep_sync) and retrieve again.",
        )
        expect(
            len(polls) <= 40,
            f"{len(polls)} polls for a batch that takes about a minute",
            expected="a few polls",
            got=len(polls),
            hint="Sleep between polls with clock.sleep_sync(...): every poll is a request against your rate limit.",
        )
    finally:
        server.close()


@poll.case("intervals between polls grow (the ledger's spacing of GET requests)")
def _growing(fn) -> None:
    server, clock, key = _lockstep(limit_s=20_000, max_sleeps=150)
    try:
        batch_id = _submit(server, key, 60)  # 210 s of processing: room for several polls
        _run_poller(fn, server, clock, key, batch_id, deadline_s=3_600)
        polls = _poll_times(server, key)
        gaps = [b - a for a, b in zip(polls, polls[1:])]
        expect(
            len(gaps) >= 3,
            "too few polls to see the schedule",
            got=len(polls),
            hint="Start with a short wait (a second or a few) so short batches are noticed quickly.",
        )
        third = max(1, len(gaps) // 3)
        early = sorted(gaps[:third])[third // 2]
        late = sorted(gaps[-third:])[third // 2]
        shown = ", ".join(f"{g:.1f}" for g in gaps[:8]) + (" ..." if len(gaps) > 8 else "")
        expect(
            late >= 1.8 * max(early, 1e-9) and late > 0,
            "the polls are evenly spaced, not growing",
            expected="gaps that grow (e.g. 1, 2, 4, 8 s ...)",
            got=f"gaps of {shown} s",
            hint="A fixed interval polls a four-hour batch thousands of times; multiply the wait by a factor "
            "(e.g. 1.5 or 2) after every poll, with a cap.",
        )
    finally:
        server.close()


@poll.case("gives up at the deadline with TimeoutError")
def _deadline(fn) -> None:
    deadline = 900.0
    server, clock, key = _lockstep(
        limit_s=3 * deadline, scenario={"name": "slow-batches", "batch_slow_factor": 1000}, max_sleeps=200
    )
    try:
        batch_id = _submit(server, key, 5)  # 45 s x 1000: far past the deadline
        raised = _ABSENT
        try:
            got = _run_poller(fn, server, clock, key, batch_id, deadline_s=deadline, should_end=False)
        except TimeoutError:
            got = raised
        expect(
            got is raised,
            "returned instead of raising TimeoutError when the deadline passed",
            expected="TimeoutError",
            got=f"returned {getattr(got, 'processing_status', got)!r}",
            hint="When deadline_s has passed and the batch is still in progress, raise TimeoutError.",
        )
        polls = _poll_times(server, key)
        last = polls[-1] - polls[0] if polls else 0.0
        expect(
            last <= deadline * 1.25,
            f"kept polling until {last:,.0f} s with deadline_s={deadline:g}",
            expected=f"<= {deadline:g} s",
            got=f"{last:,.0f} s",
            hint="Clip the last sleep to the time left (min(wait, deadline - elapsed)).",
        )
        expect(
            last >= deadline * 0.5,
            f"gave up after {last:,.0f} s of a {deadline:g} s deadline",
            expected=f"about {deadline:g} s",
            got=f"{last:,.0f} s",
            hint="Use the deadline: keep polling (with growing waits) until it has passed.",
        )
    finally:
        server.close()


@poll.case("reports request_counts on every poll")
def _progress(fn) -> None:
    server, clock, key = _lockstep(limit_s=20_000, max_sleeps=60)
    try:
        batch_id = _submit(server, key, 10)
        seen: list[Any] = []
        _run_poller(fn, server, clock, key, batch_id, deadline_s=3_600, on_progress=seen.append)
        polls = _poll_times(server, key)
        expect_equal(
            len(seen),
            len(polls),
            "on_progress was not called once per poll",
            hint="Call on_progress(batch) after every retrieve, so the display shows request_counts.",
        )
        expect(
            hasattr(seen[-1], "request_counts"),
            "on_progress did not get the batch",
            got=type(seen[-1]).__name__,
            hint="Pass the MessageBatch itself; it carries request_counts.",
        )
    finally:
        server.close()


MAX_POLL_INTERVAL_S = 600.0
"""The contract's cap is one to ten minutes: no wait between two polls longer than ten minutes.

(The lower end is held by poll budgets: each lockstep case stops a poller, with a failure, after
more polls than a schedule capped at a minute or more needs; so no answer costs the grader more
than a few hundred polls, whatever the machine's load.)"""


@poll.case("waits grow to a cap of one to ten minutes (a 70-minute batch: a poll at least every ten minutes)")
def _capped(fn) -> None:
    server, clock, key = _lockstep(
        limit_s=4 * 3600, scenario={"name": "slow-batches", "batch_slow_factor": 20}, max_sleeps=150
    )
    try:
        batch_id = _submit(server, key, 60)  # 210 s x 20: seventy minutes of processing
        _run_poller(fn, server, clock, key, batch_id, deadline_s=3 * 3600)
        polls = _poll_times(server, key)
        gaps = [b - a for a, b in zip(polls, polls[1:])]
        longest = max(gaps, default=0.0)
        # A request's own transit (tens of ms) sits between a sleep and the next poll's arrival.
        expect(
            longest <= MAX_POLL_INTERVAL_S + 5,
            f"{longest:,.0f} s between two polls of a running batch",
            expected=f"at most {MAX_POLL_INTERVAL_S:,.0f} s",
            got=f"{longest:,.0f} s",
            hint="Cap the wait (wait = min(wait * factor, cap)): without a cap the waits double into hours, "
            "and a batch that ended is noticed hours late.",
        )
    finally:
        server.close()


@poll.case("a batch that has already ended is returned after one poll, with no sleep")
def _already_ended(fn) -> None:
    server, clock, key = _lockstep(limit_s=20_000, max_sleeps=60)
    try:
        batch_id = _submit(server, key, 3)
        server.advance(600)  # far past its window (39 s): it has ended before the poller starts
        clock = LockstepClock(server, limit_s=20_000, max_sleeps=60)
        seen: list[Any] = []
        batch = _run_poller(fn, server, clock, key, batch_id, deadline_s=3_600, on_progress=seen.append)
        expect(
            getattr(batch, "processing_status", None) == "ended",
            "did not return the ended batch",
            expected="a MessageBatch with status ended",
            got=getattr(batch, "processing_status", type(batch).__name__),
            hint="Return the MessageBatch whose processing_status is 'ended'.",
        )
        polls = _poll_times(server, key)
        expect(
            len(polls) == 1 and not clock.sleeps,
            f"{len(polls)} poll(s) and {len(clock.sleeps)} sleep(s) for a batch that had already ended",
            expected="1 poll, no sleep",
            got=f"{len(polls)} poll(s), sleeps of {clock.sleeps[:4]} s",
            hint="Retrieve first and return as soon as the batch has ended; sleep only between two polls.",
        )
        expect_equal(
            len(seen),
            1,
            "on_progress was not called once for the one poll",
            hint="Call on_progress(batch) after every retrieve, including the last one.",
        )
    finally:
        server.close()


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
    inputs = _reviews(16).assign(custom_id=[f"rev-{k:03d}" for k in order])
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
    _wait(p, client, [batch.id])
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
    _unchanged(inputs, before_inputs, "join_and_triage")
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


# =============================================================================================
# 4.4 resubmit_failures(client, store, job_id, params_by_id) -> list[str]
# =============================================================================================
resubmit = Exercise(
    "4.4",
    "Resubmit exactly the retryable failures, once",
    points=3,
    signature="resubmit_failures(client, store, job_id, params_by_id) -> list[str]",
    hints=[
        "Pick the items whose outcome is 'retry' from store.items(job_id), submit them in a new batch under "
        "their original custom_ids, and record that batch in the store right away.",
        "todo = items[items.outcome == 'retry'].custom_id; if empty return []; batch = "
        "client.messages.batches.create(requests=[{'custom_id': c, 'params': params_by_id[c]} for c in todo]); "
        "store.record_batch(job_id, batch.id, list(todo)) (this marks them 'pending', so a second run finds "
        "nothing); return [batch.id].",
    ],
)


def _wait(p: Any, client: Any, batch_ids: list[str]) -> None:
    """Let the probe's (virtual) time pass until every batch has ended."""
    for _ in range(1000):
        if all(client.messages.batches.retrieve(b).processing_status == "ended" for b in batch_ids):
            return
        p.server.advance(1.0)
    raise RuntimeError("check: a batch did not end")


def _batch_rows(p: Any) -> pd.DataFrame:
    df = p.requests(endpoint=None)
    return df[df["batch"].astype(bool)] if len(df) else df


def _posts(p: Any) -> int:
    df = p.requests(endpoint="/v1/messages/batches")
    return int((df["method"] == "POST").sum()) if len(df) else 0


def _call_resubmit(fn: Any, client: Any, store: JobStore, job_id: str, params: dict[str, Any]) -> list[str]:
    got = call(fn, client, store, job_id, params)
    expect(
        isinstance(got, list),
        "resubmit_failures must return a list of batch ids",
        got=got,
        hint="Return [batch.id] after submitting, or [] when there was nothing to resubmit.",
    )
    return got


@resubmit.case("resubmits the 'retry' items only (not missing ones), under their custom_ids")
def _only_retryable(fn) -> None:
    p = probe(time_scale=0.0)  # batches end at once
    _only_retryable_body(fn, p)


def _only_retryable_body(fn: Any, p: Any) -> None:
    client = p.client()
    store = JobStore()
    outcomes = {
        "ok1": ("succeeded", None),
        "ok2": ("succeeded", None),
        "bad1": ("invalid", "invalid_request_error"),
        "exp1": ("retry", "expired"),
        "err1": ("retry", "api_error"),
        "gone1": ("missing", None),
        "cxl1": ("canceled", "canceled"),
    }
    store.create_job("nightly", [*outcomes, "run1"])
    store.record_batch("nightly", "msgbatch_earlier", list(outcomes))
    store.record_outcomes("msgbatch_earlier", outcomes)
    store.record_batch("nightly", "msgbatch_running", ["run1"])  # still processing: outcome 'pending'
    # params_by_id in another order than the job's items: only a lookup by custom_id finds the right body.
    params = {
        cid: make_params({"text": f"review {cid}"}) for cid in ("gone1", "ok2", "run1", "cxl1", "err1", "ok1", "exp1")
    }
    params["bad1"] = make_params({"text": ""})
    for cid in params:
        p.script(f"review {cid}", f"label-{cid}")  # the reply names the review whose params were sent
    before = copy.deepcopy(params)
    new = _call_resubmit(fn, client, store, "nightly", params)
    changed = sorted(cid for cid in set(before) | set(params) if params.get(cid) != before.get(cid))
    expect(
        not changed,
        "resubmit_failures changed params_by_id",
        expected="params_by_id as it was given",
        got=f"changed or removed: {changed[:4]}",
        hint="Read params_by_id[custom_id]; do not pop from it or edit the bodies (the next round needs them).",
    )
    expect(
        len(new) >= 1 and _posts(p) >= 1,
        "nothing was resubmitted",
        got=new,
        hint="Items with outcome 'retry' must go out again.",
    )
    _wait(p, client, new)
    sent = set(_batch_rows(p)["custom_id"])
    want = {"exp1", "err1"}
    expect(
        not (sent & {"bad1"}),
        "an invalid request was resubmitted",
        got=sorted(sent),
        hint="An invalid request fails again and fills the report twice a night: never resubmit 'invalid'.",
    )
    expect(
        not (sent & {"ok1", "ok2"}),
        "succeeded requests were resubmitted (billed twice)",
        got=sorted(sent),
        hint="Only failures go out again; a succeeded review resubmitted is paid for twice.",
    )
    expect(
        not (sent & {"gone1"}),
        "a 'missing' item was resubmitted",
        got=sorted(sent),
        hint="'missing' means its result line was lost, not that the request failed: it may have succeeded and "
        "been billed, so resubmitting it can pay twice. The collector downloads results again (they stay for "
        "29 days) and what is still missing is reported; resubmit only 'retry'.",
    )
    expect(
        not (sent & {"cxl1"}),
        "a canceled request was resubmitted",
        got=sorted(sent),
        hint="Canceled means someone stopped it on purpose: report it, do not resubmit it automatically.",
    )
    expect(
        not (sent & {"run1"}),
        "an item still pending in a running batch was resubmitted",
        got=sorted(sent),
        hint="'pending' means its batch has not ended: it may still succeed, and a second copy would be billed "
        "twice. Resubmit only 'retry'.",
    )
    expect(
        sent == want,
        "the resubmitted custom_ids are not exactly the retryable ones",
        expected=sorted(want),
        got=sorted(sent),
        hint="Resubmit outcome 'retry' (expired requests and transient errors), keeping each original "
        "custom_id so the new results join to the same reviews.",
    )
    replies = {}
    for bid in new:
        for line in client.messages.batches.results(bid):
            result = line.result
            replies[line.custom_id] = text_of(result.message) if result.type == "succeeded" else result.type
    swapped = {cid: replies.get(cid) for cid in sorted(want) if replies.get(cid) != f"label-{cid}"}
    expect(
        not swapped,
        "a resubmitted request went out with another review's params",
        expected={cid: f"label-{cid}" for cid in swapped},
        got=swapped,
        hint="Look each item's params up by its custom_id (params_by_id[custom_id]), never by its position.",
    )
    expect(
        len(new) == 1 and _posts(p) == 1,
        f"the retries went out in {_posts(p)} batches, not one new batch",
        expected="one POST /v1/messages/batches, returned as [batch_id]",
        got=f"{len(new)} id(s) returned",
        hint="Put every retryable request into a single new batch (one batch to poll and collect, not one "
        "per item) and return [batch.id].",
    )


@resubmit.case("a job with nothing to retry: [] and no batch created")
def _nothing(fn) -> None:
    p = probe(time_scale=0.0)
    client = p.client()
    store = JobStore()
    outcomes = {
        "a": ("succeeded", None),
        "b": ("invalid", "invalid_request_error"),
        "c": ("canceled", "canceled"),
        "d": ("missing", None),
    }
    store.create_job("j", list(outcomes))
    store.record_batch("j", "msgbatch_done", list(outcomes))
    store.record_outcomes("msgbatch_done", outcomes)
    params = {cid: make_params({"text": f"review {cid}"}) for cid in outcomes}
    got = _call_resubmit(fn, client, store, "j", params)
    expect(
        got == [] and _posts(p) == 0,
        "a job with nothing retryable still submitted something",
        expected="[] and no POST /v1/messages/batches",
        got=f"{got} and {_posts(p)} POST(s)",
        hint="When no item is 'retry', return [] before calling batches.create (an empty batch is refused, a "
        "batch of finished items bills them twice, and a 'missing' item is downloaded again, not resubmitted).",
    )


@resubmit.case("running it twice submits nothing new (idempotent)")
def _idempotent(fn) -> None:
    p = probe(time_scale=0.0)  # batches end at once
    _idempotent_body(fn, p)


def _idempotent_body(fn: Any, p: Any) -> None:
    client = p.client()
    store = JobStore()
    outcomes = {"a": ("retry", "expired"), "b": ("succeeded", None), "c": ("retry", "overloaded_error")}
    store.create_job("j", list(outcomes))
    store.record_batch("j", "msgbatch_first", list(outcomes))
    store.record_outcomes("msgbatch_first", outcomes)
    params = {cid: make_params({"text": f"review {cid}"}) for cid in outcomes}
    first = _call_resubmit(fn, client, store, "j", params)
    posts = _posts(p)
    second = _call_resubmit(fn, client, store, "j", params)
    expect(
        _posts(p) == posts and not second,
        "the second run submitted another batch",
        expected="[] and no new POST /v1/messages/batches",
        got=f"{second} ({_posts(p) - posts} new POST)",
        hint="Record the new batch with store.record_batch(job_id, batch.id, custom_ids): that marks the items "
        "'pending', so the next run does not pick them again.",
    )
    expect(
        set(store.open_batches("j")) >= set(first),
        "the new batch is not in the job record",
        got=store.open_batches("j"),
        hint="store.record_batch(...) right after batches.create, before anything else.",
    )


@resubmit.case("after a run with expirations and errors: every review enriched or reported, none billed twice (ledger)")
def _ledger(fn) -> None:
    p = probe(time_scale=0.0)  # batches end at once
    _ledger_body(fn, p)


def _ledger_body(fn: Any, p: Any) -> None:
    client = p.client()
    p.server.set_rate_limits(p.api_key, "unlimited")
    inputs = _reviews(20, empty=(3, 11))
    reqs = [
        {"custom_id": f"rev-{i:03d}", "params": make_params(row)} for i, row in enumerate(inputs.to_dict("records"))
    ]
    params = {r["custom_id"]: r["params"] for r in reqs}
    store = JobStore()
    store.create_job("j", list(params))
    # Expirations and transient overloaded_errors tonight; the resubmission runs in calm (the overload passed).
    p.server.set_scenario({"name": "expiring", "batch_expire_fraction": 0.3, "batch_error_fraction": 0.25})
    try:
        first = client.messages.batches.create(requests=reqs)
        store.record_batch("j", first.id, list(params))
        _wait(p, client, [first.id])
    finally:
        p.server.set_scenario("calm")
    collect_batch(client, store, "j", first.id)
    invalid_first = set(store.items("j").query("outcome == 'invalid'")["custom_id"])
    new = _call_resubmit(fn, client, store, "j", params)
    _wait(p, client, new)
    for bid in new:
        collect_batch(client, store, "j", bid)
    rows = _batch_rows(p)
    billed = rows[rows["status"] == 200]["custom_id"].value_counts()
    twice = sorted(billed[billed > 1].index)
    expect(
        not twice,
        "reviews were billed twice",
        got=twice,
        hint="Resubmit only failures; a succeeded review must never go out again.",
    )
    again = sorted(set(rows["custom_id"][rows["custom_id"].duplicated()]) & invalid_first)
    expect(not again, "invalid requests were resubmitted", got=again, hint="outcome 'invalid' is final: report it.")
    summary = store.summary("j")
    expect(
        set(summary) <= {"succeeded", "invalid"} and summary.get("invalid") == 2,
        "after one resubmission not every review is enriched or reported invalid",
        expected="{'succeeded': 18, 'invalid': 2}",
        got=summary,
        hint="Every expired or transiently errored request (outcome 'retry') must be resubmitted.",
    )


EXERCISES = [build, poll, triage, resubmit]
