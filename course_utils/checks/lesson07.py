"""Checks for lesson 07 (Multi-tenant AI systems).

7.1 ``TenantRateLimiter`` (per-tenant token buckets), 7.2 ``DRRQueue`` (deficit round robin),
7.3 ``tenant_cache_key`` (isolation), 7.4 ``TenantBudget`` (reserve and settle under
concurrency), 7.5 ``tenant_charges`` (reconciliation with the provider's ledger). Time is always
virtual: limiter cases drive a :class:`~course_utils.clock.VirtualClock`, async cases run on the
checks' virtual-time loop against an in-process simulator, whose ledger grades 7.4 and 7.5.
"""

from __future__ import annotations

import asyncio
import copy
import inspect
import random
from decimal import Decimal
from typing import Any

import anthropic

from ..clock import VirtualClock
from ..cost import worst_case_cost
from ..pricing import cost as usage_cost
from ..pricing import price
from ..resilience.fakes import status_error
from .. import tenancy
from ..tenancy import TenantRegistry, tenant_tag
from .framework import CaseFailed, Exercise, expect
from .another_process import another_process
from .sim import probe

MODEL = "claude-haiku-5-5"


def _money(x: Decimal) -> str:
    """Exact dollars, every digit shown (a difference of 1e-18 must be visible)."""
    return ("-" if x < 0 else "") + "$" + format(abs(x), "f")


# =============================================================================================
# 7.1 TenantRateLimiter(rpm, clock).acquire(tenant_id) -> float
# =============================================================================================
limiter = Exercise(
    "7.1",
    "A per-tenant rate limiter",
    points=3,
    signature="TenantRateLimiter(rpm, clock); limiter.acquire(tenant_id) -> float",
    reference={"tenancy.MemoryLimiter": tenancy.MemoryLimiter, "tenancy.RedisLimiter": tenancy.RedisLimiter},
    task="limit each tenant's rate",
    hints=[
        "One token bucket per tenant (a dict keyed by tenant id), each holding at most rpm requests and "
        "refilling at rpm / 60 per second of clock.monotonic(). acquire returns 0.0 and takes one token, or "
        "takes nothing and returns the seconds until one token is there.",
        "level = min(rpm, level + (now - last) * rpm / 60); last = now; if level >= 1: level -= 1; return 0.0; "
        "return (1 - level) / (rpm / 60).",
    ],
)


def _make_limiter(cls: Any, rpm: int, clock: VirtualClock) -> Any:
    try:
        return cls(rpm, clock)
    except TypeError as err:
        raise CaseFailed(
            f"TenantRateLimiter({rpm}, clock) could not be built: {err}",
            hint="The constructor takes the requests per minute and the clock: __init__(self, rpm, clock).",
        ) from None


def _acquire(lim: Any, tenant: str) -> float:
    got = lim.acquire(tenant)
    if isinstance(got, bool) or not isinstance(got, (int, float)):
        raise CaseFailed(
            f"acquire({tenant!r}) returned {got!r}",
            expected="0.0 when admitted, else the seconds to wait",
            got=got,
            hint="Return a number: 0.0 when the request may go, otherwise how long until it could.",
        )
    return float(got)


@limiter.case("tenant A's flood does not delay tenant B")
def _flood(cls) -> None:
    clock = VirtualClock()
    lim = _make_limiter(cls, 10, clock)
    admitted = sum(_acquire(lim, "acme") == 0 for _ in range(40))
    expect(
        admitted == 10,
        f"a flood of 40 requests admitted {admitted} of tenant acme's at once, with 10 per minute",
        expected=10,
        got=admitted,
        hint="A fresh tenant's bucket holds rpm requests: the first rpm go, the rest wait.",
    )
    wait = _acquire(lim, "globex")
    expect(
        wait == 0,
        f"tenant globex, which had sent nothing, was told to wait {wait:.2f} s after acme's flood",
        expected=0.0,
        got=wait,
        hint="One bucket shared by every tenant is the noisy neighbour again: keep a bucket per tenant id.",
    )


