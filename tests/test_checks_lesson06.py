"""Lesson 06 checks: the solutions and correct alternatives pass, plausible wrong answers are rejected."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from decimal import Decimal

import anthropic
import bm25s
import pytest

from _checks import assert_not_attempted, assert_rejected, passes
from course_utils import pricing
from course_utils.cost import SpendGuard as ReferenceSpendGuard
from course_utils.cost import label_request, parse_label, worst_case_cost
from course_utils.tokens import count_text, encoding

CHEAP, MID, TOP = "claude-haiku-5-5", "claude-sonnet-5-5", "claude-opus-5-5"


# ----- 6.1 ------------------------------------------------------------------------------------
M = Decimal(1_000_000)


def _row_cost(r, *, cache_as_input=False, batch=True, tier=True, tier_counts_reads=True):
    p = pricing.price(r["model"])
    if cache_as_input:
        total = (
            r["input_tokens"] + r["cache_read_input_tokens"] + r["cache_creation_5m"] + r["cache_creation_1h"]
        ) * p.input_per_mtok + r["output_tokens"] * p.output_per_mtok
    else:
        total = (
            r["input_tokens"] * p.input_per_mtok
            + r["cache_read_input_tokens"] * p.cache_read_per_mtok
            + r["cache_creation_5m"] * p.cache_write_5m_per_mtok
            + r["cache_creation_1h"] * p.cache_write_1h_per_mtok
            + r["output_tokens"] * p.output_per_mtok
        )
    total /= M
    prompt = r["input_tokens"] + r["cache_creation_5m"] + r["cache_creation_1h"]
    prompt += r["cache_read_input_tokens"] if tier_counts_reads else 0
    if tier and p.long_prompt_threshold is not None and prompt > p.long_prompt_threshold:
        total *= p.long_prompt_multiplier
    return total * p.batch_discount if (batch and r["batch"]) else total


def cost_by_feature(rows):
    out = {}
    for r in rows:
        out[r["feature"]] = out.get(r["feature"], Decimal(0)) + _row_cost(r)
    return out


def grouped_before_pricing(rows):
    """Sums each token class per (feature, model, batch), then prices the sums: the long-prompt tier is per
    request, so a group of short prompts is priced as one long one."""
    groups = {}
    for r in rows:
        g = groups.setdefault((r["feature"], r["model"], bool(r["batch"])), dict.fromkeys(
            ("input_tokens", "cache_read_input_tokens", "cache_creation_5m", "cache_creation_1h", "output_tokens"), 0))  # fmt: skip
        for k in g:
            g[k] += r[k]
    out = {}
    for (feature, model, batch), counts in groups.items():
        out[feature] = out.get(feature, Decimal(0)) + _row_cost({**counts, "model": model, "batch": batch})
    return out


def cache_as_input(rows):
    out = {}
    for r in rows:
        out[r["feature"]] = out.get(r["feature"], Decimal(0)) + _row_cost(r, cache_as_input=True)
    return out


def no_batch_discount(rows):
    out = {}
    for r in rows:
        out[r["feature"]] = out.get(r["feature"], Decimal(0)) + _row_cost(r, batch=False)
    return out


def float_money(rows):
    out = {}
    for r in rows:
        out[r["feature"]] = out.get(r["feature"], 0.0) + float(_row_cost(r))
    return {k: Decimal(v) for k, v in out.items()}


def rounded(rows):
    return {k: v.quantize(Decimal("0.0001")) for k, v in cost_by_feature(rows).items()}


def uses_library(rows):
    out = {}
    for r in rows:
        usage = {"input_tokens": r["input_tokens"], "output_tokens": r["output_tokens"]}
        out[r["feature"]] = out.get(r["feature"], Decimal(0)) + pricing.cost(usage, r["model"])
    return out


def reads_at_a_tenth_of_input(rows):
    """Derives the read rate as 0.1x input instead of reading it (wrong on Opus 5.5: 0.05x)."""
    out = {}
    for r in rows:
        p = pricing.price(r["model"])
        fixed = {**r, "cache_read_input_tokens": 0}
        extra = r["cache_read_input_tokens"] * p.input_per_mtok / 10 / M
        extra = extra * p.batch_discount if r["batch"] else extra
        out[r["feature"]] = out.get(r["feature"], Decimal(0)) + _row_cost(fixed) + extra
    return out


def cost_by_feature_with_pandas(rows):
    """Written differently, with a well-known library: a DataFrame, a column of Decimal per row, groupby."""
    import pandas as pd

    frame = pd.DataFrame(rows, columns=["feature", "model", "batch", *_TOKEN_COLUMNS])
    if frame.empty:
        return {}

    def row_cost(row):
        p = pricing.price(row["model"])
        rates = (p.input_per_mtok, p.cache_read_per_mtok, p.cache_write_5m_per_mtok, p.cache_write_1h_per_mtok)
        prompt = [int(row[c]) for c in _TOKEN_COLUMNS[:4]]
        dollars = sum((n * rate for n, rate in zip(prompt, rates)), Decimal(0))
        dollars = (dollars + int(row["output_tokens"]) * p.output_per_mtok) / M
        if p.long_prompt_threshold is not None and sum(prompt) > p.long_prompt_threshold:
            dollars *= p.long_prompt_multiplier
        return dollars * p.batch_discount if row["batch"] else dollars

    frame["cost"] = frame.apply(row_cost, axis=1)
    return {feature: sum(costs, Decimal(0)) for feature, costs in frame.groupby("feature")["cost"]}


_TOKEN_COLUMNS = ("input_tokens", "cache_read_input_tokens", "cache_creation_5m", "cache_creation_1h", "output_tokens")


_RATE_OF = {
    "input_tokens": "input_per_mtok",
    "cache_read_input_tokens": "cache_read_per_mtok",
    "cache_creation_5m": "cache_write_5m_per_mtok",
    "cache_creation_1h": "cache_write_1h_per_mtok",
    "output_tokens": "output_per_mtok",
}


def cost_by_feature_by_rate_table(rows):
    """Written differently: a column -> rate-attribute table, a defaultdict, the multipliers as one factor."""
    import collections

    totals = collections.defaultdict(Decimal)
    for row in rows:
        p = pricing.price(row["model"])
        prompt = sum(row[c] for c in _RATE_OF if c != "output_tokens")
        factor = Decimal(1)
        if p.long_prompt_threshold is not None and prompt > p.long_prompt_threshold:
            factor *= p.long_prompt_multiplier
        if row["batch"]:
            factor *= p.batch_discount
        totals[row["feature"]] += sum(row[c] * getattr(p, rate) for c, rate in _RATE_OF.items()) * factor / M
    return dict(totals)


def no_long_prompt_tier(rows):
    out = {}
    for r in rows:
        out[r["feature"]] = out.get(r["feature"], Decimal(0)) + _row_cost(r, tier=False)
    return out


def tier_on_input_only(rows):
    """Applies the tier on uncached input + writes, forgetting that cache reads are prompt tokens too."""
    out = {}
    for r in rows:
        out[r["feature"]] = out.get(r["feature"], Decimal(0)) + _row_cost(r, tier_counts_reads=False)
    return out


def tier_at_the_threshold(rows):
    """Uses >= where the tier starts strictly above the threshold."""
    out = {}
    for r in rows:
        p = pricing.price(r["model"])
        cost = _row_cost(r)
        prompt = r["input_tokens"] + r["cache_creation_5m"] + r["cache_creation_1h"] + r["cache_read_input_tokens"]
        if p.long_prompt_threshold is not None and prompt == p.long_prompt_threshold:
            cost *= p.long_prompt_multiplier
        out[r["feature"]] = out.get(r["feature"], Decimal(0)) + cost
    return out


def batch_discount_on_output_only(rows):
    out = {}
    for r in rows:
        p = pricing.price(r["model"])
        full = _row_cost({**r, "batch": False})
        if r["batch"]:
            out_part = r["output_tokens"] * p.output_per_mtok / M
            if p.long_prompt_threshold is not None and (
                r["input_tokens"] + r["cache_read_input_tokens"] + r["cache_creation_5m"] + r["cache_creation_1h"]
                > p.long_prompt_threshold
            ):
                out_part *= p.long_prompt_multiplier
            full -= out_part * (1 - p.batch_discount)
        out[r["feature"]] = out.get(r["feature"], Decimal(0)) + full
    return out


def changes_the_rows(rows):
    for r in rows:
        r["cost"] = _row_cost(r)
    out = {}
    for r in rows:
        out[r["feature"]] = out.get(r["feature"], Decimal(0)) + r["cost"]
    return out


def stub_6_1(rows):
    raise NotImplementedError("Exercise 6.1")


@pytest.mark.parametrize("answer", [cost_by_feature, cost_by_feature_by_rate_table, cost_by_feature_with_pandas])
def test_6_1_solutions_pass(answer):
    passes("6.1", answer)


@pytest.mark.parametrize(
    "answer, phrase",
    [
        (cache_as_input, "Cache tokens are not input tokens"),
        (no_batch_discount, "batch_discount"),
        (float_money, "went through a float"),
        (rounded, "rounded"),
        (uses_library, "pricing.cost"),
        (reads_at_a_tenth_of_input, "Opus 5.5 reads cost 0.05x"),
        (no_long_prompt_tier, "long prompts: the cost of 'research' is wrong"),
        (tier_on_input_only, "long prompts: the cost of 'digest' is wrong"),
        (tier_at_the_threshold, "long prompts: the cost of 'research' is wrong"),
        (changes_the_rows, "your function changed the rows it was given"),
        (grouped_before_pricing, "never sum rows before the threshold test"),
        (batch_discount_on_output_only, "batch rows: the cost of 'summaries' is wrong"),
    ],
)
def test_6_1_wrong_answers_are_rejected(answer, phrase):
    assert_rejected("6.1", answer, phrase)


def test_6_1_stub_is_not_attempted():
    assert_not_attempted("6.1", stub_6_1)


# ----- 6.2 ------------------------------------------------------------------------------------
def cache_key(body, api_key):
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def cache_key_sorted_items(body, api_key):
    """Written differently: a recursive canonical form and blake2b."""

    def canon(v):
        if isinstance(v, dict):
            return "{" + ",".join(f"{json.dumps(k)}:{canon(v[k])}" for k in sorted(v)) + "}"
        if isinstance(v, list):
            return "[" + ",".join(canon(x) for x in v) + "]"
        return json.dumps(v)

    return hashlib.blake2b(canon(body).encode(), digest_size=20).hexdigest()


def key_without_model(body, api_key):
    return cache_key({k: v for k, v in body.items() if k != "model"}, api_key)


def key_without_max_tokens(body, api_key):
    return cache_key({k: v for k, v in body.items() if k != "max_tokens"}, api_key)


def key_with_api_key(body, api_key):
    return cache_key({**body, "api_key": api_key}, api_key)


def key_from_str_dict(body, api_key):
    return hashlib.sha256(str(body).encode()).hexdigest()


def key_from_messages_only(body, api_key):
    return cache_key({"messages": body["messages"]}, api_key)


def key_with_sorted_lists(body, api_key):
    """Sorts everything, lists included: a conversation in another order gets the same key."""

    def canon(v):
        if isinstance(v, dict):
            return {k: canon(v[k]) for k in sorted(v)}
        if isinstance(v, list):
            return sorted((canon(x) for x in v), key=lambda x: json.dumps(x, sort_keys=True))
        return v

    return cache_key(canon(body), api_key)


def key_top_level_sorted_only(body, api_key):
    """Sorts the top-level keys only: nested dicts keep their insertion order."""
    return hashlib.sha256(repr(sorted(body.items())).encode()).hexdigest()


def key_from_known_fields(body, api_key):
    """A fixed list of fields: misses the ones nobody thought of (top_k, tool_choice, thinking)."""
    fields = ("model", "max_tokens", "system", "messages", "tools", "temperature", "stop_sequences", "top_p")
    return cache_key({f: body.get(f) for f in fields}, api_key)


def key_without_system(body, api_key):
    return cache_key({k: v for k, v in body.items() if k != "system"}, api_key)


def key_of_the_last_message(body, api_key):
    """Keys on the model and the last user message: the earlier turns are left out."""
    return cache_key({"model": body["model"], "last": body["messages"][-1], "max_tokens": body["max_tokens"]}, api_key)


def key_fills_in_defaults(body, api_key):
    """Normalises the defaults in place: the caller's body gains a temperature."""
    body.setdefault("temperature", 1.0)
    return cache_key(body, api_key)


