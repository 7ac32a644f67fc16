"""The lesson's measured demos: the noisy neighbour (virtual time) and N processes sharing one limit
(real processes, a real Redis, the simulator's ledger as the independent count). Counts only."""

from __future__ import annotations

from decimal import Decimal

import pytest

from course_utils.tenancy import Plan
from course_utils.tenancy.processes import run_processes
from course_utils.tenancy.simulate import GATEWAYS, noisy_neighbour, tenant_mix

# 1 request a minute with a burst of 20 (burst_s=1200): a refill needs a whole minute, so how fast the
# processes run cannot change the counts.
PLAN = Plan("pro", 1, 10**6, 10**6, Decimal(10), frozenset({"claude-haiku-5-5"}))
BURST_S = 1200.0
BODY = {"model": "claude-haiku-5-5", "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]}


def test_noisy_neighbour_gateways_compare_as_the_lesson_says():
    """The figure is the time to an answer, retries included: a fast 429 is not a short wait."""
    run = noisy_neighbour(mix=tenant_mix(flood=30, small_tenants=4, small_each=3))
    small = (
        run.small_tenants()
        .groupby("gateway")
        .agg(
            p95=("p95_answer_s", "max"), refusals=("refusals_per_request", "mean"), given_up=("share_given_up", "mean")
        )
    )
    assert set(small.index) == set(GATEWAYS)
    assert small.loc["fifo", "refusals"] > 1  # the flood keeps the limit full: small tenants meet 429s
    assert small.loc["per-tenant limits", "refusals"] < small.loc["fifo", "refusals"]
    assert small.loc["fair queueing", "refusals"] == 0
    # Retrying until answered, FIFO's small tenants wait longest for an answer.
    assert small.loc["fifo", "p95"] > max(small.loc["per-tenant limits", "p95"], small.loc["fair queueing", "p95"])
    assert (small.given_up == 0).all()
    frame = run.frame()
    assert len(frame) == 3 * (30 + 4 * 3)
    assert (frame.status == 200).all()
    # wait_s runs from submission to the answer, so it covers every retry's retry-after.
    fifo = frame[(frame.gateway == "fifo") & (frame.refusals > 0)]
    assert (fifo.wait_s >= fifo.refusals * 1.0 - 1e-9).all()


def test_a_client_gives_up_after_its_patience():
    run = noisy_neighbour(["fifo"], mix=tenant_mix(flood=30, small_tenants=2, small_each=2), patience_s=3.0)
    frame = run.frame()
    gave_up = frame[frame.status == 429]
    assert len(gave_up) > 0 and (gave_up.refusals >= 1).all()
    assert (gave_up.wait_s <= 3.0 + 1e-6).all()


def test_noisy_neighbour_rejects_unknown_gateways():
    with pytest.raises(ValueError, match="unknown gateway"):
        noisy_neighbour(["lifo"])
    with pytest.raises(ValueError):
        tenant_mix(flood=-1)


@pytest.mark.parametrize("backend, expected", [("memory", 4 * 20), ("redis", 20)])
def test_processes_multiply_a_memory_limit_not_a_redis_one(server, redis_url, backend, expected):
    """4 processes, one tenant with a burst of 20 requests: the simulator's ledger counts what went out."""
    server.reset()
    tenant = server.tenant("procs", "unlimited")
    run = run_processes(
        backend,
        base_url=server.base_url,
        api_key=tenant.api_key,
        plan=PLAN,
        body=BODY,
        redis_url=redis_url,
        burst_s=BURST_S,
    )
    sent = len(tenant.ledger())
    assert sent == run.total_sent == expected


def test_processes_need_a_valid_backend():
    with pytest.raises(ValueError, match="backend"):
        run_processes("disk", base_url="http://x", api_key="k", plan=PLAN, body=BODY)
    with pytest.raises(ValueError, match="redis_url"):
        run_processes("redis", base_url="http://x", api_key="k", plan=PLAN, body=BODY)


def test_the_lessons_default_workload_orders_the_gateways_as_its_prose_says():
    """Section 1's sentence after the table (parameters' defaults, virtual time): per-tenant limits answer
    the small tenants fastest and the import slowest; fifo answers the small tenants slowest; fair
    queueing refuses nobody."""
    s = noisy_neighbour().summary()
    small = s[s.tenant != "bulk"].groupby("gateway").p95_answer_s.max()
    bulk = s[s.tenant == "bulk"].set_index("gateway").p95_answer_s
    assert small["per-tenant limits"] < small["fair queueing"] < small["fifo"]
    assert bulk.idxmax() == "per-tenant limits"
    assert (s[s.gateway == "fair queueing"].refusals_per_request == 0).all()
