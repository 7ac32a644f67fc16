"""Checks for exercise 1.3 ``compact(client, summary, messages, threshold)``: a scripted conversation
is played through the answer once per check (its cases share it), graded from the ledger: every
request fits the window, the planted facts survive, one summarization request per compaction."""

from __future__ import annotations

import copy
from typing import Any

import anthropic

from ... import models, tokens
from ...context import compose_request, group_turns, is_correct
from ..framework import CaseFailed, Exercise, call, expect
from ..sim import probe
from .common import CONVERSATION, MAX_TOKENS, MODEL, SYSTEM, sample_history

CONTEXT_WINDOW = models.get_model(MODEL).context_window
COMPACT_THRESHOLD = 2_500
"""Exercise 1.3's threshold, in input tokens of the whole request."""
COMPACT_TURNS = 60


# ---------------------------------------------------------------------------------------------
# 1.3 compact(client, summary, messages, threshold) -> (summary, messages)
# ---------------------------------------------------------------------------------------------
compaction = Exercise(
    "1.3",
    "Summarizing compaction",
    points=3,
    signature="compact(client, summary, messages, threshold) -> tuple[str, list]",
    time_limit=60,
    hints=[
        "Only when count_request(compose_request(SYSTEM, summary, messages, ...)) is over the threshold: send "
        "ONE request asking to summarize the previous summary plus the oldest turns, and keep the newest "
        "turn(s) verbatim.",
        "turns = group_turns(messages); fold = turns[:-1] (keep at least the current turn); prompt = "
        "'Summarize ... Keep all facts ...\\n\\nPrevious summary:\\n' + summary + '\\n\\nNew turns:\\n' + "
        "transcript(folded messages); return (reply text, the messages of the kept turns).",
    ],
)


_played: dict[int, tuple[Any, tuple[Any, list[dict[str, Any]], str | None]]] = {}
"""The conversation played by the current 1.3 check, shared by its cases (cleared by the first case)."""


def _play(fn: Any) -> tuple[Any, list[dict[str, Any]], str | None]:
    """The scripted conversation played through ``fn`` once per check, shared by the cases that grade it."""
    hit = _played.get(id(fn))
    if hit is not None and hit[0] is fn:
        return hit[1]
    outcome = _play_once(fn)
    _played.clear()
    _played[id(fn)] = (fn, outcome)
    return outcome


def _whole_turn_suffix(kept: list[Any], messages: list[Any]) -> bool:
    """Is ``kept`` the newest whole turns of ``messages`` (at least the newest one)?"""
    turns = group_turns(messages)
    return any(kept == [m for t in turns[-k:] for m in t] for k in range(1, len(turns) + 1))


def _play_once(fn: Any, turns: int = COMPACT_TURNS) -> tuple[Any, list[dict[str, Any]], str | None]:
    """Run the scripted conversation through the student's compaction; (probe, records, error).

    Each record also says whether the request was over the threshold before ``compact`` ran
    (``over``) and how many requests ``compact`` itself made (``made``, from the ledger).
    """
    p = probe(tier="unlimited")
    client = p.client()
    summary, history = "", []
    records: list[dict[str, Any]] = []
    for t in CONVERSATION.turns[:turns]:
        history.append({"role": "user", "content": t.user})
        over = (
            tokens.count_request(compose_request(SYSTEM, summary, history, model=MODEL, max_tokens=MAX_TOKENS))
            > COMPACT_THRESHOLD
        )
        given, before = copy.deepcopy(history), len(p.requests(endpoint=None))
        out = call(fn, client, summary, given, COMPACT_THRESHOLD)
        made = len(p.requests(endpoint=None)) - before
        if not (isinstance(out, tuple) and len(out) == 2 and isinstance(out[0], str) and isinstance(out[1], list)):
            raise CaseFailed(
                "compact must return a (summary, messages) tuple",
                expected="(str, list)",
                got=out,
                hint="Return the (possibly unchanged) summary string and the messages to keep.",
            )
        if given != history:
            raise CaseFailed(
                f"turn {t.turn}: compact modified the messages list it was given",
                expected="the caller's messages left as they were",
                got="changed",
                hint="Build the list of remaining messages as a new list (e.g. the newest turns of "
                "group_turns(messages)); the caller keeps its own history.",
            )
        if not _whole_turn_suffix(list(out[1]), history):
            return (
                p,
                records,
                (
                    f"turn {t.turn}: the messages compact kept are not the newest whole turns "
                    f"({len(out[1])} messages kept of {len(history)})"
                ),
            )
        records_made = {"turn": t.turn, "over": over, "made": made}
        summary, history = out[0], list(out[1])
        body = compose_request(SYSTEM, summary, history, model=MODEL, max_tokens=MAX_TOKENS)
        try:
            reply = client.messages.create(**body)
        except anthropic.BadRequestError as exc:
            return p, records, f"turn {t.turn}: {exc.message}"
        text = "".join(getattr(b, "text", "") for b in reply.content)
        records.append(
            {
                **records_made,
                "kind": t.kind,
                "expected": t.expected,
                "answer": text,
                "tokens": tokens.count_request(body),
            }
        )
        history.append({"role": "assistant", "content": text})
    return p, records, None