def cache_key_with_orjson_like_bytes(body, api_key):
    """Written differently: a canonical form through pickle-free bytes (json with sorted keys, utf-8) and md5
    would do; here sha3 over json with ensure_ascii, default separators."""
    return hashlib.sha3_256(json.dumps(body, sort_keys=True).encode("ascii")).hexdigest()


def stub_6_2(body, api_key):
    raise NotImplementedError("Exercise 6.2")


@pytest.mark.parametrize("answer", [cache_key, cache_key_sorted_items, cache_key_with_orjson_like_bytes])
def test_6_2_solutions_pass(answer):
    passes("6.2", answer)


@pytest.mark.parametrize(
    "answer, phrase",
    [
        (key_without_model, "differ only in model"),
        (key_without_max_tokens, "differ only in max_tokens"),
        (key_with_api_key, "changes with the API key"),
        (key_from_str_dict, "another order got another key"),
        (key_from_messages_only, "differ only in model"),
        (key_with_sorted_lists, "the same messages in another order got the same key"),
        (key_top_level_sorted_only, "nested keys in another order got another key"),
        (key_from_known_fields, "adding top_k did not change the key"),
        (key_fills_in_defaults, "your function changed the body"),
        (key_without_system, "differ only in system"),
        (key_of_the_last_message, "end with the same message but differ earlier got the same key"),
    ],
)
def test_6_2_wrong_answers_are_rejected(answer, phrase):
    assert_rejected("6.2", answer, phrase)