@limiter.case("refills continuously at rpm / 60 per second and says exactly how long to wait")
def _refill(cls) -> None:
    clock = VirtualClock()
    lim = _make_limiter(cls, 12, clock)  # one request every 5 s
    for _ in range(12):
        _acquire(lim, "acme")
    wait = _acquire(lim, "acme")
    expect(
        abs(wait - 5.0) < 0.01,
        f"with 12 per minute spent, the next request was told to wait {wait:.3f} s",
        expected=5.0,
        got=round(wait, 3),
        hint="A bucket refilling at rpm / 60 tokens per second has one token again after 60 / rpm seconds.",
    )
    clock.advance_sync(5.0)
    wait = _acquire(lim, "acme")
    expect(
        wait == 0,
        f"5 s after the bucket ran dry (the wait it announced), acme was still refused ({wait:.2f} s more)",
        expected=0.0,
        got=wait,
        hint="Refill from the clock on every call: level += (now - last) * rpm / 60. A bucket that never "
        "refills locks a tenant out forever.",
    )


def _retry_after_matches(wait: float, exact: float) -> bool:
    """The announced wait is the exact fractional time, as the statement says (not rounded up)."""
    return abs(wait - exact) < 0.01


@limiter.case("a partly empty bucket: the wait is what is missing, and a refused call loses no refill")
def _partial(cls) -> None:
    clock = VirtualClock()
    lim = _make_limiter(cls, 12, clock)  # 0.2 tokens per second
    for _ in range(12):
        _acquire(lim, "acme")
    clock.advance_sync(2.5)  # the bucket holds 0.5 of a token: neither full nor empty
    wait = _acquire(lim, "acme")
    expect(
        _retry_after_matches(wait, 2.5),
        f"with half a token in the bucket (2.5 s of refill at 12 per minute), acme was told to wait {wait:.3f} s",
        expected="2.5 s (or 3 s, rounded up to whole seconds)",
        got=f"{wait:.3f} s",
        hint="The wait is what is missing divided by the refill rate: (1 - level) / (rpm / 60), not a full "
        "60 / rpm period.",
    )
    clock.advance_sync(2.5)  # the wait it announced: now exactly one token
    wait = _acquire(lim, "acme")
    expect(
        wait == 0,
        f"after waiting the 2.5 s it was told, acme was refused again ({wait:.3f} s more): the refused call "
        "threw away the refill up to it",
        expected=0.0,
        got=wait,
        hint="On every call first add the refill since the last call (level += (now - last) * rpm / 60; "
        "last = now), then decide: a refusal keeps the level it computed.",
    )
    lim7 = _make_limiter(cls, 7, clock)  # 60 / 7 = 8.571... s per token: not a whole number
    for _ in range(7):
        _acquire(lim7, "initech")
    wait = _acquire(lim7, "initech")
    expect(
        _retry_after_matches(wait, 60 / 7),
        f"with 7 per minute spent, initech was told to wait {wait:.3f} s",
        expected="8.571 s (or 9 s, rounded up)",
        got=f"{wait:.3f} s",
        hint="One token takes 60 / rpm seconds at rpm / 60 per second; don't round it down.",
    )


@limiter.case("a refusal takes nothing, and an idle tenant banks at most one bucket")
def _idle(cls) -> None:
    clock = VirtualClock()
    lim = _make_limiter(cls, 12, clock)
    for _ in range(12):
        _acquire(lim, "acme")
    for _ in range(20):
        _acquire(lim, "acme")  # refused: must not take tokens
    clock.advance_sync(5.0)
    wait = _acquire(lim, "acme")
    expect(
        wait == 0,
        f"after 20 refused requests and one refill period, acme was still refused ({wait:.2f} s more)",
        expected=0.0,
        got=wait,
        hint="Take a token only when one is there; a refused request changes nothing.",
    )
    clock.advance_sync(3600.0)
    admitted = sum(_acquire(lim, "acme") == 0 for _ in range(40))
    expect(
        admitted == 12,
        f"after an idle hour, {admitted} requests went at once with 12 per minute",
        expected=12,
        got=admitted,
        hint="Cap the level at rpm: level = min(rpm, level + elapsed * rpm / 60).",
    )


