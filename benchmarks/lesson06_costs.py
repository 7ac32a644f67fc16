"""Lesson 06: the README's figures, measured on the simulator (virtual time, seed 0).

Run: ``.venv/bin/python benchmarks/lesson06_costs.py`` (about a minute of CPU; the figures are the
same on any machine).

1. **Routing**: every current model alone and the cascade routers on all dev tickets and, separately,
   on the hidden tickets of check 6.4: accuracy, cost per 1,000 tickets, the router's cost as a share of
   Sonnet 5.5's and whether the target (within 1 point of Sonnet 5.5 at <= 40% of its cost) is met.
2. **Compression**: fact recall and mean input tokens at several budgets, BM25 selection vs keeping
   the head or the tail.
3. **Semantic cache**: paraphrase hit rate and near-miss false-hit rate at a few thresholds, with and
   without the identifier guard.
4. **Chat history** (the notebook's defaults: 60 turns in conversations of 12, Sonnet 5.5): resend,
   automatic caching, per-question compression + caching, caching + compressed notes.
5. **Effort** (the notebook's 150 dev tickets, hidden thinking billed at the ledger's median triage
   output): Opus 5.5 at its default, high and low; Sonnet 5.5 at its default and low; the router.
6. **Incident week**: the ledger's daily cost, the first prompt-length alert and the last day re-priced
   with :func:`course_utils.cost.incident_steps` from sections 4 and 5: the figure the notebook prints.
"""

from __future__ import annotations

import argparse
import pandas as pd

from course_utils.concurrency import LABELS
from course_utils.cost import (
    CHAT_POLICIES,
    CascadeRouter,
    SingleModel,
    apply_steps,
    chat_policies,
    compress,
    conversations,
    cost_report,
    daily_trend,
    effort_policies,
    effort_table,
    hidden_thinking_from,
    incident_steps,
    keep_head,
    keep_tail,
    load_cache_pairs,
    load_labelled,
    load_ledger,
    load_recall,
    policy_table,
    prompt_growth_alerts,
    recall_eval,
    same_identifiers,
    threshold_curve,
    total,
)
from course_utils.resilience import on_virtual_time, sim

CHEAP, MID, TOP = "claude-haiku-5-5", "claude-sonnet-5-5", "claude-opus-5-5"


def routing(split: str, n: int | None = None) -> pd.DataFrame:
    tickets = load_labelled(n, split=split)
    policies = [SingleModel(m, LABELS) for m in (CHEAP, "claude-sonnet-4-6", MID, TOP)]
    policies += [CascadeRouter(CHEAP, MID, LABELS), CascadeRouter(CHEAP, TOP, LABELS)]

    async def run() -> pd.DataFrame:
        return await policy_table(sim(seed=0).async_client(max_retries=0), tickets, policies)

    table = on_virtual_time(run, seed=0)
    print(f"\n## Routing on {len(tickets)} {split} tickets")
    columns = ["accuracy", "cost_per_1k", "escalation_rate", "output_per_item", "p50_s", "p95_s"]
    print(table[columns].round(4).to_string())
    router, mid = table.loc[CascadeRouter(CHEAP, MID, LABELS).name], table.loc[MID]
    share = router["cost_per_1k"] / mid["cost_per_1k"]
    met = router["accuracy"] >= mid["accuracy"] - 0.01 and share <= 0.40
    print(
        f"router {router['accuracy']:.1%} vs {MID} {mid['accuracy']:.1%} at {share:.0%} of its cost: "
        f"target {'met' if met else 'NOT met'}"
    )
    return table


def chat_history() -> pd.DataFrame:
    chats = conversations(load_recall(60), 12)

    async def run() -> tuple[pd.DataFrame, pd.DataFrame]:
        client = sim(seed=0).async_client(max_retries=0)
        return await chat_policies(client, chats, model=MID, shrink=compress, notes_budget=40, history_budget=1500)

    _, summary = on_virtual_time(run, seed=0)
    naive = summary.loc[CHAT_POLICIES[0].name, "cost_per_conversation"]
    print(f"\n## Chat history: {len(chats)} conversations of 12 turns on {MID}")
    shown = summary.assign(
        cost_per_conversation=summary["cost_per_conversation"].map(float),
        share_of_resending=summary["cost_per_conversation"].map(lambda c: float(c / naive)),
    )
    print(shown.round(4).to_string())
    return summary


def effort(ledger: pd.DataFrame) -> pd.DataFrame:
    hidden = hidden_thinking_from(ledger, "triage")
    table = effort_table(load_labelled(150), effort_policies(LABELS, cheap=CHEAP, mid=MID, top=TOP), hidden=hidden)
    print(f"\n## Effort on 150 dev tickets, hidden thinking billed {hidden['medium']} tokens")
    print(table[["accuracy", "cost_per_1k", "output_per_item", "p50_s", "p95_s"]].round(4).to_string())
    return table


def compression(budgets: list[int]) -> None:
    items = load_recall()

    async def run() -> list[dict]:
        client = sim(seed=0).async_client(max_retries=0)
        rows = [await recall_eval(client, items, method="full", shrink=None, budget=0)]
        for budget in budgets:
            for name, fn in (("bm25", compress), ("head", keep_head), ("tail", keep_tail)):
                rows.append(await recall_eval(client, items, method=name, shrink=fn, budget=budget))
        return rows

    table = pd.DataFrame(on_virtual_time(run, seed=0))
    print(f"\n## Compression on {len(items)} fact-recall items")
    print(table[["method", "budget", "recall", "input_tokens"]].round(3).to_string(index=False))


def semantic() -> None:
    pairs = load_cache_pairs()
    thresholds = [0.6, 0.7, 0.8, 0.9]
    plain = threshold_curve(pairs, thresholds).set_index("threshold")
    guarded = threshold_curve(pairs, thresholds, guard=same_identifiers).set_index("threshold")
    plain["false_hits_with_guard"] = guarded["near_miss_false_hit_rate"]
    print(f"\n## Semantic cache on {len(pairs)} pairs")
    print(plain.round(3).to_string())


def incident(ledger: pd.DataFrame, chat: pd.DataFrame, efforts: pd.DataFrame) -> None:
    per_day = cost_report(ledger, by=("day",)).set_index("day")["cost"]
    alerts = prompt_growth_alerts(daily_trend(ledger, by=("feature",)), 0.5, scope="feature")
    day = ledger[ledger["day"] == ledger["day"].max()]
    table, optimised = apply_steps(day, incident_steps(chat, efforts, triage_model=TOP))
    print("\n## Incident week")
    print(f"daily cost {per_day.iloc[0]:.2f} -> {per_day.iloc[-1]:.2f} USD ({per_day.iloc[-1] / per_day.iloc[0]:.1f}x)")
    print(f"first alert: {alerts[0]}")
    print(table.round(2).to_string())
    print(f"last day re-priced with every technique: {total(day):.2f} -> {total(optimised):.2f} USD")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", type=int, nargs="*", default=[20, 40, 80])
    args = parser.parse_args()
    routing("dev")
    routing("hidden")
    routing("dev", 150)
    compression(args.budgets)
    semantic()
    ledger = load_ledger()
    incident(ledger, chat_history(), effort(ledger))


if __name__ == "__main__":
    main()