def test_6_2_stub_is_not_attempted():
    assert_not_attempted("6.2", stub_6_2)


# ----- 6.3 ------------------------------------------------------------------------------------
def _sentences(text):
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+", text) if s.strip()]


def compress(context, question, budget):
    sentences = list(dict.fromkeys(_sentences(context)))
    if not sentences:
        return ""
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(sentences, stopwords="en", show_progress=False), show_progress=False)
    query = [t for t in bm25s.tokenize([question], stopwords="en", return_ids=False, show_progress=False)[0]
             if t in retriever.vocab_dict]  # fmt: skip
    scores = retriever.get_scores(query) if query else [0.0] * len(sentences)
    chosen = []
    for i in sorted(range(len(sentences)), key=lambda i: -scores[i]):
        trial = sorted(chosen + [i])
        if count_text(" ".join(sentences[j] for j in trial)) <= budget:
            chosen = trial
    return " ".join(sentences[j] for j in chosen)


def compress_by_overlap(context, question, budget):
    """Written differently: word-overlap ranking (no BM25), best-first until the budget is full."""
    q = set(re.findall(r"[a-z0-9]+", question.lower())) - {"what", "is", "the", "for", "a"}
    sentences = list(dict.fromkeys(_sentences(context)))
    ranked = sorted(sentences, key=lambda s: -len(q & set(re.findall(r"[a-z0-9]+", s.lower()))))
    out = []
    for s in ranked:
        if count_text("\n".join(sorted(out + [s], key=sentences.index))) <= budget:
            out.append(s)
    return "\n".join(sorted(out, key=sentences.index))


