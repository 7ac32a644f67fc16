"""Checks for exercise 4.4 ``resubmit_failures``: exactly the retryable failures, once, recorded before returning."""

from __future__ import annotations

import copy
from typing import Any

import pandas as pd

from ...batch.jobstore import JobStore
from ...batch.job import collect_batch
from ..framework import Exercise, call, expect
from ...content import text_of
from ..sim import probe

from .common import sample_reviews, wait_until_ended, make_params


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
    wait_until_ended(p, client, new)
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
    inputs = sample_reviews(20, empty=(3, 11))
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
        wait_until_ended(p, client, [first.id])
    finally:
        p.server.set_scenario("calm")
    collect_batch(client, store, "j", first.id)
    invalid_first = set(store.items("j").query("outcome == 'invalid'")["custom_id"])
    new = _call_resubmit(fn, client, store, "j", params)
    wait_until_ended(p, client, new)
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