# =============================================================================================
# 7.2 DRRQueue(weights, quantum): push(tenant, item, cost), pop() -> (tenant, item)
# =============================================================================================
drr = Exercise(
    "7.2",
    "A fair scheduler: deficit round robin",
    points=3,
    signature="DRRQueue(weights, quantum); q.push(tenant, item, cost); q.pop() -> (tenant, item)",
    reference={"tenancy.FairQueue": tenancy.FairQueue, "tenancy.FairScheduler": tenancy.FairScheduler},
    task="schedule tenants fairly",
    hints=[
        "Keep a FIFO per tenant and a round-robin list of tenants with work. On a tenant's turn add "
        "quantum * weight to its deficit, then pop from its queue while the head's cost fits the deficit; "
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
    costs: dict[tuple[str, int], int] = {}
    for tenant in weights:  # arrival in blocks: a FIFO would serve the first tenant only
        for i in range(400):
            costs[(tenant, i)] = rng.choice([100, 250, 400, 800])
            q.push(tenant, (tenant, i), costs[(tenant, i)])
    served = {t: 0 for t in weights}
    for _ in range(300):
        tenant, item = _pop(q)
        served[tenant] += costs[item]
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
            "worth (its deficit), counting each request's cost, not the number of requests; unused credit carries "
            "over to the tenant's next turn while it has work (a request dearer than one turn's credit waits).",
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
    costs = [200, 200, 50, 200, 200, 50]  # after 200, 100 of credit is left: the 50 behind the next 200 fits
    for i, c in enumerate(costs):
        q.push("a", i, c)
        q.push("b", i, 100)
    order = [item for tenant, item in (_pop(q) for _ in range(2 * len(costs))) if tenant == "a"]
    expect(
        order == list(range(len(costs))),
        f"tenant a's requests (costs {costs}) left in the order {order}: a cheaper request overtook the head",
        expected=list(range(len(costs))),
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


# =============================================================================================
# 7.3 tenant_cache_key(tenant, body) -> str
# =============================================================================================
isolation = Exercise(
    "7.3",
    "Tenant-scoped cache keys",
    points=3,
    signature="tenant_cache_key(tenant: TenantContext, body: dict) -> str",
    reference={"tenancy.cache_key": tenancy.cache_key, "tenancy.TenantCache": tenancy.TenantCache},
    task="key a tenant's cache",
    hints=[
        "Hash the authenticated tenant's id together with the whole request: json.dumps(body, sort_keys=True) "
        "makes equal requests equal strings.",
        "Take the tenant from tenant.tenant_id (authentication), never from the body: a user controls the body, "
        "including metadata.user_id.",
    ],
)

_PROMPTS = [f"Summarise the open tickets of account {i}." for i in range(12)]


def _registry(n: int) -> tuple[TenantRegistry, list[Any]]:
    reg = TenantRegistry()
    for i in range(n):
        reg.register(f"t{i:02d}", "pro")
    return reg, [reg.context(t) for t in reg]


def _body(prompt: str, tag: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"model": MODEL, "max_tokens": 200, "messages": [{"role": "user", "content": prompt}]}
    if tag is not None:
        body["metadata"] = {"user_id": tag}
    return body


def _key(fn: Any, tenant: Any, body: dict) -> str:
    given = copy.deepcopy(body)
    key = fn(tenant, given)
    if given != body:
        raise CaseFailed(
            "tenant_cache_key changed the request body it was given",
            expected=body,
            got=given,
            hint="Key a serialisation of the body; never write the tenant (or anything) into the caller's dict: "
            "the same body is sent to the provider next.",
        )
    if not isinstance(key, str) or not key:
        raise CaseFailed(
            "tenant_cache_key must return a non-empty str",
            expected="a str",
            got=key,
            hint="Return a string, e.g. a sha256 hex digest.",
        )
    return key


@isolation.case("colliding prompts of many tenants never meet (randomized attack)")
def _collide(fn) -> None:
    _, tenants = _registry(30)
    rng = random.Random(11)
    cache: dict[str, tuple[str, str]] = {}
    for n in range(3000):
        tenant = rng.choice(tenants)
        prompt = rng.choice(_PROMPTS)
        body = _body(prompt)  # the same questions, word for word, from every tenant
        key = _key(fn, tenant, body)
        owner, answered = cache.setdefault(key, (tenant.tenant_id, prompt))
        if owner != tenant.tenant_id:
            raise CaseFailed(
                f"request {n + 1}: tenant {tenant.tenant_id} was served the answer cached for tenant {owner} "
                f"(same prompt, same key)",
                expected=f"a key of {tenant.tenant_id}'s own",
                got=key,
                hint="The prompt alone is not a key: two customers ask the same question and get answers built "
                "from their own data. Put tenant.tenant_id in the key.",
            )
        if answered != prompt:
            raise CaseFailed(
                f"request {n + 1}: tenant {tenant.tenant_id} asking {prompt!r} was served the answer to {answered!r}",
                expected="one key per request",
                got=key,
                hint="The key must cover the whole request as well as the tenant.",
            )


@isolation.case("the tenant comes from authentication, not from the request body")
def _forged(fn) -> None:
    _, (victim, attacker) = _registry(2)
    stolen = _body(_PROMPTS[0], tenant_tag(victim.tenant_id))
    stolen["tenant_id"] = victim.tenant_id
    victim_key = _key(fn, victim, dict(stolen))
    attack_key = _key(fn, attacker, dict(stolen))  # the attacker copies the victim's body, tag and all
    expect(
        attack_key != victim_key,
        f"tenant {attacker.tenant_id}, sending tenant {victim.tenant_id}'s tag and tenant_id in the body, got "
        f"{victim.tenant_id}'s cache key",
        expected="a key of the authenticated tenant's own",
        got=attack_key,
        hint="Anything in the body is under the user's control, metadata.user_id included. Use tenant.tenant_id, "
        "which came from the API key the request was authenticated with.",
    )


@isolation.case("a cache still works: same tenant and request, same key; anything else, another key")
def _works(fn) -> None:
    _, (a, b) = _registry(2)
    body = _body(_PROMPTS[1])
    reordered = dict(reversed(list(body.items())))
    first, again = _key(fn, a, body), _key(fn, a, reordered)
    expect(
        first == again,
        "the same tenant sending the same request (keys in another order) got a different key",
        expected="the same key both times",
        got="two different keys",
        hint="Keys must be deterministic: json.dumps(body, sort_keys=True), then a hash (hashlib.sha256), never "
        "uuid4 or id().",
    )
    nested = {**body, "tools": [{"name": "lookup", "input_schema": {"type": "object", "properties": {}}}],
              "metadata": {"user_id": "u-1"}}  # fmt: skip
    renested = {
        "metadata": {"user_id": "u-1"},
        "tools": [{"input_schema": {"properties": {}, "type": "object"}, "name": "lookup"}],
        **{k: body[k] for k in reversed(list(body))},
    }
    expect(
        _key(fn, a, nested) == _key(fn, a, renested),
        "the same request with the keys of its nested dicts (tools, metadata) in another order got another key",
        expected=_key(fn, a, nested),
        got=_key(fn, a, renested),
        hint="Sort the keys at every depth: json.dumps(body, sort_keys=True) does; sorting body.items() does not.",
    )
    with another_process(fn):
        elsewhere = _key(fn, a, body)
    expect(
        elsewhere == first,
        "the key changes from one process to the next (it depends on Python's hash())",
        expected="the same key in every process",
        got="another key in another process",
        hint="hash() of a str is salted per process (PYTHONHASHSEED): a cache shared by several workers, or "
        "restarted, would never hit. Use hashlib (sha256) for a stable digest.",
    )
    other = _key(fn, a, _body(_PROMPTS[2]))
    expect(
        other != first,
        "two different prompts of the same tenant got the same key",
        expected="two keys",
        got=first,
        hint="Hash the whole request (model, system, messages, max_tokens ...), not the tenant alone.",
    )
    expect(
        _key(fn, b, body) != first,
        "two tenants got the same key for one request",
        got=first,
        hint="Put tenant.tenant_id in the key.",
    )


# =============================================================================================
# 7.4 TenantBudget(limit).spend(estimate, send)
# =============================================================================================
budget = Exercise(
    "7.4",
    "A budget guard under concurrency",
    points=4,
    signature="TenantBudget(limit); await budget.spend(estimate, send) -> result or None; budget.spent",
    reference={"tenancy.BudgetGuard": tenancy.BudgetGuard, "tenancy.MemoryBudgetStore": tenancy.MemoryBudgetStore},
    task="guard a tenant's budget",
    hints=[
        "Reserve before the first await: if spent + reserved + estimate > limit return None; else reserved += "
        "estimate, and only then await send(). Checking and adding in two steps around the await lets 50 "
        "concurrent requests all pass the check.",
        "try: result, actual = await send(); except anthropic.APIStatusError: reserved -= estimate; raise; "
        "except BaseException: reserved -= estimate; spent += estimate; raise. Then reserved -= estimate; "
        "spent += actual; return result.",
    ],
)

_BODY = {"model": MODEL, "max_tokens": 300, "messages": [{"role": "user", "content": "Write one line on fairness."}]}


async def _spend(b: Any, estimate: Decimal, send: Any) -> Any:
    result = b.spend(estimate, send)
    if not inspect.isawaitable(result):
        raise CaseFailed(
            f"spend returned {type(result).__name__}, not a coroutine",
            hint="Define it with `async def spend(self, estimate, send)` and await send() inside.",
        )
    got = await result
    if isinstance(got, tuple) and len(got) == 2 and isinstance(got[1], Decimal):
        raise CaseFailed(
            "spend returned send()'s (result, actual) pair instead of the result",
            expected="result",
            got=f"({type(got[0]).__name__}, Decimal('{got[1]}'))",
            hint="Unpack it: result, actual = await send(); add actual to spent and return result alone.",
        )
    return got


@budget.case("50 concurrent requests against a nearly spent budget never overshoot it (ledger)")
async def _concurrent_budget(cls) -> None:
    p = probe(tier="unlimited", tag="check07")
    client = p.async_client()
    estimate = worst_case_cost(_BODY)
    b = cls(Decimal("1.00"))
    sent = 0

    async def already_spent() -> tuple[None, Decimal]:
        return None, Decimal("1.00") - 5 * estimate

    async def send() -> tuple[Any, Decimal]:
        nonlocal sent
        sent += 1
        message = await client.messages.create(**_BODY)
        return message, usage_cost(message.usage, MODEL)

    async with p:
        await _spend(b, Decimal("1.00") - 5 * estimate, already_spent)
        results = await asyncio.gather(*(_spend(b, estimate, send) for _ in range(50)))
    provider = p.cost()
    total = Decimal("1.00") - 5 * estimate + provider
    expect(
        total <= Decimal("1.00"),
        f"50 concurrent requests made {sent} provider calls: spent plus the ledger's {_money(provider)} comes to "
        f"{_money(total)} of a $1.00 budget",
        expected="at most $1.00 (5 requests' worst case fit)",
        got=_money(total),
        hint="Check-then-act race: every request checks the budget before any has recorded its cost (the "
        "await is in between). Reserve the estimate in the same step as the check, before awaiting send().",
    )
    admitted = sum(r is not None for r in results)
    expect(
        admitted == 5 == sent,
        f"{admitted} requests were let through and {sent} sent, with room for 5 worst cases",
        expected=5,
        got=sent,
        hint="Admit while spent + reserved + estimate <= limit; refuse the rest without calling send().",
    )
    expect(
        isinstance(b.spent, Decimal) and b.spent == Decimal("1.00") - 5 * estimate + provider,
        "budget.spent does not equal what was really spent (the pre-spent amount plus the ledger's cost)",
        expected=Decimal("1.00") - 5 * estimate + provider,
        got=getattr(b, "spent", None),
        hint="After send() returns, add its actual cost (not the estimate) to spent, as a Decimal.",
    )


@budget.case("reservations are settled back: unused estimate is free again after each reply")
async def _settles(cls) -> None:
    b = cls(Decimal("0.10"))

    async def send() -> tuple[str, Decimal]:
        await asyncio.sleep(0.2)
        return "ok", Decimal("0.002")

    results = [await _spend(b, Decimal("0.01"), send) for _ in range(30)]
    refused = sum(r is None for r in results)
    expect(
        refused == 0,
        f"{refused} of 30 sequential requests were refused: each reserved $0.01 but cost $0.002, so $0.06 "
        f"was spent of $0.10",
        expected="0 refused",
        got=f"{refused} refused",
        hint="Release the reservation when the reply arrives (reserved -= estimate) and add the actual cost: a "
        "reservation never settled holds its money forever.",
    )
    expect(
        b.spent == Decimal("0.060"),
        "budget.spent after 30 replies of $0.002 each is not $0.06",
        expected=Decimal("0.060"),
        got=b.spent,
        hint="spent is the sum of the actual costs send() reported, exact: not the estimates, and never rounded "
        "(a Decimal rounded to cents after each reply loses the small charges).",
    )


@budget.case("a failed call gives its reservation back and raises; a refusal never calls send")
async def _failure(cls) -> None:
    b = cls(Decimal("0.05"))
    calls = 0

    async def boom() -> tuple[str, Decimal]:
        # An error *response* (the API refused the request: nothing was billed): the reservation goes back.
        nonlocal calls
        calls += 1
        raise status_error(529)

    for n in range(3):
        before = calls
        try:
            result = await _spend(b, Decimal("0.04"), boom)
        except anthropic.APIStatusError:
            continue
        if calls == before:
            raise CaseFailed(
                f"after {n} failed call(s) that spent nothing, a $0.04 request was refused by a $0.05 budget",
                expected="send() called (and its error raised)",
                got=f"{result!r} without calling send()",
                hint="A failed call must release its reservation: try/except around await send(), "
                "reserved -= estimate, then raise.",
            )
        raise CaseFailed(
            f"send() raised OverloadedError but spend returned {result!r}: the error was swallowed",
            expected="the OverloadedError re-raised",
            got=repr(result),
            hint="Release the reservation in an except branch, then re-raise (a bare `raise`): the caller must "
            "know the request failed.",
        )

    async def fine() -> tuple[str, Decimal]:
        nonlocal calls
        calls += 1
        return "ok", Decimal("0.04")

    got = await _spend(b, Decimal("0.04"), fine)
    expect(
        got == "ok",
        "after 3 failed calls that spent nothing, a $0.04 request was refused by a $0.05 budget",
        expected="ok",
        got=got,
        hint="A failed call must release its reservation (try/except around await send()).",
    )
    before = calls
    refused = await _spend(b, Decimal("0.04"), fine)
    expect(
        refused is None and calls == before,
        "a request that does not fit was not refused without calling send()",
        expected="None, send not called",
        got=f"{refused!r}, send called {calls - before} time(s)",
        hint="Return None before calling send when spent + reserved + estimate > limit.",
    )


@budget.case("a lost answer (timeout, cancellation) keeps its estimate as spent and raises")
async def _lost_answer(cls) -> None:
    import asyncio

    for how in ("timed out", "cancelled"):
        b = cls(Decimal("0.05"))
        calls = 0

        async def lost() -> tuple[str, Decimal]:
            nonlocal calls
            calls += 1
            if how == "timed out":
                raise anthropic.APITimeoutError(request=status_error(529).request)
            await asyncio.sleep(3600)  # the caller gives up first
            return "late", Decimal("0.01")

        task = asyncio.ensure_future(_spend(b, Decimal("0.04"), lost))
        if how == "cancelled":
            await asyncio.sleep(1)
            task.cancel()
        try:
            got = await task
        except (anthropic.APITimeoutError, asyncio.CancelledError):
            got = "raised"
        expect(
            got == "raised",
            f"send() {how}, but spend returned {got!r}",
            expected="the exception re-raised",
            got=repr(got),
            hint="Keep the worst case, then re-raise with a bare `raise`: the caller must know the answer was lost.",
        )
        before = calls

        async def fine() -> tuple[str, Decimal]:
            nonlocal calls
            calls += 1
            return "ok", Decimal("0.04")

        again = await _spend(b, Decimal("0.04"), fine)
        expect(
            again is None and calls == before,
            f"after an answer that {how} (the provider may have billed it), a second $0.04 request was let through "
            "a $0.05 budget",
            expected="None: the lost answer's $0.04 counts as spent",
            got=f"{again!r}, send called {calls - before} time(s)",
            hint="Only an error response (anthropic.APIStatusError) proves nothing was billed. Any other exception "
            "or a cancellation means the answer was lost, not refused: add the estimate to spent, then re-raise.",
        )


# =============================================================================================
# 7.5 tenant_charges(usage_rows) -> dict[str, Decimal]
# =============================================================================================
reconciliation = Exercise(
    "7.5",
    "Reconcile tenants with the provider's ledger",
    points=3,
    signature="tenant_charges(rows) -> dict[str, Decimal]",
    # pricing.cost is allowed (the hint invites it); the tenancy package's own reconciliation is not.
    reference={"tenancy.reconcile": tenancy.reconcile, "tenancy.invoice_lines": tenancy.invoice_lines},
    task="charge each tenant",
    hints=[
        "Price each row with course_utils.pricing.cost(usage, row['model'], batch=row['batch']): it prices "
        "uncached input, cache writes, cache reads and output at their own rates and applies the batch discount.",
        "Sum Decimals per tenant, and never round per row: the provider bills each request exactly, and "
        "float or per-row cent rounding leaves the total off.",
    ],
)

_LONG_SYSTEM = "You answer questions about the account's contracts. " + "Clause text. " * 2600


async def _month(p: Any, tags: dict[str, str]) -> None:
    """A small month of three tenants behind one key: cached prompts (writes, then reads) and a batch."""
    client = p.async_client()
    system = [{"type": "text", "text": _LONG_SYSTEM, "cache_control": {"type": "ephemeral"}}]
    async with p:
        for round_ in range(2):
            for tenant, tag in tags.items():
                await client.messages.create(
                    model="claude-sonnet-5-5",
                    max_tokens=300,
                    system=system,
                    messages=[{"role": "user", "content": f"{tenant}: question {round_}"}],
                    metadata={"user_id": tag},
                )
        batch = await client.messages.batches.create(
            requests=[
                {
                    "custom_id": f"r{i}",
                    "params": {
                        "model": "claude-opus-5-5",
                        "max_tokens": 400,
                        "messages": [{"role": "user", "content": f"Summarise contract {i} in detail."}],
                        "metadata": {"user_id": tags["globex"]},
                    },
                }
                for i in range(4)
            ]
        )
        while (await client.messages.batches.retrieve(batch.id)).processing_status != "ended":
            await asyncio.sleep(10)
        for i in range(3):
            await client.messages.create(**_body(f"short question {i}", tags["initech"]))


def _usage_rows(p: Any, tags: dict[str, str]) -> tuple[list[dict[str, Any]], dict[str, Decimal]]:
    tenant_of = {tag: t for t, tag in tags.items()}
    rows, expected = [], {}
    for r in p.server.simulator.ledger.records():
        if Decimal(r["cost_usd"]) == 0:
            continue
        tenant = tenant_of[r["tenant_tag"]]
        rows.append(
            {
                "tenant": tenant,
                "model": r["model"],
                "batch": bool(r["batch"]),
                "input_tokens": r["input_tokens"],
                "cache_creation_input_tokens": r["cache_creation_input_tokens"],
                "cache_read_input_tokens": r["cache_read_input_tokens"],
                "output_tokens": r["output_tokens"],
            }
        )
        expected[tenant] = expected.get(tenant, Decimal(0)) + Decimal(r["cost_usd"])
    return rows, expected


def _charges(fn: Any, rows: list[dict[str, Any]]) -> dict[str, Decimal]:
    got = fn([dict(r) for r in rows])
    if not isinstance(got, dict):
        raise CaseFailed(
            "tenant_charges must return a dict",
            expected="{tenant: Decimal}",
            got=type(got).__name__,
            hint="Return {tenant: Decimal}.",
        )
    for tenant, amount in got.items():
        if not isinstance(amount, Decimal):
            raise CaseFailed(
                f"tenant {tenant}'s charge is a {type(amount).__name__}, not a Decimal",
                expected="Decimal",
                got=amount,
                hint="Money must stay exact: floats add up to a total the provider never billed. Use Decimal "
                "throughout (course_utils.pricing.cost returns one).",
            )
    return got


@reconciliation.case("the tenants' charges sum exactly to the provider ledger (cache and batch pricing)")
async def _exact(fn) -> None:
    p = probe(tier="unlimited", time_scale=0.0, tag="check07")
    tags = {t: tenant_tag(t) for t in ("acme", "globex", "initech")}
    await _month(p, tags)
    rows, expected = _usage_rows(p, tags)
    got = _charges(fn, rows)
    ledger_total = sum(expected.values(), Decimal(0))
    total = sum(got.values(), Decimal(0))
    kinds = []
    if any(r["cache_read_input_tokens"] or r["cache_creation_input_tokens"] for r in rows):
        kinds.append("cache reads/writes")
    if any(r["batch"] for r in rows):
        kinds.append("batch requests")
    expect(
        total == ledger_total,
        f"the tenants' charges sum to {_money(total)} but the provider billed {_money(ledger_total)} "
        f"(off by {_money(total - ledger_total)}; this month has {' and '.join(kinds)})",
        expected=_money(ledger_total),
        got=_money(total),
        hint="Cache reads cost 0.1x input, cache writes 1.25x (5 min) or 2x (1 h), and batch requests half "
        "price: pricing.cost(row, row['model'], batch=row['batch']) prices them all. Never round per row.",
    )
    for tenant, amount in expected.items():
        expect(
            got.get(tenant) == amount,
            f"tenant {tenant} was charged {_money(got.get(tenant, Decimal(0)))}; its requests cost {_money(amount)}",
            expected=_money(amount),
            got=_money(got.get(tenant, Decimal(0))),
            hint="Charge each row to its own row['tenant'].",
        )


LONG_PROMPT_TIER_STATED = True
"""Exercise 7.5's statement names Haiku 5.5's long-prompt tier, so a charge priced without it fails."""


def _untiered(row: dict[str, Any]) -> Decimal:
    """A row priced as the statement reads today: every class at its rate, the batch discount, no tier."""
    p = price(row["model"])
    total = (
        row["input_tokens"] * p.input_per_mtok
        + row["cache_creation_input_tokens"] * p.cache_write_5m_per_mtok
        + row["cache_read_input_tokens"] * p.cache_read_per_mtok
        + row["output_tokens"] * p.output_per_mtok
    ) / Decimal(1_000_000)
    return total * p.batch_discount if row["batch"] else total


@reconciliation.case("a prompt over Haiku 5.5's 100,000 tokens is billed at its long-prompt tier")
def _long_prompt(fn) -> None:
    def row(tenant: str, batch: bool = False, **tokens: int) -> dict[str, Any]:
        counts = {"input_tokens": 0, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
        return {"tenant": tenant, "model": MODEL, "batch": batch, **counts, "output_tokens": 700, **tokens}

    rows = [
        row("acme", input_tokens=120_000),
        row("acme", input_tokens=100_000),  # at the threshold, not over it
        row("globex", input_tokens=30_000, cache_read_input_tokens=80_000),  # reads are prompt tokens
        row("initech", batch=True, cache_creation_input_tokens=101_000),
        row("initech", input_tokens=2_000),
    ]
    provider: dict[str, Decimal] = {}
    plain: dict[str, Decimal] = {}
    for r in rows:
        billed = usage_cost({k: v for k, v in r.items() if k.endswith("tokens")}, r["model"], batch=r["batch"])
        provider[r["tenant"]] = provider.get(r["tenant"], Decimal(0)) + billed
        plain[r["tenant"]] = plain.get(r["tenant"], Decimal(0)) + _untiered(r)
    got = _charges(fn, rows)
    if got == provider or (not LONG_PROMPT_TIER_STATED and got == plain):
        return
    wrong = next(t for t in provider if got.get(t) != provider[t])
    expect(
        False,
        f"tenant {wrong} was charged {_money(got.get(wrong, Decimal(0)))} for long prompts; the provider bills "
        f"{_money(provider[wrong])}",
        expected=_money(provider[wrong]),
        got=_money(got.get(wrong, Decimal(0))),
        hint="Haiku 5.5 bills a request whose prompt (input + cache writes + cache reads) is over 100,000 tokens "
        "at 5x on every token class (price(model).long_prompt_threshold and .long_prompt_multiplier); "
        "pricing.cost applies it.",
    )


@reconciliation.case("an empty month charges nobody, and the rows are not modified")
def _empty(fn) -> None:
    got = _charges(fn, [])
    expect(
        got == {} or all(v == 0 for v in got.values()),
        "an empty month produced charges",
        got=got,
        hint="No rows, no charges: start from an empty dict.",
    )
    row = {
        "tenant": "acme",
        "model": MODEL,
        "batch": False,
        "input_tokens": 1234,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": 56,
    }
    original = dict(row)
    fn([row])
    expect(
        row == original,
        "tenant_charges modified its input rows",
        expected=original,
        got=row,
        hint="Read the rows; keep your sums in a dict of your own.",
    )


EXERCISES = [limiter, drr, isolation, budget, reconciliation]