def best_first_order(context, question, budget):
    """Chooses well but returns the sentences best-first, not in the context's order."""
    q = set(re.findall(r"[a-z0-9]+", question.lower())) - {"what", "is", "the", "for", "a"}
    sentences = list(dict.fromkeys(_sentences(context)))
    ranked = sorted(sentences, key=lambda s: -len(q & set(re.findall(r"[a-z0-9]+", s.lower()))))
    out = []
    for s in ranked:
        if count_text("\n".join(out + [s])) <= budget:
            out.append(s)
    return "\n".join(out)


def compress_with_bm25s_by_position(context, question, budget):
    """Written differently, with bm25s: stemming off, scores into a numpy argsort, a set of chosen positions."""
    import numpy as np

    sentences = list(dict.fromkeys(_sentences(context)))
    if not sentences:
        return ""
    retriever = bm25s.BM25(k1=1.2, b=0.75)
    retriever.index(bm25s.tokenize(sentences, show_progress=False), show_progress=False)
    words = [
        w for w in bm25s.tokenize([question], return_ids=False, show_progress=False)[0] if w in retriever.vocab_dict
    ]
    scores = np.asarray(retriever.get_scores(words)) if words else np.zeros(len(sentences))
    chosen = set()
    for i in np.argsort(-scores, kind="stable"):
        trial = chosen | {int(i)}
        if count_text("\n".join(sentences[j] for j in sorted(trial))) <= budget:
            chosen = trial
    return "\n".join(sentences[j] for j in sorted(chosen))