@compaction.case("leaves a short conversation alone (no request under the threshold)")
def _compact_idle(fn: Any) -> None:
    _played.clear()  # this case runs first: a new check plays the conversation afresh
    p = probe(tier="unlimited")
    messages = sample_history(5, tool_every=0)
    before = copy.deepcopy(messages)
    out = call(fn, p.client(), "", messages, COMPACT_THRESHOLD)
    made = len(p.requests(endpoint=None))
    expect(
        made == 0,
        f"a {tokens.count_request(compose_request(SYSTEM, '', messages, model=MODEL, max_tokens=1))}-token "
        f"request is under the threshold of {COMPACT_THRESHOLD}, yet compact made {made} request(s)",
        expected="0 requests",
        got=f"{made} request(s)",
        hint="Summarizing costs a request: only compact when the whole request is over the threshold.",
    )
    expect(
        isinstance(out, tuple) and len(out) == 2 and out[0] == "" and list(out[1]) == before,
        "under the threshold the summary and messages must come back unchanged",
        expected=("", f"{len(before)} messages"),
        got=out,
        hint="Return (summary, messages) as they were.",
    )
    # The edge the contract names: "more than threshold". A request of exactly the threshold is not over it.
    exact = tokens.count_request(compose_request(SYSTEM, "", messages, model=MODEL, max_tokens=MAX_TOKENS))
    for threshold, want in ((exact, 0), (exact - 1, 1)):
        q = probe(tier="unlimited")
        call(fn, q.client(), "", copy.deepcopy(messages), threshold)
        made = len(q.requests(endpoint=None))
        if made != want:
            raise CaseFailed(
                f"a request of exactly {exact} tokens with threshold={threshold}: compact made {made} request(s)",
                expected=f"{want} request(s)",
                got=f"{made} request(s)",
                hint="Compact only when the request counts MORE than the threshold (> threshold): a "
                "request of exactly the threshold is within it."
                if made > want
                else "One token over the threshold is over it: compact (one summarization request).",
            )


@compaction.case(f"every request of a {COMPACT_TURNS}-turn conversation fits the {CONTEXT_WINDOW:,}-token window")
def _compact_fits(fn: Any) -> None:
    p, records, error = _play(fn)
    expect(
        error is None,
        f"the conversation crashed at {error}",
        expected="all turns answered",
        got=f"{len(records)} turns answered",
        hint="Compact before every request: when the request passes the threshold, fold old turns into the "
        "summary so what is left (system + summary + recent turns) fits; keep the messages starting with a user turn.",
    )
    failed = p.requests()
    failed = failed[failed["status"] != 200]
    expect(
        len(failed) == 0,
        f"{len(failed)} request(s) failed, e.g. {failed['error_type'].iloc[0] if len(failed) else ''}",
        hint="Your summarization requests must be valid too (one user message, a max_tokens of a few hundred).",
    )


@compaction.case("the planted facts are still answered correctly")
def _compact_facts(fn: Any) -> None:
    _, records, error = _play(fn)
    expect(error is None, f"the conversation crashed at {error}", hint="See the previous case.")
    questions = [r for r in records if r["kind"] == "question"]
    wrong = [r for r in questions if not is_correct(r["answer"], r["expected"])]
    expect(
        not wrong,
        f"{len(wrong)} of {len(questions)} fact questions were answered wrongly, e.g. turn "
        f"{wrong[0]['turn'] if wrong else ''}: {wrong[0]['answer'] if wrong else ''!r}",
        expected=f"{len(questions)} correct",
        got=f"{len(questions) - len(wrong)} correct",
        hint="Facts survive only if each new summary is made from the previous summary plus the folded turns "
        "(never from the new turns alone), and if the summary is placed where compose_request puts it.",
    )


@compaction.case("exactly one request when over the threshold, none under it")
def _compact_one(fn: Any) -> None:
    _, records, error = _play(fn)
    expect(error is None, f"the conversation crashed at {error}", hint="See the earlier cases.")
    for r in records:
        want = 1 if r["over"] else 0
        if r["made"] != want:
            where = "over" if r["over"] else "under"
            raise CaseFailed(
                f"turn {r['turn']}: the request was {where} the threshold of {COMPACT_THRESHOLD} "
                f"and compact made {r['made']} request(s)",
                expected=f"{want} request(s)",
                got=f"{r['made']} request(s)",
                hint="Fold everything old into the summary in ONE messages.create call (the previous "
                "summary plus the folded turns in one prompt), and no count_tokens call: count "
                "locally with count_request_tokens."
                if r["over"]
                else "Under the threshold compact returns (summary, messages) as they are, with no request.",
            )


@compaction.case("the ledger shows summarization calls, but not one per turn")
def _compact_ledger(fn: Any) -> None:
    p, records, error = _play(fn)
    expect(error is None, f"the conversation crashed at {error}", hint="See the earlier cases.")
    rows = p.requests()
    summaries = int((rows["skill"] == "summarize").sum())
    others = sorted(set(rows["model"]) - {MODEL})
    expect(
        not others,
        f"compact sent requests to {', '.join(others)}",
        expected=f"every request on {MODEL}",
        got=", ".join(others),
        hint=f"Summarize with MODEL ({MODEL}), as the exercise says: the check's costs and "
        "the lesson's figures assume it.",
    )
    if summaries == 0:
        extra = len(rows) - len(records)  # the check's own requests are one per answered turn
        raise CaseFailed(
            "the ledger shows no summarization request"
            + (
                f": compact made {extra} request(s), none of which the model took as a request to summarize"
                if extra > 0
                else ": compact made no request at all"
            ),
            expected="at least 1",
            got=f"{extra} request(s), 0 summaries",
            hint="Your compaction request must ask for a summary in so many words: start the prompt (or "
            "the system prompt) with 'Summarize ...'; 'Here is what we discussed' is not a request."
            if extra > 0
            else "When the request passes the threshold, call client.messages.create once to summarize.",
        )
    most = COMPACT_TURNS // 5
    expect(
        summaries <= most,
        f"the ledger shows {summaries} summarization requests in {COMPACT_TURNS} turns",
        expected=f"at most {most}",
        got=summaries,
        hint="Fold many turns at once, and only when the request is over the threshold: a summary per turn "
        "doubles the requests and the latency.",
    )
