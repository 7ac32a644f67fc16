"""Checks for exercise 7.2 ``DRRQueue``: deficit round robin, weighted shares, no starvation, FIFO per tenant."""

from __future__ import annotations

import random
from typing import Any

from ... import tenancy
from ..framework import CaseFailed, Exercise, expect


# =============================================================================================
# 7.2 DRRQueue(weights, quantum): push(tenant, item, size), pop() -> (tenant, item)
# =============================================================================================
drr = Exercise(
    "7.2",
    "A fair scheduler: deficit round robin",
    points=3,
    signature="DRRQueue(weights, quantum); q.push(tenant, item, size); q.pop() -> (tenant, item)",
    reference={"tenancy.FairQueue": tenancy.FairQueue, "tenancy.FairScheduler": tenancy.FairScheduler},
    task="schedule tenants fairly",
    hints=[
        "Keep a FIFO per tenant and a round-robin list of tenants with work. On a tenant's turn add "
        "quantum * weight to its deficit, then pop from its queue while the head's size fits the deficit; "
        "then move on to the next tenant.",
        "A tenant whose queue empties leaves the list with its deficit reset to 0. Remember, between pop() "
        "calls, whose turn it is and whether that turn's quantum was already added.",
    ],
)


def _pop(q: Any) -> tuple[str, Any]:
    got = q.pop()
    if not (isinstance(got, tuple) and len(got) == 2):
        raise CaseFailed(
            "pop() must return a (tenant, item) pair", expected="(tenant, item)", got=got, hint="return tenant, item"
        )
    return got


@drr.case("shares of the tokens served follow the weights within 10%")
def _shares(cls) -> None:
    weights = {"free": 1, "pro": 2, "enterprise": 4}
    q = cls(weights, 500)
    rng = random.Random(7)
    sizes: dict[tuple[str, int], int] = {}
    for tenant in weights:  # arrival in blocks: a FIFO would serve the first tenant only
        for i in range(400):
            sizes[(tenant, i)] = rng.choice([100, 250, 400, 800])
            q.push(tenant, (tenant, i), sizes[(tenant, i)])
    served = {t: 0 for t in weights}
    for _ in range(300):
        tenant, item = _pop(q)
        served[tenant] += sizes[item]
    total = sum(served.values())
    for tenant, w in weights.items():
        share, target = served[tenant] / total, w / sum(weights.values())
        expect(
            abs(share - target) <= 0.10 * target,
            f"tenant {tenant} (weight {w}) got {share:.1%} of the tokens served while every tenant had work; "
            f"its weight entitles it to {target:.1%}",
            expected=f"{target:.1%} +/- 10%",
            got=f"{share:.1%}",
            hint="Serve in rounds, not in arrival order: each round, a tenant may send quantum * weight tokens' "
            "worth (its deficit), counting each request's size in tokens, not the number of requests; unused credit carries "
            "over to the tenant's next turn while it has work (a request larger than one turn's credit waits).",
        )


@drr.case("no tenant starves: a light tenant is served within one round of a heavy one")
def _starve(cls) -> None:
    q = cls({"bulk": 100, "small": 1}, 100)
    for i in range(2000):
        q.push("bulk", i, 100)
    q.push("small", "hello", 100)
    order = [_pop(q)[0] for _ in range(400)]
    pos = order.index("small") if "small" in order else None
    expect(
        pos is not None and pos <= 101,
        "tenant small was "
        + (f"served only at pop {pos + 1}" if pos is not None else "not served in 400 pops")
        + " behind a weight-100 tenant with 2,000 requests queued",
        expected="within the first 101 pops (one round)",
        got=f"pop {pos + 1}" if pos is not None else "never",
        hint="Strict priority starves: visit every tenant with work in each round. A weight scales the "
        "credit per round, it does not let a tenant go first forever.",
    )


@drr.case("each tenant's requests leave in the order they came")
def _fifo(cls) -> None:
    q = cls({"a": 1, "b": 1}, 300)
    for i in range(20):
        q.push("a", i, 100 + 50 * (i % 3))
        q.push("b", i, 120)
    got: dict[str, list] = {"a": [], "b": []}
    for _ in range(40):
        tenant, item = _pop(q)
        got[tenant].append(item)
    expect(
        got["a"] == list(range(20)) and got["b"] == list(range(20)),
        "a tenant's requests were reordered",
        expected={"a": list(range(20)), "b": list(range(20))},
        got=got,
        hint="Keep one FIFO (collections.deque) per tenant and always pop its head.",
    )
    # A head that does not fit the remaining credit waits for the next round, even when a cheaper item
    # behind it would fit now: skipping ahead reorders the tenant's requests.
    q = cls({"a": 1, "b": 1}, 300)
    sizes = [200, 200, 50, 200, 200, 50]  # after 200, 100 of credit is left: the 50 behind the next 200 fits
    for i, c in enumerate(sizes):
        q.push("a", i, c)
        q.push("b", i, 100)
    order = [item for tenant, item in (_pop(q) for _ in range(2 * len(sizes))) if tenant == "a"]
    expect(
        order == list(range(len(sizes))),
        f"tenant a's requests (sizes {sizes}) left in the order {order}: a cheaper request overtook the head",
        expected=list(range(len(sizes))),
        got=order,
        hint="Only the head of a tenant's queue may go: when it does not fit the credit, end the tenant's turn "
        "(the credit carries over) instead of looking for a smaller request behind it.",
    )


@drr.case("an idle tenant keeps no credit; a tenant missing from weights has weight 1")
def _idle_credit(cls) -> None:
    q = cls({"b": 1}, 1000)
    q.push("a", "a0", 100)
    first = _pop(q)
    expect(
        first == ("a", "a0"),
        "the only queued item was not popped first",
        expected=("a", "a0"),
        got=first,
        hint="A tenant missing from weights has weight 1 and is served like any other.",
    )
    for i in range(6):
        q.push("b", f"b{i}", 500)
    for i in range(3):
        q.push("a", f"a{i + 1}", 500)
    order = [_pop(q)[1] for _ in range(6)]
    expected = ["b0", "b1", "a1", "a2", "b2", "b3"]
    expect(
        order == expected,
        "after tenant a went idle with 900 of unused credit, it came back and sent "
        + f"{sum(x.startswith('a') for x in order[:5])} requests before b's second turn",
        expected=expected,
        got=order,
        hint="When a tenant's queue empties, remove it from the round and set its deficit to 0: credit saved "
        "while idle would let it burst ahead of tenants that kept working. Tenants without a weight weigh 1.",
    )