def longest_sentences_first(context, question, budget):
    """Ranks by length ("the most informative"), not by relevance to the question."""
    sentences = list(dict.fromkeys(_sentences(context)))
    chosen = []
    for sentence in sorted(sentences, key=len, reverse=True):
        if count_text("\n".join(sorted(chosen + [sentence], key=sentences.index))) <= budget:
            chosen.append(sentence)
    return "\n".join(sorted(chosen, key=sentences.index))


def crashes_on_empty(context, question, budget):
    longest = max(_sentences(context), key=len)  # ValueError: max() of an empty sequence
    return compress(context, question, budget) if longest else ""


def keep_head(context, question, budget):
    return encoding().decode(encoding().encode(context)[:budget])


def keep_tail(context, question, budget):
    return encoding().decode(encoding().encode(context)[-budget:]) if budget else ""


def over_budget(context, question, budget):
    """Ranks well but counts words, not tokens, and ignores the separators."""
    sentences = list(dict.fromkeys(_sentences(context)))
    q = set(question.lower().split())
    ranked = sorted(sentences, key=lambda s: -len(q & set(s.lower().split())))
    out, words = [], 0
    for s in ranked:
        if words + len(s.split()) <= budget:
            out.append(s)
            words += len(s.split())
    return " ".join(out)


def stub_6_3(context, question, budget):
    raise NotImplementedError("Exercise 6.3")


@pytest.mark.parametrize("answer", [compress, compress_by_overlap, compress_with_bm25s_by_position])
def test_6_3_solutions_pass(answer):
    passes("6.3", answer)


@pytest.mark.parametrize(
    "answer, phrase",
    [
        (keep_head, "facts lost at"),
        (keep_tail, "facts lost at"),
        (over_budget, "for a budget of"),
        (best_first_order, "the kept sentences are not in their order in the context"),
        (crashes_on_empty, "compress raised ValueError on an empty context"),
        (longest_sentences_first, "facts lost at"),
    ],
)
def test_6_3_wrong_answers_are_rejected(answer, phrase):
    assert_rejected("6.3", answer, phrase)


def test_6_3_stub_is_not_attempted():
    assert_not_attempted("6.3", stub_6_3)


# ----- 6.4 ------------------------------------------------------------------------------------
async def route(client, text, labels):
    first, second = await asyncio.gather(
        *(client.messages.create(**label_request(text, labels, model=CHEAP, phrasing=i)) for i in (0, 1))
    )
    a, b = parse_label(first, labels), parse_label(second, labels)
    if a is not None and a == b:
        return a
    reply = await client.messages.create(**label_request(text, labels, model=MID))
    return parse_label(reply, labels) or a or labels[0]


async def route_sequential(client, text, labels):
    """Written differently: one phrasing at a time, stop at the first disagreement."""
    answers = []
    for phrasing in (2, 0):
        reply = await client.messages.create(**label_request(text, labels, model=CHEAP, phrasing=phrasing))
        answers.append(parse_label(reply, labels))
        if answers[0] is None or answers[-1] != answers[0]:
            break
    if len(answers) == 2 and answers[0] == answers[1]:
        return answers[0]
    reply = await client.messages.create(**label_request(text, labels, model=MID))
    return parse_label(reply, labels)


def always(model):
    async def answer(client, text, labels):
        return parse_label(await client.messages.create(**label_request(text, labels, model=model)), labels)

    return answer


async def stub_6_4(client, text, labels):
    raise NotImplementedError("Exercise 6.4")


@pytest.mark.parametrize("answer", [route, route_sequential])
def test_6_4_solutions_pass(answer):
    passes("6.4", answer)


@pytest.mark.parametrize(
    "answer, phrase",
    [
        (always(CHEAP), "is below the target"),
        (always(MID), "of Sonnet 5.5's"),
        (always(TOP), "of Sonnet 5.5's"),
    ],
)
def test_6_4_wrong_answers_are_rejected(answer, phrase):
    assert_rejected("6.4", answer, phrase)


def test_6_4_stub_is_not_attempted():
    assert_not_attempted("6.4", stub_6_4)


# ----- 6.5 ------------------------------------------------------------------------------------
class SpendGuard:
    def __init__(self, budget):
        self.budget, self.spent, self.reserved = Decimal(budget), Decimal(0), Decimal(0)

    async def call(self, client, body):
        worst = worst_case_cost(body)
        if self.spent + self.reserved + worst > self.budget:
            raise RuntimeError("over budget")
        self.reserved += worst
        try:
            message = await client.messages.create(**body)
        except anthropic.APIStatusError:
            self.reserved -= worst
            raise
        except BaseException:
            self.reserved -= worst
            self.spent += worst
            raise
        self.reserved -= worst
        self.spent += pricing.cost(message.usage, body["model"])
        return message


class LockedGuard:
    """Written differently: an asyncio.Lock around the bookkeeping and a ledger of open reservations."""

    def __init__(self, budget):
        self.budget, self.spent, self.open = Decimal(budget), Decimal(0), {}
        self.lock = asyncio.Lock()

    async def call(self, client, body):
        p = pricing.price(body["model"])
        from course_utils.tokens import count_request

        worst = (count_request(body) * p.input_per_mtok + body["max_tokens"] * p.output_per_mtok) / M
        async with self.lock:
            if self.spent + sum(self.open.values(), Decimal(0)) + worst > self.budget:
                raise ValueError("budget exhausted")
            token = object()
            self.open[token] = worst
        actual = worst  # unless the API answers: a lost answer may have been billed
        try:
            message = await client.messages.create(**body)
            actual = pricing.cost(message.usage, body["model"])
            return message
        except anthropic.APIStatusError:
            actual = Decimal(0)  # an error response is not billed
            raise
        finally:
            async with self.lock:
                self.open.pop(token)
                self.spent += actual


class ReleasesOnAnyError(SpendGuard):
    """The other reading of "give the reservation back": also for a lost answer the provider billed."""

    async def call(self, client, body):
        worst = worst_case_cost(body)
        if self.spent + self.reserved + worst > self.budget:
            raise RuntimeError("over budget")
        self.reserved += worst
        try:
            message = await client.messages.create(**body)
        except Exception:
            self.reserved -= worst
            raise
        self.reserved -= worst
        self.spent += pricing.cost(message.usage, body["model"])
        return message


class RefusesAnExactFit(SpendGuard):
    async def call(self, client, body):
        if self.spent + self.reserved + worst_case_cost(body) >= self.budget:
            raise RuntimeError("over budget")
        return await super().call(client, body)


class ReservesTheOutputOnly(SpendGuard):
    """Reserves max_tokens of output but forgets the input side of the worst case."""

    async def call(self, client, body):
        p = pricing.price(body["model"])
        worst = body["max_tokens"] * p.output_per_mtok / M
        if self.spent + self.reserved + worst > self.budget:
            raise RuntimeError("over budget")
        self.reserved += worst
        try:
            message = await client.messages.create(**body)
        except anthropic.APIStatusError:
            self.reserved -= worst
            raise
        self.reserved -= worst
        self.spent += pricing.cost(message.usage, body["model"])
        return message


class SettlesToTheWorstCase(SpendGuard):
    async def call(self, client, body):
        message = await super().call(client, body)
        self.spent += worst_case_cost(body) - pricing.cost(message.usage, body["model"])
        return message


class GuardWithAReservationContext:
    """Written differently: an async context manager owns the reservation; a dict of open holds."""

    def __init__(self, budget):
        self.budget, self.spent, self.holds = Decimal(budget), Decimal(0), {}

    def _hold(self, worst):
        import contextlib

        guard = self

        @contextlib.asynccontextmanager
        async def hold():
            if guard.spent + sum(guard.holds.values(), Decimal(0)) + worst > guard.budget:
                raise RuntimeError("budget exhausted")
            token = object()
            guard.holds[token] = worst
            outcome = {"actual": worst}  # unless told otherwise, a lost answer is charged its worst case
            try:
                yield outcome
            except anthropic.APIStatusError:
                outcome["actual"] = Decimal(0)
                raise
            finally:
                del guard.holds[token]
                guard.spent += outcome["actual"]

        return hold()

    async def call(self, client, body):
        async with self._hold(worst_case_cost(body)) as outcome:
            message = await client.messages.create(**body)
            outcome["actual"] = pricing.cost(message.usage, body["model"])
            return message


class SwallowsLostAnswers(SpendGuard):
    async def call(self, client, body):
        try:
            return await super().call(client, body)
        except anthropic.APIConnectionError:
            return None


class LibraryGuard(ReferenceSpendGuard):
    """The shortcut: the library's guard under the exercise's interface."""

    async def call(self, client, body):
        return await self.create(client, **body)


class WrapsTheLibrary:
    def __init__(self, budget):
        self.inner = ReferenceSpendGuard(budget)

    async def call(self, client, body):
        return await self.inner.create(client, **body)


_EARLIER = ReferenceSpendGuard(Decimal(1))


class HoldsAnEarlierLibraryGuard:
    def __init__(self, budget):
        self.inner = _EARLIER
        self.inner.budget = Decimal(budget)

    async def call(self, client, body):
        return await self.inner.create(client, **body)


class CheckThenSpend:
    def __init__(self, budget):
        self.budget, self.spent = Decimal(budget), Decimal(0)

    async def call(self, client, body):
        if self.spent + worst_case_cost(body) > self.budget:
            raise RuntimeError("over budget")
        message = await client.messages.create(**body)
        self.spent += pricing.cost(message.usage, body["model"])
        return message


class NeverSettles(SpendGuard):
    async def call(self, client, body):
        worst = worst_case_cost(body)
        if self.spent + self.reserved + worst > self.budget:
            raise RuntimeError("over budget")
        self.reserved += worst
        return await client.messages.create(**body)


class KeepsFailedReservations(SpendGuard):
    async def call(self, client, body):
        worst = worst_case_cost(body)
        if self.spent + self.reserved + worst > self.budget:
            raise RuntimeError("over budget")
        self.reserved += worst
        message = await client.messages.create(**body)
        self.reserved -= worst
        self.spent += pricing.cost(message.usage, body["model"])
        return message


class Stub65:
    def __init__(self, budget):
        pass

    async def call(self, client, body):
        raise NotImplementedError("Exercise 6.5")


@pytest.mark.parametrize("answer", [SpendGuard, LockedGuard, GuardWithAReservationContext])
def test_6_5_solutions_pass(answer):
    passes("6.5", answer)


@pytest.mark.parametrize(
    "answer, phrase",
    [
        (CheckThenSpend, "over the"),
        (NeverSettles, "budget runs out early"),
        (KeepsFailedReservations, "after a 400 the guard refused"),
        (ReleasesOnAnyError, "after an answer was lost"),
        (RefusesAnExactFit, "a request whose worst case equals the whole budget was refused"),
        (ReservesTheOutputOnly, "over the"),
        (SettlesToTheWorstCase, "budget runs out early"),
        (SwallowsLostAnswers, "a call whose connection dropped returned instead of raising"),
        (ReferenceSpendGuard, "your answer is cost.SpendGuard"),
        (LibraryGuard, "your answer subclasses cost.SpendGuard"),
        (WrapsTheLibrary, "your function called cost.SpendGuard"),
        (HoldsAnEarlierLibraryGuard, "your function called cost.SpendGuard.create"),
    ],
)
def test_6_5_wrong_answers_are_rejected(answer, phrase):
    assert_rejected("6.5", answer, phrase)


def test_6_5_stub_is_not_attempted():
    assert_not_attempted("6.5", Stub65)
